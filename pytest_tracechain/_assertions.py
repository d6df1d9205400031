"""Assertion helpers. Each raises ``TraceAssertionError`` with a message that
names the spans, says what was expected and what was found, gives a hint when
the capture shows the likely cause, and renders the traces involved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeAlias

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from pytest_tracechain import _provider
from pytest_tracechain._capture import Origin, TraceCapture, parse_kind, trace_keys
from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._render import MESSAGE_LIMIT, format_nanoseconds, render_spans
from pytest_tracechain._spawn import BOUNDARY_NAMES, FIXES

__all__ = [
    "assert_child_of",
    "assert_descendant_of",
    "assert_linked_to",
    "assert_outlives",
    "assert_remote_parent",
    "assert_root",
    "assert_same_trace",
    "assert_span_kind",
]

SpanArg: TypeAlias = ReadableSpan | SpanContext | str


@dataclass(frozen=True)
class _Ref:
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


def _running_capture() -> TraceCapture | None:
    router = _provider.existing_router()
    return router.current if router is not None else None


def _resolve(value: object, argname: str, func: str, capture: TraceCapture | None) -> _Ref:
    __tracebackhide__ = True
    if isinstance(value, ReadableSpan):
        if value.context is None:
            raise TypeError(f"{func}() argument {argname!r} is a span without a context")
        return _Ref(value.context, value, repr(value.name))
    if isinstance(value, SpanContext):
        span = _lookup(capture, value.span_id) if capture is not None else None
        if span is not None:
            return _Ref(value, span, repr(span.name))
        return _Ref(value, None, f"span {value.span_id:016x}")
    if isinstance(value, str):
        if capture is None:
            raise RuntimeError(
                f"{func}() got the span name {value!r} for {argname!r}, but no capture is running: "
                "span names are looked up in the running test's capture. Request the "
                "`tracechain` fixture (or mark the test with @pytest.mark.tracechain)."
            )
        span = capture._by_name(value)
        return _Ref(span.context, span, repr(value))
    raise TypeError(
        f"{func}() argument {argname!r} must be a span (ReadableSpan), a SpanContext "
        f"or a span name, not {type(value).__name__}"
    )


def _resolve_span(
    value: object, argname: str, func: str, capture: TraceCapture | None
) -> tuple[_Ref, ReadableSpan]:
    """``_resolve``, for arguments whose own parent, kind, links or times are checked."""
    __tracebackhide__ = True
    ref = _resolve(value, argname, func, capture)
    if ref.span is None:
        raise TypeError(f"{func}() cannot check {ref.label}: it was not captured; pass the span itself")
    return ref, ref.span


def _lookup(capture: TraceCapture, span_id: int) -> ReadableSpan | None:
    for span in capture._all_spans():
        if span.context.span_id == span_id:
            return span
    return None


def _fail(
    headline: str,
    details: Iterable[str],
    refs: Iterable[_Ref],
    capture: TraceCapture | None,
    *,
    marks: dict[int, str],
    hint: str | None = None,
) -> NoReturn:
    __tracebackhide__ = True
    refs = list(refs)
    trace_ids = {ref.trace_id for ref in refs}
    if capture is not None:
        involved = [s for s in capture._all_spans() if s.context.trace_id in trace_ids]
        origins: Mapping[int, Origin] = capture._origin_map
        ambient: set[int] | frozenset[int] = capture._ambient
    else:
        involved, origins, ambient = [], {}, frozenset()
    involved += [ref.span for ref in refs if ref.span is not None]
    lines = [headline, *("  " + detail for detail in details)]
    if hint:
        lines += ["", f"hint: {hint}"]
    rendered = render_spans(involved, origins=origins, ambient=ambient, highlight=marks, limit=MESSAGE_LIMIT)
    lines += ["", "traces involved:", rendered]
    raise TraceAssertionError("\n".join(lines))


def _where(ref: _Ref, capture: TraceCapture | None) -> str | None:
    if capture is None:
        return None
    origin = capture._origin_map.get(ref.span_id)
    return origin.describe() if origin is not None else None


def _is_root(ref: _Ref, capture: TraceCapture | None) -> bool:
    if ref.span is None:
        return False
    parent = ref.span.parent
    return parent is None or (capture is not None and parent.span_id in capture._ambient)


def _parent_desc(span: ReadableSpan, capture: TraceCapture | None) -> str:
    parent = span.parent
    if parent is None:
        return "no parent (it is the root of its own trace)"
    if capture is not None and parent.span_id in capture._ambient:
        return "no parent but the test's ambient span (it is a root)"
    found = _lookup(capture, parent.span_id) if capture is not None else None
    if found is not None:
        return f"parent {found.name!r} (span {parent.span_id:016x})"
    remote = "a remote parent (from a carrier)" if parent.is_remote else "a parent that was not captured"
    return f"{remote}: span {parent.span_id:016x} in trace {parent.trace_id:032x}"


def _new_trace_hint(lost: _Ref, anchor: _Ref, capture: TraceCapture | None) -> str | None:
    """Why ``lost`` started a new trace instead of joining ``anchor``'s."""
    if lost.span is None or not _is_root(lost, capture):
        return None
    if lost.span.kind in (SpanKind.CONSUMER, SpanKind.SERVER):
        return (
            f"{lost.label} is a {lost.span.kind.name.lower()} span with no parent: it did not extract "
            "the context from the incoming carrier. Start it with "
            "context=opentelemetry.propagate.extract(headers)."
        )
    if capture is None:
        return None
    lost_origin = capture._origin_map.get(lost.span_id)
    anchor_origin = capture._origin_map.get(anchor.span_id)
    if lost_origin is None or anchor_origin is None:
        return None
    spawn = capture._spawns.get(lost.span_id)
    if spawn is not None:  # recorded where the work was handed over: the boundary is known
        return (
            f"{lost.label} runs in {BOUNDARY_NAMES[spawn.boundary]} started from {spawn.spawner}, which "
            f"did not receive the context of {anchor.label}: {FIXES[spawn.boundary]}."
        )
    if lost_origin.thread_id != anchor_origin.thread_id:
        return (
            f"the thread {lost_origin.thread_name!r} did not receive the context of {anchor.label}. "
            "Carry it over with contextvars.copy_context().run, pass context= to the span, or use the "
            "OpenTelemetry threading instrumentation."
        )
    if lost_origin.task_name != anchor_origin.task_name and lost_origin.task_name is not None:
        return (
            f"the asyncio task {lost_origin.task_name!r} started a new trace: it was created "
            f"outside {anchor.label}'s context (tasks copy the context current at create_task), "
            "or started its span with an empty context."
        )
    return (
        f"{lost.label} started in the same thread but outside {anchor.label}'s context: "
        "it was started after the parent's `with` block ended, or with an explicit empty context."
    )


