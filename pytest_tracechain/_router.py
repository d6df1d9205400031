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
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, get_current_span

from pytest_tracechain import _origins, _spawn
from pytest_tracechain._graph import has_links
from pytest_tracechain._leaks import Leak
from pytest_tracechain._origins import Origin, intern_origin
from pytest_tracechain._received import ReceivedSpan, make_parent_remote
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
# How many finished tests are searched for the parent of a span that starts later (their span ids and
# open spans: their finished spans go once nothing reads them, ``Router._let_go_of_unread``).
CLOSED_CAPTURES = 8
# How many spans a finished test keeps of those that start after its teardown (the rest are counted).
LATE_SPANS_KEPT = 1000
# How many of a test's latest open spans a root in a fresh context is compared with.
_FRESH_LOOKBACK = 64
#: Seconds a read of a capture waits, at most, for requests the receiver answered to be captured (they
#: take milliseconds; past this something is wrong, and the read goes on without them, logged).
SETTLE_TIMEOUT = 60.0


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


def _bounded_list_shape() -> type[BoundedList[Any]] | None:
    """``BoundedList`` if it still keeps its entries in ``_dq`` and counts drops in ``dropped``."""
    probe: BoundedList[Any] = BoundedList(0)
    fits = isinstance(getattr(probe, "_dq", None), deque) and getattr(probe, "dropped", None) == 0
    return BoundedList if fits else None


# What ``_shed_empty_lists`` compares a span's event and link lists with (None: an SDK it does not know).
_BOUNDED_LIST = _bounded_list_shape()


def _shed_empty_lists(span: ReadableSpan) -> None:
    """Let go of the SDK snapshot's empty event and link lists: ``()`` says the same.

    Each is a ``BoundedList`` with a lock and a deque, about 0.8 kB, and most spans
    have neither events nor links: a test of a million spans peaked 1.9 GB higher for them, and the
    collector walked them at every full pass. ``()`` is ``ReadableSpan``'s own default:
    ``events``, ``links``, ``dropped_events`` and ``dropped_links`` read the same
    (a list that dropped entries is kept). Only the SDK's own snapshot (exactly
    ``ReadableSpan``, made at ``Span.end``) is touched; the live span keeps its lists.
    """
    if type(span) is not ReadableSpan:
        return
    events = span._events
    # ``_dq``, not len(): BoundedList.__len__ is a Python call, and this runs at every end.
    if type(events) is _BOUNDED_LIST and not events._dq and not events.dropped:  # type: ignore[attr-defined]
        span._events = ()
    links = span._links
    if type(links) is _BOUNDED_LIST and not links._dq and not links.dropped:  # type: ignore[attr-defined]
        span._links = ()


