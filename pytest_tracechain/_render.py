"""The text tree of captured traces, used by ``render()`` and every failure message.

``render_spans`` runs in three stages: the elision plan (``plan_elision``: what
of the graph to show), the rows (``tree_rows``: the walk, shared with the HTML
page) and the format (labels, notes, marks, colour).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from pytest_tracechain._graph import SpanGraph, TraceKey, is_root
from pytest_tracechain._origins import Origin

# Failure messages show at most this many spans; render() shows all by default.
MESSAGE_LIMIT = 200
# Deeper levels are not indented further (the line shows its depth instead).
MAX_INDENT = 40

_BRANCH, _LAST, _PIPE, _SPACE = "├─ ", "└─ ", "│  ", "   "
_UNLIMITED = sys.maxsize


def format_duration(span: ReadableSpan) -> str:
    if span.end_time is None or span.start_time is None:
        return "open"
    return format_nanoseconds(span.end_time - span.start_time)


def format_nanoseconds(ns: int) -> str:
    if ns < 1_000_000:
        return f"{ns / 1000:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.1f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


# ANSI styles, used only when colour is asked for (a terminal that supports it).
BOLD, DIM, RED, GREEN, YELLOW, CYAN = "1", "2", "31", "32", "33", "36"


def paint(text: str, *styles: str, color: bool) -> str:
    """``text`` in the given ANSI styles when ``color``, else unchanged."""
    if not color or not text:
        return text
    return f"\x1b[{';'.join(styles)}m{text}\x1b[0m"


def kind_tag(kind: SpanKind) -> str:
    """`` [server]`` after a span name; nothing for INTERNAL, the default kind."""
    return "" if kind is SpanKind.INTERNAL else f" [{kind.name.lower()}]"


def span_label(
    span: ReadableSpan, origin: Origin | None = None, *, this_pid: int | None = None, color: bool = False
) -> str:
    """``name [kind] · duration · thread … · ERROR …`` for one span."""
    name, tag, duration = span.name, kind_tag(span.kind), format_duration(span)
    if color:  # painted only then: the labels of 100,000 spans are made in a loop
        name, tag, duration = (
            paint(name, BOLD, color=True),
            paint(tag, CYAN, color=True),
            paint(duration, DIM, color=True),
        )
    parts = [name + tag, duration]
    if origin is not None:
        where = origin.describe(this_pid=this_pid if this_pid is not None else os.getpid())
        parts.append(paint(where, DIM, color=color))
    status = span.status
    if status is not None and status.status_code is StatusCode.ERROR:
        error = "ERROR" + (f": {status.description}" if status.description else "")
        parts.append(paint(error, RED, BOLD, color=color))
    return " · ".join(parts)


# -- stage 1: the elision plan -------------------------------------------------------


# A trace to show: its key, the tops shown, the number of spans under the tops left out.
ShownTrace = tuple[TraceKey, Sequence[ReadableSpan], int]


@dataclass(frozen=True)
class Elision:
    """What of a span graph to show.

    - ``traces``: the traces shown, in order of first start;
    - ``budget``: the spans shown at most, in walk order (``limit``);
    - ``keep``: when set, only these spans are shown (the paths to the
      highlighted spans), every other subtree as one line with its size from
      ``sizes``;
    - ``not_shown``: the spans cut at the budget; ``other_traces``: the spans
      of the traces left out whole.
    """

    traces: Iterable[ShownTrace]
    budget: int = _UNLIMITED
    keep: Set[int] | None = None
    sizes: Mapping[int, int] = field(default_factory=dict)
    not_shown: int = 0
    other_traces: int = 0


def plan_elision(graph: SpanGraph, *, highlight: Collection[int] = (), limit: int | None = None) -> Elision:
    """Everything; the first ``limit`` spans; or, past the limit with spans to
    highlight, the paths to them, so the offending spans are never among the ones cut."""
    total = len(graph)
    if limit is None or total <= limit:
        return Elision(_EveryTrace(graph))
    if not highlight:
        budget = max(limit, 0)
        return Elision(_EveryTrace(graph), budget, not_shown=total - budget)
    return _kept_paths(graph, highlight)


class _EveryTrace:
    """Every trace of the graph with all its tops, read as needed (a cut render reads the first few)."""

    __slots__ = ("_tops_by_trace",)

    def __init__(self, graph: SpanGraph) -> None:
        self._tops_by_trace = graph.tops_by_trace

    def __iter__(self) -> Iterator[ShownTrace]:
        return ((key, tops, 0) for key, tops in self._tops_by_trace.items())


def _kept_paths(graph: SpanGraph, highlight: Iterable[int]) -> Elision:
    keep, sizes = _paths_to(graph, highlight), graph.subtree_sizes()
    traces: list[ShownTrace] = []
    other_traces = 0
    for key, tops in graph.tops_by_trace.items():
        shown, elided = _split(tops, keep, sizes)
        if shown:
            traces.append((key, shown, elided))
        else:
            other_traces += graph.counts[key]
    return Elision(tuple(traces), keep=keep, sizes=sizes, other_traces=other_traces)


def _paths_to(graph: SpanGraph, span_ids: Iterable[int]) -> set[int]:
    """The spans of ``span_ids`` in the graph and their ancestors."""
    keep: set[int] = set()
    for span_id in span_ids:
        span = graph.by_id.get(span_id)
        if span is None:
            continue
        keep.add(span_id)
        for parent, parent_span in graph.parent_chain(span):
            if parent_span is None or parent.span_id in keep:  # the rest of the way is kept already
                break
            keep.add(parent.span_id)
    return keep


def _split(
    spans: Sequence[ReadableSpan], keep: Set[int], sizes: Mapping[int, int]
) -> tuple[list[ReadableSpan], int]:
    """The ``spans`` kept, and the number of spans in the subtrees of the others."""
    kept: list[ReadableSpan] = []
    elided = 0
    for span in spans:
        span_id = span.context.span_id
        if span_id in keep:
            kept.append(span)
        else:
            elided += sizes[span_id]
    return kept, elided


# -- stage 2: the rows ---------------------------------------------------------------

# One line of a tree: (prefix, branch, depth, the span or the number of spans elided there).
Row = tuple[str, str, int, ReadableSpan | int]


def tree_rows(graph: SpanGraph, plan: Elision) -> Iterator[tuple[TraceKey, Iterator[Row]]]:
    """Each trace the plan shows, with its rows depth first, until the plan's budget is spent.

    Rows are made as they are read (a trace's rows are read before the next
    trace's), so a trace of 100,000 spans is never held as rows.
    """
    budget = _Budget(plan.budget)
    for key, tops, elided in plan.traces:
        if budget.left <= 0:
            return
        yield key, _walk(tops, elided, graph.children, plan, budget)


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def _walk(
    tops: Sequence[ReadableSpan],
    elided: int,
    children: Mapping[int, Sequence[ReadableSpan]],
    plan: Elision,
    budget: _Budget,
) -> Iterator[Row]:
    """The rows under ``tops``, while the budget lasts.

    Iterative: traces can be deeper than Python's recursion limit. The prefix
    stops growing at MAX_INDENT levels, so a deep trace renders in linear size.
    """
    stack: list[Row] = []
    _push(stack, tops, elided, "", 0)
    keep, sizes = plan.keep, plan.sizes
    while stack and budget.left > 0:
        row = stack.pop()
        yield row
        prefix, branch, depth, item = row
        if isinstance(item, int):
            continue
        budget.left -= 1
        kids = children.get(item.context.span_id)
        if kids:
            if depth < MAX_INDENT:
                prefix += _SPACE if branch == _LAST else _PIPE
            if keep is None:
                _push(stack, kids, 0, prefix, depth + 1)
            else:
                kept, elided = _split(kids, keep, sizes)
                _push(stack, kept, elided, prefix, depth + 1)


def _push(stack: list[Row], spans: Sequence[ReadableSpan], elided: int, prefix: str, depth: int) -> None:
    """Stack ``spans`` and then the line of the ``elided`` ones, to pop in that order; the last is └─."""
    if elided:
        stack.append((prefix, _LAST, depth, elided))
    if spans:
        stack.append((prefix, _BRANCH if elided else _LAST, depth, spans[-1]))
        if len(spans) > 1:
            stack.extend([(prefix, _BRANCH, depth, span) for span in spans[-2::-1]])


# -- stage 3: the format -------------------------------------------------------------


def check_render_arguments(func: str, highlight: object, limit: object, color: object) -> None:
    """The arguments of a public ``render``, checked once per call (``render_spans`` trusts them)."""
    __tracebackhide__ = True
    if highlight is not None:
        if not isinstance(highlight, Mapping):
            raise TypeError(
                f"{func}() argument 'highlight' must be a mapping of span ids (int) to marks (str), "
                f"not {type(highlight).__name__}"
            )
        for span_id, mark in highlight.items():
            if isinstance(span_id, bool) or not isinstance(span_id, int):
                raise TypeError(
                    f"{func}() argument 'highlight' must map span ids (int) to marks (str); "
                    f"it has a key of type {type(span_id).__name__}"
                )
            if not isinstance(mark, str):
                raise TypeError(
                    f"{func}() argument 'highlight' must map span ids (int) to marks (str); "
                    f"the mark of span {span_id:016x} is {type(mark).__name__}"
                )
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"{func}() argument 'limit' must be an int or None, not {type(limit).__name__}")
        if limit < 0:
            raise ValueError(f"{func}() argument 'limit' must be at least 0, not {limit}")
    if not isinstance(color, bool):
        raise TypeError(f"{func}() argument 'color' must be True or False, not {type(color).__name__}")


def render_spans(
    spans: Iterable[ReadableSpan],
    *,
    origins: Mapping[int, Origin] | None = None,
    ambient: Collection[int] = frozenset(),
    highlight: Mapping[int, str] | None = None,
    limit: int | None = None,
    color: bool = False,
    graph: SpanGraph | None = None,
) -> str:
    """Render spans as one tree per trace, traces ordered by first start.

    Spans whose parent is not among ``spans`` are shown at the top of their
    trace with a note saying where the parent is. ``highlight`` maps span ids
    to a marker shown after the span (``← child``). ``limit`` cuts the output
    after that many spans with a line saying how many were left out.
    ``color`` adds ANSI styles (for a terminal that supports them).
    ``graph`` is the span graph of ``spans`` (a caller that has built it;
    ``spans`` and ``ambient`` are then read from it).
    """
    highlight = highlight or {}
    if graph is None:
        graph = SpanGraph(spans, ambient)
    if not graph.by_id:
        return "  (no spans captured)"
    plan = plan_elision(graph, highlight=highlight, limit=limit)
    label = _labeller(origins or {}, graph.ambient, highlight, color)
    return "\n".join(_lines(graph, plan, label, color))


def _lines(
    graph: SpanGraph, plan: Elision, label: Callable[[ReadableSpan, bool], str], color: bool
) -> list[str]:
    """The text of the rows, under a header per trace, and what was left out."""
    lines: list[str] = []
    for key, rows in tree_rows(graph, plan):
        count = graph.counts[key]
        lines.append(
            paint(f"trace {key[0]:032x} · {count} span{'s' if count != 1 else ''}", BOLD, color=color)
        )
        for prefix, branch, depth, item in rows:
            if isinstance(item, int):  # a line standing for elided sibling subtrees
                lines.append(prefix + branch + paint(f"... {item} more spans", YELLOW, color=color))
            else:
                deep = f"[depth {depth}] " if depth > MAX_INDENT else ""
                lines.append(f"{prefix}{branch}{deep}{label(item, depth == 0)}")
    lines += _left_out(plan, color)
    return lines


def _labeller(
    origins: Mapping[int, Origin], ambient: Collection[int], highlight: Mapping[int, str], color: bool
) -> Callable[[ReadableSpan, bool], str]:
    """The label of a row's span: a top's says where its parent is; a highlighted one has its mark."""
    this_pid = os.getpid()

    def label(span: ReadableSpan, top: bool) -> str:
        span_id = span.context.span_id
        text = span_label(span, origins.get(span_id), this_pid=this_pid, color=color)
        if top:
            text += paint(parent_note(span, ambient), YELLOW, color=color)
        mark = highlight.get(span_id)
        return text + (paint(f"  ← {mark}", RED, BOLD, color=color) if mark else "")

    return label


def parent_note(span: ReadableSpan, ambient: Collection[int] = frozenset()) -> str:
    """`` (remote parent …)`` or `` (parent … not captured)`` for a top that is not a root."""
    parent = span.parent
    if parent is None or is_root(span, ambient):
        return ""
    if parent.is_remote:
        return f" (remote parent {parent.span_id:016x})"
    return f" (parent {parent.span_id:016x} not captured)"


def _left_out(plan: Elision, color: bool) -> list[str]:
    # Branches cut inside a shown trace have their own "... N more spans" line;
    # past the limit with a highlight, this one counts only the traces left out whole.
    if plan.other_traces:
        return [paint(f"... {plan.other_traces} more spans in other traces not shown", YELLOW, color=color)]
    if plan.not_shown:
        return [paint(f"... {plan.not_shown} more spans not shown", YELLOW, color=color)]
    return []
