"""Broken-chain analysis: the defects that break a trace, found in any capture.

One pass over the spans; each finding names the span at fault, says what is
wrong, and gives the likely fix for the boundary it crossed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain._capture import Origin, TraceCapture, trace_keys
from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._render import MESSAGE_LIMIT, render_spans
from pytest_tracechain._scope import ScopeEvent
from pytest_tracechain._spawn import BOUNDARY_NAMES, FIXES, Spawn

ORPHAN = "orphan"
LOST_CONTEXT = "lost context"
DROPPED_CARRIER = "dropped carrier"
STALE_CARRIER = "stale carrier"
UNENDED = "unended"
SCOPE_LEAK = "scope leak"
SINGLE_TRACE = "single trace"


@dataclass(frozen=True)
class Finding:
    """One broken link in a trace chain."""

    kind: str
    span: ReadableSpan | None
    message: str
    hint: str | None = None
    related: tuple[ReadableSpan, ...] = field(default=())

    def text(self) -> str:
        lines = [f"[{self.kind}] {self.message}"]
        if self.hint:
            lines.append(f"  fix: {self.hint}")
        return "\n".join(lines)


def analyze(
    spans: Iterable[ReadableSpan],
    *,
    known_ids: Collection[int] | None = None,
    ambient: Collection[int] = frozenset(),
    origins: Mapping[int, Origin] | None = None,
    spawns: Mapping[int, Spawn] | None = None,
    lost_context: bool = True,
    single_trace: bool = False,
) -> list[Finding]:
    """Find orphans, lost context, dropped and stale carriers among ``spans``.

    ``known_ids`` are the span ids the capture ever held (a cleared span is
    still a known parent); ``spawns`` the spawn records of root spans.
    """
    spans = list(spans)
    spawns = spawns or {}
    if known_ids is not None and not single_trace and _nothing_to_find(spans, known_ids, ambient, spawns):
        return []
    by_id = {span.context.span_id: span for span in spans}
    known = known_ids if known_ids is not None else by_id
    origins = origins or {}
    # Traces that start in this capture: a remote parent in one of them that
    # names no captured span is stale. (A carrier from upstream, whose trace
    # has no root here, is not.)
    rooted_traces = {s.context.trace_id for s in spans if s.parent is None or s.parent.span_id in ambient}
    unclaimed = _unclaimed_senders(spans)
    findings: list[Finding] = []

    for span in sorted(spans, key=lambda s: s.start_time or 0):
        span_id = span.context.span_id
        parent = span.parent
        if parent is None or parent.span_id in ambient:
            if span.links:
                continue  # a deliberate new trace (batch consumers)
            spawn = spawns.get(span_id)
            if spawn is not None and lost_context:
                findings.append(_lost_context(span, spawn, by_id, origins))
            elif span.kind in _SENDER_OF:
                sender = _pair_sender(span, unclaimed[_SENDER_OF[span.kind]])
                if sender is not None:
                    findings.append(_dropped_carrier(span, sender))
        elif parent.span_id not in known:
            if not parent.is_remote:
                findings.append(
                    Finding(
                        ORPHAN,
                        span,
                        f"{span.name!r} has parent span {parent.span_id:016x}, which is neither captured "
                        "nor remote (extracted from a carrier)",
                        "the parent belongs to work outside this test (an earlier test, or a span "
                        "started before capture began), or was built by hand; start the span under a "
                        "span of this test, or extract its context from the carrier",
                    )
                )
            elif parent.trace_id in rooted_traces:
                findings.append(
                    Finding(
                        STALE_CARRIER,
                        span,
                        f"{span.name!r} has a remote parent {parent.span_id:016x} in trace "
                        f"{parent.trace_id:032x}, which starts in this test, but no captured span has "
                        "that id: the carrier held the wrong context",
                        "inject the carrier inside the producer span, right before sending, and do not "
                        "reuse headers between messages",
                    )
                )
    if single_trace:
        keys = trace_keys(spans, ambient)
        count = len(set(keys.values()))
        if count > 1:
            findings.append(
                Finding(
                    SINGLE_TRACE,
                    None,
                    f"expected exactly one trace (single_trace=True), found {count}",
                    "every span of this test must descend from one root; look for the root that started "
                    "a new trace",
                )
            )
    return findings


_SENDERS = (SpanKind.PRODUCER, SpanKind.CLIENT)
_RECEIVERS = (SpanKind.CONSUMER, SpanKind.SERVER)


def _nothing_to_find(
    spans: list[ReadableSpan], known: Collection[int], ambient: Collection[int], spawns: Mapping[int, Spawn]
) -> bool:
    """One pass that proves the common case clean, so most tests skip the full analysis.

    Clean: every parent is known or remote (a remote parent of a trace that
    starts here is checked in full), no root has a spawn record, and no
    receiver root could pair with a sender.
    """
    senders = receivers = False
    for span in spans:
        parent = span.parent
        kind = span.kind
        if kind in _SENDERS:
            senders = True
        if parent is None or parent.span_id in ambient:
            if not span.links:
                if span.context.span_id in spawns:
                    return False
                receivers = receivers or kind in _RECEIVERS
        elif parent.is_remote or parent.span_id not in known:
            return False
    return not (senders and receivers)


def _lost_context(
    span: ReadableSpan, spawn: Spawn, by_id: Mapping[int, ReadableSpan], origins: Mapping[int, Origin]
) -> Finding:
    origin = origins.get(span.context.span_id)
    where = origin.describe() if origin is not None else "another thread"
    spawner = repr(spawn.span_name) if spawn.span_name else f"span {spawn.span_context.span_id:016x}"
    spawner_span = by_id.get(spawn.span_context.span_id)
    return Finding(
        LOST_CONTEXT,
        span,
        f"{span.name!r} started a new trace in {where}, but the work was handed over through "
        f"{BOUNDARY_NAMES[spawn.boundary]} from {spawn.spawner} while {spawner} was current: the context "
        "did not cross the boundary",
        FIXES[spawn.boundary],
        (spawner_span,) if spawner_span is not None else (),
    )


_SENDER_OF = {SpanKind.CONSUMER: SpanKind.PRODUCER, SpanKind.SERVER: SpanKind.CLIENT}
_DESTINATION = "messaging.destination.name"


def _unclaimed_senders(spans: list[ReadableSpan]) -> dict[SpanKind, list[ReadableSpan]]:
    """PRODUCER and CLIENT spans that no captured span continues (as parent or link), by kind."""
    claimed = {s.parent.span_id for s in spans if s.parent is not None}
    claimed.update(link.context.span_id for s in spans for link in s.links or ())
    unclaimed: dict[SpanKind, list[ReadableSpan]] = {SpanKind.PRODUCER: [], SpanKind.CLIENT: []}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        if span.kind in unclaimed and span.context.span_id not in claimed:
            unclaimed[span.kind].append(span)
    return unclaimed


def _pair_sender(receiver: ReadableSpan, senders: list[ReadableSpan]) -> ReadableSpan | None:
    """The earliest unclaimed sender that started before ``receiver`` (used once).

    A CLIENT call waits for its answer: it pairs only with a SERVER root that
    started while the call was still open. (A message, once sent, may be
    consumed any time later.)
    """
    destination = (receiver.attributes or {}).get(_DESTINATION)
    started = receiver.start_time or 0
    for index, sender in enumerate(senders):
        if (sender.start_time or 0) >= started:
            break
        if sender.kind is SpanKind.CLIENT and sender.end_time is not None and sender.end_time < started:
            continue
        sent_to = (sender.attributes or {}).get(_DESTINATION)
        if destination is not None and sent_to is not None and destination != sent_to:
            continue
        return senders.pop(index)
    return None


def _dropped_carrier(span: ReadableSpan, sender: ReadableSpan) -> Finding:
    kind = span.kind.name.lower()
    return Finding(
        DROPPED_CARRIER,
        span,
        f"{span.name!r} is a {kind} root span with neither a parent nor a link, although "
        f"{sender.name!r} ({sender.kind.name.lower()}) started before it and nothing continues its "
        f"trace: the {kind} did not extract what was injected",
        "extract the context from the incoming headers and start the span with "
        "context=opentelemetry.propagate.extract(headers) (or links=[Link(...)] for a batch)",
        (sender,),
    )


def analyze_capture(capture: TraceCapture) -> list[Finding]:
    """The analysis of a capture, under its test's marker rules."""
    return analyze(
        capture.spans,
        known_ids=capture._origins,
        ambient=capture._ambient,
        origins=capture._origin_map,
        spawns=capture._spawns,
        lost_context=capture._lost_context_rule,
        single_trace=capture._single_trace_rule,
    )


