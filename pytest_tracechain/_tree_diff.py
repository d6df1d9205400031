"""Where a capture differs from the expected trees: each expected node paired with a span, or missing.

``Diff`` aligns as well as it can: whole matching subtrees first, then name
and kind, then name alone (wrong kind), level by level from the roots. An
expected node left over is *misplaced* when a span of its name sits elsewhere
(under another parent, or in another trace), else *missing*; the spans no node
claimed are *extra*.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Literal

from opentelemetry.sdk.trace import ReadableSpan

from pytest_tracechain._assertions import new_trace_hint
from pytest_tracechain._refs import Ref
from pytest_tracechain._state import CaptureState
from pytest_tracechain._tree_match import Matcher, pop_unused
from pytest_tracechain._tree_parse import Node

__all__ = [
    "DIFFERS",
    "EXTRA",
    "MATCHED",
    "MISPLACED",
    "MISSING",
    "STATUS_ORDER",
    "WRONG_KIND",
    "Diff",
    "Status",
]

Status = Literal["matched", "missing", "extra", "misplaced", "wrong kind", "differs"]
MATCHED: Status = "matched"
MISSING: Status = "missing"
EXTRA: Status = "extra"
MISPLACED: Status = "misplaced"
WRONG_KIND: Status = "wrong kind"
DIFFERS: Status = "differs"  # in place, but not with the attributes, links or remote parent given
# The order of the counts in the headline of a failure.
STATUS_ORDER: tuple[Status, ...] = (MISPLACED, MISSING, WRONG_KIND, DIFFERS, EXTRA)

# Expected siblings and the captured spans they are aligned with.
_Level = tuple[list[Node], list[ReadableSpan]]


def _links_to(source: ReadableSpan, target: ReadableSpan) -> bool:
    """``source`` has a link to ``target``."""
    target_id = target.context.span_id
    return any(link.context.span_id == target_id for link in source.links or ())


class Diff:
    """Aligns expected nodes with captured spans as well as it can, then explains."""

    def __init__(
        self,
        matcher: Matcher,
        capture: CaptureState | None,
        open_spans: list[ReadableSpan],
        timeout: float | None = None,
    ) -> None:
        self.m = matcher
        self.timeout = timeout
        self.graph = matcher.graph
        self.capture = capture
        self.open_spans = open_spans
        self.pair: dict[int, ReadableSpan] = {}  # node id -> span
        self.status: dict[int, Status] = {}  # node id -> status
        self.note: dict[int, str] = {}
        self.full: set[int] = set()  # node ids whose whole subtree matched
        self.claimed: set[int] = set()  # span ids
        self.nodes: dict[int, Node] = {}  # node id -> node, for the nodes paired or missing
        self.pending: deque[Node] = deque()
        self._align(matcher.roots, list(self.graph.tops))
        self._place_pending()

    # alignment ---------------------------------------------------------------------

    def _take(self, node: Node, span: ReadableSpan, status: Status) -> None:
        self.nodes[id(node)] = node
        self.pair[id(node)] = span
        self.status[id(node)] = status
        self.claimed.add(span.context.span_id)

    def _take_full(self, node: Node, span: ReadableSpan) -> None:
        """Pair a fully matched subtree: its root node, and claim every span under it.

        The nodes inside are paired only if the table shows them.
        """
        self._take(node, span, MATCHED)
        self.full.add(id(node))
        kid_ids = self.graph.kid_ids
        stack = list(kid_ids.get(span.context.span_id, ()))
        claimed = self.claimed
        while stack:
            span_id = stack.pop()
            claimed.add(span_id)
            stack += kid_ids.get(span_id, ())

    def _take_by_label(self, node: Node, span: ReadableSpan) -> None:
        """Pair a node with a span of its name (the children are aligned next); note a wrong kind, or
        details that differ."""
        if node.kind is None or span.kind is node.kind:
            differences = self.m.differences(node, span)
            self._take(node, span, MATCHED if differences is None else DIFFERS)
            if differences is not None:
                self.note[id(node)] = differences
            return
        self._take(node, span, WRONG_KIND)
        expected_kind, found_kind = node.kind.name.lower(), span.kind.name.lower()
        self.note[id(node)] = f"expected kind {expected_kind}, found {found_kind}"

    def _align(self, nodes: list[Node], spans: list[ReadableSpan]) -> None:
        """Pair expected siblings with captured siblings, then their children, without recursion.

        Whole matching subtrees first, then name and kind, then name alone
        (wrong kind); what is left waits for ``_place_pending``.
        """
        work: list[_Level] = [(nodes, spans)]
        while work:
            nodes, spans = work.pop()
            if not nodes:
                continue
            free = [span for span in spans if span.context.span_id not in self.claimed]
            used: set[int] = set()
            left = self._pair_whole(nodes, free, used)
            by_name: dict[str, list[ReadableSpan]] = {}
            for span in free:
                by_name.setdefault(span.name, []).append(span)
            for rule in (Node.fits, Node.names):
                left = self._pair_by_label(rule, left, by_name, free, used, work)
            self.pending += left

    def _pair_whole(self, nodes: list[Node], free: list[ReadableSpan], used: set[int]) -> list[Node]:
        """Pair the nodes whose whole subtree matches a free span's; the nodes left."""
        keyed = self.m.buckets(nodes, reversed(free))  # popped from the end: the first started first
        left: list[Node] = []
        for node in nodes:
            if node.key is not None:
                found = pop_unused(keyed.get(node.key), used)
            else:
                found = next(
                    (s for s in free if s.context.span_id not in used and self.m.full(node, s)), None
                )
            if found is None:
                left.append(node)
                continue
            used.add(found.context.span_id)
            self._take_full(node, found)
        return left

    def _pair_by_label(
        self,
        rule: Callable[[Node, ReadableSpan], bool],
        nodes: list[Node],
        by_name: dict[str, list[ReadableSpan]],
        free: list[ReadableSpan],
        used: set[int],
        work: list[_Level],
    ) -> list[Node]:
        """Pair nodes with the first free span ``rule`` accepts (their children go to ``work``); the rest."""
        left: list[Node] = []
        for node in nodes:
            pool = by_name.get(node.name, []) if isinstance(node.name, str) else free
            found = next((s for s in pool if s.context.span_id not in used and rule(node, s)), None)
            if found is None:
                left.append(node)
                continue
            used.add(found.context.span_id)
            self._take_by_label(node, found)
            work.append((node.children, self.graph.kids(found)))
        return left

    def _place_pending(self) -> None:
        """Expected spans not found where expected: misplaced if found elsewhere, else missing."""
        if not self.pending:
            return
        by_name: dict[str, list[ReadableSpan]] = defaultdict(list)
        for span in self.graph.ordered:
            by_name[span.name].append(span)
        while self.pending:
            node = self.pending.popleft()
            found = self._elsewhere(node, by_name)
            if found is None:
                self._missing(node)
                continue
            self._take(node, found, MISPLACED)
            self.note[id(node)] = self._where(node, found)
            self._align(node.children, self.graph.kids(found))

    def _elsewhere(self, node: Node, by_name: dict[str, list[ReadableSpan]]) -> ReadableSpan | None:
        """The first unclaimed span of ``node``'s name and kind, else of its name, in start order."""
        if isinstance(node.name, str):
            candidates: Iterable[ReadableSpan] = by_name.get(node.name, ())
        else:
            candidates = (span for span in self.graph.ordered if node.names(span))
        fallback = None
        for span in candidates:
            if span.context.span_id in self.claimed:
                continue
            if node.fits(span):
                return span
            if fallback is None:
                fallback = span
        return fallback

    def _missing(self, node: Node) -> None:
        self.status[id(node)] = MISSING
        self.nodes[id(node)] = node
        still_open = next((span for span in self.open_spans if node.names(span)), None)
        if still_open is not None:
            self.note[id(node)] = "a span of that name is still open" + (
                "" if self.timeout else ": pass timeout= to wait for it"
            )

    def expected_parent_span(self, node: Node) -> tuple[Node | None, ReadableSpan | None]:
        """The parent node of ``node`` and the span paired with it (either may be None)."""
        parent = node.parent
        return parent, (self.pair.get(id(parent)) if parent is not None else None)

    # why a span is misplaced ---------------------------------------------------------

    def _where(self, node: Node, span: ReadableSpan) -> str:
        """Where a misplaced span is, and why it is not where expected."""
        parent_node, expected_parent = self.expected_parent_span(node)
        where = self._place(span)
        if parent_node is None:
            return f"found {where}" + (" of another trace" if where == "a root" else "") + ", expected a root"
        expected = f"expected under {parent_node.label!r}"
        if expected_parent is None:
            return f"found {where}; {expected}"
        same_trace = self.graph.key(span) == self.graph.key(expected_parent)
        if where == "a root":
            where = "the root of another trace" if not same_trace else "a root of the same trace"
        elif not same_trace:
            where += " in another trace"
        return f"found {where}; {expected}" + _link_note(span, expected_parent)

    def _place(self, span: ReadableSpan) -> str:
        """Where ``span`` hangs: a root, under a captured span, or under one that was not captured."""
        if self.graph.is_root(span):
            return "a root"
        parent = span.parent
        assert parent is not None  # a span with no parent is a root
        parent_span = self.graph.by_id.get(parent.span_id)
        if parent_span is not None and parent.trace_id == span.context.trace_id:
            return f"under {parent_span.name!r}"
        if parent.is_remote:
            return f"under a remote parent (span {parent.span_id:016x}) that is not captured"
        return f"under span {parent.span_id:016x}, which was not captured"

    # presentation --------------------------------------------------------------------

    def counts(self) -> dict[Status, int]:
        counts: dict[Status, int] = defaultdict(int)
        for status in self.status.values():
            if status != MATCHED:
                counts[status] += 1
        extra = len(self.graph.by_id.keys() - self.claimed)
        if extra:
            counts[EXTRA] = extra
        return counts

    def hint(self) -> str | None:
        """Why the first misplaced span that started a trace of its own did so (the boundary it crossed)."""
        for node_id, status in self.status.items():  # in the order they were placed
            span = self.pair.get(node_id)
            if span is None or status != MISPLACED or span.links or not self.graph.is_root(span):
                continue
            _, expected_parent = self.expected_parent_span(self.nodes[node_id])
            if expected_parent is None or _links_to(expected_parent, span):
                continue
            lost = Ref(span.context, span, repr(span.name))
            anchor = Ref(expected_parent.context, expected_parent, repr(expected_parent.name))
            return new_trace_hint(lost, anchor, self.capture)
        return None

    def marks(self) -> dict[int, str]:
        """Highlights for the rendered traces: the spans that are not where expected."""
        marks: dict[int, str] = {}
        for node_id, status in self.status.items():
            span = self.pair.get(node_id)
            if span is None or status == MATCHED:
                continue
            marks[span.context.span_id] = status
            if status == MISPLACED:  # keep the trace it belongs in on screen, and say where
                _, expected_parent = self.expected_parent_span(self.nodes[node_id])
                if expected_parent is not None:
                    marks.setdefault(expected_parent.context.span_id, f"expected parent of {span.name!r}")
        for span_id in self.graph.by_id.keys() - self.claimed:
            marks[span_id] = EXTRA
        return marks


def _link_note(span: ReadableSpan, expected_parent: ReadableSpan) -> str:
    """When a link stands where the parent should: which way it goes."""
    if _links_to(span, expected_parent):
        return f" — it is linked to {expected_parent.name!r} instead of being its child"
    if _links_to(expected_parent, span):
        return f" — {expected_parent.name!r} links to it instead of being its parent"
    return ""
