"""Span arguments of the assertions, resolved, and the failure message they share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeAlias

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._origins import Origin
from pytest_tracechain._provider import running_state
from pytest_tracechain._render import MESSAGE_LIMIT, render_spans
from pytest_tracechain._state import CaptureState

__all__ = ["Ref", "SpanArg", "fail", "resolve", "resolve_span", "running_state"]

SpanArg: TypeAlias = ReadableSpan | SpanContext | str


@dataclass(frozen=True)
class Ref:
    """A span argument, resolved: the span when captured or given, its context always."""

    context: SpanContext
    span: ReadableSpan | None
    label: str

    @property
    def span_id(self) -> int:
        return self.context.span_id

    @property
    def trace_id(self) -> int:
        return self.context.trace_id


def resolve(value: object, argname: str, func: str, capture: CaptureState | None) -> Ref:
    __tracebackhide__ = True
    if isinstance(value, ReadableSpan):
        if value.context is None:
            raise TypeError(f"{func}() argument {argname!r} is a span without a context")
        return Ref(value.context, value, repr(value.name))
    if isinstance(value, SpanContext):
        span = capture.lookup(value.span_id) if capture is not None else None
        if span is not None:
            return Ref(value, span, repr(span.name))
        return Ref(value, None, f"span {value.span_id:016x}")
    if isinstance(value, str):
        if capture is None:
            raise RuntimeError(
                f"{func}() got the span name {value!r} for {argname!r}, but no capture is running: "
                "span names are looked up in the running test's capture. Request the "
                "`tracechain` fixture (or mark the test with @pytest.mark.tracechain)."
            )
        span = capture.by_name(value)
        return Ref(span.context, span, repr(value))
    raise TypeError(
        f"{func}() argument {argname!r} must be a span (ReadableSpan), a SpanContext "
        f"or a span name, not {type(value).__name__}"
    )


def resolve_span(
    value: object, argname: str, func: str, capture: CaptureState | None
) -> tuple[Ref, ReadableSpan]:
    """``resolve``, for arguments whose own parent, kind, links or times are checked."""
    __tracebackhide__ = True
    ref = resolve(value, argname, func, capture)
    if ref.span is None:
        raise TypeError(f"{func}() cannot check {ref.label}: it was not captured; pass the span itself")
    return ref, ref.span


def fail(
    headline: str,
    details: Iterable[str],
    refs: Iterable[Ref],
    capture: CaptureState | None,
    *,
    marks: dict[int, str],
    hint: str | None = None,
) -> NoReturn:
    __tracebackhide__ = True
    refs = list(refs)
    trace_ids = {ref.trace_id for ref in refs}
    if capture is not None:
        involved = [s for s in capture.all_spans() if s.context.trace_id in trace_ids]
        origins: Mapping[int, Origin] = capture.origin_map
        ambient: set[int] | frozenset[int] = capture.ambient
    else:
        involved, origins, ambient = [], {}, frozenset()
    involved += [ref.span for ref in refs if ref.span is not None]
    lines = [headline, *("  " + detail for detail in details)]
    if hint:
        lines += ["", f"hint: {hint}"]
    rendered = render_spans(involved, origins=origins, ambient=ambient, highlight=marks, limit=MESSAGE_LIMIT)
    lines += ["", "traces involved:", rendered]
    raise TraceAssertionError("\n".join(lines))


def span_list(value: object, func: str, argname: str) -> list[ReadableSpan]:
    """``value``, an iterable of spans, as a list, each item checked at the entry (the rest trusts them)."""
    __tracebackhide__ = True
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(
            f"{func}() argument {argname!r} must be a TraceCapture or an iterable of spans, "
            f"not {type(value).__name__}"
        )
    spans = list(value)
    for index, span in enumerate(spans):
        if not isinstance(span, ReadableSpan):
            raise TypeError(
                f"{func}() argument {argname!r} holds {type(span).__name__} at index {index}, "
                "not a span (ReadableSpan)"
            )
    return spans