def unended(capture: TraceCapture) -> list[Finding]:
    return [
        Finding(
            UNENDED,
            span,
            f"{span.name!r} was started in this test and is still open after its teardown",
            "end the span (use `with tracer.start_as_current_span(...)`), or wait for the work that "
            "ends it (tracechain.wait_for) before the test returns",
        )
        for span in capture.open_spans
    ]


def scope_leaks(events: Iterable[ScopeEvent]) -> list[Finding]:
    """One finding per distinct scope leak (the same leak in a loop is reported once)."""
    findings: dict[tuple[str, str | None, str | None], Finding] = {}
    for event in events:
        key = (event.what, event.where, event.span_name)
        if key in findings:
            continue
        subject = f"a context (current span {event.span_name!r})" if event.span_name else "a context"
        where = f" ({event.where})" if event.where else ""
        findings[key] = Finding(
            SCOPE_LEAK,
            None,
            f"{subject} was {event.what}, in thread {event.thread!r}{where}",
            "detach every token in the context that attached it: use `with` blocks "
            "(start_as_current_span, use_span) rather than attach/detach by hand, and do not keep a "
            "span current across `yield` in an async generator or a callback",
        )
    return list(findings.values())


def report(findings: list[Finding], capture: TraceCapture | None) -> str:
    """The findings, then the rendered trees with each span at fault marked."""
    headline = f"{len(findings)} broken trace chain{'s' if len(findings) != 1 else ''}:"
    lines = [headline, *(finding.text() for finding in findings)]
    marks = {f.span.context.span_id: f.kind for f in findings if f.span is not None}
    if capture is not None:
        rendered = capture.render(highlight=marks, limit=MESSAGE_LIMIT)
    else:
        spans = [f.span for f in findings if f.span is not None]
        spans += [s for f in findings for s in f.related]
        rendered = render_spans(spans, highlight=marks, limit=MESSAGE_LIMIT)
    return "\n".join([*lines, "", "captured in this test:", rendered])


