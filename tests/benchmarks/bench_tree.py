"""Cost of ``assert_trace_tree``, ``render`` and ``tree()`` on 100,000 spans.

Targets, as ratios to the time the bare SDK took to make the same spans (so
that a slow machine does not move them): every case at most 0.5x that time,
and ``TraceCapture.tree()`` faster than ``render()`` of the same capture.

The spans are real SDK spans, made by a bare ``TracerProvider`` with
``SimpleSpanProcessor(InMemorySpanExporter())``; the time that takes is the
reference every figure is divided by (measured in the same process, same run).
Three shapes of 100,000 spans:

    wide     GET /hello -> 1,000 groups -> 99 leaves each (the text tree has 100,001 lines)
    deep     one chain 100,000 spans deep (nested tuples; no text form is that deep)
    traces   10,000 traces of 10 spans (root -> 3 children -> 2 grandchildren each)

Per shape: the passing assertion (expected as nested tuples, and for ``wide`` as
text too), the failing one with its whole message (one span moved into a trace
of its own: one misplaced, the typical broken chain), ``render()`` unlimited
and ``render(limit=200)`` as failure messages cut it; for ``wide`` and ``traces``,
``TraceCapture.tree()`` plain and with ``attributes=`` and ``normalize=True``
(a 100,000-deep chain has no text form: ``tree()`` refuses past 1,000 levels).

    python tests/benchmarks/bench_tree.py             # 5 repetitions, median
    python tests/benchmarks/bench_tree.py --quick     # 10,000 spans, 3 repetitions
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine_info, table

TARGET = 0.5  # at most this many times the time the bare SDK took to make the spans


def make_spans(shape: str, count: int) -> tuple[list[Any], float, object]:
    """Spans of ``shape`` from a bare SDK provider; the seconds it took; the expected tree."""
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    expected: object
    started = time.perf_counter()
    if shape == "wide":
        groups, leaves = count // 100, 99
        with tracer.start_as_current_span("GET /hello", kind=trace.SpanKind.SERVER):
            for _ in range(groups):
                with tracer.start_as_current_span("group"):
                    for _ in range(leaves):
                        tracer.start_span("leaf").end()
        expected = ("GET /hello [server]", [("group", ["leaf"] * leaves)] * groups)
    elif shape == "deep":
        spans = []
        ctx = context.Context()
        for _ in range(count):
            span = tracer.start_span("step", context=ctx)
            ctx = trace.set_span_in_context(span)
            spans.append(span)
        for span in reversed(spans):
            span.end()
        expected_deep: tuple[str, list[object]] = ("step", [])
        for _ in range(count - 1):
            expected_deep = ("step", [expected_deep])
        expected = expected_deep
    else:
        for _ in range(count // 10):
            with tracer.start_as_current_span("root"):
                for _ in range(3):
                    with tracer.start_as_current_span("child"):
                        tracer.start_span("grandchild").end()
                        tracer.start_span("grandchild").end()
        expected = [("root", [("child", ["grandchild", "grandchild"])] * 3)] * (count // 10)
    elapsed = time.perf_counter() - started
    return list(exporter.get_finished_spans()), elapsed, expected


def as_text(expected: object) -> str:
    lines: list[str] = []
    stack = [(expected, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            lines.append("  " * depth + node)
            continue
        assert isinstance(node, tuple)
        lines.append("  " * depth + node[0])
        stack.extend((child, depth + 1) for child in reversed(node[1]))
    return "\n".join(lines)


def broken(spans: list[Any]) -> list[Any]:
    """The same spans with one leaf cut off into a trace of its own (context lost)."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    victim = next(span for span in reversed(spans) if span.parent is not None)
    moved = ReadableSpan(
        name=victim.name,
        context=SpanContext(0xABC, victim.context.span_id, False),
        parent=None,
        resource=victim.resource,
        kind=victim.kind,
        start_time=victim.start_time,
        end_time=victim.end_time,
    )
    return [moved if span is victim else span for span in spans]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    repeat = 3 if args.quick else 5

    from pytest_tracechain import TraceAssertionError, TraceCapture, assert_trace_tree
    from pytest_tracechain._render import render_spans
    from pytest_tracechain._state import CaptureState

    print(machine_info())
    rows = []
    missed: list[str] = []
    for shape in ("wide", "deep", "traces"):
        spans, made, expected = make_spans(shape, count)
        bad = broken(spans)

        def passing(expected: object = expected, spans: list[Any] = spans) -> None:
            assert_trace_tree(expected, spans)

        def failing(expected: object = expected, bad: list[Any] = bad) -> None:
            try:
                assert_trace_tree(expected, bad)
            except TraceAssertionError as error:
                if "1 misplaced" not in str(error):
                    raise AssertionError(str(error)[:2000]) from None
            else:
                raise AssertionError("the broken capture passed")

        cases: list[tuple[str, Callable[[], object]]] = [("assert_trace_tree, passing (tuples)", passing)]
        if shape == "wide":
            text = as_text(expected)
            cases.append(
                (
                    "assert_trace_tree, passing (text)",
                    lambda text=text, spans=spans: assert_trace_tree(text, spans),
                )
            )
        cases += [
            ("assert_trace_tree, failing + message", failing),
            ("render(), all spans", lambda spans=spans: render_spans(spans)),
            ("render(limit=200)", lambda spans=spans: render_spans(spans, limit=200)),
        ]
        if shape != "deep":
            state = CaptureState("bench")
            state.finished.extend(spans)
            capture = TraceCapture(state, _ispytest=True)
            cases += [
                ("tree()", capture.tree),
                (
                    "tree(attributes=, normalize=True)",
                    lambda capture=capture: capture.tree(attributes=["http.route"], normalize=True),
                ),
            ]
        rows.append([f"{shape}: {len(spans):,} spans made by the bare SDK", f"{made:.3f}", "1.00", ""])
        medians: dict[str, float] = {}
        for label, fn in cases:
            median, low, high = timed(fn, repeat)
            medians[label] = median
            rows.append([f"  {label}", f"{median:.3f}", f"{median / made:.2f}", f"{low:.3f}-{high:.3f}"])
            if median > TARGET * made:
                missed.append(f"{shape}: {label} took {median / made:.2f}x the time making the spans")
        if "tree()" in medians and medians["tree()"] >= medians["render(), all spans"]:
            missed.append(
                f"{shape}: tree() took {medians['tree()']:.3f} s, render() {medians['render(), all spans']:.3f} s"
            )
        print(f"done: {shape}", file=sys.stderr)
    print(table(["case", "median s", "÷ SDK making them", "min-max s"], rows))
    print(
        f"targets (each case at most {TARGET}x the time making the spans; tree() faster than render()): "
        + ("met" if not missed else "MISSED: " + "; ".join(missed))
    )


if __name__ == "__main__":
    main()
