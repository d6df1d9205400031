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
    import gc
    import resource

    t_entry = time.perf_counter()
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
        from pytest_tracechain._state import CaptureState

        router = Router()
        provider.add_span_processor(router)
        state = CaptureState("bench")
        router.open(state)
        capture = TraceCapture(state, _ispytest=True)
    tracer = provider.get_tracer("bench")
    span = tracer.start_as_current_span

    # Observe (never tune) the garbage collector: time spent in collections.
    gc_time = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            gc_time[1] = now
        else:
            gc_time[0] += now - gc_time[1]

    gc.callbacks.append(on_gc)
    t_setup = time.perf_counter()
    cpu = time.process_time()
    for _ in range(n // SPANS_PER_ROOT):
        with span("root"):
            for _ in range(3):
                with span("child"):
                    with span("grandchild"):
                        pass
                    with span("grandchild"):
                        pass
    loop_cpu = time.process_time() - cpu
    t_loop = time.perf_counter()
    gc.callbacks.remove(on_gc)

    if exporter is not None:
        finished = exporter.get_finished_spans()
        assert len(finished) == n, f"exporter holds {len(finished)} spans, expected {n}"
    if capture is not None:
        finished = capture.spans
        assert len(finished) == n, f"capture holds {len(finished)} spans, expected {n}"
        assert not capture.open_spans, "spans left open"
        # Every span has an origin recorded (one index per span), and a sample
        # resolves to the right record: a check as cheap as (b)'s count, so the
        # timed process measures the capture, not its verification.
        assert len(state.origins) == n, "a span without an origin"
        origins = {capture.origin(s) for s in finished[:: max(1, n // 1000)]}  # raises if missing
        assert len(origins) == 1, origins
        (origin,) = origins
        assert origin.thread_name == "MainThread", origin
    t_verify = time.perf_counter()

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "t_entry": t_entry,
        "setup": t_setup - t_entry,
        "loop": t_loop - t_setup,
        "loop_cpu": loop_cpu,
        "gc": gc_time[0],
        "verify": t_verify - t_loop,
        "peak_mb": peak,
    }
    report["t_end"] = time.perf_counter()
    json.dump(report, sys.stdout)
    sys.stdout.flush()


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

    import statistics

    from _common import Series, alternate, machine_info, progress, run_timed, table

    print(machine_info())
    print(f"N={n:,} spans per process, {reps} repetitions, variants alternated, medians\n")
    series = {key: Series(label) for key, label in VARIANTS.items()}
    phases: dict[str, dict[str, list[float]]] = {key: {} for key in VARIANTS}
    for rep, key in alternate(VARIANTS, reps):
        run = run_timed([sys.executable, __file__, "--worker", key, "-n", str(n)])
        report = json.loads(run.stdout)
        report["startup"] = report.pop("t_entry") - run.started
        report["exit"] = run.ended - report.pop("t_end")
        report["wall_wo_check"] = run.wall - report["verify"]
        progress(
            f"  rep {rep:>2} {key}: wall {run.wall:.3f} s, cpu {run.cpu:.3f} s, "
            f"loop {report['loop']:.3f} s (cpu {report['loop_cpu']:.3f} s, gc {report['gc']:.3f} s), "
            f"peak {report['peak_mb']:.0f} MB"
        )
        if rep < 0:
            continue
        series[key].runs.append(run)
        for name, value in report.items():
            phases[key].setdefault(name, []).append(value)

    def med(key: str, name: str) -> float:
        if name in ("wall", "cpu"):
            return series[key].median(name)
        return statistics.median(phases[key][name])

    rows = []
    for key, s in series.items():
        lo, hi = s.spread("wall")
        per_span = (med(key, "wall") - med("a", "wall")) / n * 1e6
        rows.append(
            [
                f"({key}) {s.label}",
                f"{med(key, 'wall'):.2f} s",
                f"{lo:.2f}–{hi:.2f} s",
                f"{med(key, 'cpu'):.2f} s",
                f"{per_span:.1f} µs" if key != "a" else "—",
                f"{med(key, 'peak_mb'):.0f} MB",
                f"{med(key, 'wall') / med('b', 'wall'):.2f}",
                f"{med(key, 'wall_wo_check') / med('b', 'wall_wo_check'):.2f}",
                f"{med(key, 'cpu') / med('b', 'cpu'):.2f}",
            ]
        )
    print(
        table(
            [
                "variant",
                "wall",
                "wall min–max",
                "CPU",
                "wall per span over (a)",
                "peak RSS",
                "wall ÷ (b)",
                "wall w/o check ÷ (b)",
                "CPU ÷ (b)",
            ],
            rows,
        )
    )
    print("\nwhere the wall time goes (medians, seconds):\n")
    names = {
        "startup": "interpreter start",
        "setup": "imports + setup",
        "loop": "span loop",
        "gc": "of which GC",
        "loop_cpu": "span loop CPU",
        "verify": "end check",
        "exit": "interpreter exit",
    }
    print(
        table(
            ["variant", *names.values(), "span loop ÷ (b)"],
            [
                [
                    f"({key})",
                    *(f"{med(key, name):.3f}" for name in names),
                    f"{med(key, 'loop') / med('b', 'loop'):.2f}",
                ]
                for key in VARIANTS
            ],
        )
    )
    ratio = med("c", "wall") / med("b", "wall")
    verdict = "met" if ratio <= 1.0 else "MISSED"
    print(
        f"\n(c) check: all {n:,} spans captured, each with an origin index, 1 in {max(1, n // 1000)} resolved; "
        f"the check runs inside the timed process and costs {med('c', 'verify') * 1e3:.0f} ms."
    )
    print(f"target (c) ÷ (b) ≤ 1.00 on whole-process wall: {ratio:.2f} -> {verdict}")


if __name__ == "__main__":
    main()
