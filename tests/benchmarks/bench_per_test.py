"""Per-test cost of the ``tracechain`` fixture against a hand-written bare-SDK fixture.

Generates, in a temporary directory, suites of the same 2,000 tests (10 spans
each: root -> 3 children -> 2 grandchildren each, made with a module-level
tracer) and times whole ``pytest -q -p no:cacheprovider`` runs, flavours
alternated (``_common.alternate``; (a) and (b) run side by side, in turn
first), median of the repetitions:

    a      bare SDK fixture in conftest.py: one global provider set at import,
           SimpleSpanProcessor(InMemorySpanExporter()); the function fixture
           yields the exporter and clear()s it after the test; -p no:tracechain
    b      the same tests with the ``tracechain`` fixture (plugin defaults)
    c      reference: the same 2,000 tests, empty, no spans, no fixture; -p no:tracechain

and, unless --main-only, more flavours that take the difference apart:

    a_req  as a, but the fixture also takes ``request`` (``tracechain`` no longer does)
    b_off  as b, with --tracechain-check=off (no chain analysis)
    b2     as b, but conftest.py sets an SDK TracerProvider at import (as an
           application would); module-level tracers are then real SDK tracers,
           not ProxyTracers waiting for the plugin to install a provider
    c2     as c, with the plugin enabled (its hooks run for tests that do not use it)
    peer   opentelemetry-test-utils' TestBase (unittest classes, spans from its own
           provider), -p no:tracechain; only if installed (the bench group)
    peer2  pytest-otel-capture: a conftest fixture as its README shows (an ``OTelMocker``
           whose span processor goes into a ``TracerProvider`` of the test's own, shut
           down after it; spans from that provider), -p no:tracechain; only if
           installed (the bench-otel-capture group, Python >= 3.12)

A/B: ``--python base=/work/bench-base/bin/python --python new=/work/bench-new/bin/python``
runs every flavour under both interpreters, interleaved, one table per interpreter
and the paired (b) − (a) of each. ``--source base=/work/base --source new=/work/after``
does the same with one interpreter and each checkout first on ``PYTHONPATH``:
two venvs of the same code can differ by more than the change measured.

    python tests/benchmarks/bench_per_test.py            # 2,000 tests, 5 repetitions
    python tests/benchmarks/bench_per_test.py --quick    # 500 tests, 3 repetitions
    python tests/benchmarks/bench_per_test.py --instructions   # (a) and (b) under callgrind: instructions per test
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import textwrap
from dataclasses import dataclass
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
    median_interval,
    parse_pythons,
    parse_sources,
    progress,
    pytest_blockers,
    pytest_command,
    run_timed,
    table,
)

TESTS_PER_FILE = 100
SPANS_PER_TEST = 10


@dataclass(frozen=True)
class Flavour:
    label: str
    conftest: str | None  # "bare", "bare_request", "provider" or None
    fixture: str | None  # None: empty tests without spans
    args: tuple[str, ...] = ()


NO_PLUGIN = ("-p", "no:tracechain")
FLAVOURS = {
    "a": Flavour("bare SDK fixture (conftest.py), -p no:tracechain", "bare", "spans", NO_PLUGIN),
    "b": Flavour("tracechain fixture", None, "tracechain"),
    "c": Flavour("empty tests, no fixture, -p no:tracechain", None, None, NO_PLUGIN),
    "a_req": Flavour(
        "bare SDK fixture taking `request`, -p no:tracechain", "bare_request", "spans", NO_PLUGIN
    ),
    "b_off": Flavour(
        "tracechain fixture, --tracechain-check=off", None, "tracechain", ("--tracechain-check=off",)
    ),
    "b2": Flavour("tracechain fixture, SDK provider set in conftest.py", "provider", "tracechain"),
    "c2": Flavour("empty tests, no fixture, plugin enabled", None, None),
    "peer": Flavour("peer: opentelemetry-test-utils TestBase, -p no:tracechain", None, "testbase", NO_PLUGIN),
    "peer2": Flavour(
        "peer: pytest-otel-capture OTelMocker fixture, -p no:tracechain", "otel_capture", "otel", NO_PLUGIN
    ),
}
MAIN = ("a", "b", "c")
# Each peer, and the module that has to import for its flavour to run.
PEERS = {"peer": "opentelemetry.test.test_base", "peer2": "pytest_otel_capture"}

BARE_REQUEST_CONFTEST = BARE_CONFTEST.replace("def spans():", "def spans(request):")

PROVIDER_CONFTEST = """\
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())
"""

SPANNING_HEADER = """\
from opentelemetry import trace

