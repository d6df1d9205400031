"""The routing span processor: attributes every span to a test's capture when it starts.

Cost matters here: ``on_start``/``on_end`` run for every span of the code under
test. Per span the capture adds no new garbage-collected object: origins are
shared ``Origin`` records (one per thread or asyncio task), indexed by the
span id (an int) in a dict.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, get_current_span

from pytest_tracechain import _spawn
from pytest_tracechain._graph import is_root
from pytest_tracechain._origins import Origin, intern_origin, origin_at
from pytest_tracechain._spawn import Injection, Spawn
from pytest_tracechain._spawn import current as current_spawn
from pytest_tracechain._state import CaptureState

__all__ = ["HARNESS_SCOPES", "Leak", "Router"]

# Instrumentation scopes of plugins that trace the test run itself. Their spans
# are the test's ambient spans: never captured, and their children count as roots.
# (pytest-otel names its tracer after the session; its per-test span is found
# as the span current at a phase start instead.)
HARNESS_SCOPES = frozenset({"pytest-opentelemetry"})
# How many of the latest captures received spans are matched against by trace id.
RECENT_CAPTURES = 8
# How many of a test's latest open spans a root in a fresh context is compared with.
_FRESH_LOOKBACK = 64


@dataclass(frozen=True, slots=True)
class Leak:
    """A span that outlived its test: it ended ``after_ns`` after the test's teardown."""

    test: str
    span_name: str
    after_ns: int

    def describe(self) -> str:
        return (
            f"span {self.span_name!r} of {self.test} ended {self.after_ns / 1e9:.3f} s after its test's "
            "teardown (work that outlived the test)"
        )


def _internal_error(where: str) -> None:
    logging.getLogger("pytest_tracechain").exception(
        "pytest-tracechain: internal error in the span processor's %s; the span may be missing "
        "from the capture. Please report this.",
        where,
    )


def _in_a_span(ambient: Collection[int]) -> bool:
    """Whether a span other than an ambient one is current here."""
    current = get_current_span().get_span_context()
    return current.is_valid and current.span_id not in ambient


def _never() -> int:
    return 0


