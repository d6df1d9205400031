"""The capture state and the router that records into it, with a real provider in this process."""

from __future__ import annotations

import contextvars
import dataclasses
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanKind, Tracer

from pytest_tracechain import _router, _spawn
from pytest_tracechain._capture import TraceCapture, state_of, view_of
from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._leaks import Leak
from pytest_tracechain._origins import Origin, OriginsView, intern_origin, origin_at
from pytest_tracechain._router import Router
from pytest_tracechain._settings import CheckMode, Rules
from pytest_tracechain._spawn import Boundary, Spawn
from pytest_tracechain._state import CaptureState
from tests.unit.spans import span


@pytest.fixture
def state(router: Router) -> Iterator[CaptureState]:
    made = CaptureState("tests/unit/test_state.py::t", Rules(single_trace=True))
    router.open(made)
    yield made
    router.close(made)


def test_the_router_records_starts_ends_and_origins(tracer: Tracer, state: CaptureState) -> None:
    with tracer.start_as_current_span("outer") as outer:
        with tracer.start_as_current_span("inner"):
            assert [s.name for s in state.open_spans()] == ["outer", "inner"]
        pending = tracer.start_span("pending")
    assert [s.name for s in state.finished] == ["inner", "outer"]
    assert [s.name for s in state.open_spans()] == ["pending"]
    assert [s.name for s in state.all_spans()] == ["inner", "outer", "pending"]
    origin = state.origin_of(outer.get_span_context().span_id)
    assert origin == Origin(os.getpid(), "MainThread", threading.get_ident(), None)
    assert state.holds(outer.get_span_context().span_id)
    assert not state.holds(12345)
    pending.end()
    assert state.open_spans() == []
    assert state.rules == Rules(single_trace=True)


def test_spans_of_a_closed_test_stay_with_it(router: Router, tracer: Tracer) -> None:
    first = CaptureState("first")
    router.open(first)
    job = tracer.start_span("job")
    router.close(first)
    assert router.current is None
    second = CaptureState("second")
    router.open(second)
    with tracer.start_as_current_span("next test's span"):
        pass
    job.end()
    router.close(second)
    assert [s.name for s in first.finished] == ["job"]
    assert [s.name for s in second.finished] == ["next test's span"]
    (leak,) = router.drain_leaks()
    assert (leak.test, leak.span_name) == ("first", "job")
    assert leak.describe().startswith("span 'job' of first ended ")
    assert router.drain_leaks() == []


def test_a_finished_test_lets_go_of_its_spans_at_the_next_start_once_nothing_reads_them(
    router: Router, tracer: Tracer
) -> None:
    first = CaptureState("first")
    view = TraceCapture(first, _ispytest=True)  # as the plugin makes one per test
    router.open(first)
    with tracer.start_as_current_span("done") as sent:
        router.record_injection(_spawn.Injection(sent.get_span_context(), "done", "app.py:1", 1))
    outliving = tracer.start_span("outlives the test")
    router.close(first)
    done = weakref.ref(first.finished[0])
    done_context = first.finished[0].get_span_context()
    second = CaptureState("second")
    router.open(second)  # the user still holds the first test's TraceCapture: it keeps its spans
    assert [s.name for s in view.spans] == ["done"]
    router.close(second)
    del view
    third = CaptureState("third")
    router.open(third)
    assert (first.finished, first.unproven, first.injections) == ([], [], {})
    assert done() is None  # freed, not only forgotten
    # Still searched for the parents of late spans: its span ids and open spans stay.
    tracer.start_span(
        "late child", context=trace.set_span_in_context(trace.NonRecordingSpan(done_context))
    ).end()
    outliving.end()
    router.close(third)
    assert [s.name for s in first.finished] == ["late child", "outlives the test"]
    assert third.all_spans() == []
    (leak,) = router.drain_leaks()
    assert (leak.test, leak.count) == ("first", 2)


def test_a_finished_test_made_without_a_view_keeps_its_spans(router: Router, tracer: Tracer) -> None:
    first = CaptureState("first")  # by hand, never viewed: whoever made it reads it
    router.open(first)
    tracer.start_span("done").end()
    router.close(first)
    router.open(CaptureState("second"))
    assert [s.name for s in first.finished] == ["done"]


