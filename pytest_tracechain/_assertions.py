"""Assertion helpers. Each raises ``TraceAssertionError`` with a message that
names the spans, says what was expected and what was found, gives a hint when
the capture shows the likely cause, and renders the traces involved."""

from __future__ import annotations

import os
from collections.abc import Iterable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from pytest_tracechain._filters import parse_kind
from pytest_tracechain._graph import SpanGraph, TraceKey, is_root
from pytest_tracechain._refs import Ref, SpanArg, fail, resolve, resolve_span, running_state
from pytest_tracechain._render import format_nanoseconds
from pytest_tracechain._state import CaptureState

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


def _where(ref: Ref, capture: CaptureState | None) -> str | None:
    if capture is None:
        return None
    origin = capture.origin_of(ref.span_id)
    return origin.describe() if origin is not None else None


def _ambient(capture: CaptureState | None) -> set[int] | frozenset[int]:
    return capture.ambient if capture is not None else frozenset()


def _is_root(ref: Ref, capture: CaptureState | None) -> bool:
    return ref.span is not None and is_root(ref.span, _ambient(capture))


def _parent_desc(span: ReadableSpan, capture: CaptureState | None) -> str:
    parent = span.parent
    if parent is None:
        return "no parent (it is the root of its own trace)"
    if is_root(span, _ambient(capture)):
        return "no parent but the test's ambient span (it is a root)"
    found = capture.lookup(parent.span_id) if capture is not None else None
    if found is not None:
        return f"parent {found.name!r} (span {parent.span_id:016x})"
    remote = "a remote parent (from a carrier)" if parent.is_remote else "a parent that was not captured"
    return f"{remote}: span {parent.span_id:016x} in trace {parent.trace_id:032x}"


