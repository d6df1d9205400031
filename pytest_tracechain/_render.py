"""The text tree of captured traces, used by ``render()`` and every failure message."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from pytest_tracechain._graph import SpanGraph
from pytest_tracechain._origins import Origin

# Failure messages show at most this many spans; render() shows all by default.
MESSAGE_LIMIT = 200
# Deeper levels are not indented further (the line shows its depth instead).
MAX_INDENT = 40

_BRANCH, _LAST, _PIPE, _SPACE = "├─ ", "└─ ", "│  ", "   "


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
    parts = [paint(span.name, BOLD, color=color) + paint(kind_tag(span.kind), CYAN, color=color)]
    parts.append(paint(format_duration(span), DIM, color=color))
    if origin is not None:
        where = origin.describe(this_pid=this_pid if this_pid is not None else os.getpid())
        parts.append(paint(where, DIM, color=color))
    status = span.status
    if status is not None and status.status_code is StatusCode.ERROR:
        error = "ERROR" + (f": {status.description}" if status.description else "")
        parts.append(paint(error, RED, BOLD, color=color))
    return " · ".join(parts)


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
    ``graph`` is the span graph of ``spans`` (a caller that has built it).
    """
    origins = origins or {}
    highlight = highlight or {}
    if graph is None:
        graph = SpanGraph(spans, ambient)
    if not graph.by_id:
        return "  (no spans captured)"
    unique, children, tops, counts = graph.by_id, graph.children, graph.tops_by_trace, graph.counts

    this_pid = os.getpid()
    lines: list[str] = []
    shown = 0
    total = len(unique)

    def note_for(span: ReadableSpan) -> str:
        parent = span.parent
        if parent is None or parent.span_id in ambient:
            return ""
        if parent.is_remote:
            return f" (remote parent {parent.span_id:016x})"
        return f" (parent {parent.span_id:016x} not captured)"

    def label_for(span: ReadableSpan, top: bool) -> str:
        label = span_label(span, origins.get(span.context.span_id), this_pid=this_pid, color=color)
        if top:
            label += paint(note_for(span), YELLOW, color=color)
        mark = highlight.get(span.context.span_id)
        return label + (paint(f"  ← {mark}", RED, BOLD, color=color) if mark else "")

    # Past the limit, with spans to highlight: show the paths to them and say
    # how many spans each elided branch holds, so the offending spans are
    # never among the ones cut.
    keep: set[int] | None = None
    sizes: dict[int, int] = {}
    if limit is not None and total > limit and highlight:
        keep = set()
        for span_id in highlight:
            current = unique.get(span_id)
            while current is not None and current.context.span_id not in keep:
                keep.add(current.context.span_id)
                parent = current.parent
                current = unique.get(parent.span_id) if parent is not None else None
        sizes = graph.subtree_sizes()

    # Iterative depth-first walk: traces can be deeper than Python's recursion
    # limit. Indentation stops growing at MAX_INDENT levels (the line then
    # says its depth), so a deep trace renders in linear size.
    hidden = 0
    for key, roots in tops.items():  # in order of first start
        if keep is not None:
            if not any(root.context.span_id in keep for root in roots):
                hidden += counts[key]
                continue
            elided_roots = sum(
                sizes[root.context.span_id] for root in roots if root.context.span_id not in keep
            )
            roots = [root for root in roots if root.context.span_id in keep]
        elif limit is not None and shown >= limit:
            break
        else:
            elided_roots = 0
        count = counts[key]
        header = f"trace {key[0]:032x} · {count} span{'s' if count != 1 else ''}"
        lines.append(paint(header, BOLD, color=color))
        stack: list[tuple[ReadableSpan | int, str, bool, int]] = (
            [(elided_roots, "", True, 0)] if elided_roots else []
        )
        stack += [
            (root, "", index == len(roots) - 1 and not elided_roots, 0)
            for index, root in reversed(list(enumerate(roots)))
        ]
        while stack and (keep is not None or limit is None or shown < limit):
            item, prefix, last, depth = stack.pop()
            branch = _LAST if last else _BRANCH
            if isinstance(item, int):  # a line standing for elided sibling subtrees
                lines.append(prefix + branch + paint(f"... {item} more spans", YELLOW, color=color))
                continue
            span = item
            shown += 1
            deep = f"[depth {depth}] " if depth > MAX_INDENT else ""
            lines.append(f"{prefix}{branch}{deep}{label_for(span, depth == 0)}")
            kids: Sequence[ReadableSpan] = children.get(span.context.span_id, ())
            child_prefix = prefix if depth >= MAX_INDENT else prefix + (_SPACE if last else _PIPE)
            elided_count = 0
            if keep is not None and kids:
                elided_count = sum(
                    sizes[kid.context.span_id] for kid in kids if kid.context.span_id not in keep
                )
                kids = [kid for kid in kids if kid.context.span_id in keep]
                if elided_count:
                    stack.append((elided_count, child_prefix, True, depth + 1))
            for index in range(len(kids) - 1, -1, -1):
                is_last = index == len(kids) - 1 and not elided_count
                stack.append((kids[index], child_prefix, is_last, depth + 1))
    if keep is not None:
        # Branches cut inside a shown trace have their own "... N more spans"
        # line; this one counts only the traces left out whole.
        if hidden:
            lines.append(paint(f"... {hidden} more spans in other traces not shown", YELLOW, color=color))
    elif shown < total:
        lines.append(paint(f"... {total - shown} more spans not shown", YELLOW, color=color))
    return "\n".join(lines)