class Router(SpanProcessor):
    """Attributes every span to a test's ``CaptureState`` when it starts.

    ``current`` is the capture of the running test (``None`` between tests).
    Spans of a finished test that are still open stay routed to it through
    ``_retained``, with their descendants, so they never show in a later test.
    """

    def __init__(self) -> None:
        self.current: CaptureState | None = None
        self.leaked: dict[str, Leak] = {}  # by test, since the last drain
        self._leak_lock = threading.Lock()
        # Open spans of finished tests (and spans started under them), routed there until they end.
        self._retained: dict[int, CaptureState] = {}
        self._closed: deque[CaptureState] = deque(maxlen=CLOSED_CAPTURES)
        self._pid = os.getpid()
        self._local = threading.local()
        self._task_origins: dict[int, tuple[Origin, int]] = {}
        self._lock = threading.Lock()
        # For spans received from other processes (``receive``), once a receiver
        # runs: the latest captures, with the trace ids each holds (indexed at
        # receive time), and how many spans arrived while no test was running.
        self.receiving = False
        self._recent: deque[_Received] = deque(maxlen=RECENT_CAPTURES)
        self._refreshed = False
        self._receive_lock = threading.Lock()
        self.dropped = 0
        self._answering()

    def _answering(self) -> None:
        """No request answered and still to capture (``answered``, ``captured``, ``settle``)."""
        self._answered = 0  # requests answered so far, each numbered by this count
        self._uncaptured: set[int] = set()  # the numbers of those not captured yet
        self._captured = threading.Condition(threading.Lock())

    # -- SpanProcessor -----------------------------------------------------------

    # Both hooks run inside the code under test: a fault here must never
    # reach it, so it is logged instead (try costs nothing on 3.11+).

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            capture = self.current
            parent = span.parent
            if parent is None:
                if capture is not None and self._started_root_here(span, capture):
                    return
            elif capture is not None and parent.span_id in capture.origins and not parent.is_remote:
                # The common case, inlined: a local child of a span of the running test,
                # outside asyncio, in a thread whose origin record is cached.
                span_id = span.context.span_id
                local = self._local
                if getattr(local, "renames", -1) == _spawn.renames and (
                    not _spawn.asyncio_loaded or _spawn.running_loop() is None
                ):
                    capture.record_child_start(span_id, span, local.origin)
                else:
                    capture.record_child_start(span_id, span, self._origin())
                return
            self._start_elsewhere(span, parent, capture, explicit=parent_context is not None)
        except Exception:
            _internal_error("on_start")

    def _started_root_here(self, span: Span, capture: CaptureState) -> bool:
        """The common root, recorded in the running test: True; False for the slow path.

        A root of the test's own thread with no hand-off to look up and no fresh context to blame
        (what ``_owner_of_root`` returns first), not a harness's span: the running test's, with no
        spawn record, so its links and the current span need no reading.
        """
        scope = span.instrumentation_scope
        if (
            capture.closed
            or (scope is not None and scope.name in HARNESS_SCOPES)
            or current_spawn() is not None
            or _spawn.in_fresh_context()
        ):
            return False
        capture.record_start(span.context.span_id, span, self._origin())
        return True

    def _start_elsewhere(
        self, span: Span, parent: SpanContext | None, capture: CaptureState | None, *, explicit: bool
    ) -> None:
        """The slow path of ``on_start``: a root, or a parent the running test does not hold.

        The span goes to the test that holds its parent (running, or finished
        and retained); a root of work that a finished test handed over goes
        to that test; else the running test's. Roots note their hand-off.
        """
        scope = span.instrumentation_scope
        if capture is not None and scope is not None and scope.name in HARNESS_SCOPES:
            capture.ambient.add(span.context.span_id)
            return
        owner = None
        if parent is not None and (capture is None or parent.span_id not in capture.ambient):
            owner = self._holder_of_parent(parent)
        spawn: Spawn | None = None
        fresh = False
        if owner is None:
            owner, spawn, fresh = self._owner_of_root(span, parent, capture, explicit=explicit)
        if owner is None:
            return
        span_id = span.context.span_id
        if owner.closed and not self._keeps_late(owner, span_id):
            return
        owner.record_start(span_id, span, self._origin_for(owner))
        if fresh:  # compared by origin with the spans open in this thread: after record_start
            spawn = _fresh_context_spawn(owner, span_id)
        # Only a hand-off from a span of this test counts (a pool thread started
        # by an earlier test, or under the harness's span alone, does not).
        if spawn is not None and spawn.span_context.span_id in owner.origins:
            owner.spawns[span_id] = spawn

    def _owner_of_root(
        self, span: Span, parent: SpanContext | None, capture: CaptureState | None, *, explicit: bool
    ) -> tuple[CaptureState | None, Spawn | None, bool]:
        """The owner of a span no finished test holds the parent of, its hand-off, and whether to look
        for a fresh context.

        Lost only if no span is current here: a root started with an explicit
        empty context where the context did arrive is deliberate (an ambient
        span, a harness's per-test span, counts as none). Without an explicit
        context (``explicit``: the SDK passes it to ``on_start``) the parent is
        the current span, so a root has none current to look up.
        """
        ambient = capture.ambient if capture is not None else ()
        if parent is not None and parent.span_id not in ambient:  # not a root (as _graph.is_root says)
            return capture, None, False
        # The cheap look-ups first: most roots have no hand-off and no fresh context to blame,
        # and then their links and the current span do not matter. (``_started_root_here`` makes
        # the same two look-ups for a root of the running test, before this path: keep them alike.)
        spawn = current_spawn()
        fresh = spawn is None and capture is not None and _spawn.in_fresh_context()
        if (spawn is None and not fresh) or has_links(span) or (explicit and _in_a_span(ambient)):
            return capture, None, False
        spawner = spawn.spawned_by() if spawn is not None else None
        if isinstance(spawner, CaptureState) and spawner.closed:
            return spawner, spawn, False  # work a finished test handed over, started late: its own
        return capture, spawn, fresh

    def _keeps_late(self, owner: CaptureState, span_id: int) -> bool:
        """Whether finished ``owner`` records the span: its late spans are routed, then capped."""
        self._retained[span_id] = owner
        owner.late += 1
        return owner.late <= LATE_SPANS_KEPT  # past it: routed (descendants follow) and counted

    def _origin_for(self, owner: CaptureState) -> int:
        if owner.table is _origins.current_table():
            return self._origin()
        return owner.table.intern(self._fresh_origin())  # a finished test's table, from before a renewal

    def _holder_of_parent(self, parent: SpanContext) -> CaptureState | None:
        """A finished test holding ``parent``: retained while open, or among the latest finished."""
        owner = self._retained.get(parent.span_id)
        if owner is not None:
            return owner
        for closed in reversed(tuple(self._closed)):  # a copy: the runner's thread appends
            if parent.span_id in closed.origins:
                return closed
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            span_id = span.context.span_id
            owner = self.current
            if owner is None or span_id not in owner.open:
                owner = self._retained.pop(span_id, None)
                if owner is None:
                    return
                if span_id not in owner.open:  # a late span past the cap: counted only
                    self._leaked(owner, span)
                    return
            if _spawn.asyncio_loaded and _spawn.running_loop() is not None:
                task = _spawn.current_task()
                if task is not None and getattr(task, "cancelling", _never)() > 0:
                    owner.cancelled.add(span_id)
            _shed_empty_lists(span)
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

    def current_capture(self) -> CaptureState | None:
        return self.current

    def record_injection(self, injection: Injection) -> None:
        """A context was injected into a carrier (``_spawn``): the running test keeps the first per span."""
        capture = self.current
        if capture is not None:
            capture.injections.setdefault(injection.span_context.span_id, injection)

    def let_go(self) -> None:
        """The session is over: let go of the finished tests kept for late spans.

        Else their spans live on into pytest's final garbage collections (five
        full passes at unconfigure), which then walk every one of them. Not
        while a test runs (an in-process pytester session ending inside it).
        """
        if self.current is None:
            self._closed.clear()

    def still_open(self) -> dict[str, int]:
        """Per finished test, how many of its spans are still open (at the end of the session)."""
        counts: dict[str, int] = {}
        for owner in list(self._retained.values()):
            counts[owner.name] = counts.get(owner.name, 0) + 1
        return counts

    def drain_leaks(self) -> list[Leak]:
        """Per test, the spans that outlived it since the last call."""
        if not self.leaked:  # the common case, without the lock (a leak added meanwhile waits for the next)
            return []
        with self._leak_lock:
            drained, self.leaked = list(self.leaked.values()), {}
        return drained

    def open(self, capture: CaptureState) -> None:
        self._let_go_of_unread()
        if _origins.renew_if_full():  # between tests: threads and tasks look their origins up again
            _spawn.renames += 1
            with self._lock:
                self._task_origins.clear()
        capture.table = _origins.current_table()
        self.current = capture
        if self.receiving:
            with self._receive_lock:  # the receiver's threads iterate these
                self._recent.append(_Received(capture))

    def close(self, capture: CaptureState) -> None:
        """End the capture window; its open spans stay routed to it."""
        capture.closed = True
        capture.closed_at = time.time_ns()
        for span_id in list(capture.open):
            self._retained[span_id] = capture
        self._closed.append(capture)
        if self.current is capture:
            self.current = None

    def _let_go_of_unread(self) -> None:
        """Finished tests nothing reads any more let go of their finished spans (at the next test's start).

        A finished test stays searchable for the parents of late spans (``_closed``: its span ids, its
        open spans), but its finished spans are read only while its ``TraceCapture`` lives. Kept for
        ``CLOSED_CAPTURES`` more tests, they made a suite of big tests hold nine tests' spans at once,
        and freeing them that late cost every test time. A receiver's index of their trace ids is
        brought up to date first: a late received span of such a trace still finds its test.
        """
        for closed in self._closed:
            if closed.finished and closed.unread():
                # The receiver's threads add to it and read the index (``_recent`` is empty without one).
                with self._receive_lock:
                    for entry in self._recent:
                        if entry.capture is closed:
                            entry.index_then_forget_finished()
                    closed.let_go()

    # -- spans received from other processes ---------------------------------------------
    #
    # The receiver answers a request once it is checked, and captures it after:
    # the exporter waits for the parse and the checks alone. Every read of a
    # capture (``settle``) first waits for the requests answered before it, so
    # a child that flushed its exporter before it exited has delivered, when
    # it exits, everything its test then reads.

    def answered(self) -> tuple[int, CaptureState | None]:
        """A checked request is about to be answered: its number, for ``captured``, and the running test,
        which takes the spans no test owns (``receive_answered``)."""
        with self._captured:
            self._answered += 1
            number = self._answered
            self._uncaptured.add(number)
        return number, self.current

    def captured(self, number: int) -> None:
        """The request ``answered`` numbered is in the captures (or failed, logged): reads go on."""
        with self._captured:
            self._uncaptured.discard(number)
            self._captured.notify_all()

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until every request answered so far is captured; at once when none is left.

        Only for those answered before the call: a process that keeps
        exporting cannot keep a reader waiting.
        """
        if not self._uncaptured:  # the common case: one attribute read
            return
        with self._captured:
            last = self._answered
            if not self._captured.wait_for(
                lambda: not self._uncaptured or min(self._uncaptured) > last, timeout
            ):
                logging.getLogger("pytest_tracechain").warning(
                    "pytest-tracechain: requests the otlp_receiver answered were not captured after %g s; "
                    "the capture is read without them",
                    timeout,
                )

    def receive(self, spans: Sequence[tuple[ReadableSpan, Origin]], undecided: Collection[int] = ()) -> int:
        """Add finished spans received from other processes to the captures that own them.

        ``receive_rows`` with the ids read from each span (spans without a context are skipped).
        """
        rows: list[ReceivedRow] = []
        for span, origin in spans:
            context = span.context
            if context is not None:
                parent = span.parent
                rows.append(
                    (span, origin, context.trace_id, context.span_id, parent.span_id if parent else 0)
                )
        return self.receive_rows(rows, undecided)

    def receive_rows(self, spans: Sequence[ReceivedRow], undecided: Collection[int] = ()) -> int:
        """``receive_answered`` with the test running now."""
        return self.receive_answered(spans, undecided, self.current)

    def receive_answered(
        self, spans: Sequence[ReceivedRow], undecided: Collection[int], running: CaptureState | None
    ) -> int:
        """Add finished spans received from other processes to the captures that own them.

        A span belongs to the capture holding its parent span, else to the one
        holding its trace id, else to ``running``, the test running when the
        request was answered; between tests it is dropped (counted in
        ``dropped``). The captures of the last
        ``RECENT_CAPTURES`` tests since the receiver started are searched, so
        a late span never lands in a later test: it is recorded as a leak of
        its own test when it ended after that test's teardown. ``undecided``
        are the span ids whose parent's remoteness the exporter did not say:
        such a parent counts as remote when it is a captured span of another
        process. Called from the receiver's threads; returns the number of
        spans dropped.

        One pass over the request (``_Batch``): the captures to search are
        listed once per call, and a trace's owner is looked up once per call,
        then kept up to date as its spans are taken. Children arrive before
        their parents, so most spans' parents are held nowhere yet and their
        trace decides. The ids come with each span (``ReceivedRow``): reading
        them through the span's and its context's properties cost a third of
        this loop.
        """
        with self._receive_lock:
            batch = _Batch(self, undecided, running)
            take = batch.take
            for row in spans:
                take(row)
            batch.count_run()
            self.dropped += batch.dropped
        for owner in batch.taken.values():
            if owner.waiters:
                owner.notify()
        return batch.dropped

    def _settle_parent(self, owner: CaptureState, span: ReadableSpan, origin: Origin, parent_id: int) -> None:
        """A parent whose remoteness the exporter did not say is remote when another process captured it."""
        index = owner.origins.get(parent_id)
        if index is not None and owner.table.at(index).pid != origin.pid:
            make_parent_remote(span)  # without decoding a received span (it is read on the receiver's thread)

    def _leaked(self, owner: CaptureState, span: ReadableSpan) -> None:
        """``span`` of a finished test ended after that test's teardown."""
        after = (span.end_time or 0) - owner.closed_at
        with self._leak_lock:
            known = self.leaked.get(owner.name)
            if known is None:
                self.leaked[owner.name] = Leak(owner.name, span.name, after)
            else:
                known.merge(Leak(owner.name, span.name, after))

    def stop_receiving(self) -> None:
        """The receiver stopped: let go of the captures kept for it."""
        with self._receive_lock:
            self.receiving = False
            self._recent.clear()

    def _trace_owner(self, trace_id: int) -> CaptureState | None:
        """The latest recent capture holding a span of ``trace_id``.

        On a miss the indexes are brought up to date, once per ``receive``
        call: children arrive before their parents, and re-reading every
        capture's open spans for each of them made ingest quadratic in them.
        """
        for entry in reversed(self._recent):
            if trace_id in entry.trace_ids(refresh=False):
                return entry.capture
        if self._refreshed:
            return None
        self._refreshed = True
        for entry in reversed(self._recent):
            if trace_id in entry.trace_ids(refresh=True):
                return entry.capture
        return None

    def after_fork_in_child(self) -> None:
        # A forked child must not record into its parent's test state.
        self.current = None
        self.leaked = {}
        self._leak_lock = threading.Lock()
        self._retained = {}
        self._closed = deque(maxlen=CLOSED_CAPTURES)
        self._pid = os.getpid()
        self._local = threading.local()
        self._task_origins = {}
        self.receiving = False
        self._recent = deque(maxlen=RECENT_CAPTURES)
        self._answering()

    # -- internals -------------------------------------------------------------------

    def _fresh_origin(self) -> Origin:
        thread = threading.current_thread()
        task = _spawn.running_task()
        return Origin(self._pid, thread.name, thread.ident, task.get_name() if task is not None else None)

    def _origin(self) -> int:
        """The interned origin index of the running thread or asyncio task."""
        # One record per thread, cached thread-locally; renaming any thread
        # (counted by _spawn) makes threads look theirs up again.
        local = self._local
        if getattr(local, "renames", -1) == _spawn.renames and (
            not _spawn.asyncio_loaded or _spawn.running_loop() is None
        ):
            cached: int = local.origin
            return cached
        task = _spawn.running_task()
        if task is None:
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


