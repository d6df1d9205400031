"""The internal state of one test's capture, and the queries over it.

The router records into a ``CaptureState`` through ``record_start`` (or
``record_child_start``) and ``record_end`` (the hot path); the user's ``TraceCapture`` is a view of it;
the chain rules read it through the narrow ``Facts`` protocol of ``_chain``
(``spans``, ``ambient``, ``known_ids``, ``origin_of``, ``spawn_of``,
``rules``). Its fields are the capture's own: only the router, the scope
recorder and this module write them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import SpanContext, SpanKind

from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._filters import argument, check_count, check_seconds, describe_filters, span_filter
from pytest_tracechain._graph import SpanGraph, Trace
from pytest_tracechain._origins import Origin, OriginsView, current_table
from pytest_tracechain._render import MESSAGE_LIMIT, render_spans
from pytest_tracechain._scope import ScopeEvent
from pytest_tracechain._settings import Rules
from pytest_tracechain._spawn import Injection, Spawn

if TYPE_CHECKING:
    import re

__all__ = ["CaptureState"]

_condition_lock = threading.Lock()


def _nothing_to_say() -> str | None:
    return None


# Why the provider cannot record anything (set by _provider, which knows the provider).
why_nothing_is_captured: Callable[[], str | None] = _nothing_to_say


def _start_time(span: ReadableSpan) -> int:
    return span.start_time or 0


def _sid(span: ReadableSpan) -> int:
    span_id: int = span.context.span_id
    return span_id


def _hex_span(context: SpanContext | None) -> str:
    return f"span {context.span_id:016x}" if context is not None else "no context"


class CaptureState:
    """What was recorded while one test ran: spans, origins, spawns, scope events."""

    __slots__ = (
        "__weakref__",
        "ambient",
        "cancelled",
        "closed",
        "closed_at",
        "cond",
        "finished",
        "injections",
        "late",
        "name",
        "open",
        "origins",
        "phase_mark",
        "received",
        "reshaped",
        "rules",
        "scope_events",
        "spawns",
        "table",
        "unproven",
        "unproven_open",
        "view",
        "waiters",
    )

    def __init__(self, name: str = "", rules: Rules | None = None) -> None:
        self.name = name
        self.rules = rules if rules is not None else Rules()
        self.finished: list[ReadableSpan] = []
        self.open: dict[int, Span] = {}
        # Spans not recorded as the child of a local span of this test (``record_child_start``): roots,
        # mostly; the only ones whose parents the end-of-test check must read, unless ``reshaped``.
        # Their ids while open, then the finished span (the SDK's span is let go when it ends).
        self.unproven_open: set[int] = set()
        self.unproven: list[ReadableSpan] = []
        self.reshaped = False  # a span of this test became ambient: its children are roots now
        self.origins: dict[int, int] = {}  # span id -> index in the origin table, in start order
        self.table = current_table()  # the router sets the one current at open
        self.ambient: set[int] = set()
        # Spans that ended inside an asyncio task being cancelled (Python 3.11+);
        # OpenTelemetry does not record CancelledError on spans.
        self.cancelled: set[int] = set()
        self.phase_mark = 0
        # Spawn records of root spans started in work handed to another thread.
        self.spawns: dict[int, Spawn] = {}
        self.scope_events: list[ScopeEvent] = []
        # The first injection into a carrier of each span, by span id, in injection order.
        self.injections: dict[int, Injection] = {}
        self.cond: threading.Condition | None = None  # made by the first wait
        self.waiters = 0
        self.closed = False
        self.closed_at = 0
        self.late = 0  # spans started after the test closed (routed here)
        self.received = False  # spans came from other processes
        # A weak reference to the user's TraceCapture (typed loosely: this module
        # does not import the view's). Weak, so state and view form no cycle and
        # a finished test's spans are freed by reference counting, not left for
        # the garbage collector.
        self.view: Callable[[], object] | None = None

    # -- what the router calls -------------------------------------------------------

    def record_start(self, span_id: int, span: Span, origin: int) -> None:
        """A span of this test started (``origin``: its index in the origin table)."""
        self.origins[span_id] = origin
        self.open[span_id] = span
        self.unproven_open.add(span_id)

    def record_child_start(self, span_id: int, span: Span, origin: int) -> None:
        """``record_start`` of a span whose parent is a span this test holds, and not remote.

        The router's common case: the end-of-test check need not read it again.
        """
        self.origins[span_id] = origin
        self.open[span_id] = span

    def record_end(self, span_id: int, span: ReadableSpan) -> None:
        """A span of this test ended: it joins the finished spans; waiters look again."""
        self.finished.append(span)
        self.open.pop(span_id, None)
        if span_id in self.unproven_open:
            self.unproven_open.discard(span_id)
            self.unproven.append(span)
        if self.waiters and self.cond is not None:
            self.notify()

    def record_received(self, span_id: int, span: ReadableSpan, origin: int) -> None:
        """A finished span received from another process (the caller notifies)."""
        self.origins[span_id] = origin
        self.finished.append(span)
        self.received = True

    def notify(self) -> None:
        cond = self.cond
        if cond is not None:
            with cond:
                cond.notify_all()

    def phase_ended(self) -> None:
        """Remember how many spans had started when a test phase (setup, call) ended."""
        self.phase_mark = len(self.origins)

    def _started_since_phase_end(self, span_id: int) -> bool:
        # origins keeps start order: spans started since the mark are its last entries.
        count = len(self.origins) - self.phase_mark
        return count > 0 and span_id in islice(reversed(self.origins), count)

    def add_ambient(self, span_id: int) -> None:
        """Mark the span current at a phase start as the test's ambient span.

        That is a span from before the capture began, or one that started
        between two phases, which only another plugin's hook wrapper can do
        (pytest-otel's per-test span). A span the test started during an
        earlier phase (a fixture's span kept current) stays the test's own.
        """
        if span_id in self.origins:
            if not self._started_since_phase_end(span_id):
                return
            self.open.pop(span_id, None)
            self.origins.pop(span_id, None)
            self.reshaped = True
        self.ambient.add(span_id)

    # -- facts the analysis reads -------------------------------------------------------

    @property
    def spans(self) -> list[ReadableSpan]:
        """The finished spans, in end order (a copy)."""
        return list(self.finished)

    def spans_to_prove(self) -> list[ReadableSpan]:
        """The finished spans whose parents ``is_trivially_intact`` must read.

        The rest started as children of a local (not remote) span of this test
        (``record_child_start``), which stays known: their check was made at start.
        """
        return list(self.finished if self.reshaped else self.unproven)

    @property
    def known_ids(self) -> Collection[int]:
        """Every span id this capture held (a cleared span is still a known parent)."""
        return self.origins

    @property
    def origin_map(self) -> OriginsView:
        return OriginsView(self.origins, self.table)

    def holds(self, span_id: int) -> bool:
        """Whether span ``span_id`` started in (or was received by) this capture."""
        return span_id in self.origins

    def origin_of(self, span_id: int) -> Origin | None:
        index = self.origins.get(span_id)
        return self.table.at(index) if index is not None else None

    def spawn_of(self, span_id: int) -> Spawn | None:
        return self.spawns.get(span_id)

    def was_cancelled(self, span_id: int) -> bool:
        return span_id in self.cancelled

    def open_spans(self) -> list[ReadableSpan]:
        """Spans started here and not yet ended, in start order."""
        live: list[ReadableSpan] = [span for span in list(self.open.values()) if span.end_time is None]
        live.sort(key=_start_time)
        return live

    def all_spans(self) -> list[ReadableSpan]:
        """The finished spans, then the open ones."""
        return list(self.finished) + self.open_spans()

    def graph(self, spans: list[ReadableSpan] | None = None) -> SpanGraph:
        """The span graph of ``spans`` (default: every span, finished or open)."""
        return SpanGraph(self.all_spans() if spans is None else spans, self.ambient)

    def lookup(self, span_id: int) -> ReadableSpan | None:
        """The captured span with that id, finished or open."""
        for span in self.all_spans():
            if span.context.span_id == span_id:
                return span
        return None

    # -- queries of the user's view -----------------------------------------------------

    def find(
        self,
        name: str | re.Pattern[str] | None = None,
        *,
        kind: SpanKind | str | None = None,
        trace_id: int | str | None = None,
        attributes: Mapping[str, Any] | None = None,
        func: str | None = None,
    ) -> list[ReadableSpan]:
        """The finished spans matching the filters (checked; ``func``, the public entry, named in errors)."""
        __tracebackhide__ = True
        matches = span_filter(name, kind=kind, trace_id=trace_id, attributes=attributes, func=func)
        return [span for span in list(self.finished) if matches(span)]

    def one(
        self,
        name: str | re.Pattern[str] | None = None,
        *,
        kind: SpanKind | str | None = None,
        trace_id: int | str | None = None,
        attributes: Mapping[str, Any] | None = None,
        func: str | None = None,
    ) -> ReadableSpan:
        __tracebackhide__ = True
        found = self.find(name, kind=kind, trace_id=trace_id, attributes=attributes, func=func)
        if len(found) == 1:
            return found[0]
        wanted = describe_filters(name, kind=kind, trace_id=trace_id, attributes=attributes)
        if found:
            headline = f"expected exactly one {wanted}, found {len(found)}"
        else:
            headline = f"expected exactly one {wanted}, found none"
        raise TraceAssertionError(self.explain(headline, highlight={_sid(s): "match" for s in found}))

    def by_name(self, name: str) -> ReadableSpan:
        """``one(name)``, falling back to a single still-open span of that name."""
        __tracebackhide__ = True
        if not self.find(name):
            still_open = [s for s in self.open_spans() if s.name == name]
            if len(still_open) == 1:
                return still_open[0]
        return self.one(name)

    def wait_for(
        self,
        name: str | re.Pattern[str] | None,
        *,
        count: int,
        timeout: float,
        kind: SpanKind | str | None,
        trace_id: int | str | None,
        attributes: Mapping[str, Any] | None,
        func: str | None = None,
    ) -> list[ReadableSpan]:
        __tracebackhide__ = True
        check_count(count, func)
        check_seconds(timeout, argument(func, "timeout"))
        matches = span_filter(name, kind=kind, trace_id=trace_id, attributes=attributes, func=func)
        found: list[ReadableSpan] = []

        def enough(finished: list[ReadableSpan]) -> bool:
            found[:] = [span for span in finished if matches(span)]
            return len(found) >= count

        if self.wait_until(enough, time.monotonic() + timeout):
            return found
        wanted = describe_filters(name, kind=kind, trace_id=trace_id, attributes=attributes)
        if count != 1:
            wanted = "spans" + wanted[len("span") :]
        still_open = [s for s in self.open_spans() if matches(s)]
        headline = (
            f"timed out after {timeout:g} s waiting for {count} finished {wanted}; "
            f"{len(found)} finished" + (f", {len(still_open)} matching still open" if still_open else "")
        )
        highlight = {_sid(s): "match" for s in found}
        highlight.update({_sid(s): "match, still open" for s in still_open})
        raise TraceAssertionError(self.explain(headline, highlight=highlight))

    def wait_until(self, done: Callable[[list[ReadableSpan]], bool], deadline: float) -> bool:
        """Wait until ``done(finished spans)`` holds or ``deadline`` (monotonic) passes.

        Checks again at every span end (the router notifies), never polls.
        """
        with _condition_lock:
            if self.cond is None:
                self.cond = threading.Condition(threading.Lock())
        with self.cond:
            self.waiters += 1
            try:
                while True:
                    if done(list(self.finished)):
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self.cond.wait(remaining)
            finally:
                self.waiters -= 1

    def traces(self) -> list[Trace]:
        return self.graph(list(self.finished)).trace_list()

    def origin(self, span: ReadableSpan | SpanContext | str, func: str | None = None) -> Origin:
        __tracebackhide__ = True
        if isinstance(span, str):
            span = self.by_name(span)
        if isinstance(span, ReadableSpan):
            context = span.context
        elif isinstance(span, SpanContext):
            context = span
        else:
            raise TypeError(
                f"{argument(func, 'span')} must be a span (ReadableSpan), a SpanContext or a span name, "
                f"not {type(span).__name__}"
            )
        origin = self.origin_of(context.span_id) if context is not None else None
        if origin is None:
            label = _hex_span(context)
            if isinstance(span, ReadableSpan):
                label = f"{span.name!r} ({label})"
            raise TraceAssertionError(self.explain(f"{label} was not captured in this test"))
        return origin

    def render(
        self,
        *,
        highlight: Mapping[int, str] | None = None,
        limit: int | None = None,
        color: bool = False,
    ) -> str:
        """The text tree of all captured spans, finished and open."""
        return render_spans(
            self.all_spans(),
            origins=self.origin_map,
            ambient=self.ambient,
            highlight=highlight or {},
            limit=limit,
            color=color,
        )

    def clear(self) -> None:
        self.finished.clear()
        self.unproven.clear()

    def let_go(self) -> None:
        """A finished test nothing reads any more: keep only what routes late spans to it.

        Its span ids and origins (``origins``), open spans and counters stay; its finished spans and
        what only the check and the user's queries read of them go.
        """
        self.clear()
        self.injections = {}
        self.spawns = {}
        self.scope_events = []
        self.cancelled = set()

    def unread(self) -> bool:
        """Whether nothing can read this test's finished spans any more: its ``TraceCapture`` was freed.

        (At the end of the test's protocol, unless the user kept it. A state that never had a
        view, made by hand, counts as read.)
        """
        view = self.view
        return view is not None and view() is None

    def explain(self, headline: str, *, highlight: Mapping[int, str] | None = None) -> str:
        """A failure message: ``headline``, then the captured trees with ``highlight``.

        When nothing at all was captured and the provider cannot record
        anything (``OTEL_SDK_DISABLED``, an always-off sampler), it says so.
        """
        rendered = self.render(highlight=highlight, limit=MESSAGE_LIMIT)
        message = f"{headline}\n\ncaptured in this test:\n{rendered}"
        if not self.origins:
            reason = why_nothing_is_captured()
            if reason is not None:
                message += f"\n\nnothing can be captured: {reason}"
        return message

    def __repr__(self) -> str:
        return f"<CaptureState {self.name!r}: {len(self.finished)} finished, {len(self.open)} open>"
