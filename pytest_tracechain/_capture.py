"""Span capture: one routing span processor and the per-test ``TraceCapture``.

Cost matters here: ``on_start``/``on_end`` run for every span of the code under
test. Per span the capture adds no new garbage-collected object: origins are
shared ``Origin`` records (one per thread or asyncio task), indexed by the
span id (an int) in a dict.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, get_current_span

from pytest_tracechain import _spawn
from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._scope import ScopeEvent
from pytest_tracechain._spawn import Spawn
from pytest_tracechain._spawn import current as current_spawn

__all__ = ["Origin", "Trace", "TraceCapture"]

# Instrumentation scopes of plugins that trace the test run itself. Their spans
# are the test's ambient spans: never captured, and their children count as roots.
# (pytest-otel names its tracer after the session; its per-test span is found
# as the span current at a phase start instead.)
HARNESS_SCOPES = frozenset({"pytest-opentelemetry"})
# How many of the latest captures received spans are matched against by trace id.
RECENT_CAPTURES = 8


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a span started.

    ``task_name`` is the asyncio task's name, or ``None`` outside a task.
    ``thread_name`` and ``thread_id`` are ``None`` for spans received from
    another process, where they are unknown.
    """

    pid: int
    thread_name: str | None
    thread_id: int | None
    task_name: str | None = None

    def describe(self, *, this_pid: int | None = None) -> str:
        """A short label such as ``thread 'MainThread', task 'Task-2'``."""
        parts = []
        if self.pid != (os.getpid() if this_pid is None else this_pid):
            parts.append(f"pid {self.pid}")
        if self.thread_name is not None:
            parts.append(f"thread {self.thread_name!r}")
        if self.task_name is not None:
            parts.append(f"task {self.task_name!r}")
        return ", ".join(parts) or f"pid {self.pid}"


# Origins are interned: a capture maps span ids to indexes in this table, so
# its dict holds only ints, which the garbage collector does not scan (a dict
# of span id -> Origin would be walked by every full collection).
_origin_table: list[Origin] = []
_origin_indexes: dict[Origin, int] = {}
_intern_lock = threading.Lock()
_condition_lock = threading.Lock()


def intern_origin(origin: Origin) -> int:
    """The index of ``origin`` in the shared table (added once)."""
    index = _origin_indexes.get(origin)
    if index is None:
        with _intern_lock:
            index = _origin_indexes.get(origin)
            if index is None:
                index = len(_origin_table)
                _origin_table.append(origin)
                _origin_indexes[origin] = index
    return index


class OriginsView(Mapping[int, Origin]):
    """Span id -> ``Origin``, read through a capture's index dict."""

    __slots__ = ("_indexes",)

    def __init__(self, indexes: dict[int, int]) -> None:
        self._indexes = indexes

    def __getitem__(self, span_id: int) -> Origin:
        return _origin_table[self._indexes[span_id]]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indexes)

    def __len__(self) -> int:
        return len(self._indexes)

    def __contains__(self, span_id: object) -> bool:
        return span_id in self._indexes


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


@dataclass(frozen=True)
class Trace:
    """The captured spans of one trace id.

    ``spans`` are ordered by start time; ``roots`` are the spans with no parent,
    or whose parent is the test's ambient span.
    """

    trace_id: int
    spans: tuple[ReadableSpan, ...]
    roots: tuple[ReadableSpan, ...]

    @property
    def trace_id_hex(self) -> str:
        return format(self.trace_id, "032x")


SpanFilter = Callable[[ReadableSpan], bool]
_KIND_NAMES = ", ".join(k.name.lower() for k in SpanKind)


def parse_kind(kind: object, argname: str = "kind") -> SpanKind:
    """A ``SpanKind`` from a ``SpanKind`` or its name in any case."""
    if isinstance(kind, SpanKind):
        return kind
    if isinstance(kind, str):
        try:
            return SpanKind[kind.strip().upper()]
        except KeyError:
            raise ValueError(
                f"{argname}={kind!r} is not a span kind; use a SpanKind or one of: {_KIND_NAMES}"
            ) from None
    raise TypeError(f"{argname} must be a SpanKind or its name, not {type(kind).__name__}")