#: A received span as ``Router.receive_rows`` takes it: the span, its origin, its trace id, its span
#: id and its parent's span id (0 for none).
ReceivedRow = tuple[ReadableSpan, Origin, int, int, int]


class _Batch:
    """One call of ``Router.receive_rows``: the look-ups of the call, and where each received span goes.

    Made and used under the router's receive lock.
    """

    def __init__(self, router: Router, undecided: Collection[int], current: CaptureState | None) -> None:
        recent = router._recent
        if current is not None and not any(entry.capture is current for entry in recent):
            recent.append(_Received(current))  # the test that started the receiver
        router._refreshed = False  # the trace-id indexes are refreshed once per call, at most
        self.router = router
        self.undecided = undecided
        self.current = current
        self.retained = router._retained
        self.current_origins = current.origins if current is not None else {}
        # Where a parent is looked for after the running test and the retained spans: the latest first.
        self.searched = [
            (entry.capture.origins, entry.capture)
            for entry in reversed(recent)
            if entry.capture is not current
        ]
        self.entries = {id(entry.capture): entry for entry in recent}
        self.rank = {id(entry.capture): position for position, entry in enumerate(recent)}
        # trace id -> the latest recent capture holding it (or None): looked up once per call
        self.trace_owners: dict[int, CaptureState | None] = {}
        self.taken: dict[int, CaptureState] = {}
        self.dropped = 0
        self.last_owner: CaptureState | None = None
        self.last_origin: Origin | None = None
        self.origin_index = 0
        # The last owner's entry, and how many spans it took since (for ``_Received.taken``).
        self.run_entry: _Received | None = None
        self.run = 0

    def take(self, row: ReceivedRow) -> None:
        """Record one received span with its owner (or count it dropped)."""
        span, origin, trace_id, span_id, parent_id = row
        owner = self._parent_owner(parent_id) if parent_id else None
        known = self._known_owner(trace_id)
        if owner is None:
            owner = known or self.current
            if owner is None:
                self.dropped += 1
                return
        if span_id in owner.origins:
            return  # sent twice: an exporter's retry
        if owner is not self.last_owner or origin is not self.last_origin:
            self._switch(owner, origin)
        self.run += 1
        if parent_id and self.undecided and span_id in self.undecided:
            self.router._settle_parent(owner, span, origin, parent_id)
        owner.record_received(span_id, span, self.origin_index)
        if owner.closed and (span.end_time or 0) > owner.closed_at:
            self.router._leaked(owner, span)
        if known is not owner:  # index the trace for later spans, of this call and later ones
            self._index(owner, known, trace_id)

    def _parent_owner(self, parent_id: int) -> CaptureState | None:
        """The capture holding the parent: the running test, a retained span's, a recent one."""
        if parent_id in self.current_origins:
            return self.current
        owner = self.retained.get(parent_id)
        if owner is None:
            for origins, capture in self.searched:
                if parent_id in origins:
                    return capture
        return owner

    def _known_owner(self, trace_id: int) -> CaptureState | None:
        try:
            return self.trace_owners[trace_id]
        except KeyError:  # the trace's first span in this call
            self.count_run()  # counted before the look-up may refresh the indexes
            known = self.trace_owners[trace_id] = self.router._trace_owner(trace_id)
            return known

    def _switch(self, owner: CaptureState, origin: Origin) -> None:
        """The spans from here go to another owner or come from another process."""
        self.count_run()
        self.last_owner, self.last_origin = owner, origin
        self.origin_index = owner.table.intern(origin)
        self.taken[id(owner)] = owner
        self.run_entry = self.entries.get(id(owner))

    def count_run(self) -> None:
        """Add the spans the last owner took since the last count to its entry's ``taken``."""
        if self.run_entry is not None:
            self.run_entry.taken += self.run
        self.run = 0

    def _index(self, owner: CaptureState, known: CaptureState | None, trace_id: int) -> None:
        entry = self.entries.get(id(owner))
        if entry is not None:
            entry.add(trace_id)
            if known is None or self.rank[id(owner)] > self.rank[id(known)]:
                self.trace_owners[trace_id] = owner


