"""Broken-chain analysis: the defects that break a trace, one rule function each.

A rule takes the span graph of the finished spans and the recorded facts of
the capture (``Facts``) and returns its findings; ``analyze`` runs them all,
unless ``_intact``'s quick proof finds the chains intact. Each finding names
the span at fault, says what is wrong, and gives the likely fix for the
boundary it crossed.

Only a test that proof cannot pass imports this module (the per-test check
in ``_session`` tries the proof first).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import SpanKind

from pytest_tracechain import _provider
from pytest_tracechain._capture import TraceCapture, state_of
from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._graph import SpanGraph, collection_paused
from pytest_tracechain._intact import RECEIVERS, SENDER_OF, SENDERS, Facts, is_trivially_intact
from pytest_tracechain._origins import Origin
from pytest_tracechain._render import MESSAGE_LIMIT, render_spans
from pytest_tracechain._scope import ScopeEvent
from pytest_tracechain._settings import Rules, Words
from pytest_tracechain._spawn import Boundary, Injection, Spawn
from pytest_tracechain._state import CaptureState

__all__ = [
    "RULES",
    "Facts",
    "Finding",
    "FindingKind",
    "SpanFacts",
    "analyze",
    "apply_rules",
    "assert_chain_intact",
    "is_trivially_intact",
    "report",
    "scope_leaks",
    "summary",
    "unended",
]


class FindingKind(Words):
    """The kinds of broken chain (the ``[kind]`` of a report line)."""

    ORPHAN = "orphan"
    LOST_CONTEXT = "lost context"
    DROPPED_CARRIER = "dropped carrier"
    STALE_CARRIER = "stale carrier"
    UNENDED = "unended"
    SCOPE_LEAK = "scope leak"
    SINGLE_TRACE = "single trace"
    PARENT_CYCLE = "parent cycle"


@dataclass(frozen=True)
class Finding:
    """One broken link in a trace chain."""

    kind: FindingKind
    span: ReadableSpan | None
    message: str
    hint: str | None = None
    related: tuple[ReadableSpan, ...] = field(default=())

    def text(self) -> str:
        lines = [f"[{self.kind.value}] {self.message}"]
        if self.hint:
            lines.append(f"  fix: {self.hint}")
        return "\n".join(lines)


@dataclass(frozen=True)
class SpanFacts:
    """``Facts`` for a list of spans: what the running test recorded of them, and its rules."""

    spans: list[ReadableSpan]
    ambient: Collection[int] = frozenset()
    rules: Rules = field(default_factory=Rules)
    recorded: CaptureState | None = None  # the running test's capture, for origins and spawns
    known_ids: Collection[int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "known_ids", {span.context.span_id for span in self.spans})

    @property
    def injections(self) -> Mapping[int, Injection]:
        return self.recorded.injections if self.recorded is not None else {}

    @property
    def received(self) -> bool:
        # The SDK's own spans cannot name a later span as parent; any other can.
        return any(not isinstance(span, Span) for span in self.spans)

    def origin_of(self, span_id: int) -> Origin | None:
        return self.recorded.origin_of(span_id) if self.recorded is not None else None

    def spawn_of(self, span_id: int) -> Spawn | None:
        return self.recorded.spawn_of(span_id) if self.recorded is not None else None

    @property
    def spawns(self) -> Mapping[int, Spawn]:
        return self.recorded.spawns if self.recorded is not None else {}

    def spans_to_prove(self) -> list[ReadableSpan]:
        return self.spans


Rule = Callable[[SpanGraph, Facts], list[Finding]]

_DESTINATION = "messaging.destination.name"
# A CLIENT span with one of these is a database call: it sends no context to a server.
_DATABASE = ("db.system", "db.system.name")


def _roots(graph: SpanGraph) -> list[ReadableSpan]:
    """Root spans (relative to the test) without links, by start time: links make a trace deliberate.

    A root is never linked to a parent, so the graph's tops hold them all.
    """
    return [top for top in graph.tops if graph.is_root(top) and not top.links]


def _broken_parents(graph: SpanGraph, facts: Facts) -> list[ReadableSpan]:
    """Spans that have a parent which is neither ambient nor known to the capture.

    A span whose parent is in the graph is linked to it (or is a top whose
    parent, of another trace or on a cycle, is still known), so only the
    graph's tops can have one.
    """
    known = facts.known_ids
    return [
        top
        for top in graph.tops
        if top.parent is not None and not graph.is_root(top) and top.parent.span_id not in known
    ]


def orphans(graph: SpanGraph, facts: Facts) -> list[Finding]:
    """A span whose parent is neither captured nor remote."""
    return [
        Finding(
            FindingKind.ORPHAN,
            span,
            f"{span.name!r} has parent span {span.parent.span_id:016x}, which is neither captured "
            "nor remote (extracted from a carrier)",
            "the parent belongs to work outside this test (an earlier test, or a span "
            "started before capture began), or was built by hand; start the span under a "
            "span of this test, or extract its context from the carrier",
        )
        for span in _broken_parents(graph, facts)
        if span.parent is not None and not span.parent.is_remote
    ]


def stale_carriers(graph: SpanGraph, facts: Facts) -> list[Finding]:
    """A remote parent in a trace that starts in this test, naming no captured span."""
    # A carrier from upstream, whose trace has no root here, is not stale.
    rooted_traces = {top.context.trace_id for top in graph.tops if graph.is_root(top)}
    return [
        Finding(
            FindingKind.STALE_CARRIER,
            span,
            f"{span.name!r} has a remote parent {span.parent.span_id:016x} in trace "
            f"{span.parent.trace_id:032x}, which starts in this test, but no captured span has "
            "that id: the carrier held the wrong context",
            "inject the carrier inside the producer span, right before sending, and do not "
            "reuse headers between messages",
        )
        for span in _broken_parents(graph, facts)
        if span.parent is not None and span.parent.is_remote and span.parent.trace_id in rooted_traces
    ]


_QUEUES = frozenset({Boundary.QUEUE, Boundary.SIMPLE_QUEUE, Boundary.ASYNCIO_QUEUE})


def _lost_spawn(span: ReadableSpan, facts: Facts) -> Spawn | None:
    """The hand-off that ``span``, a root, lost the context across: reported as lost context.

    A CONSUMER or SERVER root taken off a queue while a context was injected
    is a consumer that ignored its carrier: a dropped carrier, not lost context.
    """
    if not facts.rules.lost_context:
        return None
    spawn = facts.spawn_of(span.context.span_id)
    if spawn is not None and spawn.boundary in _QUEUES and span.kind in RECEIVERS and facts.injections:
        return None
    return spawn


def lost_context(graph: SpanGraph, facts: Facts) -> list[Finding]:
    """A root started in work handed over while a span was current (``lost_context=``)."""
    findings = []
    for span in _roots(graph):
        spawn = _lost_spawn(span, facts)
        if spawn is not None:
            findings.append(_lost_context(span, spawn, graph, facts.origin_of(span.context.span_id)))
    return findings


def _lost_context(span: ReadableSpan, spawn: Spawn, graph: SpanGraph, origin: Origin | None) -> Finding:
    where = origin.describe() if origin is not None else "another thread"
    spawner = repr(spawn.span_name) if spawn.span_name else f"span {spawn.span_context.span_id:016x}"
    spawner_span = graph.by_id.get(spawn.span_context.span_id)
    return Finding(
        FindingKind.LOST_CONTEXT,
        span,
        f"{span.name!r} started a new trace in {where}, but the work was handed over through "
        f"{spawn.described()} while {spawner} was current: the context did not cross the boundary",
        spawn.boundary.fix,
        (spawner_span,) if spawner_span is not None else (),
    )


def dropped_carriers(graph: SpanGraph, facts: Facts) -> list[Finding]:
    """A CONSUMER or SERVER root started after a context was sent that nothing continues.

    What was sent: each injection into a carrier recorded in this process;
    where the test recorded none (the producer injects elsewhere) and for
    spans received from other processes, PRODUCER and CLIENT spans, but
    never a database call. Sent is continued only by a receiver: a span whose
    remote parent is it, a CONSUMER or SERVER child, or a link to it (an
    instrumented broker client's CLIENT child under the producer is not one).
    """
    receivers = [
        span
        for span in _roots(graph)
        if span.kind in RECEIVERS
        and _lost_spawn(span, facts) is None  # else lost context: the boundary is known
    ]
    if not receivers:
        return []
    sent = _uncontinued_sends(graph, facts)
    findings = []
    for span in receivers:
        send = _pair_send(span, sent)
        if send is not None:
            findings.append(_dropped_carrier(span, send))
    return findings


@dataclass(frozen=True, slots=True)
class _Send:
    """A context sent towards a receiver: an injection, or a sender span (kind-based)."""

    span_id: int
    span: ReadableSpan | None  # the sending span, when captured and finished
    name: str | None
    kind: SpanKind | None  # None: the injecting span is not known (open, or not captured)
    at: int  # when it was sent (ns)
    where: str | None  # file:line of the injection; None for a kind-based sender

    def receiver_kinds(self) -> frozenset[SpanKind]:
        if self.kind in SENDER_OF.values():
            return frozenset(k for k, sender in SENDER_OF.items() if sender is self.kind)
        return RECEIVERS


def _continued(graph: SpanGraph) -> set[int]:
    """Span ids a receiver continues: remote parents, parents of receivers, and links."""
    continued = set()
    for span in graph.ordered:
        parent = span.parent
        if parent is not None and (parent.is_remote or span.kind in RECEIVERS):
            continued.add(parent.span_id)
        for link in span.links or ():
            continued.add(link.context.span_id)
    return continued


def _uncontinued_sends(graph: SpanGraph, facts: Facts) -> list[_Send]:
    """What was sent and nothing continues, by the time it was sent."""
    continued = _continued(graph)
    injections = facts.injections
    sends = []
    for span_id, injection in injections.items():
        if span_id in continued:
            continue
        span = graph.by_id.get(span_id)
        sends.append(
            _Send(
                span_id,
                span,
                injection.span_name,
                span.kind if span is not None else None,
                injection.time_ns,
                injection.where,
            )
        )
    here = os.getpid()
    for span in graph.ordered:
        span_id = span.context.span_id
        if (
            span.kind in SENDERS
            and span_id not in continued
            and span_id not in injections
            and not _is_database_call(span)
            and (not injections or _received(span, facts, here))
        ):
            sends.append(_Send(span_id, span, span.name, span.kind, span.start_time or 0, None))
    sends.sort(key=lambda send: send.at)
    return sends


def _is_database_call(span: ReadableSpan) -> bool:
    attributes = span.attributes or {}
    return span.kind is SpanKind.CLIENT and any(key in attributes for key in _DATABASE)


def _received(span: ReadableSpan, facts: Facts, here: int) -> bool:
    origin = facts.origin_of(span.context.span_id)
    return origin is not None and origin.pid != here


def _pair_send(receiver: ReadableSpan, sends: list[_Send]) -> _Send | None:
    """The earliest uncontinued send before ``receiver`` of a kind it receives (used once).

    A CLIENT call waits for its answer: it pairs only with a SERVER root that
    started while the call was still open. (A message, once sent, may be
    consumed any time later.)
    """
    destination = (receiver.attributes or {}).get(_DESTINATION)
    started = receiver.start_time or 0
    for index, send in enumerate(sends):
        if send.at >= started:
            break
        sender = send.span
        if receiver.kind not in send.receiver_kinds():
            continue
        if sender is not None:
            if sender.kind is SpanKind.CLIENT and sender.end_time is not None and sender.end_time < started:
                continue
            sent_to = (sender.attributes or {}).get(_DESTINATION)
            if destination is not None and sent_to is not None and destination != sent_to:
                continue
        return sends.pop(index)
    return None


def _dropped_carrier(span: ReadableSpan, send: _Send) -> Finding:
    kind = span.kind.name.lower()
    if send.kind is not None:
        sender = f"{send.name!r} ({send.kind.name.lower()})"
    else:
        sender = repr(send.name) if send.name else f"span {send.span_id:016x}"
    if send.where is not None:
        what = f"{sender} injected its context into a carrier at {send.where} before it started"
    else:
        what = f"{sender} started before it"
    return Finding(
        FindingKind.DROPPED_CARRIER,
        span,
        f"{span.name!r} is a {kind} root span with neither a parent nor a link, although {what} and "
        f"nothing continues its trace: the {kind} did not extract what was injected",
        "extract the context from the incoming headers and start the span with "
        "context=opentelemetry.propagate.extract(headers) (or links=[Link(...)] for a batch)",
        (send.span,) if send.span is not None else (),
    )


def single_trace(graph: SpanGraph, facts: Facts) -> list[Finding]:
    """More than one trace where the marker demands one (``single_trace=True``)."""
    count = len(graph.counts)
    if not facts.rules.single_trace or count <= 1:
        return []
    return [
        Finding(
            FindingKind.SINGLE_TRACE,
            None,
            f"expected exactly one trace (single_trace=True), found {count}",
            "every span of this test must descend from one root; look for the root that started a new trace",
        )
    ]


def parent_cycles(graph: SpanGraph, facts: Facts) -> list[Finding]:
    """Spans whose parents lead back to themselves: no root starts their trace."""
    graph.keys  # noqa: B018  (keying the graph finds the cycles)
    return [_parent_cycle(span, graph) for span in graph.cycles]


def _parent_cycle(span: ReadableSpan, graph: SpanGraph) -> Finding:
    names = [repr(span.name)]
    for _, parent in graph.parent_chain(span):
        if parent is None or parent is span:
            break
        names.append(repr(parent.name))
    names.append(repr(span.name))
    shown = " → ".join(names if len(names) <= 8 else [*names[:4], "…", *names[-3:]])
    return Finding(
        FindingKind.PARENT_CYCLE,
        span,
        f"{span.name!r} is on a parent cycle ({shown}): the spans name each other as parents, so no "
        "root starts their trace",
        "the process that sent them made span contexts by hand or reused span ids: let its SDK make the "
        "ids, and take parents only from extract() or the current span",
    )


# The rules of the analysis of finished spans (unended spans and scope leaks
# are known only at teardown: ``unended`` and ``scope_leaks``).
RULES: tuple[Rule, ...] = (
    orphans,
    stale_carriers,
    lost_context,
    dropped_carriers,
    single_trace,
    parent_cycles,
)


def analyze(facts: Facts, rules: Sequence[Rule] = RULES) -> list[Finding]:
    """Every rule's findings over the finished spans of ``facts``, in order of the spans' start."""
    if rules is RULES and is_trivially_intact(facts):
        return []
    return apply_rules(facts, rules)


def apply_rules(facts: Facts, rules: Sequence[Rule] = RULES) -> list[Finding]:
    """``analyze`` without the quick proof, for a caller that made it already (``_session``)."""
    with collection_paused():
        graph = SpanGraph(facts.spans, facts.ambient)
        findings = [finding for rule in rules for finding in rule(graph, facts)]
    if len(findings) < 2:
        return findings
    # Each finding is about a top of the graph (or the whole capture): tops
    # are in start order.
    position = {top.context.span_id: index for index, top in enumerate(graph.tops)}
    last = len(graph.by_id)
    return sorted(
        findings,
        key=lambda f: position.get(f.span.context.span_id, last) if f.span is not None else last + 1,
    )


def unended(state: CaptureState) -> list[Finding]:
    """Spans of the test still open after its teardown."""
    return [
        Finding(
            FindingKind.UNENDED,
            span,
            f"{span.name!r} was started in this test and is still open after its teardown",
            "end the span (use `with tracer.start_as_current_span(...)`), or wait for the work that "
            "ends it (tracechain.wait_for) before the test returns",
        )
        for span in state.open_spans()
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
            FindingKind.SCOPE_LEAK,
            None,
            f"{subject} was {event.what}, in thread {event.thread!r}{where}",
            "detach every token in the context that attached it: use `with` blocks "
            "(start_as_current_span, use_span) rather than attach/detach by hand, and do not keep a "
            "span current across `yield` in an async generator or a callback",
        )
    return list(findings.values())


# How many findings of each kind a report spells out; the rest are counted
# (every one is in --tracechain-export and on the --tracechain-html page).
REPORT_PER_KIND = 10


def _capped(findings: list[Finding]) -> list[str]:
    """Each finding's text, the first ``REPORT_PER_KIND`` of each kind; then how many more."""
    shown: dict[FindingKind, int] = {}
    lines = []
    for finding in findings:
        count = shown[finding.kind] = shown.get(finding.kind, 0) + 1
        if count <= REPORT_PER_KIND:
            lines.append(finding.text())
    for kind, count in shown.items():
        if count > REPORT_PER_KIND:
            more = count - REPORT_PER_KIND
            lines.append(
                f"[{kind.value}] … and {more} more (all {count} are in --tracechain-export and "
                "--tracechain-html)"
            )
    return lines


def summary(findings: list[Finding], limit: int = REPORT_PER_KIND) -> str:
    """The one-line summary of a test's findings, for the terminal summary (the first ``limit``)."""
    parts = [f"{f.kind}: {f.span.name!r}" if f.span is not None else str(f.kind) for f in findings[:limit]]
    if len(findings) > limit:
        parts.append(f"and {len(findings) - limit} more")
    return "; ".join(parts)


def report(findings: list[Finding], state: CaptureState | None, *, trees: bool = True) -> str:
    """The findings, then (``trees``) the rendered trees with each span at fault marked."""
    headline = f"{len(findings)} broken trace chain{'s' if len(findings) != 1 else ''}:"
    lines = [headline, *_capped(findings)]
    if not trees:
        return "\n".join(lines)
    marks: Mapping[int, str] = {f.span.context.span_id: f.kind.value for f in findings if f.span is not None}
    if state is not None:
        rendered = state.render(highlight=marks, limit=MESSAGE_LIMIT)
    else:
        spans = [f.span for f in findings if f.span is not None]
        spans += [s for f in findings for s in f.related]
        rendered = render_spans(spans, highlight=marks, limit=MESSAGE_LIMIT)
    return "\n".join([*lines, "", "captured in this test:", rendered])


def assert_chain_intact(capture: TraceCapture | Iterable[ReadableSpan] | None = None) -> None:
    """Pass when no chain is broken: the analysis of ``--tracechain-check``, on demand.

    ``capture`` is a ``TraceCapture`` (default: the running test's) or any
    iterable of finished spans; the running test's marker rules
    (``lost_context=``, ``single_trace=``) apply, and for a list of spans
    what the running test recorded of them (where work was handed over).
    Unended spans are not checked here (the test is still running); the
    automatic check at teardown finds them.
    """
    __tracebackhide__ = True
    running = _provider.running_state()
    if capture is None:
        if running is None:
            raise RuntimeError(
                "assert_chain_intact() without an argument checks the running test's capture, but none "
                "is running: request the `tracechain` fixture, or pass a capture or a list of spans"
            )
        state: CaptureState | None = running
    elif isinstance(capture, TraceCapture):
        state = state_of(capture)
    else:
        state = None
    if state is not None:
        findings = analyze(state) + scope_leaks(state.scope_events)
        if findings:
            raise TraceAssertionError(report(findings, state))
        return
    from pytest_tracechain._refs import span_list  # here: a check at teardown never needs it

    spans = span_list(capture, "assert_chain_intact", "capture")
    facts = SpanFacts(
        spans,
        # Spans under the running test's ambient span (a harness's) are roots.
        ambient=running.ambient if running is not None else frozenset(),
        rules=running.rules if running is not None else Rules(),
        recorded=running,
    )
    findings = analyze(facts)
    if findings:
        raise TraceAssertionError(report(findings, None))
