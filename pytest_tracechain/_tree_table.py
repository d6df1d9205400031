"""The side-by-side table of a failed ``assert_trace_tree``: expected and actual, row by row.

The expected trees come in order, each extra span under the span it hangs
from, then the extra traces. Fully matched subtrees larger than
``COLLAPSE_AT`` spans take one row (every one of them when the expectation
is large); past ``ROW_LIMIT`` rows only the rows that differ and their
ancestors are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opentelemetry.sdk.trace import ReadableSpan

from pytest_tracechain._render import kind_tag
from pytest_tracechain._tree_diff import EXTRA, MATCHED, MISSING, Diff, Status
from pytest_tracechain._tree_parse import Node

__all__ = ["COLLAPSE_AT", "ROW_LIMIT", "Row", "focus", "format_table", "name_kind", "table_rows"]

ROW_LIMIT = 200
COLLAPSE_AT = 12
_EXPECTED_WIDTH = 48


@dataclass
class Row:
    status: Status | Literal[""]  # "" for the rows that stand for rows not shown
    depth: int
    expected: str
    actual: str
    note: str = ""


def name_kind(span: ReadableSpan) -> str:
    """``name [kind]``: what the actual column shows of a span."""
    return span.name + kind_tag(span.kind)


# -- the rows ----------------------------------------------------------------------


def table_rows(diff: Diff) -> list[Row]:
    """The side-by-side table: expected trees in order, extra spans where they hang."""
    rows: list[Row] = []
    # Big expectations: every fully matched subtree takes one row.
    collapse_at = COLLAPSE_AT if sum(root.size for root in diff.m.roots) <= ROW_LIMIT else 1
    stack: list[tuple[Node | ReadableSpan, int]] = [(root, 0) for root in reversed(diff.m.roots)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, ReadableSpan):  # an extra span under a placed one
            rows += _extra_rows(diff, item, depth, "")
        elif id(item) in diff.full:
            rows += _matched_rows(diff, item, depth, collapse_at)
        else:
            rows.append(_node_row(diff, item, depth))
            stack += _below(diff, item, depth + 1)
    for top in diff.graph.tops:
        if top.context.span_id not in diff.claimed:
            rows += _extra_rows(diff, top, 0, _stray_note(diff, top))
    return rows


def _node_row(diff: Diff, node: Node, depth: int) -> Row:
    """The row of a node not fully matched."""
    span = diff.pair.get(id(node))
    actual = name_kind(span) if span is not None else "—"
    return Row(diff.status.get(id(node), MISSING), depth, node.label, actual, diff.note.get(id(node), ""))


def _below(diff: Diff, node: Node, depth: int) -> list[tuple[Node | ReadableSpan, int]]:
    """What comes under a node's row, last first: its children, then the extra spans under its span."""
    below: list[tuple[Node | ReadableSpan, int]] = []
    span = diff.pair.get(id(node))
    if span is not None:
        extras = [kid for kid in diff.graph.kids(span) if kid.context.span_id not in diff.claimed]
        below += [(extra, depth) for extra in reversed(extras)]
    below += [(child, depth) for child in reversed(node.children)]
    return below


def _matched_rows(diff: Diff, node: Node, depth: int, collapse_at: int) -> list[Row]:
    """A fully matched subtree: one row when it is large, else a row per node."""
    span = diff.pair[id(node)]
    if node.size > collapse_at:
        note = f"and its {node.size - 1} descendants, all matched"
        return [Row(MATCHED, depth, node.label, name_kind(span), note)]
    rows = []
    stack = [(node, span, depth)]
    while stack:
        current, current_span, level = stack.pop()
        rows.append(Row(MATCHED, level, current.label, name_kind(current_span)))
        assigned = diff.m.assign(current.children, diff.graph.kids(current_span)) or {}
        stack.extend(
            (child, assigned[id(child)], level + 1)
            for child in reversed(current.children)
            if id(child) in assigned
        )
    return rows


def _extra_rows(diff: Diff, span: ReadableSpan, depth: int, note: str) -> list[Row]:
    """An extra span and the unclaimed spans under it."""
    rows = []
    stack = [(span, depth, note)]
    while stack:
        current, level, text = stack.pop()
        rows.append(Row(EXTRA, level, "", name_kind(current), text))
        kids = [kid for kid in diff.graph.kids(current) if kid.context.span_id not in diff.claimed]
        stack.extend((kid, level + 1, "") for kid in reversed(kids))
    return rows


def _stray_note(diff: Diff, top: ReadableSpan) -> str:
    """Why an unclaimed top is shown apart: a trace not expected, or its parent not captured."""
    if diff.graph.is_root(top):
        return "a root: a trace that was not expected"
    parent = top.parent
    assert parent is not None  # a span with no parent is a root
    return f"its parent (span {parent.span_id:016x}) was not captured"


# -- the text ----------------------------------------------------------------------


def focus(rows: list[Row]) -> list[Row]:
    """Past ROW_LIMIT rows: the rows that differ and their ancestors, matched runs elided."""
    if len(rows) <= ROW_LIMIT:
        return rows
    keep = _kept(rows)
    focused: list[Row] = []
    dropped = 0
    for index, row in enumerate(rows):
        if not keep[index]:
            dropped += 1
            continue
        if dropped:
            focused.append(_elided(rows[index - 1].depth, dropped))
            dropped = 0
        focused.append(row)
    if dropped:
        focused.append(_elided(rows[-1].depth, dropped))
    return focused


def _kept(rows: list[Row]) -> list[bool]:
    """Which rows to keep: those that differ, and the ancestors of a kept row."""
    keep = [False] * len(rows)
    need = -1  # rows at a depth below this are ancestors of a kept row
    for index in range(len(rows) - 1, -1, -1):
        row = rows[index]
        if row.status != MATCHED:
            keep[index] = True
            need = row.depth if need < 0 else min(need, row.depth)
        elif need > 0 and row.depth < need:
            keep[index] = True
            need = row.depth
    return keep


def _elided(depth: int, count: int) -> Row:
    return Row("", depth, "...", "", f"{count} matched rows not shown")


def format_table(rows: list[Row]) -> list[str]:
    """The lines of the table (focused, at most ROW_LIMIT rows), under a header."""
    rows = focus(rows)
    shown = rows[:ROW_LIMIT]
    width = min(
        _EXPECTED_WIDTH, max([len("expected")] + [2 * row.depth + len(row.expected) for row in shown])
    )
    lines = [f"  {'':<10}  {'expected':<{width}}  actual"]
    for row in shown:
        indent = "  " * row.depth
        expected = indent + row.expected if row.expected else ""
        actual = indent + row.actual
        line = f"  {row.status:<10}  {expected:<{width}}  {actual}"
        if row.note:
            line += f"  ({row.note})"
        lines.append(line.rstrip())
    if len(rows) > len(shown):
        lines.append(f"  ... {len(rows) - len(shown)} more rows not shown")
    return lines
