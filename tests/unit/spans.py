"""Building finished spans in process for the unit tests (no tracer provider needed)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, SpanContext, SpanKind

# One resource for every span: without it each ReadableSpan runs Resource.create({}).
RESOURCE = Resource.create({})


def ctx(span_id: int, trace_id: int = 1, *, remote: bool = False) -> SpanContext:
    return SpanContext(trace_id=trace_id, span_id=span_id, is_remote=remote)


def span(
    name: str,
    span_id: int,
    parent: SpanContext | int | None = None,
    *,
    trace_id: int = 1,
    kind: SpanKind = SpanKind.INTERNAL,
    start: int | None = None,
    end: int | None = None,
    links: Sequence[SpanContext] = (),
    attributes: dict[str, object] | None = None,
    still_open: bool = False,
) -> ReadableSpan:
    """A finished span; ``parent`` an int is a local parent in the same trace. Starts at its id by default."""
    if isinstance(parent, int):
        parent = ctx(parent, trace_id)
    start = span_id * 10 if start is None else start
    return ReadableSpan(
        name=name,
        context=ctx(span_id, trace_id),
        parent=parent,
        kind=kind,
        start_time=start,
        end_time=None if still_open else (start + 5 if end is None else end),
        links=[Link(context) for context in links],
        attributes=attributes,  # type: ignore[arg-type]
        resource=RESOURCE,
    )
