"""``TraceCapture``: the user's view of one test's capture.

The router records into a ``CaptureState`` (``_state``); a ``TraceCapture``
is made by the plugin for each captured test and reads that state. Other
modules of the plugin reach the state through ``state_of``, never through
the view's fields.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from pytest_tracechain import _provider
from pytest_tracechain._graph import Trace, is_root
from pytest_tracechain._origins import Origin
from pytest_tracechain._router import Router
from pytest_tracechain._state import CaptureState

__all__ = ["Origin", "Router", "Trace", "TraceCapture", "state_of", "view_of"]


@final
class TraceCapture:
    """The spans started during one test, given by the ``tracechain`` fixture.

    Spans are attributed to a test when they start: to the test that owns
    their parent span when the parent was captured, otherwise to the test
    running then. Capture runs from the test's setup to the end of its
    teardown, so spans that end after their test never show in a later one.

    Made by the plugin only: request the ``tracechain`` fixture.
    """

    __slots__ = ("__weakref__", "_state")

    def __init__(self, state: CaptureState, *, _ispytest: bool = False) -> None:
        if not _ispytest or not isinstance(state, CaptureState):
            raise TypeError(
                "TraceCapture is made by pytest-tracechain for each captured test: request the "
                "`tracechain` fixture instead of constructing one"
            )
        self._state = state
        state.view = weakref.ref(self)

    @property
    def _read(self) -> CaptureState:
        """The state, once the spans the ``otlp_receiver`` answered for are in it (``_provider.settle``)."""
        _provider.settle()
        return self._state

    @property
    def name(self) -> str:
        """The node id of the test."""
        return self._state.name

    @property
    def spans(self) -> list[ReadableSpan]:
        """The finished spans of this test, in end order (a copy)."""
        return self._read.spans

    @property
    def open_spans(self) -> list[ReadableSpan]:
        """Spans started in this test and not yet ended, in start order."""
        return self._state.open_spans()

    @property
    def ambient_span_ids(self) -> frozenset[int]:
        """Span ids of the test harness's spans (see "roots are relative to the test")."""
        return frozenset(self._state.ambient)

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
        __tracebackhide__ = True
        return self._read.find(
            name, kind=kind, trace_id=trace_id, attributes=attributes, func="TraceCapture.find"
        )

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
        return self._read.one(
            name, kind=kind, trace_id=trace_id, attributes=attributes, func="TraceCapture.one"
        )

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
        return self._read.wait_for(
            name,
            count=count,
            timeout=timeout,
            kind=kind,
            trace_id=trace_id,
            attributes=attributes,
            func="TraceCapture.wait_for",
        )

    def traces(self) -> list[Trace]:
        """One ``Trace`` per trace of the finished spans, ordered by first start.

        Traces are relative to the test: under a plugin that wraps each test in
        a span (pytest-opentelemetry), each span whose parent is that ambient
        span starts a ``Trace`` of its own, although the trace ids are equal.
        """
        return self._read.traces()

    def origin(self, span: ReadableSpan | SpanContext | str) -> Origin:
        """Where ``span`` started: process id, thread name and id, asyncio task name.

        ``span`` is a span, a ``SpanContext``, or a span name (resolved with ``one``).
        """
        __tracebackhide__ = True
        return self._read.origin(span, "TraceCapture.origin")

    def is_root(self, span: ReadableSpan) -> bool:
        """No parent, or only the test's ambient span."""
        __tracebackhide__ = True
        if not isinstance(span, ReadableSpan):
            raise TypeError(
                "TraceCapture.is_root() argument 'span' must be a span (ReadableSpan), "
                f"not {type(span).__name__}"
            )
        return is_root(span, self._state.ambient)

    def render(
        self, *, highlight: Mapping[int, str] | None = None, limit: int | None = None, color: bool = False
    ) -> str:
        """The text tree of all captured traces, the view failure messages use.

        Each span shows its name, kind, duration, thread or task (and process
        when not this one) and an error status. ``highlight`` maps span ids to
        a marker shown after the span; ``limit`` cuts the output after that
        many spans ("... N more spans not shown"); ``color`` adds ANSI styles.
        """
        __tracebackhide__ = True
        from pytest_tracechain._render import check_render_arguments  # here: most tests render nothing

        check_render_arguments("TraceCapture.render", highlight, limit, color)
        return self._read.render(highlight=highlight, limit=limit, color=color)

    def tree(
        self,
        *,
        attributes: Sequence[str] = (),
        normalize: bool | Callable[[str], str] = False,
        where: Callable[[ReadableSpan], bool] | None = None,
        trace: Trace | ReadableSpan | int | str | None = None,
    ) -> str:
        """The finished traces as text in ``assert_trace_tree``'s syntax, for snapshots.

        One line a span, two spaces a level, each trace from its root; kinds
        where not INTERNAL; ``{remote}`` on a span whose parent context is
        remote and ``{links=[...]}`` with the names of the spans it links to.
        No ids, timings, threads or processes; siblings and traces in an order
        that depends only on the text, so the same shape gives the same text in
        every run. ``assert_trace_tree(capture.tree())`` passes.

        ``attributes`` lists attributes to show (``{http.route="/users"}``);
        ``normalize=True`` replaces UUIDs, hex ids, temporary queue names and
        numbers in names by placeholders (``<uuid>``, ``<hex>``, ``<n>``), or a
        function of a name returns the name to show; ``where`` keeps the spans
        it returns true for (spans whose parent it drops stand at the top);
        ``trace`` keeps one trace: a ``Trace``, a span of it, or its id.
        """
        __tracebackhide__ = True
        from pytest_tracechain._tree_text import capture_tree  # here: most sessions never take a snapshot

        state = self._read
        return capture_tree(
            state.spans,
            state.ambient,
            attributes=attributes,
            normalize=normalize,
            where=where,
            trace=trace,
            func="TraceCapture.tree",
        )

    def clear(self) -> None:
        """Forget the finished spans captured so far (open spans stay tracked)."""
        self._read.clear()  # the spans answered for before the call go too

    def __repr__(self) -> str:
        state = self._read
        return f"<TraceCapture {state.name!r}: {len(state.finished)} finished, {len(state.open)} open>"


def state_of(capture: TraceCapture) -> CaptureState:
    """The internal state behind the user's ``capture``, once the spans the ``otlp_receiver`` answered for
    are in it."""
    return capture._read


def view_of(state: CaptureState) -> TraceCapture:
    """The user's ``TraceCapture`` of ``state`` (made on first use)."""
    view = state.view() if state.view is not None else None
    if isinstance(view, TraceCapture):
        return view
    return TraceCapture(state, _ispytest=True)
