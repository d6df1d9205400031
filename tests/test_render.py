"""The renderer over arbitrary span forests (property-based; no tracer provider needed)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from pytest_tracechain._render import render_spans

SPAN_LINE = re.compile(r"^(?P<indent>(?:│  |   )*)(?:├─ |└─ )(?P<name>s\d+)\b")


@st.composite
def span_forests(draw: st.DrawFn) -> list[ReadableSpan]:
    """Spans over a few traces; parents are earlier spans of the trace, missing or remote spans."""
    count = draw(st.integers(min_value=1, max_value=60))
    spans: list[ReadableSpan] = []
    for index in range(count):
        trace_id = draw(st.integers(min_value=1, max_value=4))
        same_trace = [s for s in spans if s.context.trace_id == trace_id]
        choice = draw(st.sampled_from(["root", "child", "missing", "remote"]))
        parent = None
        if choice == "child" and same_trace:
            parent = draw(st.sampled_from(same_trace)).context
        elif choice in ("missing", "remote"):
            parent = SpanContext(trace_id, 10_000 + index, is_remote=choice == "remote")
        start = draw(st.integers(min_value=0, max_value=1_000_000))
        spans.append(
            ReadableSpan(
                name=f"s{index}",
                context=SpanContext(trace_id, index + 1, is_remote=False),
                parent=parent,
                kind=draw(st.sampled_from(list(SpanKind))),
                start_time=start,
                end_time=draw(st.one_of(st.none(), st.integers(min_value=start, max_value=2_000_000))),
            )
        )
    return spans


@settings(max_examples=200, deadline=None)
@given(span_forests())
def test_every_span_is_shown_once_under_its_parent(spans: list[ReadableSpan]) -> None:
    output = render_spans(spans)
    shown: dict[str, int] = {}
    stack: list[str] = []
    for line in output.splitlines():
        if line.startswith("trace "):
            stack = []
            continue
        match = SPAN_LINE.match(line)
        assert match, line
        depth = len(match["indent"]) // 3
        name = match["name"]
        shown[name] = shown.get(name, 0) + 1
        del stack[depth:]
        span = next(s for s in spans if s.name == name)
        if depth:
            assert span.parent is not None
            assert span.parent.span_id == int(stack[-1][1:]) + 1, (name, stack)
        else:
            by_id = {s.context.span_id for s in spans}
            assert span.parent is None or span.parent.span_id not in by_id
        stack.append(name)
    assert shown == {s.name: 1 for s in spans}
    trace_counts = [int(m) for m in re.findall(r"^trace [0-9a-f]{32} · (\d+) spans?$", output, re.M)]
    assert sum(trace_counts) == len(spans)


@settings(max_examples=100, deadline=None)
@given(span_forests(), st.integers(min_value=0, max_value=70))
def test_limit_cuts_with_a_count(spans: list[ReadableSpan], limit: int) -> None:
    lines = render_spans(spans, limit=limit).splitlines()
    span_lines = [line for line in lines if SPAN_LINE.match(line)]
    assert len(span_lines) == min(limit, len(spans))
    if limit < len(spans):
        assert lines[-1] == f"... {len(spans) - limit} more spans not shown"
    else:
        assert not lines[-1].startswith("...")


def test_notes_where_a_parent_is() -> None:
    remote = SpanContext(1, 99, is_remote=True)
    missing = SpanContext(1, 98, is_remote=False)
    spans = [
        ReadableSpan(
            name="consumer", context=SpanContext(1, 1, False), parent=remote, kind=SpanKind.CONSUMER
        ),
        ReadableSpan(name="orphan", context=SpanContext(1, 2, False), parent=missing),
    ]
    output = render_spans(spans, highlight={2: "here"})
    assert output.splitlines()[1:] == [
        "├─ consumer [consumer] · open (remote parent 0000000000000063)",
        "└─ orphan · open (parent 0000000000000062 not captured)  ← here",
    ]
    assert render_spans([]) == "  (no spans captured)"
