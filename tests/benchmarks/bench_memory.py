"""Memory over a long session, and the receiver's ingest with many open spans.

Three measurements, each in fresh pytest processes (the plugin as a user runs it):

    tests    20,000 tests x 10 spans with the ``tracechain`` fixture (and the same
             with a bare-SDK fixture, -p no:tracechain, for a ratio): resident
             set size after test 1,000 and after the last. Goal: flat, the last
             within 10 % of the first 1,000 tests.
    tasks    100 tests x 1,000 asyncio tasks, each task starting a span: RSS after
             test 10 and after test 100 (one origin per task name; the origin
             table must not grow for ever). Goal: within 10 %.
    receive  one test holding 0 or 5,000 open spans receives 20,000 root spans
             from "another process" through the router's ``receive`` (what
             ``otlp_receiver`` calls), in batches of 512 as an exporter sends
             them. Goal: with 5,000 open within 1.5x of none.

    python tests/benchmarks/bench_memory.py            # the sizes above, 3 repetitions
    python tests/benchmarks/bench_memory.py --quick    # a tenth of them, 1 repetition
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

from _common import (
    BARE_CONFTEST,  # the same bare-SDK fixture as the per-test figures
    clean_env,
    machine_info,
    progress,
    pytest_blockers,
    pytest_command,
    run_timed,
    table,
)

RSS_PROBE = """
import os, pytest

def _rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

_count = 0

@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    global _count
    _count += 1
    if _count in ({first}, {last}):
        print(f"\\nRSS-AFTER {{_count}} {{_rss_mb():.1f}}", flush=True)
"""

SPANS_TEST = """
from opentelemetry import trace

tracer = trace.get_tracer("bench")

def _spans():
    with tracer.start_as_current_span("root"):
        for _ in range(3):
            with tracer.start_as_current_span("child"):
                for _ in range(2):
                    with tracer.start_as_current_span("grandchild"):
                        pass

{tests}
"""

TASKS_TEST = """
import asyncio
from opentelemetry import trace

tracer = trace.get_tracer("bench")

async def _job():
    with tracer.start_as_current_span("job"):
        pass

async def _many(n):
    await asyncio.gather(*(asyncio.get_running_loop().create_task(_job()) for _ in range(n)))

{tests}
"""

RECEIVE_TEST = """
import os, time
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext
from pytest_tracechain import _provider
from pytest_tracechain._origins import Origin

tracer = trace.get_tracer("bench")

def test_receive(tracechain):
    held = [tracer.start_span("open") for _ in range({open_spans})]
    router = _provider.router()
    router.receiving = True
    origin = Origin(os.getpid() + 1, None, None)
    spans = [
        ReadableSpan(name="received", context=SpanContext(n + 1, n + 1, False))
        for n in range({received})
    ]
    started = time.process_time()
    for start in range(0, len(spans), 512):
        router.receive([(span, origin) for span in spans[start : start + 512]])
    print(f"\\nRECEIVE-CPU {{time.process_time() - started:.4f}}", flush=True)
    assert len(tracechain.spans) == {received}
    for span in held:
        span.end()
