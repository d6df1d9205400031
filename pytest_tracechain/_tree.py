"""``assert_trace_tree``: the whole expected shape of a capture, in one place.

The expected shape is an indented text tree (two spaces a level, an optional
trailing ``[kind]``, ``~regex`` names), or the same structure as nested tuples
or dicts. Sibling order never matters. Matching is exact: every captured span
must have its place in the expected trees, and every expected span a span.

When the shape differs, the message shows expected and actual side by side,
each line marked matched, missing, extra, misplaced (under another parent or in
another trace) or wrong kind, says when a span is linked to its expected parent
instead of being its child, and renders the traces involved.

The stages live apart: ``_tree_parse`` (the expected ``Node``s), ``_tree_match``
(structural keys, ``Matcher``), ``_tree_diff`` (``Diff``: the alignment and its
statuses, hints) and ``_tree_table`` (the side-by-side rows).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.sdk.trace import ReadableSpan

from pytest_tracechain._capture import TraceCapture, state_of
from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._filters import check_seconds
from pytest_tracechain._graph import SpanGraph, TraceKey, collection_paused
from pytest_tracechain._refs import running_state, span_list
from pytest_tracechain._render import MESSAGE_LIMIT, render_spans
from pytest_tracechain._state import CaptureState
from pytest_tracechain._tree_diff import STATUS_ORDER, Diff
from pytest_tracechain._tree_match import Matcher
from pytest_tracechain._tree_parse import FUNC, Node, parse_expected, walk
from pytest_tracechain._tree_table import format_table, table_rows

__all__ = ["assert_trace_tree"]

# Past this many captured traces, the traces involved are only those with a
# span that is not where expected (not also those merely matched).
_SHOW_MATCHED_TRACES_UP_TO = 50


def assert_trace_tree(
    expected: str | Mapping[object, object] | Sequence[object],
    spans: TraceCapture | Iterable[ReadableSpan] | None = None,
    *,
    timeout: float | None = None,
) -> None:
    """Pass when the captured traces have exactly the shape in ``expected``.

    ``expected`` is an indented text tree, two spaces a level, one root per
    expected trace; a trailing ``[kind]`` (a ``SpanKind`` name, any case) sets
    the span kind, so ``GET /items/[id]`` stays a name; a name that starts with
    ``~`` is a regular expression the whole name must match::

        GET /hello [server]
          service.User.Create
          user.events send [producer]
            user.events process [consumer]

    The same structure may be given as nested ``(name, children)`` or
    ``(name, kind, children)`` tuples, or a dict of ``name -> children``
    (children: a list, tuple or dict; a name may be a compiled regex).

    Sibling order does not matter; every captured span must have its place
    and every expected span a captured one. ``spans`` defaults to the running
    test's finished spans; it may be a ``TraceCapture`` or any iterable of
    spans. With ``timeout`` (seconds), waits until the capture matches
    (spans that end late in threads or other processes), then asserts.
    """
    __tracebackhide__ = True
    _assert_trace_tree(expected, spans, timeout)


def _assert_trace_tree(
    expected: object, spans: TraceCapture | Iterable[ReadableSpan] | None, timeout: float | None
) -> None:
    __tracebackhide__ = True
    with collection_paused():
        roots = parse_expected(expected)
    capture = _source(spans)
    _check_timeout(timeout, spans)
    if spans is None or isinstance(spans, TraceCapture):
        assert capture is not None
        if timeout:
            _wait(roots, capture, timeout)
        finished = capture.spans
        ambient: set[int] | frozenset[int] = capture.ambient
        open_spans = capture.open_spans()
    else:
        finished, ambient, open_spans = span_list(spans, FUNC, "spans"), frozenset(), []
    with collection_paused():
        matcher = Matcher(roots, SpanGraph(finished, ambient))
        if matcher.matches():
            return
        _explain(matcher, capture, open_spans, timeout)


def _source(spans: object) -> CaptureState | None:
    """The capture the spans come from (for origins and hints), if any; checks ``spans``."""
    __tracebackhide__ = True
    if spans is None:
        capture = running_state()
        if capture is None:
            raise RuntimeError(
                f"{FUNC}() compares the running test's spans, but no capture is running. Request the "
                "`tracechain` fixture (or mark the test with @pytest.mark.tracechain), or pass spans=."
            )
        return capture
    if isinstance(spans, TraceCapture):
        return state_of(spans)
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Iterable):
        raise TypeError(
            f"{FUNC}() argument 'spans' must be a TraceCapture or an iterable of spans, "
            f"not {type(spans).__name__}"
        )
    return running_state()


def _check_timeout(timeout: object, spans: object) -> None:
    __tracebackhide__ = True
    if timeout is None:
        return
    check_seconds(timeout, f"{FUNC}() argument 'timeout'")
    if not (spans is None or isinstance(spans, TraceCapture)):
        raise TypeError(
            f"{FUNC}() argument 'timeout' needs a capture to wait on: leave 'spans' out or pass "
            "the TraceCapture, not a list of spans"
        )


def _wait(roots: list[Node], capture: CaptureState, timeout: float) -> None:
    """Until the capture matches, or ``timeout`` seconds have passed."""
    count = len(walk(roots))
    ambient = capture.ambient

    def ready(finished: list[ReadableSpan]) -> bool:
        if len(finished) < count:
            return False
        with collection_paused():
            return Matcher(roots, SpanGraph(finished, ambient)).matches()

    capture.wait_until(ready, time.monotonic() + timeout)


def _explain(
    matcher: Matcher, capture: CaptureState | None, open_spans: list[ReadableSpan], timeout: float | None
) -> None:
    __tracebackhide__ = True
    diff = Diff(matcher, capture, open_spans, timeout)
    lines = [_headline(diff, timeout), "", *format_table(table_rows(diff))]
    hint = diff.hint()
    if hint:
        lines += ["", f"hint: {hint}"]
    lines += ["", "traces involved:", _rendered(diff, capture)]
    raise TraceAssertionError("\n".join(lines))


def _headline(diff: Diff, timeout: float | None) -> str:
    counts = diff.counts()
    summary = ", ".join(f"{counts[status]} {status}" for status in STATUS_ORDER if counts.get(status))
    traces = len(diff.m.roots)
    found = len(diff.graph.tops_by_trace)
    return (
        f"the captured spans do not have the expected shape: {summary or 'the trees differ'}"
        f" ({traces} expected trace{'s' if traces != 1 else ''}, {found} captured"
        + (f", after waiting {timeout:g} s" if timeout else "")
        + ")"
    )


def _rendered(diff: Diff, capture: CaptureState | None) -> str:
    """The traces involved, with the spans that differ marked."""
    origins = capture.origin_map if capture is not None else {}
    marks = diff.marks()
    graph = diff.graph
    involved = _involved(diff, marks)
    if involved >= graph.tops_by_trace.keys():  # every trace: the graph is already grouped
        return render_spans((), origins=origins, highlight=marks, limit=MESSAGE_LIMIT, graph=graph)
    return render_spans(
        [span for span in graph.ordered if graph.key(span) in involved],
        origins=origins,
        ambient=graph.ambient,
        highlight=marks,
        limit=MESSAGE_LIMIT,
    )


def _involved(diff: Diff, marks: dict[int, str]) -> set[TraceKey]:
    """The traces with a marked span, and (unless there are many) those an expected node matched in."""
    keys = diff.graph.keys
    involved = {keys[span_id] for span_id in marks if span_id in keys}
    if len(diff.graph.tops) <= _SHOW_MATCHED_TRACES_UP_TO:
        involved |= {keys[span.context.span_id] for span in diff.pair.values()}
    return involved