def test_no_span_is_recorded_between_tests(router: Router, tracer: Tracer) -> None:
    with tracer.start_as_current_span("between"):
        pass
    state = CaptureState("t")
    router.open(state)
    assert state.all_spans() == []


def test_the_ambient_span_is_the_one_current_at_a_phase_start(tracer: Tracer, state: CaptureState) -> None:
    fixture_span = tracer.start_span("fixture")
    state.phase_ended()  # setup ended: the fixture's span is the test's own
    state.add_ambient(fixture_span.get_span_context().span_id)
    assert state.ambient == set()
    assert [s.name for s in state.open_spans()] == ["fixture"]
    harness = tracer.start_span("harness per-test span")  # started between phases
    state.add_ambient(harness.get_span_context().span_id)
    assert state.ambient == {harness.get_span_context().span_id}
    assert [s.name for s in state.open_spans()] == ["fixture"]
    state.add_ambient(777)  # from before the capture
    assert 777 in state.ambient
    fixture_span.end()
    harness.end()


def test_find_one_and_by_name(tracer: Tracer, state: CaptureState) -> None:
    with tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER, attributes={"http.route": "/x"}):
        tracer.start_span("db", kind=SpanKind.CLIENT).end()
    still_open = tracer.start_span("job")
    assert [s.name for s in state.find(kind="client")] == ["db"]
    assert [s.name for s in state.find(re.compile("^GET"))] == ["GET /x"]
    assert [s.name for s in state.find(attributes={"http.route": "/x"})] == ["GET /x"]
    assert state.one("db").name == "db"
    assert state.by_name("job") is still_open  # a single open span of that name
    with pytest.raises(TraceAssertionError, match=r"^expected exactly one span named 'nope', found none\n"):
        state.one("nope")
    tracer.start_span("db").end()
    with pytest.raises(TraceAssertionError, match=r"^expected exactly one span named 'db', found 2\n"):
        state.one("db")
    still_open.end()


def test_origin_of_a_span_name_and_errors(tracer: Tracer, state: CaptureState) -> None:
    with tracer.start_as_current_span("work") as work:
        pass
    assert state.origin("work").thread_name == "MainThread"
    assert state.origin(work.get_span_context()).thread_name == "MainThread"
    with pytest.raises(
        TypeError, match=r"^span must be a span \(ReadableSpan\), a SpanContext or a span name, not int$"
    ):
        state.origin(3)  # type: ignore[arg-type]
    stranger = span("stranger", 99)
    with pytest.raises(TraceAssertionError, match=r"^'stranger' \(span 0000000000000063\) was not captured"):
        state.origin(stranger)


def test_traces_and_graph(tracer: Tracer, state: CaptureState) -> None:
    with tracer.start_as_current_span("a"), tracer.start_as_current_span("a child"):
        pass
    with tracer.start_as_current_span("b"):
        pass
    traces = state.traces()
    assert [[s.name for s in t.spans] for t in traces] == [["a", "a child"], ["b"]]
    assert [[s.name for s in t.roots] for t in traces] == [["a"], ["b"]]
    assert len(state.graph()) == 3
    assert state.lookup(traces[1].roots[0].context.span_id) is traces[1].roots[0]
    assert state.lookup(1) is None
    state.clear()
    assert state.finished == []
    assert state.known_ids  # a cleared span is still a known parent


def test_wait_until_wakes_on_a_span_end_from_another_thread(tracer: Tracer, state: CaptureState) -> None:
    waiting = threading.Event()
    checks: list[int] = []

    def done(finished: list[object]) -> bool:
        checks.append(len(finished))
        waiting.set()  # the waiter holds the condition: the span cannot end before it waits
        return len(finished) >= 1

    def end_a_span() -> None:
        waiting.wait(5)
        tracer.start_span("late").end()

    worker = threading.Thread(target=end_a_span)
    worker.start()
    started = time.monotonic()
    assert state.wait_until(done, deadline=started + 30)
    assert time.monotonic() - started < 15  # woken by the end, not by the deadline
    worker.join()
    assert checks[0] == 0  # it waited: the span ended after the first check
    assert checks[-1] == 1
    assert len(checks) == 2  # woken once, by the span's end; no polling


