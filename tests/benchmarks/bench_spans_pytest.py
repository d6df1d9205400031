"""Cost per span as a user pays it: N spans made in one test, through pytest.

``bench_spans.py`` times an isolated loop on ``provider.get_tracer()``; this
one runs a generated one-test suite in a fresh ``pytest`` process per
repetition, the way a suite makes spans:

    floor     conftest.py sets an SDK provider with no span processor at import: the
              SDK's own work per span, which every variant pays and which keeps
              nothing; -p no:tracechain
    keep      conftest.py sets an SDK provider whose one processor keeps each ended span in a
              list, its empty event and link lists shed as the plugin's router sheds them:
              retaining a span, and nothing else the capture does; -p no:tracechain
    bare      conftest.py sets an SDK provider with SimpleSpanProcessor(InMemorySpanExporter())
              at import (so the module-level tracer is a real one); -p no:tracechain
    proxy     the tracechain fixture; the module-level tracer was taken at import,
              before the plugin installed its provider: a ProxyTracer, as in the README
    fixture   the tracechain and tracer fixtures: spans made with the ``tracer`` fixture
    testbase  peer: opentelemetry-test-utils' TestBase (unittest), spans from its
              ``self.tracer_provider``; -p no:tracechain (run only if it is installed)

Two shapes of trace: ``tenth`` (a root, 3 children, 2 grandchildren each: one
root in 10 spans, as bench_spans.py) and ``half`` (a root and one child: half
the spans are roots, the plugin's slow path). The test times its own span
loop (wall and CPU), the driver the whole process (wall, CPU, peak RSS).

A/B: ``--python base=/work/bench-base/bin/python --python new=/work/bench-new/bin/python``
runs every variant under both interpreters, interleaved.

    python tests/benchmarks/bench_spans_pytest.py                 # N=100,000, 5 repetitions
    python tests/benchmarks/bench_spans_pytest.py --quick         # N=20,000, 3 repetitions
    python tests/benchmarks/bench_spans_pytest.py -n 1000000 --reps 3 --shape tenth   # the 1M row
    python tests/benchmarks/bench_spans_pytest.py -n 20000 --tests 10 --shape tenth   # a session of big tests
    python tests/benchmarks/bench_spans_pytest.py --instructions   # per span under callgrind (~15 min)

With ``--tests K`` the suite has K such tests in a row (the loop figures add
up over them): what a session holds between tests shows in its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
from pathlib import Path

from _common import (
    BARE_CONFTEST,
    Series,
    alternate,
    clean_env,
    count_instructions,
    fingerprint_of,
    has_module,
    machine_info,
    parse_pythons,
    progress,
    pytest_blockers,
    pytest_command,
    run_timed,
    table,
)

VARIANTS = {
    "floor": "SDK floor: a provider with no span processor in conftest.py",
    "keep": "retaining alone: a processor that keeps each span, lists shed",
    "bare": "bare SDK: SimpleSpanProcessor(InMemorySpanExporter()) in conftest.py",
    "proxy": "tracechain, module-level ProxyTracer",
    "fixture": "tracechain, `tracer` fixture",
    "testbase": "peer: opentelemetry-test-utils TestBase",
}
SHAPES = {"tenth": 10, "half": 2}  # spans per root
NO_PLUGIN = ("floor", "keep", "bare", "testbase")  # the variants run with -p no:tracechain

FLOOR_CONFTEST = """\
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())
"""

# Retaining alone: what any capture that keeps its spans pays, kept the way the router keeps them
# (the SDK snapshot, its empty event and link lists shed), with none of the router's bookkeeping.
KEEP_CONFTEST = """\
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from pytest_tracechain._router import _shed_empty_lists

_kept = []


class Keep(SpanProcessor):
    def on_end(self, span):
        _shed_empty_lists(span)
        _kept.append(span)


_provider = TracerProvider()
_provider.add_span_processor(Keep())
trace.set_tracer_provider(_provider)


@pytest.fixture
def kept():
    yield _kept
    _kept.clear()