def assert_same_trace(*spans: SpanArg) -> None:
    """Pass when two or more spans share one trace id."""
    __tracebackhide__ = True
    if len(spans) < 2:
        raise TypeError(f"assert_same_trace() takes two or more spans, got {len(spans)}")
    capture = _running_capture()
    refs = [_resolve(s, f"spans[{i}]", "assert_same_trace", capture) for i, s in enumerate(spans)]
    keys = trace_keys(capture._all_spans(), capture._ambient) if capture is not None else {}
    keyed = [(ref, keys.get(ref.span_id, (ref.trace_id, 0))) for ref in refs]
    number = {key: index + 1 for index, key in enumerate(dict.fromkeys(key for _, key in keyed))}
    if len(number) == 1:
        return
    groups = [
        f"trace {key[0]:032x}"
        + (f" (root {key[1]:016x})" if key[1] else "")
        + ": "
        + ", ".join(ref.label for ref, ref_key in keyed if ref_key == key)
        for key in number
    ]
    first, first_key = keyed[0]
    strays = [ref for ref, key in keyed if key != first_key]
    hint = next((h for ref in strays if (h := _new_trace_hint(ref, first, capture))), None)
    _fail(
        f"expected {len(refs)} spans in one trace, found them in {len(number)} traces:",
        groups,
        refs,
        capture,
        marks={ref.span_id: f"trace {number[key]}" for ref, key in keyed},
        hint=hint,
    )


