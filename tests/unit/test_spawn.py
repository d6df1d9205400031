"""Hand-off records, in process: what each hand-off point records, and which record applies."""

from __future__ import annotations

import contextvars
import queue
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Tracer

from pytest_tracechain import _spawn
from pytest_tracechain._assertions import new_trace_hint
from pytest_tracechain._origins import Origin, intern_origin
from pytest_tracechain._refs import Ref
from pytest_tracechain._router import Router
from pytest_tracechain._sites import is_machinery_code, user_site
from pytest_tracechain._spawn import Boundary, Spawn
from pytest_tracechain._state import CaptureState
from tests.unit.spans import ctx, span


@pytest.fixture
def state(router: Router) -> Iterator[CaptureState]:
    made = CaptureState("tests/unit/test_spawn.py::t")
    router.open(made)
    yield made
    router.close(made)


def record(name: str = "request", where: str | None = "app.py:3", source: tuple[int, int] = (1, 0)) -> Spawn:
    return Spawn(Boundary.QUEUE, ctx(7), name, "thread 'MainThread'", where, source)


# -- where in user code ---------------------------------------------------------------------


def test_user_site_is_the_first_frame_outside_the_machinery() -> None:
    here = sys._getframe()
    assert user_site(here) == f"tests/unit/test_spawn.py:{here.f_lineno}"
    # A frame of the standard library is passed over.
    site = threading.Thread.__init__  # a stdlib function
    assert is_machinery_code(site)
    assert user_site(None) is None


def test_user_site_prefers_the_users_code_to_installed_packages() -> None:
    # pytest's own frames (site-packages, machinery) are never the site.
    def outer() -> str | None:
        return user_site(sys._getframe())

    assert outer() == f"tests/unit/test_spawn.py:{outer.__code__.co_firstlineno + 1}"


def test_a_pool_or_server_loop_thread_is_no_hand_off() -> None:
    assert _spawn._takes_work_later(threading.Thread(target=queue.Queue().get))
    assert _spawn._takes_work_later(threading.Thread())  # Thread.run of the stdlib, no target
    assert not _spawn._takes_work_later(threading.Thread(target=lambda: None))
    assert not _spawn._takes_work_later(threading.Thread(target=contextvars.copy_context().run))


def test_spawn_described_with_and_without_its_site() -> None:
    assert record().described() == "a queue.Queue at app.py:3 from thread 'MainThread'"
    assert record(where=None).described() == "a queue.Queue from thread 'MainThread'"


# -- queue items ------------------------------------------------------------------------------


def test_a_queue_item_carries_its_puts_record_to_the_consumer_thread() -> None:
    jobs = SimpleNamespace()
    item = object()
    jobs.__dict__[_spawn._HANDOFFS] = {id(item): _spawn.deque([record()])}
    done = threading.Event()
    seen: list[Spawn | None] = []

    def consumer() -> None:
        _spawn._thread_takes(jobs, item)
        seen.append(_spawn.current())
        _spawn._thread_takes(jobs, object())  # an item put without a record
        seen.append(_spawn.current())
        done.set()

    threading.Thread(target=consumer).start()
    assert done.wait(10)
    assert seen == [record(), None]
    assert jobs.__dict__[_spawn._HANDOFFS] == {}  # taken records go


def test_an_item_taken_by_the_thread_that_put_it_is_no_hand_off() -> None:
    jobs = SimpleNamespace()
    item = object()
    mine = record(source=(threading.get_ident(), 0))
    jobs.__dict__[_spawn._HANDOFFS] = {id(item): _spawn.deque([mine])}
    before = _spawn._jobs.__dict__.get("handoff")
    _spawn._thread_takes(jobs, item)
    assert _spawn._jobs.__dict__.get("handoff") is before


def test_an_unrecorded_item_overrides_the_threads_own_record() -> None:
    done = threading.Event()
    seen: list[Spawn | None] = []

    def worker() -> None:
        seen.append(_spawn.current())
        _spawn._thread_takes(SimpleNamespace(), object())
        seen.append(_spawn.current())
        done.set()

    thread = threading.Thread(target=worker)
    _spawn.hand_to_thread(thread, record("started in"))
    thread.start()
    assert done.wait(10)
    assert seen == [record("started in"), None]


