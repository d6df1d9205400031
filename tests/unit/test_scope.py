"""``_scope.leftover``: what a test's teardown finds still attached, and its quick return."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan

from pytest_tracechain import _scope
from pytest_tracechain._state import CaptureState
from tests.unit.spans import ctx


@pytest.fixture
def entry() -> Iterator[context.Context]:
    """The context a test began with; restored afterwards whatever the test left current."""
    token = context.attach(context.Context())
    began = context.get_current()
    yield began
    context.detach(token)


def held(span_id: int) -> CaptureState:
    state = CaptureState("test_x")
    state.origins[span_id] = 0
    return state


def test_nothing_left_when_the_context_is_the_entry_one_or_empty(entry: context.Context) -> None:
    harness = trace.set_span_in_context(NonRecordingSpan(ctx(7)))  # a harness's span, current on entry
    token = context.attach(harness)
    try:
        assert _scope.leftover(held(7), context.get_current()) == []  # the entry context itself
    finally:
        context.detach(token)
    assert _scope.leftover(held(7), entry) == []  # an empty context: no span current


def test_a_span_of_the_test_still_current_is_a_leak_and_the_entry_context_comes_back(
    entry: context.Context,
) -> None:
    # Left current by a with-block that never exited (OpenTelemetry's own attach, never recorded).
    context.attach(trace.set_span_in_context(NonRecordingSpan(ctx(5))))
    events = _scope.leftover(held(5), entry)
    assert [(event.what, event.where) for event in events] == [
        ("attached during the test and never detached: it is still current after the test's teardown", None)
    ]
    assert context.get_current() is entry


def test_a_current_span_of_another_test_or_none_is_no_leak(entry: context.Context) -> None:
    context.attach(context.set_value("k", "v"))  # not empty, not the entry context, no span
    assert _scope.leftover(held(5), entry) == []
    context.attach(trace.set_span_in_context(NonRecordingSpan(ctx(9))))  # a span this capture does not hold
    assert _scope.leftover(held(5), entry) == []


def test_an_attach_left_by_a_thread_that_ended_is_a_leak_though_this_context_is_clean(
    entry: context.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = held(5)
    recorder = _scope._AttachRecorder(_Routing(state))
    monkeypatch.setattr(_scope, "_recorder", recorder)
    ended = threading.Thread(target=lambda: None, name="forgetful")
    ended.start()
    ended.join()
    token = context.attach(context.get_current())
    context.detach(token)  # a real token, as the recorder keeps them
    recorder.live[id(token)] = _scope._Attach(token, state, ended, "app.py:3", "worker span")
    events = _scope.leftover(state, entry)
    assert [(event.what, event.thread, event.where) for event in events] == [
        ("attached and never detached by a thread that has ended", "forgetful", "attached at app.py:3")
    ]
    assert recorder.live == {}  # reported once


class _Routing:
    def __init__(self, current: CaptureState) -> None:
        self.current = current