def new_trace_hint(lost: Ref, anchor: Ref, capture: CaptureState | None) -> str | None:
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
    lost_origin = capture.origin_of(lost.span_id)
    anchor_origin = capture.origin_of(anchor.span_id)
    if lost_origin is None or anchor_origin is None:
        return None
    if lost_origin.pid != os.getpid():  # received from another process: no thread of ours
        return (
            f"{lost.label} was received from pid {lost_origin.pid}, where it started a new trace instead of "
            f"continuing {anchor.label}: pass the context to that process in a carrier (message or HTTP "
            "headers, an environment variable) and start its first span there with "
            "context=opentelemetry.propagate.extract(carrier)."
        )
    spawn = capture.spawn_of(lost.span_id)
    if spawn is not None:  # recorded where the work was handed over: the boundary is known
        return (
            f"{lost.label} was handed over through {spawn.described()} without the context of "
            f"{anchor.label}: {spawn.boundary.fix}."
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
    capture = running_state()
    refs = []
    for index, each in enumerate(spans):  # a loop, not a comprehension: its frame would show in tracebacks
        refs.append(resolve(each, f"spans[{index}]", "assert_same_trace", capture))
    keys = capture.graph().keys if capture is not None else {}
    keyed = [(ref, keys.get(ref.span_id, (ref.trace_id, 0))) for ref in refs]
    number = {key: index + 1 for index, key in enumerate(dict.fromkeys(key for _, key in keyed))}
    if len(number) == 1:
        return
    first, first_key = keyed[0]
    strays = [ref for ref, key in keyed if key != first_key]
    hint = next((h for ref in strays if (h := new_trace_hint(ref, first, capture))), None)
    fail(
        f"expected {len(refs)} spans in one trace, found them in {len(number)} traces:",
        _trace_groups(keyed, number),
        refs,
        capture,
        marks={ref.span_id: f"trace {number[key]}" for ref, key in keyed},
        hint=hint,
    )


def _trace_groups(keyed: list[tuple[Ref, TraceKey]], traces: Iterable[TraceKey]) -> list[str]:
    """``trace … (root …): 'a', 'b'`` for each trace, naming the spans in it."""
    groups = []
    for key in traces:
        root = f" (root {key[1]:016x})" if key[1] else ""
        members = ", ".join(ref.label for ref, ref_key in keyed if ref_key == key)
        groups.append(f"trace {key[0]:032x}{root}: {members}")
    return groups


def assert_child_of(child: SpanArg, parent: SpanArg) -> None:
    """Pass when ``child``'s parent is exactly ``parent`` (same trace, parent span id)."""
    __tracebackhide__ = True
    capture = running_state()
    kid, kid_span = resolve_span(child, "child", "assert_child_of", capture)
    par = resolve(parent, "parent", "assert_child_of", capture)
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
    fail(
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
    capture = running_state()
    ref, ref_span = resolve_span(span, "span", "assert_descendant_of", capture)
    anc = resolve(ancestor, "ancestor", "assert_descendant_of", capture)
    chain = [ref.label]
    graph = capture.graph() if capture is not None else SpanGraph([ref_span])
    ambient = graph.ambient
    top: ReadableSpan | None = ref_span
    for parent, found in graph.parent_chain(ref_span):
        if parent.span_id == anc.span_id and parent.trace_id == anc.trace_id:
            return
        if parent.span_id in ambient:
            chain.append("(root: the test's ambient span)")
            top = None
            break
        if found is None:
            kind = "remote span" if parent.is_remote else "span"
            chain.append(f"{kind} {parent.span_id:016x} (not captured)")
        else:
            chain.append(repr(found.name))
        top = found
    if top is not None and top.parent is None:
        chain.append("(root)")
    fail(
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
    wanted = parse_kind(kind, "kind", "assert_span_kind")
    capture = running_state()
    ref, ref_span = resolve_span(span, "span", "assert_span_kind", capture)
    if ref_span.kind is wanted:
        return
    fail(
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
    capture = running_state()
    ref, ref_span = resolve_span(span, "span", "assert_root", capture)
    if _is_root(ref, capture):
        return
    fail(
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
    capture = running_state()
    ref, ref_span = resolve_span(span, "span", "assert_remote_parent", capture)
    parent = ref_span.parent
    if parent is not None and parent.is_remote:
        return
    if is_root(ref_span, _ambient(capture)):
        hint = (
            "the span has no parent at all: extract the carrier and start the span with "
            "context=opentelemetry.propagate.extract(headers)."
        )
    else:
        hint = (
            "the span's parent is a local span: it was started under the current span instead of "
            "the context extracted from the carrier. Pass context=opentelemetry.propagate.extract(headers)."
        )
    fail(
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
    capture = running_state()
    ref, ref_span = resolve_span(span, "span", "assert_linked_to", capture)
    target = resolve(other, "other", "assert_linked_to", capture)
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
    fail(
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
    capture = running_state()
    ref, ref_span = resolve_span(span, "span", "assert_outlives", capture)
    short, short_span = resolve_span(other, "other", "assert_outlives", capture)
    marks = {ref.span_id: "expected to outlive", short.span_id: "other"}
    refs = [ref, short]
    if ref_span.end_time is None:
        fail(
            f"{ref.label} has not ended yet, so it cannot be shown to outlive {short.label}",
            [],
            refs,
            capture,
            marks=marks,
            hint=f"wait for it first: tracechain.wait_for({ref_span.name!r}).",
        )
    if short_span.end_time is None:
        fail(f"{short.label} has not ended yet", [], refs, capture, marks=marks)
    cancelled = _cancellation(ref_span, capture)
    if cancelled is not None:
        fail(
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
        fail(
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
        fail(
            f"{ref.label} ended {gap} before {short.label} ended; expected it to outlive it",
            [],
            refs,
            capture,
            marks=marks,
            hint=f"the work ended inside {short.label}'s lifetime: the handler waited for it (joined "
            "the thread or awaited the task) or cancelled it on the way out, instead of letting it "
            "run in the background.",
        )


def _cancellation(span: ReadableSpan, capture: CaptureState | None) -> str | None:
    if capture is not None and capture.was_cancelled(span.context.span_id):
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


def _context_label(context: SpanContext, capture: CaptureState | None) -> str:
    span = capture.lookup(context.span_id) if capture is not None else None
    return repr(span.name) if span is not None else f"span {context.span_id:016x}"


def _origin_details(first: Ref, second: Ref, capture: CaptureState | None) -> list[str]:
    where_first, where_second = _where(first, capture), _where(second, capture)
    if where_first is None or where_second is None:
        return []
    return [f"{first.label} started in {where_first}; {second.label} in {where_second}"]


def _relation_hint(span: Ref, expected: Ref, capture: CaptureState | None) -> str | None:
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
        intermediate = capture.lookup(parent.span_id)
        if intermediate is not None and capture.graph().has_ancestor(intermediate, expected.span_id):
            return (
                f"{span.label} is a descendant of {expected.label} through {intermediate.name!r}; "
                "use assert_descendant_of for indirect children."
            )
    return new_trace_hint(span, expected, capture)
