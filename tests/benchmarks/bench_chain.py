"""Cost of the broken-chain check.

1. The analysis alone, in process, on 100,000 spans: one deep trace (a chain
   100,000 spans long) and 10,000 small traces of 10 spans; also the report
   of a failing capture (the analysis plus the rendered trees, cut at 200).
2. Whole pytest runs of a generated suite of 2,000 tests with 10 spans each,
   flavours alternated, median of the repetitions:

    off       the ``tracechain`` fixture, --tracechain-check=off
    fail      the same, --tracechain-check=fail (the analysis after every test)
    plain     2,000 tests without the fixture (their conftest sets an SDK provider,
              as an application would), plugin enabled, no check-all
    all       the same tests with --tracechain-check-all and fail mode (capture
              and check on for every test)
    bare      reference: the tests with spans and a bare SDK fixture, -p no:tracechain

    python tests/benchmarks/bench_chain.py            # 5 repetitions
    python tests/benchmarks/bench_chain.py --quick    # 500 tests, 3 repetitions
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_per_test
from _common import (
    Series,
    alternate,
    clean_env,
    machine_info,
    progress,
    pytest_blockers,
    pytest_command,
    run_timed,
    table,
)

# bench_per_test.py's ten spans, the root named after its test.
TEST_BODY = """
def test_{n}({fixture}):
""" + bench_per_test.TEN_SPANS.replace('span("root")', 'span("request {n}")')

# The same conftests as bench_per_test.py: a bare SDK fixture, and an
# application's own provider with no processor (spans are real in every flavour
# that uses it, so the difference is the plugin's capture and check alone).
BARE_CONFTEST, PROVIDER_CONFTEST = bench_per_test.BARE_CONFTEST, bench_per_test.PROVIDER_CONFTEST


def analysis() -> list[list[str]]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    from pytest_tracechain._chain import SpanFacts, analyze, report

    # One resource for all spans, as a provider gives them. Without it each
    # ReadableSpan runs Resource.create({}) (about 0.5 ms): minutes of set-up.
    resource = Resource.create({})
    count = 100_000
    deep = [
        ReadableSpan(
            name=f"s{i}",
            context=SpanContext(1, i + 1, False),
            parent=SpanContext(1, i, False) if i else None,
            start_time=i,
            end_time=i + 10,
            resource=resource,
        )
        for i in range(count)
    ]
    small = []
    for trace_index in range(count // 10):
        for j in range(10):
            span_id = trace_index * 10 + j + 1
            parent = SpanContext(trace_index + 1, trace_index * 10 + 1, False) if j else None
            small.append(
                ReadableSpan(
                    name="x",
                    context=SpanContext(trace_index + 1, span_id, False),
                    parent=parent,
                    start_time=span_id,
                    end_time=span_id + 5,
                    resource=resource,
                )
            )
    # Every 100th small trace (its 6th span) loses its parent: 100 orphans to report.
    broken = [
        ReadableSpan(
            name=s.name,
            context=s.context,
            parent=SpanContext(s.context.trace_id, 10**9 + i, False) if i % 1000 == 5 else s.parent,
            start_time=s.start_time,
            end_time=s.end_time,
            resource=resource,
        )
        for i, s in enumerate(small)
    ]
    rows = []
    for label, spans, with_report in (
        ("one deep trace (100,000 spans)", deep, False),
        ("10,000 traces of 10 spans", small, False),
        ("10,000 traces, 100 orphans, with the report", broken, True),
    ):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            findings = analyze(SpanFacts(spans))
            if with_report:
                report(findings, None)
            times.append(time.perf_counter() - start)
        rows.append([label, f"{statistics.median(times):.3f} s", str(len(findings))])
    return rows


def write_suite(root: Path, count: int, *, fixture: str, conftest: str = "") -> Path:
    root.mkdir()
    # An ini file of its own makes the suite its rootdir: no outside config applies.
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(conftest)
    per_file = 100
    for index in range(count // per_file):
        body = "from opentelemetry import trace\n\ntracer = trace.get_tracer('bench')\n"
        body += "".join(TEST_BODY.format(n=n, fixture=fixture) for n in range(per_file))
        (root / f"test_{index:03}.py").write_text(body)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="500 tests, 3 repetitions")
    parser.add_argument("--reps", type=int, help="repetitions (default 5)")
    args = parser.parse_args()
    count = 500 if args.quick else 2000
    reps = args.reps or (3 if args.quick else 5)

    print(machine_info())
    print("\n## Analysis alone (median of 5)\n")
    print(table(["spans", "analysis", "findings"], analysis()))

    python = sys.executable
    base = [*pytest_command(python), "-q", "-p", "no:cacheprovider", *pytest_blockers(python)]
    with tempfile.TemporaryDirectory() as tmp:
        with_fixture = write_suite(Path(tmp) / "fixture", count, fixture="tracechain")
        without = write_suite(Path(tmp) / "plain", count, fixture="", conftest=PROVIDER_CONFTEST)
        bare = write_suite(Path(tmp) / "bare", count, fixture="spans", conftest=BARE_CONFTEST)
        variants = {
            "off": (with_fixture, ["--tracechain-check=off"]),
            "fail": (with_fixture, ["--tracechain-check=fail"]),
            "plain": (without, []),
            "all": (without, ["--tracechain-check-all", "--tracechain-check=fail"]),
            "bare": (bare, ["-p", "no:tracechain"]),
        }
        series = {name: Series(name) for name in variants}
        for rep, name in alternate(variants, reps):
            root, extra = variants[name]
            run = run_timed([*base, *extra], cwd=str(root), env=clean_env())
            if f"{count} passed" not in run.stdout:
                raise SystemExit(f"{name}: expected {count} passed:\n{run.stdout[-2000:]}")
            if rep >= 0:
                series[name].runs.append(run)
            progress(f"rep {rep} {name}: {run.wall:.2f} s")

    def per_test(name: str) -> float:
        return series[name].median("wall") / count * 1000

    rows = [
        [name, f"{series[name].median('wall'):.2f} s", f"{per_test(name):.3f} ms"]
        for name in ("bare", "off", "fail", "plain", "all")
    ]
    print(f"\n## {count} tests × 10 spans, median of {reps} (wall)\n")
    print(table(["flavour", "suite", "per test"], rows))
    check = per_test("fail") - per_test("off")
    print(f"\ncheck in fail mode vs off: {check:+.3f} ms/test ({check / per_test('off') * 100:+.1f} %)")
    check_all = per_test("all") - per_test("plain")
    print(f"--tracechain-check-all vs plugin unused: {check_all:+.3f} ms/test")
    print(f"fixture with the check vs bare SDK fixture: {per_test('fail') - per_test('bare'):+.3f} ms/test")


if __name__ == "__main__":
    main()