tracer = trace.get_tracer("bench")
"""

# Every flavour's test makes the same ten spans: a root, 3 children, 2 grandchildren each.
TEN_SPANS = """\
    with tracer.start_as_current_span("root"):
        for _ in range(3):
            with tracer.start_as_current_span("child"):
                with tracer.start_as_current_span("grandchild"):
                    pass
                with tracer.start_as_current_span("grandchild"):
                    pass
"""

SPANNING_TEST = """

def test_{i}({fixture}):
{spans}    assert len({finished}) == 10
""".replace("{spans}", TEN_SPANS)

TESTBASE_HEADER = """\
from opentelemetry.test.test_base import TestBase
"""

TESTBASE_TEST = """

class Test{i}(TestBase):
    def test_{i}(self):
        tracer = self.tracer_provider.get_tracer("bench")
{spans}        assert len(self.memory_exporter.get_finished_spans()) == 10
""".replace("{spans}", textwrap.indent(TEN_SPANS, "    "))

# pytest-otel-capture 0.1.1 is a helper library, not a plugin: its README's fixture owns the provider.
OTEL_CAPTURE_CONFTEST = """\
import pytest
import pytest_otel_capture as capture
from opentelemetry.sdk.trace import TracerProvider


@pytest.fixture
def otel():
    collected = capture.OTelMocker(
        capture.InMemoryLogRecordExporter(),
        capture.InMemorySpanExporter(),
        capture.InMemoryMetricReader(),
    )
    provider = TracerProvider()
    provider.add_span_processor(collected.span_processor)
    try:
        yield provider, collected
    finally:
        provider.shutdown()
"""

OTEL_CAPTURE_TEST = """

def test_{i}(otel):
    provider, collected = otel
    tracer = provider.get_tracer("bench")
{spans}    assert len(collected.get_finished_spans()) == 10
""".replace("{spans}", TEN_SPANS)

EMPTY_TEST = """

def test_{i}():
    pass