class _Received:
    """A capture and the trace ids of its spans, indexed incrementally for ``Router.receive``."""

    __slots__ = ("_ids", "_seen", "_started", "capture", "taken")

    def __init__(self, capture: CaptureState) -> None:
        self.capture = capture
        self._ids: set[int] = set()
        self._seen = 0  # how many of capture.finished are indexed
        self._started = 0  # how many of capture.origins (spans started, in order) were looked at
        # Spans ``Router.receive`` added since the last refresh: each one joined both lists, its trace
        # already indexed (``add``). Where they are all that is new, a refresh has nothing to read.
        self.taken = 0

    def add(self, trace_id: int) -> None:
        self._ids.add(trace_id)

    def index_then_forget_finished(self) -> None:
        """Index the trace ids of the capture's finished spans, which are about to be let go."""
        self.trace_ids(refresh=True)
        self._seen = 0

    def trace_ids(self, *, refresh: bool) -> set[int]:
        if refresh:
            from itertools import islice

            capture = self.capture
            finished = capture.finished
            ended = len(finished)
            received, self.taken = self.taken, 0
            start = self._seen if self._seen <= ended else 0  # 0: cleared since
            ids = self._ids
            if ended - start != received or not start:
                # The spans this process made: those received were indexed as they were taken (``add``),
                # and reading their context would decode them (``ReceivedSpan``).
                ids.update(
                    [
                        span.context.trace_id
                        for span in finished[start:ended]
                        if not isinstance(span, ReceivedSpan)
                    ]
                )
            # Only the spans started since the last look, the open ones among them: read from
            # the end of capture.origins (start order), not by copying it, which grows with
            # every received span (a copy per call made a long ingest quadratic).
            origins = capture.origins
            started = len(origins)
            new = started - self._started if self._started <= started else started  # all: cleared since
            span_ids = list(islice(reversed(origins), new)) if new != received or not self._started else []
            if len(origins) != started:  # the test's thread started a span meanwhile: read them all
                span_ids, started = list(origins), len(origins)
            open_spans = capture.open
            for span_id in span_ids:
                span = open_spans.get(span_id)
                if span is not None:
                    ids.add(span.context.trace_id)
            self._seen, self._started = ended, started
        return self._ids