class Router(SpanProcessor):
    """Attributes every span to a test's ``CaptureState`` when it starts.

    ``current`` is the capture of the running test (``None`` between tests).
    Spans of a finished test that are still open stay routed to it through
    ``_retained``, with their descendants, so they never show in a later test.
    """

    def __init__(self) -> None:
        self.current: CaptureState | None = None
        self.leaked: deque[Leak] = deque()
        self._retained: dict[int, CaptureState] = {}
        self._pid = os.getpid()
        self._local = threading.local()
        self._task_origins: dict[int, tuple[Origin, int]] = {}
        self._lock = threading.Lock()
        # For spans received from other processes (``receive``), once a receiver
        # runs: the latest captures, with the trace ids each holds (indexed at
        # receive time), and how many spans arrived while no test was running.
        self.receiving = False
        self._recent: deque[_Received] = deque(maxlen=RECENT_CAPTURES)
        self._receive_lock = threading.Lock()
        self.dropped = 0

    # -- SpanProcessor -----------------------------------------------------------

    # Both hooks run inside the code under test: a fault here must never
    # reach it, so it is logged instead (try costs nothing on 3.11+).

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            capture = self.current
            parent = span.parent
            if parent is not None and capture is not None and parent.span_id in capture.origins:
                # The common case, inlined: a child of a span of the running test,
                # outside asyncio, in a thread whose origin record is cached.
                span_id = span.context.span_id
                local = self._local
                if getattr(local, "renames", -1) == _spawn.renames and (
                    not _spawn.asyncio_loaded or _spawn.running_loop() is None
                ):
                    capture.record_start(span_id, span, local.origin)
                else:
                    capture.record_start(span_id, span, self._origin())
                return
            owner = self._owner_of(span, parent, capture)
            if owner is not None:
                span_id = span.context.span_id
                owner.record_start(span_id, span, self._origin())
                if owner.closed:
                    self._retained[span_id] = owner
                # Lost only if no span is current here: a root started with an
                # explicit empty context where the context did arrive is deliberate.
                # (An ambient span, a harness's per-test span, counts as none.)
                if is_root(span, owner.ambient) and not span.links and not _in_a_span(owner.ambient):
                    spawn = current_spawn()
                    if spawn is None and _spawn.in_fresh_context():
                        spawn = _fresh_context_spawn(owner, span_id)
                    # Only a hand-off from a span of this test counts (a pool thread
                    # started by an earlier test, or under the harness's span alone, does not).
                    if spawn is not None and spawn.span_context.span_id in owner.origins:
                        owner.spawns[span_id] = spawn
        except Exception:
            _internal_error("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        try:
            span_id = span.context.span_id
            owner = self.current
            if owner is None or span_id not in owner.open:
                owner = self._retained.get(span_id)
                if owner is None:
                    return
            if _spawn.asyncio_loaded and _spawn.running_loop() is not None:
                task = _spawn.current_task()
                if task is not None and getattr(task, "cancelling", _never)() > 0:
                    owner.cancelled.add(span_id)
            owner.record_end(span_id, span)
            if owner.closed:
                self._leaked(owner, span)
        except Exception:
            _internal_error("on_end")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- test lifecycle ------------------------------------------------------------

    def is_capturing(self) -> bool:
        """Whether a test is captured now (spawn and scope recording run only then)."""
        return self.current is not None

    def record_injection(self, injection: Injection) -> None:
        """A context was injected into a carrier (``_spawn``): the running test keeps the first per span."""
        capture = self.current
        if capture is not None:
            capture.injections.setdefault(injection.span_context.span_id, injection)

    def drain_leaks(self) -> list[Leak]:
        """The spans that outlived their test since the last call."""
        drained = []
        while self.leaked:  # a deque: other threads may append meanwhile
            drained.append(self.leaked.popleft())
        return drained

    def open(self, capture: CaptureState) -> None:
        self.current = capture
        if self.receiving:
            self._recent.append(_Received(capture))

    def close(self, capture: CaptureState) -> None:
        """End the capture window; its open spans stay routed to it."""
        capture.closed = True
        capture.closed_at = time.time_ns()
        for span_id in list(capture.open):
            self._retained[span_id] = capture
        if self.current is capture:
            self.current = None

    def receive(self, spans: Sequence[tuple[ReadableSpan, Origin]], undecided: Collection[int] = ()) -> int:
        """Add finished spans received from other processes to the captures that own them.

        A span belongs to the capture holding its parent span, else to the one
        holding its trace id, else to the running test's; between tests it is
        dropped (counted in ``dropped``). The captures of the last
        ``RECENT_CAPTURES`` tests since the receiver started are searched, so
        a late span never lands in a later test: it is recorded as a leak of
        its own test when it ended after that test's teardown. ``undecided``
        are the span ids whose parent's remoteness the exporter did not say:
        such a parent counts as remote when it is a captured span of another
        process. Called from the receiver's threads; returns the number of
        spans dropped.
        """
        dropped = 0
        notify: dict[int, CaptureState] = {}
        with self._receive_lock:
            current = self.current
            recent = self._recent
            if current is not None and not any(entry.capture is current for entry in recent):
                recent.append(_Received(current))  # the test that started the receiver
            for span, origin in spans:
                if span.context is None:
                    continue
                owner = self._receiver_of(span, current)
                if owner is None:
                    dropped += 1
                elif self._take(owner, span, origin, span.context.span_id in undecided):
                    notify[id(owner)] = owner
            self.dropped += dropped
        for owner in notify.values():
            if owner.waiters:
                owner.notify()
        return dropped

    def _receiver_of(self, span: ReadableSpan, current: CaptureState | None) -> CaptureState | None:
        """The capture a received span belongs to: its parent's, its trace's, or the running test's."""
        parent = span.parent
        owner = self._holder_of(parent.span_id, current) if parent is not None else None
        return owner or self._trace_owner(span.context.trace_id) or current

    def _take(self, owner: CaptureState, span: ReadableSpan, origin: Origin, undecided: bool) -> bool:
        """Add a received span to ``owner``; False for a span sent twice (an exporter's retry)."""
        span_id = span.context.span_id
        origins = owner.origins
        if span_id in origins:
            return False
        parent = span.parent
        if parent is not None and undecided:
            index = origins.get(parent.span_id)
            if index is not None and origin_at(index).pid != origin.pid:
                span._parent = SpanContext(
                    parent.trace_id, parent.span_id, True, parent.trace_flags, parent.trace_state
                )
        owner.record_received(span_id, span, intern_origin(origin))
        if owner.closed and (span.end_time or 0) > owner.closed_at:
            self._leaked(owner, span)
        return True

    def _leaked(self, owner: CaptureState, span: ReadableSpan) -> None:
        """``span`` of a finished test ended after that test's teardown."""
        self.leaked.append(Leak(owner.name, span.name, (span.end_time or 0) - owner.closed_at))

    def stop_receiving(self) -> None:
        """The receiver stopped: let go of the captures kept for it."""
        with self._receive_lock:
            self.receiving = False
            self._recent.clear()

    def _holder_of(self, span_id: int, current: CaptureState | None) -> CaptureState | None:
        """The capture that holds span ``span_id`` (running, retained or recent)."""
        if current is not None and span_id in current.origins:
            return current
        holder = self._retained.get(span_id)
        if holder is not None:
            return holder
        for entry in reversed(self._recent):
            if span_id in entry.capture.origins:
                return entry.capture
        return None

    def _trace_owner(self, trace_id: int) -> CaptureState | None:
        """The latest recent capture holding a span of ``trace_id`` (indexes updated on a miss)."""
        for refresh in (False, True):
            for entry in reversed(self._recent):
                if trace_id in entry.trace_ids(refresh=refresh):
                    return entry.capture
        return None

    def after_fork_in_child(self) -> None:
        # A forked child must not record into its parent's test state.
        self.current = None
        self.leaked = deque()
        self._retained = {}
        self._pid = os.getpid()
        self._local = threading.local()
        self._task_origins = {}
        self.receiving = False
        self._recent = deque(maxlen=RECENT_CAPTURES)

    # -- internals -------------------------------------------------------------------

    def _owner_of(
        self, span: Span, parent: SpanContext | None, capture: CaptureState | None
    ) -> CaptureState | None:
        """The slow path of ``on_start``: parent unknown to the running test."""
        if parent is not None:
            owner = self._retained.get(parent.span_id)
            if owner is not None:
                return owner
        if capture is None:
            return None
        scope = span.instrumentation_scope
        if scope is not None and scope.name in HARNESS_SCOPES:
            capture.ambient.add(span.context.span_id)
            return None
        return capture

    def _origin(self) -> int:
        """The interned origin index of the running thread or asyncio task."""
        task = _spawn.running_task()
        if task is None:
            # One record per thread, cached thread-locally; renaming any thread
            # (counted by _spawn) makes threads look theirs up again.
            local = self._local
            if getattr(local, "renames", -1) == _spawn.renames:
                cached: int = local.origin
                return cached
            thread = threading.current_thread()
            index = intern_origin(Origin(self._pid, thread.name, thread.ident, None))
            local.origin, local.renames = index, _spawn.renames
            return index
        thread = threading.current_thread()
        task_name = task.get_name()
        known = self._task_origins.get(id(task))
        if known is not None:
            origin, index = known
            if origin.task_name == task_name and origin.thread_id == thread.ident:
                return index
        origin = Origin(self._pid, thread.name, thread.ident, task_name)
        index = intern_origin(origin)
        with self._lock:
            if len(self._task_origins) > 65536:
                self._task_origins.clear()
            self._task_origins[id(task)] = (origin, index)
        return index


def _fresh_context_spawn(owner: CaptureState, span_id: int) -> Spawn | None:
    """A root in a new ``contextvars.Context``: lost if a span of this thread is still open.

    That span is the latest one of the test that started in the same thread
    (outside asyncio tasks) and has not ended: the one the fresh context left behind.
    """
    origins = owner.origins
    here = origins.get(span_id)
    for candidate_id in reversed(list(owner.open)[-_FRESH_LOOKBACK:]):  # a copy: other threads add
        candidate = owner.open.get(candidate_id)
        if candidate_id != span_id and origins.get(candidate_id) == here and candidate is not None:
            return _spawn.fresh_context(candidate, None)
    return None


class _Received:
    """A capture and the trace ids of its spans, indexed incrementally for ``Router.receive``."""

    __slots__ = ("_ids", "_seen", "capture")

    def __init__(self, capture: CaptureState) -> None:
        self.capture = capture
        self._ids: set[int] = set()
        self._seen = 0  # how many of capture.finished are indexed

    def trace_ids(self, *, refresh: bool) -> set[int]:
        if refresh:
            capture = self.capture
            finished = capture.finished
            start = self._seen if self._seen <= len(finished) else 0  # 0: cleared since
            ids = self._ids
            ids.update(span.context.trace_id for span in finished[start:])
            ids.update(span.context.trace_id for span in list(capture.open.values()))
            self._seen = len(finished)
        return self._ids
