"""Router.receive: which capture a span from another process joins, with a trace's owner looked up once per call."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, Tracer, set_span_in_context

from pytest_tracechain._capture import TraceCapture
from pytest_tracechain._origins import Origin
from pytest_tracechain._router import Router
from pytest_tracechain._state import CaptureState

from .spans import span

CHILD = Origin(4242, None, None, None)


def _trace(trace_id: int, first_id: int) -> list:
    """A root, 2 children, 2 grandchildren each: in end order, children before parents (as exported)."""
    root = first_id
    spans = []
    for child in (root + 1, root + 4):
        spans += [
            span("leaf", child + 1, child, trace_id=trace_id),
            span("leaf", child + 2, child, trace_id=trace_id),
        ]
        spans.append(span("child", child, root, trace_id=trace_id))
    spans.append(span("root", root, trace_id=trace_id))
    return spans


def _open(router: Router, name: str) -> CaptureState:
    capture = CaptureState(name)
    router.open(capture)
    return capture


@pytest.fixture
def receiving(router: Router) -> Router:
    router.receiving = True  # as otlp_receiver sets it before the first test opens
    return router


def _count_lookups(router: Router, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    looked_up: list[int] = []
    lookup = router._trace_owner

    def counted(trace_id: int) -> CaptureState | None:
        looked_up.append(trace_id)
        return lookup(trace_id)

    monkeypatch.setattr(router, "_trace_owner", counted)
    return looked_up


def test_children_before_their_parents_all_join_the_running_test_with_one_lookup_per_trace(
    receiving: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = _open(receiving, "t")
    looked_up = _count_lookups(receiving, monkeypatch)
    spans = _trace(0xA, 100) + _trace(0xB, 200)
    assert receiving.receive([(one, CHILD) for one in spans]) == 0
    assert capture.finished == spans
    assert sorted(looked_up) == [0xA, 0xB]
    assert {capture.table.at(index) for index in capture.origins.values()} == {CHILD}


def test_a_span_sent_twice_is_taken_once(receiving: Router) -> None:
    capture = _open(receiving, "t")
    spans = _trace(0xA, 100)
    receiving.receive([(one, CHILD) for one in spans])
    receiving.receive([(one, CHILD) for one in spans[:3]])  # an exporter's retry
    assert capture.finished == spans


def test_between_tests_spans_are_dropped_and_counted(receiving: Router) -> None:
    capture = _open(receiving, "t")
    receiving.close(capture)
    assert receiving.receive([(one, CHILD) for one in _trace(0xA, 100)]) == 7
    assert receiving.dropped == 7
    assert capture.finished == []


def test_a_late_trace_of_a_finished_test_joins_it_not_the_running_one(receiving: Router) -> None:
    first = _open(receiving, "first")
    spans = _trace(0xA, 100)
    receiving.receive([(one, CHILD) for one in spans[:3]])  # a child's first export
    receiving.close(first)
    second = _open(receiving, "second")
    receiving.receive([(one, CHILD) for one in spans[3:] + _trace(0xB, 200)])
    assert first.finished == spans
    assert [one.context.trace_id for one in second.finished] == [0xB] * 7


def test_a_parent_held_by_one_test_wins_over_the_trace_and_a_trace_goes_to_its_latest_holder(
    receiving: Router, tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _open(receiving, "first")
    receiving.receive([(span("root", 100, trace_id=0xA), CHILD)])
    receiving.close(first)
    second = _open(receiving, "second")
    remote = NonRecordingSpan(SpanContext(0xA, 0x999, True, TraceFlags(TraceFlags.SAMPLED)))
    consumer = tracer.start_span("consumer", context=set_span_in_context(remote))
    consumer.end()
    looked_up = _count_lookups(receiving, monkeypatch)
    late_child = span("child", 101, 100, trace_id=0xA)  # its parent is the first test's
    job = span(
        "job", 601, consumer.get_span_context().span_id, trace_id=0xA
    )  # the second's: now its trace too
    orphan = span("orphan", 401, 400, trace_id=0xA)  # its parent held nowhere: the trace's latest holder
    leaf = span("leaf", 402, 401, trace_id=0xA)
    receiving.receive([(late_child, CHILD), (job, CHILD), (orphan, CHILD), (leaf, CHILD)])
    assert first.finished == [first.finished[0], late_child]
    assert [one.name for one in second.finished] == ["consumer", "job", "orphan", "leaf"]
    assert looked_up == [0xA]


def test_a_trace_whose_span_is_still_open_in_a_finished_test_is_found(
    receiving: Router, tracer: Tracer
) -> None:
    first = _open(receiving, "first")
    receiving.receive([(span("warm-up", 900, trace_id=0xF), CHILD)])  # the index is read once before
    handler = tracer.start_span("handler")  # stays open past the test: the child's spans are its trace's
    receiving.close(first)
    second = _open(receiving, "second")
    trace_id = handler.get_span_context().trace_id
    received = span("job", 501, 500, trace_id=trace_id)
    receiving.receive([(received, CHILD)])
    handler.end()
    assert received in first.finished
    assert received not in second.finished


def test_a_trace_of_a_local_span_that_ended_between_two_receives_is_found(
    receiving: Router, tracer: Tracer
) -> None:
    first = _open(receiving, "first")
    receiving.receive([(span("z", 700, trace_id=0x7), CHILD)])
    receiving.receive([(span("w", 800, trace_id=0x8), CHILD)])  # the indexes are read up to here
    tracer.start_span("local").end()  # then a span of the test itself ends
    trace_id = first.finished[-1].context.trace_id
    receiving.close(first)
    second = _open(receiving, "second")
    received = span("job", 901, 900, trace_id=trace_id)
    receiving.receive([(received, CHILD)])
    assert first.finished[-1] is received
    assert second.finished == []


def test_a_trace_of_a_finished_test_that_let_go_of_its_spans_is_still_found(
    receiving: Router, tracer: Tracer
) -> None:
    first = _open(receiving, "first")
    view = TraceCapture(first, _ispytest=True)  # as the plugin makes one per test
    receiving.receive([(span("w", 800, trace_id=0x8), CHILD)])  # the index is read up to here
    tracer.start_span("local").end()  # a span of the test's own, indexed by no receive yet
    trace_id = first.finished[-1].context.trace_id
    receiving.close(first)
    del view
    second = _open(receiving, "second")  # nothing reads the first test's spans: let go of here
    assert first.finished == []
    received = span("job", 901, 900, trace_id=trace_id)
    receiving.receive([(received, CHILD)])
    assert first.finished == [received]
    assert second.finished == []


# -- answered first, captured after: reads wait (Router.answered, captured, settle) -----------------


def _rows(spans: list) -> list:
    """The spans as ``Router.receive_answered`` takes them, from the receiver's decoding."""
    return [
        (one, CHILD, one.context.trace_id, one.context.span_id, one.parent.span_id if one.parent else 0)
        for one in spans
    ]