"""

# The span loops, by shape: ``span`` is the tracer's start_as_current_span.
LOOPS = {
    "tenth": """\
    for _ in range(N // 10):
        with span("root"):
            for _ in range(3):
                with span("child"):
                    with span("grandchild"):
                        pass
                    with span("grandchild"):
                        pass
""",
    "half": """\
    for _ in range(N // 2):
        with span("root"):
            with span("child"):
                pass
""",
}

TIMING = """\
import json, os, time

def _report(wall, cpu):
    with open(os.environ["BENCH_REPORT"], "a") as out:  # a line per test
        out.write(json.dumps({"loop": wall, "loop_cpu": cpu}) + "\\n")
"""

FUNCTION_TEST = """\
{timing}
import pytest
from opentelemetry import trace

N = {n}
tracer = trace.get_tracer("bench")


@pytest.mark.parametrize("_test", range({tests}))
def test_spans({args}):
    span = {tracer}.start_as_current_span
    wall, cpu = time.perf_counter(), time.process_time()
{loop}
    _report(time.perf_counter() - wall, time.process_time() - cpu)
    {check}
"""

TESTBASE_TEST = """\
{timing}
from opentelemetry.test.test_base import TestBase

N = {n}


class TestSpans(TestBase):
    def _spans(self):
        span = self.tracer_provider.get_tracer("bench").start_as_current_span
        wall, cpu = time.perf_counter(), time.process_time()
{loop}
        _report(time.perf_counter() - wall, time.process_time() - cpu)
        assert len(self.memory_exporter.get_finished_spans()) == N

{methods}
"""


def write_suite(root: Path, variant: str, shape: str, n: int, tests: int = 1) -> Path:
    suite = root / f"{variant}-{shape}"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")  # its own rootdir: no outside config
    loop = LOOPS[shape]
    if variant == "testbase":
        methods = "".join(f"    test_spans_{i} = _spans\n" for i in range(tests))
        body = TESTBASE_TEST.format(
            timing=TIMING, n=n, loop=re.sub("^", "    ", loop, flags=re.M), methods=methods
        )
    else:
        conftest = {"floor": FLOOR_CONFTEST, "keep": KEEP_CONFTEST, "bare": BARE_CONFTEST}.get(variant)
        if conftest:
            (suite / "conftest.py").write_text(conftest)
        args, tracer, check = {
            # Nothing keeps the floor's spans: its check is that they were real SDK spans, dropped.
            "floor": ("", "tracer", "assert span.__self__.span_processor._span_processors == ()"),
            "keep": ("kept", "tracer", "assert len(kept) == N and kept[0]._events == ()"),
            "bare": ("spans", "tracer", "assert len(spans.get_finished_spans()) == N"),
            "proxy": ("tracechain", "tracer", "assert len(tracechain.spans) == N"),
            "fixture": ("tracechain, tracer", "tracer", "assert len(tracechain.spans) == N"),
        }[variant]
        body = FUNCTION_TEST.format(
            timing=TIMING,
            n=n,
            args=", ".join(filter(None, (args, "_test"))),
            tracer=tracer,
            loop=loop,
            check=check,
            tests=tests,
        )
    (suite / "test_spans.py").write_text(body)
    return suite


def instructions(pythons: dict[str, str], wanted: list[str], shapes: list[str], n: int) -> None:
    """Instructions per span of each variant, counted by valgrind's callgrind: deterministic.

    Per span is the difference between suites of ``n`` and ``n // 2`` spans
    (start-up cancels), under ``PYTHONHASHSEED=0``. It says whether a change
    added work per span, not what a span costs in time (no cache misses, no
    kernel time).
    """
    sizes = (n // 2, n)
    counts: dict[tuple[str, str, str, int], int] = {}
    env = clean_env({"PYTHONHASHSEED": "0", "BENCH_REPORT": os.devnull})
    with tempfile.TemporaryDirectory(prefix="tracechain-bench-spans-") as tmp:
        suites = {}
        for size in sizes:
            (Path(tmp) / str(size)).mkdir()
            for variant in wanted:
                for shape in shapes:
                    suites[variant, shape, size] = write_suite(Path(tmp) / str(size), variant, shape, size)
        for label, python in pythons.items():
            blockers = pytest_blockers(python)
            for variant in wanted:
                no_plugin = ["-p", "no:tracechain"] if variant in NO_PLUGIN else []
                command = [*pytest_command(python), "-q", "-p", "no:cacheprovider", *blockers, *no_plugin]
                for shape in shapes:
                    for size in sizes:
                        suite = suites[variant, shape, size]
                        counts[label, variant, shape, size] = count_instructions(command, cwd=suite, env=env)
                        progress(
                            f"  {label or 'this venv'} {variant}/{shape} {size:,} spans: {counts[label, variant, shape, size]:,}"
                        )
    print(
        f"\ninstructions per span (the {sizes[1]:,}-span suite's count minus the {sizes[0]:,}-span one's, ÷ {sizes[1] - sizes[0]:,}):"
    )
    rows = []
    for label in pythons:
        for shape in shapes:
            per = {
                v: (counts[label, v, shape, sizes[1]] - counts[label, v, shape, sizes[0]])
                / (sizes[1] - sizes[0])
                for v in wanted
            }
            for variant in wanted:
                ratio = f"{per[variant] / per['bare']:.3f}" if "bare" in per else "—"
                rows.append([label or "—", shape, VARIANTS[variant], f"{per[variant]:,.0f}", ratio])
    print(table(["python", "shape", "variant", "instructions per span", "÷ bare"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=20,000, 3 repetitions")
    parser.add_argument("-n", type=int, help="spans in the test (default 100,000)")
    parser.add_argument("--reps", type=int, help="repetitions (default 5)")
    parser.add_argument("--tests", type=int, default=1, help="tests in the suite, N spans each (default 1)")
    parser.add_argument("--shape", choices=[*SHAPES, "both"], default="both")
    parser.add_argument("--variants", help=f"comma-separated, of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--python", action="append", help="LABEL=PATH, repeatable: an A/B of venvs")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per span under valgrind's callgrind instead of time (N default 20,000)",
    )
    args = parser.parse_args()
    n = args.n or (20_000 if args.quick or args.instructions else 100_000)
    reps = args.reps or (3 if args.quick else 5)
    shapes = list(SHAPES) if args.shape == "both" else [args.shape]
    if any(n % SHAPES[shape] for shape in shapes):
        parser.error("-n must be a multiple of 10")
    pythons = parse_pythons(args.python)
    wanted = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = set(wanted) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if "testbase" in wanted and not all(
        has_module(p, "opentelemetry.test.test_base") for p in pythons.values()
    ):
        progress("note: opentelemetry-test-utils is not installed (the bench group): no TestBase row")
        wanted.remove("testbase")

    if args.instructions:
        instructions(pythons, wanted, shapes, n)
        return
    print(machine_info())
    for label, python in pythons.items():
        if label:
            print(f"{label}: {python}: {fingerprint_of(python)}")
    per = "in one test" if args.tests == 1 else f"in each of {args.tests} tests"
    print(f"\nN={n:,} spans {per}, {reps} repetitions, variants alternated, medians [min–max]\n")

    cases = [(label, variant, shape) for label in pythons for shape in shapes for variant in wanted]
    series = {case: Series("/".join(filter(None, case))) for case in cases}
    loops: dict[tuple[str, str, str], list[tuple[float, float]]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory(prefix="tracechain-bench-spans-") as tmp:
        suites = {(v, s): write_suite(Path(tmp), v, s, n, args.tests) for v in wanted for s in shapes}
        report = Path(tmp) / "report.json"
        commands = {}
        for label, python in pythons.items():
            blockers = pytest_blockers(python)
            for variant in wanted:
                no_plugin = ["-p", "no:tracechain"] if variant in NO_PLUGIN else []
                commands[label, variant] = [
                    *pytest_command(python),
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    *blockers,
                    *no_plugin,
                ]
        keys = {"|".join(case): case for case in cases}
        for rep, key in alternate(keys, reps):
            label, variant, shape = keys[key]
            report.unlink(missing_ok=True)
            run = run_timed(
                commands[label, variant],
                cwd=str(suites[variant, shape]),
                env=clean_env({"BENCH_REPORT": str(report)}),
            )
            if not re.search(rf"\b{args.tests} passed\b", run.stdout):
                raise SystemExit(f"{key}: unexpected result\n{run.stdout[-3000:]}")
            lines = [json.loads(line) for line in report.read_text().splitlines()]
            timing = {key: sum(line[key] for line in lines) for key in ("loop", "loop_cpu")}
            progress(
                f"  rep {rep:>2} {key}: wall {run.wall:.3f} s, cpu {run.cpu:.3f} s, "
                f"loop {timing['loop']:.3f} s (cpu {timing['loop_cpu']:.3f}), peak {run.maxrss_mb:.0f} MB"
            )
            if rep >= 0:
                series[keys[key]].runs.append(run)
                loops[keys[key]].append((timing["loop"], timing["loop_cpu"]))

    def loop_median(case: tuple[str, str, str], index: int) -> float:
        return statistics.median(pair[index] for pair in loops[case])

    def spread(values: list[float], unit: str = "s") -> str:
        return f"{min(values):.2f}–{max(values):.2f} {unit}"

    rows = []
    for case in cases:
        label, variant, shape = case
        s = series[case]
        base = (label, "bare", shape)
        has_base = base in series
        lo_ratio = [x.cpu / y.cpu for x, y in zip(s.runs, series[base].runs, strict=True)] if has_base else []
        rows.append(
            [
                label or "—",
                shape,
                VARIANTS[variant],
                f"{s.median('wall'):.2f} s",
                f"{s.median('cpu'):.2f} s",
                spread([r.cpu for r in s.runs]),
                f"{loop_median(case, 0):.2f} s",
                f"{loop_median(case, 1):.2f} s",
                spread([pair[1] for pair in loops[case]]),
                f"{s.median('maxrss_mb'):.0f} MB",
                f"{s.median('cpu') / series[base].median('cpu'):.3f}" if has_base else "—",
                f"[{min(lo_ratio):.2f}–{max(lo_ratio):.2f}]" if lo_ratio else "—",
                f"{loop_median(case, 1) / loop_median(base, 1):.3f}" if has_base else "—",
                f"{s.median('maxrss_mb') / series[base].median('maxrss_mb'):.2f}" if has_base else "—",
            ]
        )
    print(
        table(
            [
                "python",
                "shape",
                "variant",
                "wall",
                "CPU",
                "CPU min–max",
                "loop wall",
                "loop CPU",
                "loop CPU min–max",
                "peak RSS",
                "CPU ÷ bare",
                "per-rep CPU ÷ bare",
                "loop CPU ÷ bare",
                "RSS ÷ bare",
            ],
            rows,
        )
    )
    print("\ntarget: tracechain ÷ bare ≤ 1.00 (whole-process CPU and RSS, and the loop)")
    print("commands (each in its generated suite directory):")
    for (label, variant), command in commands.items():
        print(f"  {label or 'this python'} {variant}: {' '.join(command)}")


if __name__ == "__main__":
    main()