"""


CONFTESTS = {
    "bare": BARE_CONFTEST,
    "bare_request": BARE_REQUEST_CONFTEST,
    "provider": PROVIDER_CONFTEST,
    "otel_capture": OTEL_CAPTURE_CONFTEST,
}
FINISHED = {"spans": "spans.get_finished_spans()", "tracechain": "tracechain.spans"}


def write_suite(root: Path, name: str, flavour: Flavour, n_tests: int) -> Path:
    suite = root / name
    suite.mkdir()
    # An ini file of its own makes the suite its rootdir: no outside config applies.
    (suite / "pytest.ini").write_text("[pytest]\n")
    if flavour.conftest:
        (suite / "conftest.py").write_text(CONFTESTS[flavour.conftest])
    for start in range(0, n_tests, TESTS_PER_FILE):
        count = min(TESTS_PER_FILE, n_tests - start)
        if flavour.fixture is None:
            body = "".join(EMPTY_TEST.format(i=i) for i in range(count))
        elif flavour.fixture == "testbase":
            body = TESTBASE_HEADER + "".join(TESTBASE_TEST.format(i=i) for i in range(count))
        elif flavour.fixture == "otel":
            body = "".join(OTEL_CAPTURE_TEST.format(i=i) for i in range(count))
        else:
            body = SPANNING_HEADER + "".join(
                SPANNING_TEST.format(i=i, fixture=flavour.fixture, finished=FINISHED[flavour.fixture])
                for i in range(count)
            )
        (suite / f"test_{start // TESTS_PER_FILE:03d}.py").write_text(body)
    return suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 tests, 3 repetitions")
    parser.add_argument("--tests", type=int, help="tests per suite (default 2,000)")
    parser.add_argument("--reps", type=int, help="repetitions (default 5)")
    parser.add_argument("--main-only", action="store_true", help="only flavours a, b and c (and the peers)")
    parser.add_argument("--python", action="append", help="LABEL=PATH, repeatable: an A/B of venvs")
    parser.add_argument("--no-peer", action="store_true", help="leave the peer rows out (long suites)")
    parser.add_argument(
        "--source",
        action="append",
        help="LABEL=DIR, repeatable: an A/B of checkouts under one interpreter (--python or this one)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per test under valgrind's callgrind instead of time (deterministic, ~5 min)",
    )
    args = parser.parse_args()
    pythons = parse_pythons(args.python)
    sources = parse_sources(args.source)
    envs = {label: clean_env() for label in pythons}
    if sources:
        if len(pythons) > 1:
            parser.error("--source takes one --python at most")
        (python,) = pythons.values()
        pythons = dict.fromkeys(sources, python)
        envs = {label: clean_env({"PYTHONPATH": path}) for label, path in sources.items()}
    if args.instructions:
        instructions(pythons, envs)
        return
    n_tests = args.tests or (500 if args.quick else 2_000)
    reps = args.reps or (3 if args.quick else 5)
    flavours = {k: v for k, v in FLAVOURS.items() if not args.main_only or k in (*MAIN, *PEERS)}
    for peer, module in PEERS.items():
        if args.no_peer:
            del flavours[peer]
        elif not all(has_module(python, module) for python in pythons.values()):
            progress(f"note: {module} does not import ({FLAVOURS[peer].label}): no {peer} row")
            del flavours[peer]

    print(machine_info())
    print(
        f"{n_tests:,} tests × {SPANS_PER_TEST} spans, {reps} repetitions, "
        "flavours alternated, (a) and (b) of a label side by side, medians of whole pytest runs\n"
    )
    cases = {f"{label}|{key}": (label, key) for label in pythons for key in flavours}
    commands = {}
    for label, python in pythons.items():
        if label:
            where = f"{python}, PYTHONPATH={sources[label]}" if sources else python
            print(f"{label}: {where}: {fingerprint_of(python, envs[label])}")
        blockers = pytest_blockers(python)
        for key, flavour in flavours.items():
            commands[label, key] = [
                *pytest_command(python),
                "-q",
                "-p",
                "no:cacheprovider",
                *blockers,
                *flavour.args,
            ]
    runs: dict[tuple[str, str], Series] = {case: Series(flavours[case[1]].label) for case in cases.values()}
    with tempfile.TemporaryDirectory(prefix="tracechain-bench-") as tmp:
        suites = {key: write_suite(Path(tmp), key, f, n_tests) for key, f in flavours.items()}
        # (a) and (b) of each label next to each other: their difference is the figure.
        pairs = [(f"{label}|a", f"{label}|b") for label in pythons]
        for rep, name in alternate(cases, reps, pairs=pairs):
            label, key = cases[name]
            run = run_timed(commands[label, key], cwd=str(suites[key]), env=envs[label])
            summary = run.stdout.strip().splitlines()[-1]
            if not re.fullmatch(rf"{n_tests} passed in [\d.]+s", summary):
                raise SystemExit(f"flavour {key}: unexpected result: {summary}\n{run.stdout[-3000:]}")
            progress(f"  rep {rep:>2} {name:>10}: wall {run.wall:.3f} s, cpu {run.cpu:.3f} s")
            if rep >= 0:
                runs[label, key].runs.append(run)
    for label in pythons:
        if label:
            print(f"\n## {label}: {pythons[label]}\n")
        series = {key: runs[label, key] for key in flavours}
        report(series, n_tests, {key: commands[label, key] for key in flavours})
    if len(pythons) > 1:
        print(
            "\nA/B, tracechain over the bare fixture, median of paired per-repetition differences (ms/test):"
        )
        for label in pythons:
            for attr in ("cpu", "wall"):
                diffs = per_test_differences(runs[label, "b"], runs[label, "a"], n_tests, attr)
                low, high = median_interval(diffs)
                print(
                    f"  {label}: {attr} {statistics.median(diffs):+.3f} (95 % interval {low:+.3f} to {high:+.3f})"
                )


def instructions(pythons: dict[str, str], envs: dict[str, dict[str, str]]) -> None:
    """Instructions per test of flavours (a) and (b), counted by valgrind's callgrind.

    Deterministic where time is not: on a shared machine an A/B of per-test
    CPU time moves by ±0.03 ms from run to run, an instruction count by well
    under 0.1 %. Per test is the difference between suites of 800 and 400
    tests (start-up cancels), under ``PYTHONHASHSEED=0``. Instructions are not
    time: cache misses and the collector's walks of pytest's heap cost more
    per instruction; the figure says whether a change added work per test,
    not by how many milliseconds.
    """
    sizes = (400, 800)
    counts: dict[tuple[str, str, int], int] = {}
    with tempfile.TemporaryDirectory(prefix="tracechain-bench-") as tmp:
        suites = {
            (key, size): write_suite(Path(tmp), f"{key}{size}", FLAVOURS[key], size)
            for key in ("a", "b")
            for size in sizes
        }
        for label, python in pythons.items():
            blockers = pytest_blockers(python)
            for (key, size), suite in suites.items():
                command = [
                    *pytest_command(python),
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    *blockers,
                    *FLAVOURS[key].args,
                ]
                env = dict(envs[label], PYTHONHASHSEED="0")
                counts[label, key, size] = count_instructions(command, cwd=suite, env=env)
                progress(
                    f"  {label or 'this venv'} ({key}) {size} tests: {counts[label, key, size]:,} instructions"
                )
    print(
        f"\ninstructions per test (the {sizes[1]}-test suite's count minus the {sizes[0]}-test one's, ÷ {sizes[1] - sizes[0]}):"
    )
    for label in pythons:
        per = {
            key: (counts[label, key, sizes[1]] - counts[label, key, sizes[0]]) / (sizes[1] - sizes[0])
            for key in ("a", "b")
        }
        print(
            f"  {label or 'this venv'}: (a) bare SDK fixture {per['a']:,.0f}; (b) tracechain {per['b']:,.0f}; "
            f"(b) − (a) {per['b'] - per['a']:+,.0f} ({per['b'] / per['a']:.3f}×)"
        )


def per_test_differences(runs: Series, base: Series, n_tests: int, attr: str) -> list[float]:
    """Each repetition's ``runs`` minus the same repetition's ``base``, in ms a test."""
    pairs = zip(runs.runs, base.runs, strict=True)
    return [(getattr(x, attr) - getattr(y, attr)) / n_tests * 1e3 for x, y in pairs]


def report(series: dict[str, Series], n_tests: int, commands: dict[str, list[str]]) -> None:
    def ms(key: str, attr: str = "wall") -> float:
        return series[key].median(attr) / n_tests * 1e3

    def paired(key: str, base: str, attr: str = "wall") -> float:
        """Median over repetitions of the per-repetition difference, ms/test."""
        return statistics.median(per_test_differences(series[key], series[base], n_tests, attr))

    rows = []
    for key, s in series.items():
        lo, hi = s.spread("wall")
        rows.append(
            [
                f"({key}) {s.label}",
                f"{s.median('wall'):.2f} s",
                f"{lo:.2f}–{hi:.2f} s",
                f"{ms(key):.3f}",
                f"{ms(key) - ms('a'):+.3f}" if key != "a" else "—",
                f"{ms(key, 'cpu'):.3f}",
                f"{ms(key, 'cpu') - ms('a', 'cpu'):+.3f}" if key != "a" else "—",
                f"{s.median('wall') / series['a'].median('wall'):.2f}",
                f"{s.median('maxrss_mb'):.0f} MB",
            ]
        )
    print(
        table(
            [
                "flavour",
                "wall",
                "wall min–max",
                "ms/test",
                "Δ ms/test vs (a)",
                "CPU ms/test",
                "Δ CPU ms/test vs (a)",
                "wall ÷ (a)",
                "peak RSS",
            ],
            rows,
        )
    )
    fixture_cost = ms("b") - ms("a")
    print(
        f"\nbare SDK fixture + {SPANS_PER_TEST} spans over an empty test: "
        f"{ms('a') - ms('c'):.3f} ms/test\n"
        f"tracechain over the bare fixture: {fixture_cost:+.3f} ms/test wall "
        f"(CPU {ms('b', 'cpu') - ms('a', 'cpu'):+.3f}; median of paired per-repetition "
        f"differences: wall {paired('b', 'a'):+.3f}, CPU {paired('b', 'a', 'cpu'):+.3f})"
    )
    # The verdict reads the paired CPU differences: their median, and a distribution-free 95 %
    # interval for it (on a shared machine one repetition's difference moves by ±0.2 ms a test).
    cpu_paired = paired("b", "a", "cpu")
    low, high = median_interval(per_test_differences(series["b"], series["a"], n_tests, "cpu"))
    if high <= 0.1:
        verdict = "met"
    elif cpu_paired <= 0.1:
        verdict = "met by the median; the interval reaches past it: not shown"
    else:
        verdict = "MISSED"
    print(
        f"target (b) − (a) ≤ 0.100 ms/test CPU, paired: {cpu_paired:+.3f} "
        f"(95 % interval {low:+.3f} to {high:+.3f}, {len(series['a'].runs)} repetitions) -> {verdict}"
    )

    parts = [
        ("a_req", "a", "a fixture taking `request` (pytest builds a FixtureDef for it each test)"),
        ("b", "b_off", "chain analysis at the end of each test (check=warn)"),
        ("b", "b2", "module-level ProxyTracer (provider installed lazily by the plugin)"),
        ("c2", "c", "plugin hooks, for tests that do not use the plugin"),
    ]
    parts = [p for p in parts if p[0] in series and p[1] in series]
    if parts:
        print("\nwhere the difference comes from (paired per-repetition differences, medians):\n")
        print(
            table(
                ["cost of", "flavours", "wall ms/test", "CPU ms/test"],
                [
                    [what, f"({x}) − ({y})", f"{paired(x, y):+.3f}", f"{paired(x, y, 'cpu'):+.3f}"]
                    for x, y, what in parts
                ],
            )
        )
        print(
            "(each row is the difference of two whole runs of ~2 s: on a shared machine, "
            "differences under ~0.03 ms/test are noise; CPU time is the steadier column)"
        )
    print("\ncommands (each run in its generated suite directory):")
    for key, cmd in commands.items():
        print(f"  ({key}) {' '.join(cmd)}")


if __name__ == "__main__":
    main()
