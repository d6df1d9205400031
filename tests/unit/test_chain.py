"""The chain rules, one by one, on spans built in process."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain import _chain, _provider
from pytest_tracechain._capture import TraceCapture
from pytest_tracechain._chain import (
    RULES,
    Finding,
    FindingKind,
    SpanFacts,
    analyze,
    assert_chain_intact,
    dropped_carriers,
    is_trivially_intact,
    lost_context,
    orphans,
    parent_cycles,
    report,
    scope_leaks,
    single_trace,
    stale_carriers,
    unended,
)
from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._graph import SpanGraph
from pytest_tracechain._origins import Origin, intern_origin
from pytest_tracechain._scope import ScopeEvent
from pytest_tracechain._settings import Rules
from pytest_tracechain._spawn import Boundary, Injection, Spawn
from pytest_tracechain._state import CaptureState
from tests.unit.spans import ctx, span

PRODUCER, CONSUMER, CLIENT, SERVER = SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CLIENT, SpanKind.SERVER
DESTINATION = "messaging.destination.name"


@dataclass
class Facts:
    """The facts a rule reads, set directly."""

    spans: list[ReadableSpan]
    ambient: Collection[int] = frozenset()
    known: Collection[int] | None = None
    rules: Rules = field(default_factory=Rules)
    origins: dict[int, Origin] = field(default_factory=dict)
    spawns: dict[int, Spawn] = field(default_factory=dict)
    injections: dict[int, Injection] = field(default_factory=dict)
    received: bool = False

    @property
    def known_ids(self) -> Collection[int]:
        return self.known if self.known is not None else {s.context.span_id for s in self.spans}

    def origin_of(self, span_id: int) -> Origin | None:
        return self.origins.get(span_id)

    def spawn_of(self, span_id: int) -> Spawn | None:
        return self.spawns.get(span_id)

    def spans_to_prove(self) -> list[ReadableSpan]:
        return self.spans


def run(rule: _chain.Rule, facts: Facts) -> list[Finding]:
    return rule(SpanGraph(facts.spans, facts.ambient), facts)


def kinds(findings: list[Finding]) -> list[tuple[str, str | None]]:
    return [(f.kind.value, f.span.name if f.span is not None else None) for f in findings]


def spawn(boundary: Boundary = Boundary.THREAD, span_id: int = 1, name: str | None = "request") -> Spawn:
    return Spawn(boundary, ctx(span_id), name, "thread 'MainThread'")


# -- orphans -----------------------------------------------------------------------


def test_orphan_a_local_parent_not_captured() -> None:
    (finding,) = run(orphans, Facts([span("root", 1), span("lost", 2, 0xAB)]))
    assert finding.kind is FindingKind.ORPHAN
    assert finding.span is not None
    assert finding.span.name == "lost"
    assert finding.text() == (
        "[orphan] 'lost' has parent span 00000000000000ab, which is neither captured nor remote "
        "(extracted from a carrier)\n"
        "  fix: the parent belongs to work outside this test (an earlier test, or a span started before "
        "capture began), or was built by hand; start the span under a span of this test, or extract its "
        "context from the carrier"
    )
    assert finding.related == ()


def test_no_orphan_for_a_known_parent_a_remote_parent_or_a_root() -> None:
    cleared_parent = span("child of a cleared span", 2, 1)
    remote = span("consumer", 3, ctx(50, remote=True))
    under_ambient = span("root", 4, 60)
    facts = Facts([cleared_parent, remote, under_ambient], ambient={60}, known={1, 2, 3, 4})
    assert run(orphans, facts) == []


# -- stale carriers -----------------------------------------------------------------


def test_stale_carrier_a_remote_parent_in_a_trace_that_starts_here() -> None:
    spans = [span("request", 1), span("consumer", 2, ctx(0x77, remote=True))]
    (finding,) = run(stale_carriers, Facts(spans))
    assert kinds([finding]) == [("stale carrier", "consumer")]
    assert finding.message == (
        "'consumer' has a remote parent 0000000000000077 in trace 00000000000000000000000000000001, which "
        "starts in this test, but no captured span has that id: the carrier held the wrong context"
    )
    assert finding.hint == (
        "inject the carrier inside the producer span, right before sending, and do not reuse headers "
        "between messages"
    )


def test_no_stale_carrier_for_a_trace_from_upstream_or_a_known_remote_parent() -> None:
    upstream = [span("consumer", 2, ctx(0x77, trace_id=5, remote=True), trace_id=5), span("other", 1)]
    assert run(stale_carriers, Facts(upstream)) == []
    known_remote = [span("producer", 1), span("consumer", 2, ctx(1, remote=True))]
    assert run(stale_carriers, Facts(known_remote)) == []
    # A local parent that is missing is an orphan, not a stale carrier.
    assert run(stale_carriers, Facts([span("request", 1), span("x", 2, 0x99)])) == []


def test_a_root_under_the_ambient_span_makes_its_trace_rooted_here() -> None:
    spans = [span("request", 2, 1), span("consumer", 3, ctx(0x77, remote=True))]
    assert kinds(run(stale_carriers, Facts(spans, ambient={1}))) == [("stale carrier", "consumer")]
    assert run(stale_carriers, Facts(spans)) == []  # without ambient, 'request' is an orphan, no root


# -- lost context ---------------------------------------------------------------------


def test_lost_context_a_root_in_work_handed_over_while_a_span_was_current() -> None:
    request, job = span("request", 1), span("job", 2, start=30)
    origin = Origin(pid=123456789, thread_name="worker", thread_id=7)
    facts = Facts([request, job], spawns={2: spawn()}, origins={2: origin})
    (finding,) = run(lost_context, facts)
    assert kinds([finding]) == [("lost context", "job")]
    assert finding.message == (
        "'job' started a new trace in pid 123456789, thread 'worker', but the work was handed over through "
        "a thread from thread 'MainThread' while 'request' was current: the context did not cross the "
        "boundary"
    )
    assert finding.hint == Boundary.THREAD.fix
    assert finding.related == (request,)


@pytest.mark.parametrize(
    ("boundary", "words", "fix_starts"),
    [
        (Boundary.THREAD, "a thread", "start the thread with contextvars.copy_context().run"),
        (Boundary.EXECUTOR, "an executor job", "submit the job with contextvars.copy_context().run"),
        (Boundary.RUN_IN_EXECUTOR, "loop.run_in_executor", "use asyncio.to_thread"),
        (Boundary.TASK, "an asyncio task", "create the task while the span is current"),
    ],
)
def test_lost_context_names_the_boundary_and_its_fix(boundary: Boundary, words: str, fix_starts: str) -> None:
    (finding,) = run(lost_context, Facts([span("job", 2)], spawns={2: spawn(boundary, 99, None)}))
    assert (
        f"handed over through {words} from thread 'MainThread' while span 0000000000000063 "
        in finding.message
    )
    assert "started a new trace in another thread," in finding.message
    assert finding.hint is not None
    assert finding.hint.startswith(fix_starts)
    assert finding.related == ()  # the spawner was not captured
    assert str(boundary) == boundary.value


def test_no_lost_context_for_linked_roots_children_no_record_or_the_rule_off() -> None:
    linked = span("batch", 2, links=[ctx(1)])
    child = span("child", 3, 1)
    no_record = span("plain root", 4)
    spans = [span("request", 1), linked, child, no_record]
    spawns = {2: spawn(), 3: spawn()}
    assert run(lost_context, Facts(spans, spawns=spawns)) == []
    off = Facts([span("job", 2)], spawns={2: spawn()}, rules=Rules(lost_context=False))
    assert run(lost_context, off) == []


def test_a_root_under_the_ambient_span_can_lose_context() -> None:
    facts = Facts([span("job", 2, 1)], ambient={1}, spawns={2: spawn()})
    assert kinds(run(lost_context, facts)) == [("lost context", "job")]


# -- dropped carriers -------------------------------------------------------------------


def test_dropped_carrier_a_consumer_root_after_an_unclaimed_producer() -> None:
    producer = span("send", 1, kind=PRODUCER, start=10)
    consumer = span("process", 2, kind=CONSUMER, start=20)
    (finding,) = run(dropped_carriers, Facts([consumer, producer]))
    assert kinds([finding]) == [("dropped carrier", "process")]
    assert finding.message == (
        "'process' is a consumer root span with neither a parent nor a link, although 'send' (producer) "
        "started before it and nothing continues its trace: the consumer did not extract what was injected"
    )
    assert finding.hint == (
        "extract the context from the incoming headers and start the span with "
        "context=opentelemetry.propagate.extract(headers) (or links=[Link(...)] for a batch)"
    )
    assert finding.related == (producer,)


def test_a_server_root_pairs_with_a_client_call_still_open() -> None:
    client = span("GET", 1, kind=CLIENT, start=10, end=40)
    server = span("GET /x", 2, kind=SERVER, start=20)
    assert kinds(run(dropped_carriers, Facts([client, server]))) == [("dropped carrier", "GET /x")]
    unfinished = span("GET", 1, kind=CLIENT, start=10, still_open=True)
    assert kinds(run(dropped_carriers, Facts([unfinished, server]))) == [("dropped carrier", "GET /x")]
    ended_at_start = span("GET", 1, kind=CLIENT, start=10, end=20)
    assert kinds(run(dropped_carriers, Facts([ended_at_start, server]))) == [("dropped carrier", "GET /x")]


def test_a_client_call_that_returned_before_the_request_does_not_pair() -> None:
    client = span("db", 1, kind=CLIENT, start=10, end=19)
    server = span("GET /x", 2, kind=SERVER, start=20)
    assert run(dropped_carriers, Facts([client, server])) == []
    # ...but a later call still open when the request started does.
    open_call = span("GET", 3, kind=CLIENT, start=15, end=40)
    (finding,) = run(dropped_carriers, Facts([client, open_call, server]))
    assert finding.related == (open_call,)


def test_senders_pair_only_with_their_receiver_kind() -> None:
    assert (
        run(dropped_carriers, Facts([span("send", 1, kind=PRODUCER), span("GET /x", 2, kind=SERVER)])) == []
    )
    assert (
        run(dropped_carriers, Facts([span("GET", 1, kind=CLIENT), span("process", 2, kind=CONSUMER)])) == []
    )
    assert run(dropped_carriers, Facts([span("send", 1, kind=PRODUCER), span("x", 2)])) == []


def test_a_sender_that_started_after_or_with_the_receiver_does_not_pair() -> None:
    at_once = [span("send", 1, kind=PRODUCER, start=20), span("process", 2, kind=CONSUMER, start=20)]
    assert run(dropped_carriers, Facts(at_once)) == []
    later = [span("process", 2, kind=CONSUMER, start=20), span("send", 1, kind=PRODUCER, start=30)]
    assert run(dropped_carriers, Facts(later)) == []


def test_a_sender_continued_by_a_parent_or_a_link_is_claimed() -> None:
    producer = span("send", 1, kind=PRODUCER, start=10)
    consumer = span("process", 2, kind=CONSUMER, start=30)
    by_child = span("process ok", 3, ctx(1, remote=True), kind=CONSUMER, start=20)
    assert run(dropped_carriers, Facts([producer, by_child, consumer])) == []
    by_link = span("batch", 4, kind=CONSUMER, start=20, links=[ctx(1)])
    assert run(dropped_carriers, Facts([producer, by_link, consumer])) == []


def test_each_sender_pairs_with_one_receiver_the_earliest_first() -> None:
    first, second = span("send 1", 1, kind=PRODUCER, start=10), span("send 2", 2, kind=PRODUCER, start=12)
    a, b, c = (span(name, i, kind=CONSUMER, start=20 + i) for i, name in ((3, "a"), (4, "b"), (5, "c")))
    findings = run(dropped_carriers, Facts([first, second, a, b, c]))
    assert [(f.span.name if f.span else None, f.related[0].name) for f in findings] == [
        ("a", "send 1"),
        ("b", "send 2"),
    ]


def test_destinations_must_agree_when_both_name_one() -> None:
    to_a = span("send", 1, kind=PRODUCER, start=10, attributes={DESTINATION: "queue-a"})
    from_b = span("process", 2, kind=CONSUMER, start=20, attributes={DESTINATION: "queue-b"})
    assert run(dropped_carriers, Facts([to_a, from_b])) == []
    from_a = span("process", 2, kind=CONSUMER, start=20, attributes={DESTINATION: "queue-a"})
    assert kinds(run(dropped_carriers, Facts([to_a, from_a]))) == [("dropped carrier", "process")]
    unnamed = span("process", 2, kind=CONSUMER, start=20)
    assert kinds(run(dropped_carriers, Facts([to_a, unnamed]))) == [("dropped carrier", "process")]
    plain_sender = span("send", 1, kind=PRODUCER, start=10)
    assert kinds(run(dropped_carriers, Facts([plain_sender, from_b]))) == [("dropped carrier", "process")]


def test_a_mismatched_destination_leaves_the_sender_for_a_later_receiver() -> None:
    to_a = span("send", 1, kind=PRODUCER, start=10, attributes={DESTINATION: "queue-a"})
    to_b = span("send b", 2, kind=PRODUCER, start=11, attributes={DESTINATION: "queue-b"})
    from_b = span("process b", 3, kind=CONSUMER, start=20, attributes={DESTINATION: "queue-b"})
    findings = run(dropped_carriers, Facts([to_a, to_b, from_b]))
    assert [f.related[0].name for f in findings] == ["send b"]


def test_a_producer_whose_only_child_is_a_client_call_is_not_continued() -> None:
    # An instrumented broker client (XADD, PUBLISH) adds a CLIENT child under the producer.
    producer = span("send", 1, kind=PRODUCER, start=10)
    xadd = span("XADD", 2, 1, kind=CLIENT, start=11, attributes={"db.system": "redis"})
    consumer = span("process", 3, kind=CONSUMER, start=20)
    (finding,) = run(dropped_carriers, Facts([producer, xadd, consumer]))
    assert finding.related == (producer,)
    # A CONSUMER child (even in-process, without a remote parent) continues it.
    handled = span("process ok", 4, 1, kind=CONSUMER, start=15)
    assert run(dropped_carriers, Facts([producer, xadd, handled, consumer])) == []


def test_a_database_call_never_pairs_with_a_server_root() -> None:
    # A consumer blocked in XREAD BLOCK while a request is served: no context went to the server.
    xread = span("XREAD", 1, kind=CLIENT, start=10, still_open=True, attributes={"db.system": "redis"})
    new_convention = span(
        "GET", 2, kind=CLIENT, start=11, still_open=True, attributes={"db.system.name": "x"}
    )
    server = span("GET /x", 3, kind=SERVER, start=20)
    assert run(dropped_carriers, Facts([xread, new_convention, server])) == []


def injection(span_id: int, at: int, name: str | None = "send", where: str | None = "app.py:7") -> Injection:
    return Injection(ctx(span_id), name, where, at)


def test_dropped_carrier_a_receiver_root_after_an_injection_nothing_continues() -> None:
    producer = span("send", 1, kind=PRODUCER, start=10)
    consumer = span("process", 2, kind=CONSUMER, start=20)
    (finding,) = run(dropped_carriers, Facts([producer, consumer], injections={1: injection(1, 12)}))
    assert finding.message == (
        "'process' is a consumer root span with neither a parent nor a link, although 'send' (producer) "
        "injected its context into a carrier at app.py:7 before it started and nothing continues its "
        "trace: the consumer did not extract what was injected"
    )
    assert finding.related == (producer,)
    # Injected after the receiver started: not what it received.
    assert run(dropped_carriers, Facts([producer, consumer], injections={1: injection(1, 25)})) == []


def test_an_injection_is_continued_by_a_remote_child_or_a_link() -> None:
    producer = span("send", 1, kind=PRODUCER, start=10)
    later = span("process", 2, kind=CONSUMER, start=30)
    injections = {1: injection(1, 12)}
    remote_child = span("handled", 3, ctx(1, remote=True), start=20)
    assert run(dropped_carriers, Facts([producer, remote_child, later], injections=injections)) == []
    linked = span("batch", 4, kind=CONSUMER, start=20, links=[ctx(1)])
    assert run(dropped_carriers, Facts([producer, linked, later], injections=injections)) == []
    # A local INTERNAL child is the producer's own work, not a receiver.
    local_child = span("serialize", 5, 1, start=11)
    assert kinds(run(dropped_carriers, Facts([producer, local_child, later], injections=injections))) == [
        ("dropped carrier", "process")
    ]


def test_with_injections_recorded_only_they_and_received_spans_are_senders() -> None:
    # An in-process CLIENT call that injected nothing sent no context.
    client = span("GET", 1, kind=CLIENT, start=10, end=40)
    server = span("GET /x", 2, kind=SERVER, start=20)
    elsewhere = injection(9, 5, "other", "app.py:3")
    facts = Facts([client, server], injections={9: elsewhere})
    (finding,) = run(dropped_carriers, facts)  # paired with the injection (span 9, not captured)
    assert "'other' injected its context into a carrier at app.py:3" in finding.message
    assert finding.related == ()
    used = Facts(
        [client, server, span("served", 3, ctx(9, remote=True), start=21)], injections={9: elsewhere}
    )
    assert run(dropped_carriers, used) == []
    # A client span received from another process still pairs by kind.
    received = Facts(
        [client, server, span("served", 3, ctx(9, remote=True), start=21)],
        injections={9: elsewhere},
        origins={1: Origin(pid=1, thread_name=None, thread_id=None)},
    )
    assert kinds(run(dropped_carriers, received)) == [("dropped carrier", "GET /x")]


def test_an_injection_pairs_with_the_receiver_kind_of_its_span() -> None:
    client = span("GET", 1, kind=CLIENT, start=10, end=40)
    consumer = span("process", 2, kind=CONSUMER, start=20)
    assert run(dropped_carriers, Facts([client, consumer], injections={1: injection(1, 11)})) == []
    internal = span("job", 1, start=10)
    assert kinds(run(dropped_carriers, Facts([internal, consumer], injections={1: injection(1, 11)}))) == [
        ("dropped carrier", "process")
    ]
    # An injecting span not captured (still open): any receiver kind; named by its name.
    (finding,) = run(dropped_carriers, Facts([consumer], injections={7: injection(7, 11, name=None)}))
    assert "although span 0000000000000007 injected its context" in finding.message
    # A CLIENT call that returned before the server started did not carry it there.
    returned = span("GET", 1, kind=CLIENT, start=10, end=15)
    server = span("GET /x", 3, kind=SERVER, start=20)
    assert run(dropped_carriers, Facts([returned, server], injections={1: injection(1, 11)})) == []


def test_an_injection_and_a_receiver_root_need_the_full_analysis() -> None:
    consumer = span("process", 2, kind=CONSUMER, start=20)
    assert is_trivially_intact(Facts([consumer]))
    assert not is_trivially_intact(Facts([consumer], injections={7: injection(7, 11)}))


def test_a_receiver_that_lost_context_is_not_also_a_dropped_carrier() -> None:
    spans = [span("send", 1, kind=PRODUCER, start=10), span("process", 2, kind=CONSUMER, start=20)]
    assert run(dropped_carriers, Facts(spans, spawns={2: spawn()})) == []
    off = Facts(spans, spawns={2: spawn()}, rules=Rules(lost_context=False))
    assert kinds(run(dropped_carriers, off)) == [("dropped carrier", "process")]
    # The next receiver still pairs with the sender the first one did not take.
    later = span("process again", 3, kind=CONSUMER, start=30)
    assert kinds(run(dropped_carriers, Facts([*spans, later], spawns={2: spawn()}))) == [
        ("dropped carrier", "process again")
    ]


def test_receivers_that_are_not_roots_or_are_linked_never_pair() -> None:
    producer = span("send", 1, kind=PRODUCER, start=10)
    child = span("process", 2, 9, kind=CONSUMER, start=20)
    linked = span("batch", 3, kind=CONSUMER, start=20, links=[ctx(40)])
    assert run(dropped_carriers, Facts([producer, child, linked])) == []


def test_a_server_root_under_the_ambient_span_pairs() -> None:
    spans = [span("GET", 2, 1, kind=CLIENT, start=10, end=50), span("GET /x", 3, 1, kind=SERVER, start=20)]
    assert kinds(run(dropped_carriers, Facts(spans, ambient={1}))) == [("dropped carrier", "GET /x")]


# -- single trace ----------------------------------------------------------------------------


def test_single_trace_counts_traces_relative_to_the_test() -> None:
    two = [span("a", 1), span("b", 2, trace_id=2)]
    (finding,) = run(single_trace, Facts(two, rules=Rules(single_trace=True)))
    assert finding.span is None
    assert finding.text() == (
        "[single trace] expected exactly one trace (single_trace=True), found 2\n"
        "  fix: every span of this test must descend from one root; look for the root that started a new "
        "trace"
    )
    assert run(single_trace, Facts(two)) == []
    one = [span("a", 1), span("b", 2, 1)]
    assert run(single_trace, Facts(one, rules=Rules(single_trace=True))) == []
    under_ambient = [span("a", 2, 1), span("b", 3, 1)]  # one trace id, two roots under the harness span
    assert len(run(single_trace, Facts(under_ambient, ambient={1}, rules=Rules(single_trace=True)))) == 1
    assert run(single_trace, Facts([], rules=Rules(single_trace=True))) == []


# -- the whole analysis -------------------------------------------------------------------------


def test_analyze_orders_findings_by_span_start_and_puts_trace_counts_last() -> None:
    spans = [
        span("late orphan", 5, 99, start=50),
        span("send", 1, kind=PRODUCER, start=10),
        span("process", 2, kind=CONSUMER, start=20),
        span("job", 3, start=30, trace_id=2),
        span("stale", 4, ctx(0x42, remote=True), start=40),
    ]
    facts = Facts(spans, spawns={3: spawn()}, rules=Rules(single_trace=True))
    assert kinds(analyze(facts)) == [
        ("dropped carrier", "process"),
        ("lost context", "job"),
        ("stale carrier", "stale"),
        ("orphan", "late orphan"),
        ("single trace", None),
    ]
    assert (orphans, stale_carriers, lost_context, dropped_carriers, single_trace, parent_cycles) == RULES


def test_analyze_runs_the_rules_given() -> None:
    spans = [span("orphan", 2, 99), span("job", 3)]
    facts = Facts(spans, spawns={3: spawn()})
    assert kinds(analyze(facts, rules=[orphans])) == [("orphan", "orphan")]
    assert kinds(analyze(facts)) == [("orphan", "orphan"), ("lost context", "job")]


def test_the_fast_path_proves_the_common_case_clean() -> None:
    clean = Facts([span("root", 1), span("child", 2, 1), span("GET", 3, 1, kind=CLIENT)])
    assert is_trivially_intact(clean)
    assert analyze(clean) == []
    assert not is_trivially_intact(Facts([span("root", 1)], rules=Rules(single_trace=True)))
    assert not is_trivially_intact(Facts([span("x", 2, 9)]))
    assert not is_trivially_intact(Facts([span("x", 2, ctx(1, remote=True))], known={1, 2}))
    assert not is_trivially_intact(Facts([span("job", 2)], spawns={2: spawn()}))
    assert is_trivially_intact(Facts([span("job", 2, links=[ctx(1)])], spawns={2: spawn()}))
    pair = [span("send", 1, kind=PRODUCER), span("process", 2, kind=CONSUMER)]
    assert not is_trivially_intact(Facts(pair))
    assert is_trivially_intact(Facts(pair[:1]))
    assert is_trivially_intact(Facts(pair[1:]))
    # Conservative: a sender and a receiver root send it to the full analysis, which clears them.
    request = [span("s", 1, kind=SERVER), span("c", 2, 1, kind=CLIENT)]
    assert not is_trivially_intact(Facts(request))
    assert analyze(Facts(request)) == []
    assert is_trivially_intact(Facts([span("r", 2, 1), span("x", 3, 2)], ambient={1}))


@st.composite
def captures(draw: st.DrawFn) -> Facts:
    """Spans of any kind, parents among earlier spans / missing / remote, some spawn records and links."""
    count = draw(st.integers(min_value=1, max_value=25))
    made: list[ReadableSpan] = []
    spawns: dict[int, Spawn] = {}
    for index in range(1, count + 1):
        choice = draw(st.sampled_from(["root", "child", "child", "missing", "remote", "ambient"]))
        parent = None
        if choice == "child" and made:
            parent = made[draw(st.integers(0, len(made) - 1))].context
        elif choice == "missing":
            parent = ctx(1000 + index)
        elif choice == "remote":
            parent = ctx(draw(st.integers(1, count + 3)), remote=True)
        elif choice == "ambient":
            parent = ctx(999)
        start = draw(st.integers(0, 50))
        end = None if draw(st.booleans()) else start + draw(st.integers(0, 30))
        links = [ctx(draw(st.integers(1, count)))] if draw(st.integers(0, 5)) == 0 else []
        attributes = {DESTINATION: draw(st.sampled_from(["a", "b"]))} if draw(st.booleans()) else None
        made.append(
            span(
                f"s{index}",
                index,
                parent,
                kind=draw(st.sampled_from(list(SpanKind))),
                start=start,
                end=end,
                still_open=end is None,
                links=links,
                attributes=attributes,
            )
        )
        if draw(st.integers(0, 3)) == 0:
            spawns[index] = spawn()
    rules = Rules(lost_context=draw(st.booleans()), single_trace=draw(st.booleans()))
    return Facts(made, ambient={999}, spawns=spawns, rules=rules)


@settings(max_examples=400, deadline=None)
@given(captures())
def test_the_fast_path_and_the_full_analysis_agree(facts: Facts) -> None:
    full = analyze(facts, rules=list(RULES))  # a list: never the fast path
    if is_trivially_intact(facts):
        assert full == []
    assert analyze(facts) == full


@settings(max_examples=200, deadline=None)
@given(captures())
def test_children_of_captured_spans_give_no_findings(facts: Facts) -> None:
    """A capture whose every span descends from one captured root, with no records, is intact."""
    spans = [span("root", 1000, start=0)]
    for index, made in enumerate(facts.spans, start=1):
        parent = spans[index // 2].context  # always an earlier span
        spans.append(span(made.name, index, parent.span_id, kind=made.kind, start=index))
    assert analyze(Facts(spans, rules=Rules(single_trace=True))) == []


# -- unended, scope leaks, the report -------------------------------------------------------------


def test_unended_lists_the_open_spans_of_a_capture() -> None:
    state = CaptureState("t")
    still = span("still open", 1, still_open=True)
    state.record_start(1, still, intern_origin(Origin(1, "MainThread", 1)))  # type: ignore[arg-type]
    (finding,) = unended(state)
    assert finding.span is still
    assert finding.text() == (
        "[unended] 'still open' was started in this test and is still open after its teardown\n"
        "  fix: end the span (use `with tracer.start_as_current_span(...)`), or wait for the work that ends "
        "it (tracechain.wait_for) before the test returns"
    )
    state.record_end(1, span("still open", 1))
    assert unended(CaptureState("empty")) == []


def test_scope_leaks_are_reported_once_each() -> None:
    leak = ScopeEvent(
        "attached during the test and never detached", "MainThread", "attached at x.py:3", "job"
    )
    other = ScopeEvent("attached during the test and never detached", "MainThread", None, None)
    findings = scope_leaks([leak, leak, other])
    assert [f.text().splitlines()[0] for f in findings] == [
        "[scope leak] a context (current span 'job') was attached during the test and never detached, in "
        "thread 'MainThread' (attached at x.py:3)",
        "[scope leak] a context was attached during the test and never detached, in thread 'MainThread'",
    ]
    assert findings[0].hint == (
        "detach every token in the context that attached it: use `with` blocks (start_as_current_span, "
        "use_span) rather than attach/detach by hand, and do not keep a span current across `yield` in an "
        "async generator or a callback"
    )
    assert all(f.kind is FindingKind.SCOPE_LEAK and f.span is None for f in findings)


def test_report_of_spans_alone_renders_the_spans_at_fault_and_their_related_spans() -> None:
    producer = span("send", 1, kind=PRODUCER, start=10)
    findings = run(dropped_carriers, Facts([producer, span("process", 2, kind=CONSUMER, start=20)]))
    text = report(findings, None)
    lines = text.splitlines()
    assert lines[0] == "1 broken trace chain:"
    assert lines[1].startswith("[dropped carrier] 'process' is a consumer root span")
    assert "captured in this test:" in lines
    assert "├─ send [producer] · 0 µs" in lines
    assert any(
        line.startswith("└─ process [consumer]") and line.endswith("← dropped carrier") for line in lines
    )
    two = report([*findings, *findings], None)
    assert two.startswith("2 broken trace chains:\n")


def test_a_report_shows_at_most_the_message_limit_of_spans() -> None:
    many = [span("root", 1), *(span(f"child {i}", i, 1) for i in range(2, 302))]
    orphan = span("orphan", 400, 999)
    findings = run(orphans, Facts([*many, orphan]))
    assert report(findings, None).count(" · 0 µs") == 1  # only the span at fault, given alone
    # Past the limit, the spans at fault stay and the others (here the senders) are counted.
    pairs = [span(f"send {i}", 1000 + i, kind=PRODUCER, start=i, trace_id=1 + i) for i in range(150)]
    pairs += [
        span(f"process {i}", 2000 + i, kind=CONSUMER, start=500 + i, trace_id=1 + i) for i in range(150)
    ]
    alone = report(run(dropped_carriers, Facts(pairs)), None)
    assert alone.count("← dropped carrier") == 150
    assert "send 0 [producer]" not in alone
    assert "└─ ... 1 more spans" in alone
    state = CaptureState("t")
    origin = intern_origin(Origin(1, "MainThread", 1))
    for made in [*many, orphan]:
        state.record_received(made.context.span_id, made, origin)
    text = report(findings, state)
    assert text.count(" · 0 µs") < 210
    assert "more spans" in text
    assert "← orphan" in text


def test_report_of_a_capture_renders_all_its_spans() -> None:
    state = CaptureState("t")
    origin = intern_origin(Origin(1, "MainThread", 1))
    for made in (span("root", 1), span("orphan", 2, 77)):
        state.record_received(made.context.span_id, made, origin)
    findings = analyze(state)
    assert kinds(findings) == [("orphan", "orphan")]
    text = report(findings, state)
    lines = text.splitlines()
    assert lines[lines.index("captured in this test:") - 1] == ""
    assert lines[lines.index("captured in this test:") + 1 :] == [
        "trace 00000000000000000000000000000001 · 2 spans",
        "├─ root · 0 µs · pid 1, thread 'MainThread'",
        "└─ orphan · 0 µs · pid 1, thread 'MainThread' (parent 000000000000004d not captured)  ← orphan",
    ]


# -- assert_chain_intact -------------------------------------------------------------------------------


def test_assert_chain_intact_on_a_list_without_a_running_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_provider, "running_state", lambda: None)
    assert_chain_intact([span("root", 1), span("child", 2, 1)])
    with pytest.raises(TraceAssertionError, match=r"^1 broken trace chain:\n\[orphan\] 'child' has parent"):
        assert_chain_intact([span("child", 2, 1)])
    with pytest.raises(RuntimeError) as raised:
        assert_chain_intact()
    assert str(raised.value) == (
        "assert_chain_intact() without an argument checks the running test's capture, but none is running: "
        "request the `tracechain` fixture, or pass a capture or a list of spans"
    )


def test_a_list_gets_the_running_tests_rules_and_records(monkeypatch: pytest.MonkeyPatch) -> None:
    running = CaptureState("t", Rules(single_trace=True))
    monkeypatch.setattr(_provider, "running_state", lambda: running)
    with pytest.raises(TraceAssertionError, match=r"\[single trace\] expected exactly one trace"):
        assert_chain_intact([span("a", 1), span("b", 2, trace_id=2)])
    running = CaptureState("t", Rules(lost_context=True))
    running.spawns[2] = spawn()
    with pytest.raises(TraceAssertionError, match=r"\[lost context\] 'job' started a new trace"):
        assert_chain_intact([span("request", 1), span("job", 2)])
    running.rules = Rules(lost_context=False)
    assert_chain_intact([span("request", 1), span("job", 2)])
    running.ambient.add(1)
    assert_chain_intact([span("root under the harness", 2, 1)])


def test_assert_chain_intact_on_a_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_provider, "running_state", lambda: None)
    state = CaptureState("t")
    capture = TraceCapture(state, _ispytest=True)
    origin = intern_origin(Origin(1, "MainThread", 1))
    state.record_received(1, span("root", 1), origin)
    assert_chain_intact(capture)
    state.scope_events.append(ScopeEvent("attached during the test and never detached", "MainThread", None))
    with pytest.raises(TraceAssertionError, match=r"\[scope leak\] a context was attached") as raised:
        assert_chain_intact(capture)
    assert "└─ root · 0 µs · pid 1, thread 'MainThread'" in str(raised.value)  # the capture's own spans
    monkeypatch.setattr(_provider, "running_state", lambda: state)
    with pytest.raises(TraceAssertionError, match=r"\[scope leak\]"):
        assert_chain_intact()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("spans", "must be a TraceCapture or an iterable of spans, not str"),
        (b"x", "must be a TraceCapture or an iterable of spans, not bytes"),
        (3, "must be a TraceCapture or an iterable of spans, not int"),
        ([span("a", 1), "b"], r"holds str at index 1, not a span \(ReadableSpan\)$"),
    ],
)
def test_assert_chain_intact_rejects_other_arguments(
    monkeypatch: pytest.MonkeyPatch, value: object, message: str
) -> None:
    monkeypatch.setattr(_provider, "running_state", lambda: None)
    with pytest.raises(TypeError, match=r"^assert_chain_intact\(\) argument 'capture' " + message):
        assert_chain_intact(value)  # type: ignore[arg-type]


def test_span_facts_read_the_recording_capture() -> None:
    recorded = CaptureState("t")
    origin = Origin(1, "worker", 2)
    recorded.origins[5] = intern_origin(origin)
    recorded.spawns[5] = spawn()
    facts = SpanFacts([span("a", 5)], recorded=recorded)
    assert facts.known_ids == {5}
    assert facts.origin_of(5) == origin
    assert facts.spawn_of(5) == spawn()
    assert facts.origin_of(6) is None
    alone = SpanFacts([span("a", 5)])
    assert (alone.origin_of(5), alone.spawn_of(5), alone.rules, alone.ambient) == (
        None,
        None,
        Rules(),
        frozenset(),
    )


def test_finding_kinds_read_as_their_words() -> None:
    assert [str(kind) for kind in FindingKind] == [
        "orphan",
        "lost context",
        "dropped carrier",
        "stale carrier",
        "unended",
        "scope leak",
        "single trace",
        "parent cycle",
    ]
    assert f"{FindingKind.LOST_CONTEXT}" == "lost context"
    assert Finding(FindingKind.ORPHAN, None, "m").text() == "[orphan] m"


# -- report caps ------------------------------------------------------------------------------


def test_a_report_spells_out_the_first_findings_of_each_kind_and_counts_the_rest() -> None:
    orphans_found = [
        Finding(FindingKind.ORPHAN, span(f"child {n}", 100 + n, 0x99), f"orphan {n}") for n in range(25)
    ]
    lost = [Finding(FindingKind.LOST_CONTEXT, span("job", 7), "lost")]
    text = report(orphans_found + lost, None)
    lines = text.splitlines()
    assert lines[0] == "26 broken trace chains:"
    assert lines[1:11] == [f"[orphan] orphan {n}" for n in range(10)]
    assert lines[11] == "[lost context] lost"
    assert lines[12] == "[orphan] … and 15 more (all 25 are in --tracechain-export and --tracechain-html)"
    assert "orphan 10" not in text


def test_the_summary_line_names_the_first_findings() -> None:
    found = [Finding(FindingKind.ORPHAN, span(f"s{n}", n + 1), "x") for n in range(12)]
    assert _chain.summary(found[:2]) == "orphan: 's0'; orphan: 's1'"
    assert _chain.summary(found).endswith("orphan: 's9'; and 2 more")
    assert _chain.summary([Finding(FindingKind.SINGLE_TRACE, None, "x")]) == "single trace"


# -- parent cycles ------------------------------------------------------------------------------


def test_a_parent_cycle_is_a_finding_of_its_own() -> None:
    # Received spans naming each other as parents: a → b → c → a, next to a sound trace.
    a, b, c = span("a", 1, 3, start=10), span("b", 2, 1, start=20), span("c", 3, 2, start=30)
    sound = span("request", 4, trace_id=2, start=5)
    (finding,) = run(parent_cycles, Facts([a, b, c, sound]))
    assert kinds([finding]) == [("parent cycle", "a")]
    assert finding.message == (
        "'a' is on a parent cycle ('a' → 'c' → 'b' → 'a'): the spans name each other as parents, so no root "
        "starts their trace"
    )
    assert run(parent_cycles, Facts([sound, span("child", 5, 4, trace_id=2)])) == []
    # The fast path never hides one: spans from elsewhere get the full analysis.
    assert not is_trivially_intact(Facts([a, b, c], received=True))
    assert kinds(analyze(SpanFacts([a, b, c]))) == [("parent cycle", "a")]


def test_a_long_parent_cycle_is_shown_cut() -> None:
    ring = [span(f"s{n}", n, (n % 12) + 1, start=n) for n in range(1, 13)]
    (finding,) = run(parent_cycles, Facts(ring))
    assert "('s1' → 's2' → 's3' → 's4' → … → 's11' → 's12' → 's1')" in finding.message