def assert_child_of(child: SpanArg, parent: SpanArg) -> None:
    """Pass when ``child``'s parent is exactly ``parent`` (same trace, parent span id)."""
    __tracebackhide__ = True
    capture = _running_capture()
    kid, kid_span = _resolve_span(child, "child", "assert_child_of", capture)
    par = _resolve(parent, "parent", "assert_child_of", capture)
    actual = kid_span.parent
    if actual is not None and actual.span_id == par.span_id and actual.trace_id == par.trace_id:
        return
    if kid.span_id == par.span_id:
        raise ValueError(f"assert_child_of() got the same span, {kid.label}, as child and parent")
    details = [
        f"expected parent: {par.label} (span {par.span_id:016x})",
        f"found: {_parent_desc(kid_span, capture)}",
    ]
    hint = _relation_hint(kid, par, capture)
    _fail(
        f"{kid.label} is not a child of {par.label}",
        details + _origin_details(kid, par, capture),
        [kid, par],
        capture,
        marks={kid.span_id: "child", par.span_id: "expected parent"},
        hint=hint,
    )


def assert_descendant_of(span: SpanArg, ancestor: SpanArg) -> None:
    """Pass when ``ancestor`` is on ``span``'s parent chain."""
    __tracebackhide__ = True
    capture = _running_capture()
    ref, ref_span = _resolve_span(span, "span", "assert_descendant_of", capture)
    anc = _resolve(ancestor, "ancestor", "assert_descendant_of", capture)
    chain = [ref.label]
    current: ReadableSpan | None = ref_span
    seen: set[int] = set()
    while current is not None and current.parent is not None:
        parent = current.parent
        if parent.span_id == anc.span_id and parent.trace_id == anc.trace_id:
            return
        if parent.span_id in seen:
            break
        seen.add(parent.span_id)
        if capture is not None and parent.span_id in capture._ambient:
            chain.append("(root: the test's ambient span)")
            break
        current = _lookup(capture, parent.span_id) if capture is not None else None
        if current is None:
            kind = "remote span" if parent.is_remote else "span"
            chain.append(f"{kind} {parent.span_id:016x} (not captured)")
        else:
            chain.append(repr(current.name))
    if current is not None and (current.parent is None):
        chain.append("(root)")
    _fail(
        f"{anc.label} is not an ancestor of {ref.label}",
        [f"parent chain of {ref.label}: " + " → ".join(chain), *_origin_details(ref, anc, capture)],
        [ref, anc],
        capture,
        marks={ref.span_id: "span", anc.span_id: "expected ancestor"},
        hint=_relation_hint(ref, anc, capture),
    )


def assert_span_kind(span: SpanArg, kind: SpanKind | str) -> None:
    """Pass when the span's kind is ``kind`` (a ``SpanKind`` or its name in any case)."""
    __tracebackhide__ = True
    wanted = parse_kind(kind)
    capture = _running_capture()
    ref, ref_span = _resolve_span(span, "span", "assert_span_kind", capture)
    if ref_span.kind is wanted:
        return
    _fail(
        f"{ref.label} has kind {ref_span.kind.name}, expected {wanted.name}",
        [],
        [ref],
        capture,
        marks={ref.span_id: f"kind {ref_span.kind.name}, expected {wanted.name}"},
        hint=f"pass kind=SpanKind.{wanted.name} when starting the span.",
    )