def parse_trace_id(trace_id: object) -> int:
    if isinstance(trace_id, bool) or not isinstance(trace_id, (int, str)):
        raise TypeError(f"trace_id must be an int or a 32-digit hex string, not {type(trace_id).__name__}")
    if isinstance(trace_id, str):
        if not re.fullmatch(r"[0-9a-fA-F]{32}", trace_id):
            raise ValueError(f"trace_id={trace_id!r} is not a 32-digit hex trace id")
        return int(trace_id, 16)
    return trace_id


def span_filter(
    name: str | re.Pattern[str] | None = None,
    *,
    kind: SpanKind | str | None = None,
    trace_id: int | str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> SpanFilter:
    """One predicate for the ``find``/``one``/``wait_for`` filters, arguments checked."""
    checks: list[SpanFilter] = []
    if isinstance(name, str):
        checks.append(lambda s: s.name == name)
    elif isinstance(name, re.Pattern):
        pattern = name
        checks.append(lambda s: pattern.search(s.name) is not None)
    elif name is not None:
        raise TypeError(f"name must be a str or a compiled regex, not {type(name).__name__}")
    if kind is not None:
        wanted_kind = parse_kind(kind)
        checks.append(lambda s: s.kind is wanted_kind)
    if trace_id is not None:
        wanted_trace = parse_trace_id(trace_id)
        checks.append(lambda s: s.context.trace_id == wanted_trace)
    if attributes is not None:
        if not isinstance(attributes, Mapping):
            raise TypeError(f"attributes must be a mapping, not {type(attributes).__name__}")
        wanted = dict(attributes)

        def has_attributes(s: ReadableSpan) -> bool:
            have = s.attributes or {}
            return all(k in have and _attr_equal(have[k], v) for k, v in wanted.items())

        checks.append(has_attributes)
    if not checks:
        return lambda s: True
    if len(checks) == 1:
        return checks[0]
    return lambda s: all(check(s) for check in checks)


def _attr_equal(have: object, want: object) -> bool:
    # Sequence attributes are stored as tuples; let users write lists.
    if isinstance(have, tuple) and isinstance(want, list):
        return have == tuple(want)
    return have == want


# A trace relative to the test: (trace id, relative root span id or 0). Spans
# under a test harness's ambient span share its trace id, so there each
# relative root starts a trace of its own.
TraceKey = tuple[int, int]


def trace_keys(spans: Sequence[ReadableSpan], ambient: Collection[int]) -> dict[int, TraceKey]:
    """Map each span id to the trace it belongs to, relative to the test."""
    if not ambient:
        return {s.context.span_id: (s.context.trace_id, 0) for s in spans}
    by_id = {s.context.span_id: s for s in spans}
    keys: dict[int, TraceKey] = {}
    for span in spans:
        chain: list[int] = []
        current = span
        while True:
            span_id = current.context.span_id
            known = keys.get(span_id)
            if known is not None:
                key = known
                break
            chain.append(span_id)
            parent = current.parent
            if parent is None or len(chain) > len(by_id):
                key = (current.context.trace_id, 0)
                break
            if parent.span_id in ambient:
                key = (current.context.trace_id, span_id)
                break
            next_span = by_id.get(parent.span_id)
            if next_span is None:
                key = (current.context.trace_id, 0)
                break
            current = next_span
        for span_id in chain:
            keys[span_id] = key
    return keys


def describe_filters(name: object = None, **filters: object) -> str:
    """``span named 'x' with kind=server`` for failure messages."""
    if isinstance(name, re.Pattern):
        text = f"span with a name matching {name.pattern!r}"
    elif name is not None:
        text = f"span named {name!r}"
    else:
        text = "span"
    extra = [
        f"{key}={parse_kind(value).name.lower() if key == 'kind' else repr(value)}"
        for key, value in filters.items()
        if value is not None
    ]
    return text + (" with " + ", ".join(extra) if extra else "")


class TraceCapture:
    """The spans started during one test, given by the ``tracechain`` fixture.

    Spans are attributed to a test when they start: to the test that owns
    their parent span when the parent was captured, otherwise to the test
    running then. Capture runs from the test's setup to the end of its
    teardown, so spans that end after their test never show in a later one.
    """

    __slots__ = (
        "__weakref__",
        "_ambient",
        "_cancelled",
        "_closed",
        "_closed_at",
        "_cond",
        "_finished",
        "_lost_context_rule",
        "_open",
        "_origins",
        "_phase_mark",
        "_scope_events",
        "_single_trace_rule",
        "_spawns",
        "_waiters",
        "name",
    )

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._finished: list[ReadableSpan] = []
        self._open: dict[int, Span] = {}
        self._origins: dict[int, int] = {}  # span id -> index in the origin table
        self._ambient: set[int] = set()
        # Spans that ended inside an asyncio task being cancelled (Python 3.11+);
        # OpenTelemetry does not record CancelledError on spans.
        self._cancelled: set[int] = set()
        self._phase_mark = 0
        # Spawn records of root spans started in work handed to another thread.
        self._spawns: dict[int, Spawn] = {}
        self._scope_events: list[ScopeEvent] = []
        self._cond: threading.Condition | None = None  # made by the first wait_for
        self._waiters = 0
        self._closed = False
        self._closed_at = 0
        # The marker's rules (lost_context=, single_trace=) for this test's analysis.
        self._lost_context_rule = True
        self._single_trace_rule = False

    # -- what the router calls -------------------------------------------------

    def _started(self, span: Span, origin: int) -> None:
        span_id = span.context.span_id
        self._origins[span_id] = origin
        self._open[span_id] = span

    @property
    def _origin_map(self) -> OriginsView:
        return OriginsView(self._origins)

    def _phase_ended(self) -> None:
        """Remember how many spans had started when a test phase (setup, call) ended."""
        self._phase_mark = len(self._origins)

    def _started_since_phase_end(self, span_id: int) -> bool:
        # _origins keeps start order: spans started since the mark are its last entries.
        count = len(self._origins) - self._phase_mark
        return count > 0 and span_id in islice(reversed(self._origins), count)

    def _add_ambient(self, span_id: int) -> None:
        """Mark the span current at a phase start as the test's ambient span.

        That is a span from before the capture began, or one that started
        between two phases, which only another plugin's hook wrapper can do
        (pytest-otel's per-test span). A span the test started during an
        earlier phase (a fixture's span kept current) stays the test's own.
        """
        if span_id in self._origins:
            if not self._started_since_phase_end(span_id):
                return
            self._open.pop(span_id, None)
            self._origins.pop(span_id, None)
        self._ambient.add(span_id)

    # -- public API --------------------------------------------------------------

    @property
    def spans(self) -> list[ReadableSpan]:
        """The finished spans of this test, in end order (a copy)."""
        return list(self._finished)

    @property
    def open_spans(self) -> list[ReadableSpan]:
        """Spans started in this test and not yet ended, in start order."""
        live: list[ReadableSpan] = [span for span in list(self._open.values()) if span.end_time is None]
        live.sort(key=_start_time)
        return live

    @property
    def ambient_span_ids(self) -> frozenset[int]:
        """Span ids of the test harness's spans (see "roots are relative to the test")."""
        return frozenset(self._ambient)

    def find(
        self,
        name: str | re.Pattern[str] | None = None,
        *,
        kind: SpanKind | str | None = None,
        trace_id: int | str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> list[ReadableSpan]:
        """Finished spans matching every given filter, in end order.

        ``name`` is an exact name or a compiled regex (matched with
        ``re.search``); ``kind`` a ``SpanKind`` or its name in any case;
        ``trace_id`` an int or 32-digit hex string; ``attributes`` a mapping
        that must be a subset of the span's attributes.
        """
        matches = span_filter(name, kind=kind, trace_id=trace_id, attributes=attributes)
        return [span for span in list(self._finished) if matches(span)]

    def one(
        self,
        name: str | re.Pattern[str] | None = None,
        *,
        kind: SpanKind | str | None = None,
        trace_id: int | str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> ReadableSpan:
        """Exactly one finished span matching the filters, else ``TraceAssertionError``."""
        __tracebackhide__ = True
        found = self.find(name, kind=kind, trace_id=trace_id, attributes=attributes)
        if len(found) == 1:
            return found[0]
        wanted = describe_filters(name, kind=kind, trace_id=trace_id, attributes=attributes)
        if found:
            headline = f"expected exactly one {wanted}, found {len(found)}"
        else:
            headline = f"expected exactly one {wanted}, found none"
        raise TraceAssertionError(self._explain(headline, highlight={_sid(s): "match" for s in found}))

    def wait_for(
        self,
        name: str | re.Pattern[str] | None = None,
        *,
        count: int = 1,
        timeout: float = 5.0,
        kind: SpanKind | str | None = None,
        trace_id: int | str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> list[ReadableSpan]:
        """Wait until at least ``count`` finished spans match, and return them.

        Wakes on every span end (no polling). On timeout raises
        ``TraceAssertionError`` showing the captured and still-open spans.
        """
        __tracebackhide__ = True
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"count must be an int, not {type(count).__name__}")
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
        matches = span_filter(name, kind=kind, trace_id=trace_id, attributes=attributes)
        found: list[ReadableSpan] = []

        def enough(finished: list[ReadableSpan]) -> bool:
            found[:] = [span for span in finished if matches(span)]
            return len(found) >= count

        if self._wait_until(enough, time.monotonic() + timeout):
            return found
        wanted = describe_filters(name, kind=kind, trace_id=trace_id, attributes=attributes)
        if count != 1:
            wanted = "spans" + wanted[len("span") :]
        still_open = [s for s in self.open_spans if matches(s)]
        headline = (
            f"timed out after {timeout:g} s waiting for {count} finished {wanted}; "
            f"{len(found)} finished" + (f", {len(still_open)} matching still open" if still_open else "")
        )
        highlight = {_sid(s): "match" for s in found}
        highlight.update({_sid(s): "match, still open" for s in still_open})
        raise TraceAssertionError(self._explain(headline, highlight=highlight))

    def _wait_until(self, done: Callable[[list[ReadableSpan]], bool], deadline: float) -> bool:
        """Wait until ``done(finished spans)`` holds or ``deadline`` (monotonic) passes.

        Checks again at every span end (the router notifies), never polls.
        """
        with _condition_lock:
            if self._cond is None:
                self._cond = threading.Condition(threading.Lock())
        with self._cond:
            self._waiters += 1
            try:
                while True:
                    if done(list(self._finished)):
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._waiters -= 1

    def traces(self) -> list[Trace]:
        """One ``Trace`` per trace of the finished spans, ordered by first start.

        Traces are relative to the test: under a plugin that wraps each test in
        a span (pytest-opentelemetry), each span whose parent is that ambient
        span starts a ``Trace`` of its own, although the trace ids are equal.
        """
        spans = sorted(self._finished, key=_start_time)
        ambient = self._ambient
        keys = trace_keys(spans, ambient)
        by_trace: dict[TraceKey, list[ReadableSpan]] = {}
        for span in spans:
            by_trace.setdefault(keys[span.context.span_id], []).append(span)
        return [
            Trace(
                trace_id=key[0],
                spans=tuple(members),
                roots=tuple(s for s in members if s.parent is None or s.parent.span_id in ambient),
            )
            for key, members in by_trace.items()
        ]

    def origin(self, span: ReadableSpan | SpanContext | str) -> Origin:
        """Where ``span`` started: process id, thread name and id, asyncio task name.

        ``span`` is a span, a ``SpanContext``, or a span name (resolved with ``one``).
        """
        __tracebackhide__ = True
        if isinstance(span, str):
            span = self._by_name(span)
        if isinstance(span, ReadableSpan):
            context = span.context
        elif isinstance(span, SpanContext):
            context = span
        else:
            raise TypeError(
                f"span must be a ReadableSpan, a SpanContext or a span name, not {type(span).__name__}"
            )
        index = self._origins.get(context.span_id) if context is not None else None
        if index is None:
            label = _hex_span(context)
            if isinstance(span, ReadableSpan):
                label = f"{span.name!r} ({label})"
            raise TraceAssertionError(self._explain(f"{label} was not captured in this test"))
        return _origin_table[index]

    def is_root(self, span: ReadableSpan) -> bool:
        """No parent, or only the test's ambient span."""
        return span.parent is None or span.parent.span_id in self._ambient

    def render(
        self, *, highlight: Mapping[int, str] | None = None, limit: int | None = None, color: bool = False
    ) -> str:
        """The text tree of all captured traces, the view failure messages use.

        Each span shows its name, kind, duration, thread or task (and process
        when not this one) and an error status. ``highlight`` maps span ids to
        a marker shown after the span; ``limit`` cuts the output after that
        many spans ("... N more spans not shown"); ``color`` adds ANSI styles.
        """
        from pytest_tracechain._render import render_spans

        return render_spans(
            self._all_spans(),
            origins=self._origin_map,
            ambient=self._ambient,
            highlight=highlight or {},
            limit=limit,
            color=color,
        )

    def clear(self) -> None:
        """Forget the finished spans captured so far (open spans stay tracked)."""
        self._finished.clear()

    # -- helpers -------------------------------------------------------------------

    def _by_name(self, name: str) -> ReadableSpan:
        """``one(name)``, falling back to a single still-open span of that name."""
        __tracebackhide__ = True
        if not self.find(name):
            still_open = [s for s in self.open_spans if s.name == name]
            if len(still_open) == 1:
                return still_open[0]
        return self.one(name)

    def _all_spans(self) -> list[ReadableSpan]:
        return list(self._finished) + self.open_spans

    def _explain(self, headline: str, *, highlight: Mapping[int, str] | None = None) -> str:
        from pytest_tracechain._render import MESSAGE_LIMIT

        rendered = self.render(highlight=highlight, limit=MESSAGE_LIMIT)
        return f"{headline}\n\ncaptured in this test:\n{rendered}"

    def __repr__(self) -> str:
        return f"<TraceCapture {self.name!r}: {len(self._finished)} finished, {len(self._open)} open>"


def _internal_error(where: str) -> None:
    logging.getLogger("pytest_tracechain").exception(
        "pytest-tracechain: internal error in the span processor's %s; the span may be missing "
        "from the capture. Please report this.",
        where,
    )


def _never() -> int:
    return 0


def _start_time(span: ReadableSpan) -> int:
    return span.start_time or 0


def _sid(span: ReadableSpan) -> int:
    span_id: int = span.context.span_id
    return span_id


def _hex_span(context: SpanContext | None) -> str:
    return f"span {context.span_id:016x}" if context is not None else "no context"


class Router(SpanProcessor):
    """Attributes every span to a test's ``TraceCapture`` when it starts.

    ``current`` is the capture of the running test (``None`` between tests).
    Spans of a finished test that are still open stay routed to it through
    ``_retained``, with their descendants, so they never show in a later test.
    """

    def __init__(self) -> None:
        self.current: TraceCapture | None = None
        self.leaked: deque[Leak] = deque()
        self._retained: dict[int, TraceCapture] = {}
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
            if parent is not None and capture is not None and parent.span_id in capture._origins:
                # The common case, inlined: a child of a span of the running test,
                # outside asyncio, in a thread whose origin record is cached.
                span_id = span.context.span_id
                local = self._local
                if getattr(local, "renames", -1) == _spawn.renames and (
                    not _spawn.asyncio_loaded or _spawn._running_loop() is None
                ):
                    capture._origins[span_id] = local.origin
                else:
                    capture._origins[span_id] = self._origin()
                capture._open[span_id] = span
                return
            owner = self._owner_of(span, parent, capture)
            if owner is not None:
                owner._started(span, self._origin())
                span_id = span.context.span_id
                if owner._closed:
                    self._retained[span_id] = owner
                if (parent is None or parent.span_id in owner._ambient) and not span.links:
                    spawn = current_spawn()
                    # Lost only if no span is current here: a root started with an
                    # explicit empty context where the context did arrive is deliberate.
                    if spawn is not None and not get_current_span().get_span_context().is_valid:
                        owner._spawns[span_id] = spawn
        except Exception:
            _internal_error("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        try:
            span_id = span.context.span_id
            owner = self.current
            if owner is None or span_id not in owner._open:
                owner = self._retained.get(span_id)
                if owner is None:
                    return
            if _spawn.asyncio_loaded and _spawn._running_loop() is not None:
                task = _spawn._current_task()
                if task is not None and getattr(task, "cancelling", _never)() > 0:
                    owner._cancelled.add(span_id)
            # TraceCapture._ended, inlined for the common case.
            owner._finished.append(span)
            owner._open.pop(span_id, None)
            if owner._waiters and owner._cond is not None:
                with owner._cond:
                    owner._cond.notify_all()
            if owner._closed:
                self.leaked.append(Leak(owner.name, span.name, (span.end_time or 0) - owner._closed_at))
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

    def drain_leaks(self) -> list[Leak]:
        """The spans that outlived their test since the last call."""
        drained = []
        while self.leaked:  # a deque: other threads may append meanwhile
            drained.append(self.leaked.popleft())
        return drained

    def open(self, capture: TraceCapture) -> None:
        self.current = capture
        if self.receiving:
            self._recent.append(_Received(capture))

    def close(self, capture: TraceCapture) -> None:
        """End the capture window; its open spans stay routed to it."""
        capture._closed = True
        capture._closed_at = time.time_ns()
        for span_id in list(capture._open):
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
        notify: dict[int, TraceCapture] = {}
        with self._receive_lock:
            current = self.current
            recent = self._recent
            if current is not None and not any(entry.capture is current for entry in recent):
                recent.append(_Received(current))  # the test that started the receiver
            for span, origin in spans:
                context = span.context
                if context is None:
                    continue
                span_id = context.span_id
                parent = span.parent
                owner = self._holder_of(parent.span_id, current) if parent is not None else None
                if owner is None:
                    owner = self._trace_owner(context.trace_id) or current
                if owner is None:
                    dropped += 1
                    continue
                origins = owner._origins
                if span_id in origins:
                    continue  # sent twice (an exporter's retry)
                if parent is not None and span_id in undecided:
                    index = origins.get(parent.span_id)
                    if index is not None and _origin_table[index].pid != origin.pid:
                        span._parent = SpanContext(
                            parent.trace_id, parent.span_id, True, parent.trace_flags, parent.trace_state
                        )
                origins[span_id] = intern_origin(origin)
                owner._finished.append(span)
                notify[id(owner)] = owner
                if owner._closed and (span.end_time or 0) > owner._closed_at:
                    self.leaked.append(Leak(owner.name, span.name, (span.end_time or 0) - owner._closed_at))
            self.dropped += dropped
        for owner in notify.values():
            if owner._waiters and owner._cond is not None:
                with owner._cond:
                    owner._cond.notify_all()
        return dropped

    def stop_receiving(self) -> None:
        """The receiver stopped: let go of the captures kept for it."""
        with self._receive_lock:
            self.receiving = False
            self._recent.clear()

    def _holder_of(self, span_id: int, current: TraceCapture | None) -> TraceCapture | None:
        """The capture that holds span ``span_id`` (running, retained or recent)."""
        if current is not None and span_id in current._origins:
            return current
        holder = self._retained.get(span_id)
        if holder is not None:
            return holder
        for entry in reversed(self._recent):
            if span_id in entry.capture._origins:
                return entry.capture
        return None

    def _trace_owner(self, trace_id: int) -> TraceCapture | None:
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
        self, span: Span, parent: SpanContext | None, capture: TraceCapture | None
    ) -> TraceCapture | None:
        """The slow path of ``on_start``: parent unknown to the running test."""
        if parent is not None:
            owner = self._retained.get(parent.span_id)
            if owner is not None:
                return owner
        if capture is None:
            return None
        scope = span.instrumentation_scope
        if scope is not None and scope.name in HARNESS_SCOPES:
            capture._ambient.add(span.context.span_id)
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


class _Received:
    """A capture and the trace ids of its spans, indexed incrementally for ``Router.receive``."""

    __slots__ = ("_ids", "_seen", "capture")

    def __init__(self, capture: TraceCapture) -> None:
        self.capture = capture
        self._ids: set[int] = set()
        self._seen = 0  # how many of capture._finished are indexed

    def trace_ids(self, *, refresh: bool) -> set[int]:
        if refresh:
            capture = self.capture
            finished = capture._finished
            start = self._seen if self._seen <= len(finished) else 0  # 0: cleared since
            ids = self._ids
            ids.update(span.context.trace_id for span in finished[start:])
            ids.update(span.context.trace_id for span in list(capture._open.values()))
            self._seen = len(finished)
        return self._ids
