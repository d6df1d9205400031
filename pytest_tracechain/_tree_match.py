"""Exact, order-insensitive matching of expected trees against a ``SpanGraph``.

Subtrees are compared by structural keys: equal keys mean equal subtrees,
sibling order aside. ``k`` keys cover names and kinds, ``n`` keys names only
(for expected trees that give no kinds); expected and captured subtrees share
one table. Expected subtrees with patterns, or with kinds given on some nodes
only, have no key and are matched span by span (augmenting paths).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from opentelemetry.sdk.trace import ReadableSpan

from pytest_tracechain._graph import SpanGraph, links_of
from pytest_tracechain._tree_details import link_names
from pytest_tracechain._tree_parse import KeyMode, Node, walk

__all__ = ["Matcher", "captured_keys", "expected_keys", "pop_unused", "pre_order"]

# (name, kind or None, sorted child keys) -> key
_Table = dict[tuple[object, ...], int]


def pop_unused(bucket: list[ReadableSpan] | None, used: set[int]) -> ReadableSpan | None:
    """The last span of ``bucket`` not in ``used`` (by span id), taken off it; None when there is none."""
    while bucket and bucket[-1].context.span_id in used:
        bucket.pop()
    return bucket.pop() if bucket else None


def expected_keys(roots: list[Node], table: _Table) -> set[KeyMode]:
    """Give each plain expected subtree a structural key, and each node its parent and size.

    Returns the modes used (``k``: with kinds, ``n``: names only). One loop, no
    helper calls: it runs once per expected span.
    """
    modes: set[KeyMode] = set()
    for node in reversed(walk(roots)):  # children before parents
        mode: KeyMode = "k" if node.kind is not None else "n"
        children = node.children
        if children:
            size, plain, child_keys_list = 1, True, []
            for child in children:
                child.parent = node
                size += child.size
                key = child.key
                if key is None or key[0] != mode:
                    plain = False
                else:
                    child_keys_list.append(key[1])
            node.size = size
            if not plain:
                continue
            child_keys = (
                tuple(sorted(child_keys_list)) if len(child_keys_list) > 1 else tuple(child_keys_list)
            )
        else:
            child_keys = ()
        if type(node.name) is not str or node.details is not None:
            continue
        entry = (node.name, node.kind, child_keys)
        index = table.get(entry)
        if index is None:
            index = table[entry] = len(table)
        node.key = (mode, index)
        modes.add(mode)
    return modes


def captured_keys(graph: SpanGraph, mode: KeyMode, table: _Table) -> dict[int, int]:
    """Span id -> the structural key of its subtree, computed bottom-up, without recursion."""
    keys: dict[int, int] = {}
    with_kind = mode == "k"
    kid_ids, by_id = graph.kid_ids, graph.by_id
    for span_id in reversed(pre_order(graph)):  # children before parents
        kids = kid_ids.get(span_id)
        span = by_id[span_id]
        if not kids:
            child_keys: tuple[int, ...] = ()
        elif len(kids) == 1:
            child_keys = (keys[kids[0]],)
        else:
            child_keys = tuple(sorted([keys[kid] for kid in kids]))
        entry = (span.name, span.kind if with_kind else None, child_keys)
        key = table.get(entry)
        if key is None:
            key = table[entry] = len(table)
        keys[span_id] = key
    return keys


def pre_order(graph: SpanGraph) -> list[int]:
    """Every span id, each before its children."""
    kid_ids = graph.kid_ids
    order: list[int] = []
    stack = [top.context.span_id for top in graph.tops]
    while stack:
        span_id = stack.pop()
        order.append(span_id)
        kids = kid_ids.get(span_id)
        if kids:
            stack += kids
    return order


def _kinds_first(node: Node) -> bool:
    return node.key is not None and node.key[0] != "k"


class Matcher:
    """Exact, order-insensitive matching of expected trees against the graph's spans."""

    def __init__(self, roots: list[Node], graph: SpanGraph) -> None:
        self.roots = roots
        self.graph = graph
        table: _Table = {}
        modes = expected_keys(roots, table)
        self.keys = {mode: captured_keys(graph, mode, table) for mode in modes}
        self._memo: dict[tuple[int, int], bool] = {}

    def key_of(self, mode: KeyMode, span: ReadableSpan) -> int:
        return self.keys[mode][span.context.span_id]

    def matches(self) -> bool:
        return self.assign(self.roots, self.graph.tops) is not None

    def full(self, node: Node, span: ReadableSpan) -> bool:
        """``span``'s subtree has exactly ``node``'s shape."""
        if node.key is not None:
            return self.key_of(node.key[0], span) == node.key[1]
        memo_key = (id(node), span.context.span_id)
        known = self._memo.get(memo_key)
        if known is None:
            kids = self.graph.kids(span)
            known = (
                node.fits(span)
                and (node.details is None or self.differences(node, span) is None)
                and len(kids) == len(node.children)
                and self.assign(node.children, kids) is not None
            )
            self._memo[memo_key] = known
        return known

    def differences(self, node: Node, span: ReadableSpan) -> str | None:
        """How ``span`` differs from the ``{...}`` details ``node`` gives, or None."""
        if node.details is None:
            return None
        return node.details.differences(span, link_names(links_of(span), self.graph.by_id))

    def assign(self, nodes: Sequence[Node], spans: Sequence[ReadableSpan]) -> dict[int, ReadableSpan] | None:
        """A one-to-one assignment of ``nodes`` to ``spans`` with full matches (node id -> span), or None."""
        if len(nodes) != len(spans):
            return None
        result: dict[int, ReadableSpan] = {}
        # Names and kinds ("k") before names alone ("n"): spans of one "k" key are alike for every
        # "n" key, so taking them first never takes a span a names-only node needed.
        keyed = sorted((node for node in nodes if node.key is not None), key=_kinds_first)
        free = self._assign_keyed(keyed, spans, result)
        rest = [node for node in nodes if node.key is None]
        if free is not None and (not rest or self._assign_rest(rest, free, result)):
            return result
        if not rest:
            return None
        # The keyed nodes may have taken a span only a pattern fits: match all of them, span by span.
        result = {}
        return result if self._assign_rest(list(nodes), list(spans), result) else None

    def _assign_keyed(
        self, keyed: list[Node], spans: Sequence[ReadableSpan], result: dict[int, ReadableSpan]
    ) -> list[ReadableSpan] | None:
        """Assign the nodes with structural keys by key; the spans left, or None if one has no span."""
        if not keyed:
            return list(spans)
        buckets = self.buckets(keyed, spans)
        used: set[int] = set()
        for node in keyed:
            assert node.key is not None
            found = pop_unused(buckets.get(node.key), used)
            if found is None:
                return None
            used.add(found.context.span_id)
            result[id(node)] = found
        return [span for span in spans if span.context.span_id not in used]

    def buckets(
        self, nodes: Iterable[Node], spans: Iterable[ReadableSpan]
    ) -> dict[tuple[KeyMode, int], list[ReadableSpan]]:
        """The spans by structural key, in each mode the keyed ``nodes`` use (a span in each mode)."""
        buckets: dict[tuple[KeyMode, int], list[ReadableSpan]] = defaultdict(list)
        modes = {node.key[0] for node in nodes if node.key is not None}
        for span in spans:
            for mode in modes:
                buckets[(mode, self.key_of(mode, span))].append(span)
        return buckets

    def _assign_rest(
        self, rest: list[Node], free: list[ReadableSpan], result: dict[int, ReadableSpan]
    ) -> bool:
        """Kuhn's augmenting paths over the nodes with patterns or mixed kinds."""
        owner: dict[int, int] = {}  # span index in free -> node index in rest
        for index in range(len(rest)):
            if not self._augment(index, rest, free, owner, set()):
                return False
        for span_index, node_index in owner.items():
            result[id(rest[node_index])] = free[span_index]
        return True

    def _augment(
        self, index: int, nodes: list[Node], spans: list[ReadableSpan], owner: dict[int, int], seen: set[int]
    ) -> bool:
        for span_index, span in enumerate(spans):
            if span_index in seen or not self.full(nodes[index], span):
                continue
            seen.add(span_index)
            if span_index not in owner or self._augment(owner[span_index], nodes, spans, owner, seen):
                owner[span_index] = index
                return True
        return False