def assert_root(span: SpanArg) -> None:
    """Pass when ``span`` has no parent, or only the test's ambient span."""
    __tracebackhide__ = True
    capture = _running_capture()
    ref, ref_span = _resolve_span(span, "span", "assert_root", capture)
    if _is_root(ref, capture):
        return
    _fail(
        f"expected {ref.label} to be a root span, found {_parent_desc(ref_span, capture)}",
        [],
        [ref],
        capture,
        marks={ref.span_id: "expected a root"},
        hint="a root starts with no current span; to start one deliberately inside another span pass "
        "context=opentelemetry.context.Context() (and a link to the span that caused it).",
    )


def assert_remote_parent(span: SpanArg) -> None:
    """Pass when ``span``'s parent came from a carrier (``parent.is_remote``)."""
    __tracebackhide__ = True
    capture = _running_capture()
    ref, ref_span = _resolve_span(span, "span", "assert_remote_parent", capture)
    parent = ref_span.parent
    if parent is not None and parent.is_remote:
        return
    if parent is None or (capture is not None and parent.span_id in capture._ambient):
        hint = (
            "the span has no parent at all: extract the carrier and start the span with "
            "context=opentelemetry.propagate.extract(headers)."
        )
    else:
        hint = (
            "the span's parent is a local span: it was started under the current span instead of "
            "the context extracted from the carrier. Pass context=opentelemetry.propagate.extract(headers)."
        )
    _fail(
        f"expected {ref.label} to have a remote parent (extracted from a carrier), "
        f"found {_parent_desc(ref_span, capture)}",
        [],
        [ref],
        capture,
        marks={ref.span_id: "expected a remote parent"},
        hint=hint,
    )


def assert_linked_to(span: SpanArg, other: SpanArg) -> None:
    """Pass when ``span`` has a link to ``other``'s context (batch consumers)."""
    __tracebackhide__ = True
    capture = _running_capture()
    ref, ref_span = _resolve_span(span, "span", "assert_linked_to", capture)
    target = _resolve(other, "other", "assert_linked_to", capture)
    links = list(ref_span.links or ())
    if any(
        link.context.span_id == target.span_id and link.context.trace_id == target.trace_id for link in links
    ):
        return
    if links:
        found = "links to " + ", ".join(_context_label(link.context, capture) for link in links)
    else:
        found = "no links"
    hint = None
    parent = ref_span.parent
    if parent is not None and parent.span_id == target.span_id:
        hint = (
            f"{ref.label} is a child of {target.label}, not linked to it. Use assert_child_of, or "
            "start the span with links=[trace.Link(producer_context)] for a batch consumer."
        )
    _fail(
        f"expected {ref.label} to be linked to {target.label}, found {found}",
        [],
        [ref, target],
        capture,
        marks={ref.span_id: "span", target.span_id: "expected link target"},
        hint=hint,
    )


def assert_outlives(span: SpanArg, other: SpanArg) -> None:
    """Pass when ``span`` ended after ``other`` ended and was not cancelled or errored.

    This is the background-work check: work started by a request must outlive
    the request instead of being cancelled with it.
    """
    __tracebackhide__ = True
    capture = _running_capture()
    ref, ref_span = _resolve_span(span, "span", "assert_outlives", capture)
    short, short_span = _resolve_span(other, "other", "assert_outlives", capture)
    marks = {ref.span_id: "expected to outlive", short.span_id: "other"}
    refs = [ref, short]
    if ref_span.end_time is None:
        _fail(
            f"{ref.label} has not ended yet, so it cannot be shown to outlive {short.label}",
            [],
            refs,
            capture,
            marks=marks,
            hint=f"wait for it first: tracechain.wait_for({ref_span.name!r}).",
        )
    if short_span.end_time is None:
        _fail(f"{short.label} has not ended yet", [], refs, capture, marks=marks)
    cancelled = _cancellation(ref_span, capture)
    if cancelled is not None:
        _fail(
            f"{ref.label} was cancelled ({cancelled}), it did not outlive {short.label}",
            [],
            refs,
            capture,
            marks=marks,
            hint="the work was tied to the request's lifetime and got cancelled with it. Keep the task "
            "(or job) referenced outside the request and do not cancel it in the handler's cleanup.",
        )
    status = ref_span.status
    if status is not None and status.status_code is StatusCode.ERROR:
        _fail(
            f"{ref.label} ended with status ERROR"
            + (f" ({status.description})" if status.description else "")
            + f", it did not complete after {short.label}",
            [],
            refs,
            capture,
            marks=marks,
        )
    if ref_span.end_time <= short_span.end_time:
        gap = format_nanoseconds(short_span.end_time - ref_span.end_time)
        _fail(
            f"{ref.label} ended {gap} before {short.label} ended; expected it to outlive it",
            [],
            refs,
            capture,
            marks=marks,
            hint=f"the work ended inside {short.label}'s lifetime: the handler waited for it (joined "
            "the thread or awaited the task) or cancelled it on the way out, instead of letting it "
            "run in the background.",
        )