def test_mark_home_returns_the_context_current_in_the_thread(
    tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The phase-start hook reads the current span from it: empty between tests, a harness's span else."""
    monkeypatch.setattr(_spawn, "_otel_var", context._RUNTIME_CONTEXT._current_context)  # type: ignore[attr-defined]
    monkeypatch.setattr(_spawn, "_marked", threading.local())

    def fresh() -> object:
        return _spawn.mark_home()

    assert contextvars.Context().run(fresh) == {}  # unset there: set to the empty context, returned
    with tracer.start_as_current_span("harness") as harness:
        assert _spawn.mark_home() is context.get_current()
        assert trace.get_current_span(_spawn.mark_home()) is harness
    monkeypatch.setattr(_spawn, "_otel_var", None)
    assert _spawn.mark_home() is None  # a runtime context this module does not know: the caller asks


# -- the router: which roots get a record ----------------------------------------------------


def test_a_root_in_a_new_context_under_an_open_span_of_its_thread(
    tracer: Tracer, state: CaptureState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_spawn, "_otel_var", context._RUNTIME_CONTEXT._current_context)  # type: ignore[attr-defined]
    monkeypatch.setattr(_spawn, "_marked", threading.local())
    _spawn.mark_home()

    def job() -> None:
        tracer.start_span("job").end()

    with tracer.start_as_current_span("request"):
        contextvars.Context().run(job)
        contextvars.copy_context().run(job)
    contextvars.Context().run(job)  # no span of this thread open: nothing lost
    lost = [s.name for s in state.finished if state.spawn_of(s.context.span_id) is not None]
    assert lost == ["job"]
    (spawn,) = state.spawns.values()
    assert spawn.boundary is Boundary.FRESH_CONTEXT
    assert spawn.span_name == "request"


def test_only_a_hand_off_from_a_span_of_the_same_test_is_recorded(
    tracer: Tracer, state: CaptureState
) -> None:
    earlier = Spawn(Boundary.THREAD, ctx(0xBEEF), "earlier test's request", "thread 'MainThread'")
    done = threading.Event()

    def worker() -> None:
        tracer.start_span("job").end()
        done.set()

    thread = threading.Thread(target=worker)
    setattr(thread, _spawn._ATTRIBUTE, earlier)
    thread.start()
    assert done.wait(10)
    assert state.spawns == {}


def test_record_injection_keeps_the_first_per_span(router: Router, state: CaptureState) -> None:
    first = _spawn.Injection(ctx(3), "send", "app.py:1", 10)
    router.record_injection(first)
    router.record_injection(_spawn.Injection(ctx(3), "send", "app.py:2", 20))
    assert state.injections == {3: first}


# -- the hint of an assertion for a span received from another process ------------------------


def test_the_hint_for_a_received_span_talks_of_processes_and_carriers() -> None:
    state = CaptureState("t")
    request = span("GET /hello", 1, kind=SpanKind.SERVER)
    job = span("job", 2, trace_id=2)
    state.record_received(1, request, intern_origin(Origin(pid=0, thread_name="MainThread", thread_id=1)))
    state.record_received(2, job, intern_origin(Origin(pid=4242, thread_name=None, thread_id=None)))
    hint = new_trace_hint(
        Ref(job.context, job, "'job'"), Ref(request.context, request, "'GET /hello'"), state
    )
    assert hint == (
        "'job' was received from pid 4242, where it started a new trace instead of continuing 'GET /hello': "
        "pass the context to that process in a carrier (message or HTTP headers, an environment variable) and "
        "start its first span there with context=opentelemetry.propagate.extract(carrier)."
    )


def test_a_fault_in_recording_never_reaches_the_code_under_test(
    tracer: Tracer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(frame: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(_spawn, "user_site", broken)
    with tracer.start_as_current_span("request"):
        assert _spawn._record(Boundary.THREAD) is None
    assert "recording a thread failed; the hand-off is not recorded" in caplog.text