def test_wait_for_times_out_with_what_was_captured(tracer: Tracer, state: CaptureState) -> None:
    tracer.start_span("other").end()
    still = tracer.start_span("job")
    with pytest.raises(TraceAssertionError) as raised:
        state.wait_for("job", count=1, timeout=0.01, kind=None, trace_id=None, attributes=None)
    assert str(raised.value).startswith(
        "timed out after 0.01 s waiting for 1 finished span named 'job'; 0 finished, 1 matching still open\n"
    )
    with pytest.raises(ValueError, match=r"^count must be at least 1, not 0$"):
        state.wait_for("job", count=0, timeout=1, kind=None, trace_id=None, attributes=None)
    with pytest.raises(TypeError, match=r"^count must be an int, not bool$"):
        state.wait_for("job", count=True, timeout=1, kind=None, trace_id=None, attributes=None)
    with pytest.raises(TypeError, match=r"^timeout must be a number of seconds, not str$"):
        state.wait_for("job", count=1, timeout="1", kind=None, trace_id=None, attributes=None)  # type: ignore[arg-type]
    still.end()
    assert [
        s.name for s in state.wait_for("job", count=1, timeout=1, kind=None, trace_id=None, attributes=None)
    ]


def test_the_view_is_made_only_by_the_plugin(state: CaptureState) -> None:
    with pytest.raises(TypeError, match="request the `tracechain` fixture instead of constructing one"):
        TraceCapture(state)
    with pytest.raises(TypeError, match="request the `tracechain` fixture"):
        TraceCapture("name", _ispytest=True)  # type: ignore[arg-type]
    view = view_of(state)
    assert view_of(state) is view
    assert state_of(view) is state
    assert view.name == "tests/unit/test_state.py::t"
    assert repr(view) == "<TraceCapture 'tests/unit/test_state.py::t': 0 finished, 0 open>"


def test_origins_are_interned_once() -> None:
    origin = Origin(1, "t", 2, "task")
    index = intern_origin(origin)
    assert intern_origin(Origin(1, "t", 2, "task")) == index
    assert origin_at(index) == origin
    view = OriginsView({5: index})
    assert dict(view) == {5: origin}
    assert 5 in view
    assert 6 not in view
    assert len(view) == 1
    assert origin.describe(this_pid=1) == "thread 't', task 'task'"
    assert origin.describe(this_pid=9) == "pid 1, thread 't', task 'task'"
    assert Origin(1, None, None).describe(this_pid=1) == "pid 1"


def test_check_modes() -> None:
    assert CheckMode.names() == ("off", "warn", "fail")
    assert CheckMode("fail") is CheckMode.FAIL
    assert f"{CheckMode.WARN}" == "warn"


def test_a_finished_tests_state_is_freed_without_the_garbage_collector() -> None:
    """State and view form no reference cycle: a test's spans go when its run does."""
    import gc
    import weakref

    state = CaptureState("t")
    view = TraceCapture(state, _ispytest=True)
    assert view_of(state) is view
    gone = weakref.ref(state)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del state, view
        assert gone() is None
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize("timeout", [math.inf, -math.inf, math.nan, 1e10, 1e300, 10**400, -1])
def test_wait_for_rejects_timeouts_it_cannot_wait(state: CaptureState, timeout: float) -> None:
    with pytest.raises(ValueError, match=r"^timeout must be a number of seconds from 0 to 9223372036, not "):
        state.wait_for("x", count=1, timeout=timeout, kind=None, trace_id=None, attributes=None)


def test_wait_for_takes_the_longest_timeout_the_platform_waits(tracer: Tracer, state: CaptureState) -> None:
    tracer.start_span("x").end()
    assert [
        s.name
        for s in state.wait_for(
            "x", count=1, timeout=threading.TIMEOUT_MAX, kind=None, trace_id=None, attributes=None
        )
    ] == ["x"]
    assert [
        s.name for s in state.wait_for("x", count=1, timeout=0, kind=None, trace_id=None, attributes=None)
    ] == ["x"]


# -- isolation: spans that start after their test, routed to it --------------------------------


def test_a_child_started_after_its_test_under_an_ended_parent_stays_with_that_test(
    router: Router, tracer: Tracer
) -> None:
    first = CaptureState("first")
    router.open(first)
    with tracer.start_as_current_span("request"):
        carried = contextvars.copy_context()  # a thread started with copy_context().run runs on
    router.close(first)
    second = CaptureState("second")
    router.open(second)
    carried.run(lambda: tracer.start_span("late job").end())
    router.close(second)
    assert [s.name for s in first.finished] == ["request", "late job"]
    assert second.finished == []  # never an orphan of the next test
    (leak,) = router.drain_leaks()
    assert (leak.test, leak.span_name, leak.count) == ("first", "late job", 1)