def _cancellation(span: ReadableSpan, capture: TraceCapture | None) -> str | None:
    if capture is not None and span.context.span_id in capture._cancelled:
        return "its asyncio task was being cancelled when the span ended"
    for event in span.events or ():
        attributes = event.attributes or {}
        exc_type = str(attributes.get("exception.type", ""))
        if event.name == "exception" and exc_type.rsplit(".", 1)[-1] == "CancelledError":
            return f"{exc_type} recorded"
    status = span.status
    if status is not None and status.description and "CancelledError" in status.description:
        return f"status: {status.description}"
    return None


def _context_label(context: SpanContext, capture: TraceCapture | None) -> str:
    span = _lookup(capture, context.span_id) if capture is not None else None
    return repr(span.name) if span is not None else f"span {context.span_id:016x}"


def _origin_details(first: _Ref, second: _Ref, capture: TraceCapture | None) -> list[str]:
    where_first, where_second = _where(first, capture), _where(second, capture)
    if where_first is None or where_second is None:
        return []
    return [f"{first.label} started in {where_first}; {second.label} in {where_second}"]


def _relation_hint(span: _Ref, expected: _Ref, capture: TraceCapture | None) -> str | None:
    """The likely reason ``span`` is not under ``expected``, from what was captured."""
    assert span.span is not None
    if (
        expected.span is not None
        and expected.span.parent is not None
        and expected.span.parent.span_id == span.span_id
    ):
        return f"the relation is reversed: {expected.label} is a child of {span.label}."
    if any(link.context.span_id == expected.span_id for link in span.span.links or ()):
        return (
            f"{span.label} is linked to {expected.label} but is not its child: links mark a cause, "
            "parents make one trace. Start the span with context= the extracted context to make it a "
            "child, or use assert_linked_to if a link is what you meant."
        )
    parent = span.span.parent
    if parent is not None and capture is not None:
        if parent.is_remote and parent.trace_id == expected.trace_id:
            return (
                f"{span.label}'s remote parent is another span of the same trace: the carrier held "
                "a stale context. Inject the carrier inside the producer span."
            )
        intermediate = _lookup(capture, parent.span_id)
        if intermediate is not None and _has_ancestor(intermediate, expected.span_id, capture):
            return (
                f"{span.label} is a descendant of {expected.label} through {intermediate.name!r}; "
                "use assert_descendant_of for indirect children."
            )
    return _new_trace_hint(span, expected, capture)


def _has_ancestor(span: ReadableSpan, ancestor_id: int, capture: TraceCapture) -> bool:
    seen: set[int] = set()
    current: ReadableSpan | None = span
    while current is not None and current.parent is not None:
        parent_id = current.parent.span_id
        if parent_id == ancestor_id:
            return True
        if parent_id in seen:
            return False
        seen.add(parent_id)
        current = _lookup(capture, parent_id)
    return False