"""


def _suite(directory: Path, conftest: str, module: str, files: int, per_file: int, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "conftest.py").write_text(conftest)
    for number in range(files):
        tests = "\n".join(body.format(n=n) for n in range(per_file))
        (directory / f"test_{number:04d}.py").write_text(module.format(tests=tests))


def _rss(stdout: str) -> dict[int, float]:
    return {int(m[1]): float(m[2]) for m in re.finditer(r"RSS-AFTER (\d+) ([\d.]+)", stdout)}


def _run(python: str, directory: Path, *args: str) -> str:
    command = [*pytest_command(python), "-q", "-s", "-p", "no:cacheprovider", *pytest_blockers(python)]
    run = run_timed([*command, *args, str(directory)], cwd=str(directory), env=clean_env())
    if "passed" not in run.stdout:
        raise SystemExit(f"the measured run failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return run.stdout


def measure_tests(python: str, root: Path, count: int, reps: int) -> list[list[str]]:
    first = count // 20
    probe = RSS_PROBE.format(first=first, last=count)
    files = count // 100
    _suite(root / "plugin", probe, SPANS_TEST, files, 100, "def test_{n}(tracechain):\n    _spans()\n")
    _suite(
        root / "bare", probe + BARE_CONFTEST, SPANS_TEST, files, 100, "def test_{n}(spans):\n    _spans()\n"
    )
    rows = []
    results: dict[str, list[tuple[float, float]]] = {"plugin": [], "bare": []}
    for rep in range(reps):
        for flavour in ("plugin", "bare") if rep % 2 == 0 else ("bare", "plugin"):
            progress(f"tests: {flavour}, repetition {rep + 1}")
            extra = ("-p", "no:tracechain") if flavour == "bare" else ()
            rss = _rss(_run(python, root / flavour, *extra))
            results[flavour].append((rss[first], rss[count]))
    for flavour, label in (("plugin", "tracechain fixture"), ("bare", "bare SDK fixture, -p no:tracechain")):
        starts = [start for start, _ in results[flavour]]
        ends = [end for _, end in results[flavour]]
        ratios = [end / start for start, end in results[flavour]]
        rows.append(
            [
                label,
                f"{statistics.median(starts):.1f} MB",
                f"{statistics.median(ends):.1f} MB",
                f"{statistics.median(ratios):.3f} [{min(ratios):.3f}–{max(ratios):.3f}]",
            ]
        )
    return [[f"{count:,} tests x 10 spans", "", "", ""], *rows]


def measure_tasks(python: str, root: Path, tests: int, tasks: int, reps: int) -> list[str]:
    first = tests // 10
    _suite(
        root / "tasks",
        RSS_PROBE.format(first=first, last=tests),
        TASKS_TEST,
        tests // 10,
        10,
        f"def test_{{n}}(tracechain):\n    asyncio.run(_many({tasks}))\n",
    )
    ratios, starts, ends = [], [], []
    for rep in range(reps):
        progress(f"tasks: repetition {rep + 1}")
        rss = _rss(_run(python, root / "tasks"))
        starts.append(rss[first])
        ends.append(rss[tests])
        ratios.append(rss[tests] / rss[first])
    return [
        f"{tests} tests x {tasks:,} asyncio tasks (after test {first} / {tests})",
        f"{statistics.median(starts):.1f} MB",
        f"{statistics.median(ends):.1f} MB",
        f"{statistics.median(ratios):.3f} [{min(ratios):.3f}–{max(ratios):.3f}]",
    ]


def measure_receive(python: str, root: Path, received: int, reps: int) -> list[list[str]]:
    times: dict[int, list[float]] = {0: [], 5000: []}
    for open_spans in times:
        directory = root / f"receive_{open_spans}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "test_receive.py").write_text(
            RECEIVE_TEST.format(open_spans=open_spans, received=received)
        )
    for rep in range(reps):
        for open_spans in (0, 5000) if rep % 2 == 0 else (5000, 0):
            progress(f"receive: {open_spans} open, repetition {rep + 1}")
            stdout = _run(python, root / f"receive_{open_spans}")
            times[open_spans].append(float(re.search(r"RECEIVE-CPU ([\d.]+)", stdout)[1]))  # type: ignore[index]
    none, many = statistics.median(times[0]), statistics.median(times[5000])
    return [
        [f"{received:,} received spans, 0 open", f"{none:.3f} s", "", ""],
        [f"{received:,} received spans, 5,000 open", f"{many:.3f} s", "", f"{many / none:.2f} x"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes, 1 repetition")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3; --quick 1)")
    options = parser.parse_args()
    reps = options.reps or (1 if options.quick else 3)
    scale = 10 if options.quick else 1
    python = sys.executable
    print(machine_info())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = measure_tests(python, root, 20_000 // scale, reps)
        rows.append(measure_tasks(python, root, 100, 1_000 // scale, reps))
        print("\n" + table(["suite", "RSS early", "RSS at the end", "end ÷ early (median [min–max])"], rows))
        received = measure_receive(python, root, 20_000 // scale, reps)
        print("\n" + table(["receive (CPU)", "median", "", "÷ none"], received))


if __name__ == "__main__":
    main()
