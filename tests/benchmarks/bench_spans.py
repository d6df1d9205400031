"""Cost per span: pytest-tracechain's capture against the bare OpenTelemetry SDK.

Each variant creates N spans with ``start_as_current_span`` (one root per 10
spans: root -> 3 children -> 2 grandchildren each) in a fresh process; the
whole process is timed, from interpreter start to exit. Variants run
alternately, the median of the repetitions is reported.

    a  provider with no span processor
    b  bare pattern: SimpleSpanProcessor(InMemorySpanExporter())
    c  pytest-tracechain: TraceCapture opened on the plugin's Router

The garbage collector keeps its default settings in every variant.

    python tests/benchmarks/bench_spans.py            # N=100,000, 5 repetitions
    python tests/benchmarks/bench_spans.py --quick    # N=20,000, 3 repetitions
"""

from __future__ import annotations

import argparse
import json
import sys
import time

VARIANTS = {
    "a": "provider, no processor",
    "b": "bare SDK: SimpleSpanProcessor(InMemorySpanExporter())",
    "c": "pytest-tracechain: Router + TraceCapture",
}
SPANS_PER_ROOT = 10


# -- the measured child process ---------------------------------------------------


def worker(variant: str, n: int) -> None:
    import resource

    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    exporter = capture = None
    if variant == "b":
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif variant == "c":
        from pytest_tracechain._capture import Router, TraceCapture

        router = Router()
        provider.add_span_processor(router)
        capture = TraceCapture("bench")
        router.open(capture)
    tracer = provider.get_tracer("bench")
    span = tracer.start_as_current_span

    start = time.perf_counter()
    for _ in range(n // SPANS_PER_ROOT):
        with span("root"):
            for _ in range(3):
                with span("child"):
                    with span("grandchild"):
                        pass
                    with span("grandchild"):
                        pass
    loop = time.perf_counter() - start

    start = time.perf_counter()
    if exporter is not None:
        finished = exporter.get_finished_spans()
        assert len(finished) == n, f"exporter holds {len(finished)} spans, expected {n}"
    if capture is not None:
        finished = capture.spans
        assert len(finished) == n, f"capture holds {len(finished)} spans, expected {n}"
        assert not capture.open_spans, "spans left open"
        origins = {capture.origin(s) for s in finished}  # raises for a span without origin
        assert len(origins) == 1, origins
        (origin,) = origins
        assert origin.thread_name == "MainThread", origin
    verify = time.perf_counter() - start

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump({"loop": loop, "verify": verify, "peak_mb": peak}, sys.stdout)


# -- the driver -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=20,000, 3 repetitions")
    parser.add_argument("-n", type=int, help="spans per process (default 100,000)")
    parser.add_argument("--reps", type=int, help="repetitions (default 5)")
    parser.add_argument("--worker", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n or (20_000 if args.quick else 100_000)
    if args.worker:
        worker(args.worker, n)
        return
    reps = args.reps or (3 if args.quick else 5)
    if n % SPANS_PER_ROOT:
        parser.error(f"-n must be a multiple of {SPANS_PER_ROOT}")

    from _common import Series, alternate, machine_info, progress, run_timed, table

    print(machine_info())
    print(f"N={n:,} spans per process, {reps} repetitions, variants alternated, medians\n")
    series = {key: Series(label) for key, label in VARIANTS.items()}
    loops: dict[str, list[float]] = {key: [] for key in VARIANTS}
    verifies: dict[str, list[float]] = {key: [] for key in VARIANTS}
    peaks: dict[str, list[float]] = {key: [] for key in VARIANTS}
    for rep, key in alternate(VARIANTS, reps):
        run = run_timed([sys.executable, __file__, "--worker", key, "-n", str(n)])
        report = json.loads(run.stdout)
        progress(
            f"  rep {rep:>2} {key}: wall {run.wall:.3f} s, cpu {run.cpu:.3f} s, "
            f"loop {report['loop']:.3f} s, peak {report['peak_mb']:.0f} MB"
        )
        if rep < 0:
            continue
        series[key].runs.append(run)
        loops[key].append(report["loop"])
        verifies[key].append(report["verify"])
        peaks[key].append(report["peak_mb"])

    import statistics

    med = statistics.median
    base_wall = series["b"].median("wall")
    base_loop = med(loops["b"])
    none_wall = series["a"].median("wall")
    rows = []
    for key, s in series.items():
        wall = s.median("wall")
        lo, hi = s.spread("wall")
        rows.append(
            [
                f"({key}) {s.label}",
                f"{wall:.2f} s",
                f"{lo:.2f}-{hi:.2f} s",
                f"{s.median('cpu'):.2f} s",
                f"{med(loops[key]):.2f} s",
                f"{(wall - none_wall) / n * 1e6:.1f} µs" if key != "a" else "-",
                f"{med(peaks[key]):.0f} MB",
                f"{wall / base_wall:.2f}",
                f"{med(loops[key]) / base_loop:.2f}",
            ]
        )
    print(
        table(
            [
                "variant",
                "wall (median)",
                "wall (min-max)",
                "CPU",
                "span loop",
                "per span over (a)",
                "peak RSS",
                "wall ÷ (b)",
                "loop ÷ (b)",
            ],
            rows,
        )
    )
    ratio = series["c"].median("wall") / base_wall
    print(
        f"\nverification inside the timed process: (b) {med(verifies['b']) * 1e3:.0f} ms, "
        f"(c) {med(verifies['c']) * 1e3:.0f} ms (all {n:,} spans captured with an origin)"
    )
    verdict = "met" if ratio <= 1.0 else "MISSED"
    print(f"target (c) ÷ (b) ≤ 1.00 on whole-process wall: {ratio:.2f} -> {verdict}")


if __name__ == "__main__":
    main()