def _settling(router: Router) -> threading.Event:
    """``router.settle()`` on a thread of its own; the event is set once it returns."""
    returned = threading.Event()

    def settle() -> None:
        router.settle(timeout=30)
        returned.set()

    threading.Thread(target=settle, daemon=True).start()
    return returned


def test_a_read_waits_for_the_requests_answered_before_it_until_they_are_captured(receiving: Router) -> None:
    number, _ = receiving.answered()
    returned = _settling(receiving)
    assert not returned.wait(0.2)  # still waiting: the request is answered, not captured
    receiving.captured(number)
    assert returned.wait(10)
    receiving.settle(timeout=0)  # nothing left: at once


def test_a_read_does_not_wait_for_requests_answered_after_it(receiving: Router) -> None:
    first, _ = receiving.answered()
    returned = _settling(receiving)
    assert not returned.wait(0.2)
    later, _ = receiving.answered()  # a process that keeps exporting
    receiving.captured(first)
    assert returned.wait(10)  # although ``later`` is not captured
    receiving.captured(later)


def test_a_read_gives_up_after_its_timeout_and_says_so(
    receiving: Router, caplog: pytest.LogCaptureFixture
) -> None:
    number, _ = receiving.answered()
    receiving.settle(timeout=0.01)
    assert caplog.messages == [
        "pytest-tracechain: requests the otlp_receiver answered were not captured after 0.01 s; "
        "the capture is read without them"
    ]
    receiving.captured(number)


def test_spans_no_test_owns_go_to_the_test_running_when_their_request_was_answered(
    receiving: Router,
) -> None:
    first = _open(receiving, "first")
    _, running = receiving.answered()
    assert running is first
    receiving.close(first)  # the test ended before the request was captured
    second = _open(receiving, "second")
    spans = _trace(0xA, 100)
    assert receiving.receive_answered(_rows(spans), (), running) == 0
    assert first.finished == spans
    assert second.finished == []
    receiving.close(second)
    assert (
        receiving.receive_answered(_rows(_trace(0xB, 200)), (), None) == 7
    )  # answered between tests: dropped


def test_a_capture_read_waits_for_what_was_answered(
    receiving: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_tracechain import _provider
    from pytest_tracechain._capture import view_of

    monkeypatch.setattr(_provider, "_router", receiving)
    state = _open(receiving, "t")
    capture = view_of(state)
    number, running = receiving.answered()
    read: list[list[str]] = []
    returned = threading.Event()

    def read_names() -> None:
        read.append([one.name for one in capture.spans])
        returned.set()

    threading.Thread(target=read_names, daemon=True).start()
    assert not returned.wait(0.2)
    spans = _trace(0xA, 100)
    receiving.receive_answered(_rows(spans), (), running)
    receiving.captured(number)
    assert returned.wait(10)
    assert read == [[one.name for one in spans]]