def test_a_root_of_work_a_finished_test_handed_over_goes_to_that_test(router: Router, tracer: Tracer) -> None:
    first = CaptureState("first")
    router.open(first)
    with tracer.start_as_current_span("request") as request:
        handed = Spawn(Boundary.THREAD, request.get_span_context(), "request", "thread 'MainThread'")
        handed = dataclasses.replace(handed, owner=weakref.ref(first))
    router.close(first)
    second = CaptureState("second")
    router.open(second)
    done = threading.Event()

    def worker() -> None:
        tracer.start_span("job").end()  # a root, in the thread the first test started
        done.set()

    thread = threading.Thread(target=worker)
    _spawn.hand_to_thread(thread, handed)
    thread.start()
    assert done.wait(10)
    router.close(second)
    assert [s.name for s in first.finished] == ["request", "job"]
    assert second.finished == []  # not blamed on the next test
    assert second.spawns == {}


def test_a_finished_test_keeps_a_bounded_number_of_late_spans(
    router: Router, tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_router, "LATE_SPANS_KEPT", 5)
    first = CaptureState("first")
    router.open(first)
    loop = tracer.start_span("poll loop")  # left open: a leaking thread's span
    router.close(first)
    second = CaptureState("second")
    router.open(second)
    parent = trace.set_span_in_context(loop)
    for _ in range(20):
        tracer.start_span("message", context=parent).end()
    router.close(second)
    assert len(first.finished) == 5  # the rest counted, never kept
    assert second.finished == []
    (leak,) = router.drain_leaks()
    assert (leak.test, leak.span_name, leak.count) == ("first", "message", 20)
    assert leak.describe().startswith("20 spans of first ended after its teardown, the last ")
    assert leak.describe().endswith(" s later (the first: 'message'; work that outlived the test)")
    assert router.still_open() == {"first": 1}
    loop.end()
    assert router.still_open() == {}


def test_leak_records_cross_processes_as_plain_data_and_add_up() -> None:
    one = Leak("t", "job", 10, 3)
    copy = Leak.from_property(one.as_property())
    assert copy == one
    assert Leak.from_property("not a leak") is None
    assert Leak.from_property({"test": "t"}) is None
    one.merge(Leak("t", "other", 5, 2))
    assert (one.count, one.after_ns, one.span_name) == (5, 10, "job")


class _EverySpan:
    """A capture's facts, with every finished span to prove (the check before the router's proof)."""

    def __init__(self, state: CaptureState) -> None:
        self.state = state

    def __getattr__(self, name: str) -> object:
        return getattr(self.state, name)

    def spans_to_prove(self) -> list[object]:
        return self.state.spans


def _proof(state: CaptureState) -> tuple[bool, bool]:
    """The end-of-test shortcut over the capture, and the same check reading every finished span."""
    from pytest_tracechain._chain import is_trivially_intact

    return is_trivially_intact(state), is_trivially_intact(_EverySpan(state))  # type: ignore[arg-type]


def test_the_end_check_reads_only_the_spans_not_started_under_a_local_span_of_the_test(
    tracer: Tracer, router: Router
) -> None:
    state = CaptureState("t")
    router.open(state)
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        tracer.start_span("grandchild").end()
    assert [s.name for s in state.spans_to_prove()] == ["root"]  # the children were checked as they started
    # kept as the finished span: the SDK's span it was is let go when it ends
    assert not any(isinstance(s, SdkSpan) for s in state.spans_to_prove())
    assert _proof(state) == (True, True)
    router.close(state)


def test_a_child_of_a_remote_parent_the_test_holds_is_read_at_the_end(tracer: Tracer, router: Router) -> None:
    state = CaptureState("t")
    router.open(state)
    with tracer.start_as_current_span("producer", kind=SpanKind.PRODUCER) as producer:
        pass
    known = producer.get_span_context()
    remote = trace.SpanContext(known.trace_id, known.span_id, True, known.trace_flags)
    with tracer.start_as_current_span(
        "consumer", context=trace.set_span_in_context(trace.NonRecordingSpan(remote))
    ):
        pass
    assert [s.name for s in state.spans_to_prove()] == ["producer", "consumer"]
    assert _proof(state) == (False, False)  # a remote parent: the full analysis decides
    router.close(state)