def assert_chain_intact(capture: TraceCapture | Iterable[ReadableSpan] | None = None) -> None:
    """Pass when no chain is broken: the analysis of ``--tracechain-check``, on demand.

    ``capture`` is a ``TraceCapture`` (default: the running test's) or any
    iterable of finished spans; the running test's marker rules
    (``lost_context=``, ``single_trace=``) apply. Unended spans are not
    checked here (the test is still running); the automatic check at teardown
    finds them.
    """
    __tracebackhide__ = True
    from pytest_tracechain import _provider

    router = _provider.existing_router()
    running = router.current if router is not None else None
    if capture is None:
        capture = running
        if capture is None:
            raise RuntimeError(
                "assert_chain_intact() without an argument checks the running test's capture, but none "
                "is running: request the `tracechain` fixture, or pass a capture or a list of spans"
            )
    if isinstance(capture, TraceCapture):
        findings = analyze_capture(capture) + scope_leaks(capture._scope_events)
        if findings:
            raise TraceAssertionError(report(findings, capture))
        return
    if isinstance(capture, (str, bytes)) or not isinstance(capture, Iterable):
        raise TypeError(
            "assert_chain_intact() argument 'capture' must be a TraceCapture or an iterable of spans, "
            f"not {type(capture).__name__}"
        )
    spans = list(capture)
    for index, span in enumerate(spans):
        if not isinstance(span, ReadableSpan):
            raise TypeError(
                f"assert_chain_intact() argument 'capture' holds {type(span).__name__} at index {index}, "
                "not a span (ReadableSpan)"
            )
    # Spans under the running test's ambient span (a harness's) are roots.
    findings = analyze(spans, ambient=running._ambient if running is not None else frozenset())
    if findings:
        raise TraceAssertionError(report(findings, None))