def test_children_of_a_span_that_became_ambient_are_read_as_roots(tracer: Tracer, router: Router) -> None:
    state = CaptureState("t")
    router.open(state)
    state.phase_ended()
    with tracer.start_as_current_span("harness per-test span") as harness:  # started between phases
        state.add_ambient(harness.get_span_context().span_id)
        with tracer.start_as_current_span("server", kind=SpanKind.SERVER):
            pass
        with tracer.start_as_current_span("client", kind=SpanKind.CLIENT):
            pass
    assert state.reshaped
    assert [s.name for s in state.spans_to_prove()] == ["server", "client"]  # every finished span
    # the server span is a root of the test now, and a client span could have called it
    assert _proof(state) == (False, False)
    router.close(state)


def test_a_span_recorded_without_the_routers_proof_is_read() -> None:
    state = CaptureState("t")
    root = span("job", 2)
    state.record_start(2, root, intern_origin(Origin(1, "MainThread", 1)))  # type: ignore[arg-type]
    state.record_end(2, root)
    state.spawns[2] = Spawn(Boundary.THREAD, trace.SpanContext(1, 1, False), "request", "thread 'MainThread'")
    assert state.spans_to_prove() == [root]
    assert _proof(state) == (False, False)


def test_a_kept_span_lets_go_of_its_empty_event_and_link_lists(tracer: Tracer, state: CaptureState) -> None:
    with tracer.start_as_current_span("plain") as plain:
        pass
    (kept,) = state.finished
    # ReadableSpan's own default: nothing read through its API differs
    assert (kept._events, kept._links) == ((), ())
    assert (kept.events, kept.links, kept.dropped_events, kept.dropped_links) == ((), (), 0, 0)
    assert isinstance(plain, SdkSpan)
    # the live span keeps its own
    assert (type(plain._events), type(plain._links)) == (BoundedList, BoundedList)
    assert ('"events": []' in kept.to_json(), '"links": []' in kept.to_json()) == (True, True)


def test_lists_that_dropped_entries_are_kept_with_their_counts(router: Router, state: CaptureState) -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_events=0, max_links=0))  # dropped, and counted
    provider.add_span_processor(router)
    tracer = provider.get_tracer("unit")
    with tracer.start_as_current_span("first") as first:
        first.add_event("dropped")
    with tracer.start_span("second", links=[Link(first.get_span_context())]):
        pass
    provider.shutdown()
    one, two = state.finished
    assert (one.events, one.dropped_events, type(one._events)) == ((), 1, BoundedList)
    assert (two.links, two.dropped_links, type(two._links)) == ((), 1, BoundedList)


def test_events_and_links_are_kept(tracer: Tracer, state: CaptureState) -> None:
    with tracer.start_as_current_span("first") as first:
        first.add_event("retry", {"attempt": 2})
    with tracer.start_as_current_span("second", links=[Link(first.get_span_context())]):
        pass
    one, two = state.finished
    assert [(event.name, dict(event.attributes or {})) for event in one.events] == [("retry", {"attempt": 2})]
    assert [link.context for link in two.links] == [first.get_span_context()]


def test_only_the_sdks_own_snapshot_has_its_lists_shed() -> None:
    class Snapshot(ReadableSpan):
        pass

    lists: tuple[BoundedList[object], BoundedList[object]] = (BoundedList(0), BoundedList(0))
    own = Snapshot("own", events=lists[0], links=lists[1])
    _router._shed_empty_lists(own)
    assert (own._events, own._links) == lists


def test_an_sdk_whose_lists_look_different_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unknown(BoundedList):  # type: ignore[type-arg]
        def __init__(self, maxlen: int | None) -> None:
            self.dropped = 0
            self._entries: list[object] = []

    monkeypatch.setattr(_router, "BoundedList", Unknown)
    assert _router._bounded_list_shape() is None
    monkeypatch.setattr(_router, "_BOUNDED_LIST", None)
    empty = ReadableSpan("plain", events=BoundedList(0), links=BoundedList(0))
    _router._shed_empty_lists(empty)
    assert (type(empty._events), type(empty._links)) == (BoundedList, BoundedList)
