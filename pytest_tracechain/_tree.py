"""``assert_trace_tree``: the whole expected shape of a capture, in one place.

The expected shape is an indented text tree (two spaces a level, an optional
trailing ``[kind]``, ``~regex`` names), or the same structure as nested tuples
or dicts. Sibling order never matters. Matching is exact: every captured span
must have its place in the expected trees, and every expected span a span.

When the shape differs, the message shows expected and actual side by side,
each line marked matched, missing, extra, misplaced (under another parent or in
another trace) or wrong kind, says when a span is linked to its expected parent
instead of being its child, and renders the traces involved.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain._assertions import new_trace_hint
from pytest_tracechain._capture import TraceCapture, state_of
from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._filters import parse_kind
from pytest_tracechain._graph import SpanGraph, TraceKey
from pytest_tracechain._refs import Ref, running_state
from pytest_tracechain._render import MESSAGE_LIMIT, kind_tag, render_spans
from pytest_tracechain._state import CaptureState

__all__ = ["assert_trace_tree"]

_FUNC = "assert_trace_tree"
_KINDS = {kind.name.lower(): kind for kind in SpanKind}
_KIND_SUFFIX = re.compile(r"^(?P<name>.*?)\s*\[(?P<kind>[A-Za-z]+)\]$")
# Rows of the side-by-side table in a failure message; fully matched subtrees
# larger than COLLAPSE_AT spans take one row.
ROW_LIMIT = 200
COLLAPSE_AT = 12
_EXPECTED_WIDTH = 48

MATCHED = "matched"
MISSING = "missing"
EXTRA = "extra"
MISPLACED = "misplaced"
WRONG_KIND = "wrong kind"


# -- the expected trees ------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Node:
    """One expected span: a name (exact or a pattern), an optional kind, children."""

    label: str
    name: str | re.Pattern[str]
    kind: SpanKind | None
    children: list[Node] = field(default_factory=list)
    # Structural keys (see _Keys): set when the subtree has no pattern and
    # either every kind given ("k") or none given ("n").
    key: tuple[str, int] | None = None
    size: int = 1
    parent: Node | None = None  # set by _expected_keys

    def names(self, span: ReadableSpan) -> bool:
        if isinstance(self.name, str):
            return span.name == self.name
        return self.name.fullmatch(span.name) is not None

    def fits(self, span: ReadableSpan) -> bool:
        """Name and kind match (children not looked at)."""
        return self.names(span) and (self.kind is None or span.kind is self.kind)

    def describe(self) -> str:
        return f"{self.label!r}"


def _label(text: str, where: str | _Where) -> Node:
    """A node from ``name [kind]``; ``where`` names the place for errors (formatted only then)."""
    parsed = _parse_label(text)
    if isinstance(parsed, str):
        raise ValueError(f"{_FUNC}(): {_where_text(where)}: {parsed}")
    label, name, kind = parsed
    return Node(label, name, kind)


@functools.lru_cache(maxsize=4096)
def _parse_label(text: str) -> tuple[str, str | re.Pattern[str], SpanKind | None] | str:
    """(label, name or pattern, kind) of ``name [kind]``, or what is wrong with it (cached: generated
    trees repeat their labels)."""
    text = text.strip()
    name, kind = text, None
    match = _KIND_SUFFIX.match(text)
    if match is not None and match["kind"].lower() in _KINDS:
        name, kind = match["name"], _KINDS[match["kind"].lower()]
    if not name:
        return f"a span name is missing before {text!r}"
    if not name.startswith("~"):
        return text, name, kind
    if len(name) == 1:
        return "'~' must be followed by a regular expression"
    try:
        return text, re.compile(name[1:]), kind
    except re.error as exc:
        return f"{name[1:]!r} is not a valid regular expression: {exc}"


def parse_text(text: str) -> list[Node]:
    """The roots of an indented text tree (two spaces a level)."""
    lines = [(number, line.rstrip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ValueError(f"{_FUNC}(): the expected tree is empty")
    for number, line in lines:
        lead = line[: len(line) - len(line.lstrip())]
        if "\t" in lead:
            raise ValueError(f"{_FUNC}(): line {number}: indent with spaces (two a level), not tabs")
    base = min(len(line) - len(line.lstrip(" ")) for _, line in lines)
    roots: list[Node] = []
    stack: list[Node] = []
    for number, line in lines:
        indent = len(line) - len(line.lstrip(" ")) - base
        if indent % 2:
            raise ValueError(
                f"{_FUNC}(): line {number}: {line.strip()!r} is indented by {indent} spaces; "
                "use two spaces per level"
            )
        level = indent // 2
        if level > len(stack):
            above = "a child of the line above" if stack else "the first line"
            raise ValueError(
                f"{_FUNC}(): line {number}: {line.strip()!r} is indented by {indent} spaces, deeper than "
                f"{above} ({2 * len(stack)} at most); a child is indented one level (two spaces)"
            )
        del stack[level:]
        node = _label(line, f"line {number}")
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
    return roots


def _is_node_tuple(value: object) -> bool:
    if not isinstance(value, tuple) or not value or not isinstance(value[0], (str, re.Pattern)):
        return False
    if len(value) == 2:
        return value[1] is None or isinstance(value[1], (list, tuple, Mapping))
    return len(value) == 3 and isinstance(value[1], (str, SpanKind))


# Where a value sits in the expected structure, for error messages: a linked
# list (parent, key or index), formatted only when an error needs it, so deep
# generated trees cost no string building.
_Where = tuple[object, object]
_ROOT: _Where = (None, "expected")


def _where_text(where: str | _Where | None) -> str:
    if isinstance(where, str):
        return where
    parts: list[str] = []
    while where is not None:
        parent, segment = where
        parts.append(segment if where is _ROOT else f"[{segment!r}]")  # type: ignore[arg-type]
        where = parent  # type: ignore[assignment]
    return "".join(reversed(parts))


def _structure(value: object) -> list[Node]:
    """Nodes from the nested-tuple/dict form (a text tree may sit inside it), without recursion."""
    out: list[Node] = []
    # (value, where, the list its nodes go to, whether value is a children slot)
    stack: list[tuple[object, _Where, list[Node], bool]] = [(value, _ROOT, out, False)]
    while stack:
        value, where, target, is_children = stack.pop()
        kind_of = type(value)
        # The common shapes of generated trees first, by exact type (isinstance
        # against Mapping is slow, and this loop runs once per expected span).
        if kind_of is tuple and _is_node_tuple(value):
            assert isinstance(value, tuple)
            node = _head(value[0], value[1] if len(value) == 3 else None, where)
            target.append(node)
            stack.append((value[-1], (where, value[0]), node.children, True))
            continue
        if kind_of is str:
            assert isinstance(value, str)
            target += parse_text(value) if "\n" in value else [_label(value, where)]
            continue
        if kind_of is list or kind_of is tuple:
            assert isinstance(value, (list, tuple))
            stack.extend((value[i], (where, i), target, False) for i in range(len(value) - 1, -1, -1))
            continue
        if is_children:
            if value is None:
                continue
            if not isinstance(value, (str, Mapping, list, tuple)):
                raise TypeError(
                    f"{_FUNC}() argument 'expected': the children at {_where_text(where)} must be a list, "
                    f"tuple or dict, not {type(value).__name__}"
                )
        if isinstance(value, str):
            target += parse_text(value) if "\n" in value else [_label(value, where)]
        elif isinstance(value, re.Pattern):
            target.append(Node(f"~{value.pattern}", value, None))
        elif isinstance(value, Mapping):
            made = []
            for key, children in value.items():
                key_where = (where, key)
                node = _head(key, None, key_where)
                target.append(node)
                made.append((children, key_where, node.children, True))
            stack.extend(reversed(made))
        elif _is_node_tuple(value):
            assert isinstance(value, tuple)
            node = _head(value[0], value[1] if len(value) == 3 else None, where)
            target.append(node)
            stack.append((value[-1], (where, value[0]), node.children, True))
        elif isinstance(value, (list, tuple)):
            stack.extend((value[i], (where, i), target, False) for i in range(len(value) - 1, -1, -1))
        else:
            raise TypeError(
                f"{_FUNC}() argument 'expected' must be an indented text tree, nested (name, children) "
                f"tuples, or a dict of name -> children; {_where_text(where)} is {type(value).__name__}"
            )
    return out


def _head(name: object, kind: object, where: _Where) -> Node:
    if isinstance(name, re.Pattern):
        node = Node(f"~{name.pattern}", name, None)
    elif isinstance(name, str) and kind is not None:  # the kind is given: the name is all name
        name = name.strip()
        pattern: str | re.Pattern[str] = name
        if name.startswith("~"):
            parsed = _parse_label(name)
            if isinstance(parsed, str):
                raise ValueError(f"{_FUNC}(): {_where_text(where)}: {parsed}")
            pattern = parsed[1]
        node = Node(name, pattern, None)
    elif isinstance(name, str):
        node = _label(name, where)
    else:
        raise TypeError(
            f"{_FUNC}() argument 'expected': {_where_text(where)} has a name of type "
            f"{type(name).__name__}; a span name is a str or a compiled regex"
        )
    if kind is not None:
        node.kind = parse_kind(kind, "kind")
        node.label = f"{node.label} [{node.kind.name.lower()}]"
    return node


def parse_expected(expected: object) -> list[Node]:
    if isinstance(expected, str):
        return parse_text(expected)
    if isinstance(expected, (Mapping, list, tuple)):
        roots = _structure(expected)
        if not roots:
            raise ValueError(f"{_FUNC}(): the expected tree is empty")
        return roots
    raise TypeError(
        f"{_FUNC}() argument 'expected' must be an indented text tree (str), nested (name, children) "
        f"tuples, or a dict of name -> children, not {type(expected).__name__}"
    )


def _walk(roots: Iterable[Node]) -> list[Node]:
    """The nodes in pre-order (a list: cheaper than a generator for big trees)."""
    order: list[Node] = []
    stack = list(reversed(list(roots)))
    while stack:
        node = stack.pop()
        order.append(node)
        if node.children:
            stack += reversed(node.children)
    return order


# -- the captured forest -----------------------------------------------------------


class _Keys:
    """Structural keys: equal keys mean equal subtrees, sibling order aside.

    ``k`` keys cover names and kinds, ``n`` keys names only (for expected trees
    that give no kinds). Expected and captured subtrees share one table.
    """

    def __init__(self) -> None:
        self.table: dict[tuple[object, ...], int] = {}

    def intern(self, entry: tuple[object, ...]) -> int:
        key = self.table.get(entry)
        if key is None:
            key = self.table[entry] = len(self.table)
        return key


class Forest:
    """The captured spans as trees (a ``SpanGraph``), with the structural keys of their subtrees."""

    def __init__(self, spans: Iterable[ReadableSpan], ambient: frozenset[int] | set[int]) -> None:
        self.graph = graph = SpanGraph(spans, ambient)
        self.by_id = graph.by_id
        self.ordered = graph.ordered
        self.children = graph.children
        self.kid_ids = graph.kid_ids
        self.tops = graph.tops
        self.ambient = ambient
        self._keys: dict[str, dict[int, int]] = {}

    def kids(self, span: ReadableSpan) -> list[ReadableSpan]:
        return self.children.get(span.context.span_id, [])

    def keys(self, mode: str, table: _Keys) -> dict[int, int]:
        """Structural keys of every captured subtree, computed once, bottom-up, without recursion."""
        known = self._keys.get(mode)
        if known is not None:
            return known
        keys: dict[int, int] = {}
        with_kind = mode == "k"
        kid_ids, by_id, interned = self.kid_ids, self.by_id, table.table
        order: list[int] = []  # pre-order: read backwards, children come before parents
        stack = [top.context.span_id for top in self.tops]
        while stack:
            span_id = stack.pop()
            order.append(span_id)
            kids = kid_ids.get(span_id)
            if kids:
                stack += kids
        for span_id in reversed(order):
            kids = kid_ids.get(span_id)
            span = by_id[span_id]
            if not kids:
                child_keys: tuple[int, ...] = ()
            elif len(kids) == 1:
                child_keys = (keys[kids[0]],)
            else:
                child_keys = tuple(sorted([keys[kid] for kid in kids]))
            entry = (span.name, span.kind if with_kind else None, child_keys)
            key = interned.get(entry)
            if key is None:
                key = interned[entry] = len(interned)
            keys[span_id] = key
        self._keys[mode] = keys
        return keys

    def trace_key(self, span: ReadableSpan) -> TraceKey:
        return self.graph.key(span)


def _expected_keys(roots: list[Node], table: _Keys) -> set[str]:
    """Give each plain expected subtree a structural key, and each node its parent and size.

    Returns the modes used (``k``: with kinds, ``n``: names only).
    """
    modes: set[str] = set()
    interned = table.table
    for node in reversed(_walk(roots)):  # children before parents
        mode = "k" if node.kind is not None else "n"
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
        if type(node.name) is not str:
            continue
        entry = (node.name, node.kind, child_keys)
        index = interned.get(entry)
        if index is None:
            index = interned[entry] = len(interned)
        node.key = (mode, index)
        modes.add(mode)
    return modes


class Matcher:
    """Exact, order-insensitive matching of expected trees against the forest."""

    def __init__(self, roots: list[Node], forest: Forest) -> None:
        self.roots = roots
        self.forest = forest
        table = _Keys()
        modes = _expected_keys(roots, table)
        self.keys = {mode: forest.keys(mode, table) for mode in modes}
        self._memo: dict[tuple[int, int], bool] = {}

    def key_of(self, mode: str, span: ReadableSpan) -> int:
        return self.keys[mode][span.context.span_id]

    def full(self, node: Node, span: ReadableSpan) -> bool:
        """``span``'s subtree has exactly ``node``'s shape."""
        if node.key is not None:
            return self.key_of(node.key[0], span) == node.key[1]
        memo_key = (id(node), span.context.span_id)
        known = self._memo.get(memo_key)
        if known is None:
            kids = self.forest.kids(span)
            known = (
                node.fits(span)
                and len(kids) == len(node.children)
                and self.assign(node.children, kids) is not None
            )
            self._memo[memo_key] = known
        return known

    def assign(self, nodes: Sequence[Node], spans: Sequence[ReadableSpan]) -> dict[int, ReadableSpan] | None:
        """A one-to-one assignment of ``nodes`` to ``spans`` with full matches (node id -> span), or None."""
        if len(nodes) != len(spans):
            return None
        result: dict[int, ReadableSpan] = {}
        free = list(spans)
        keyed = [node for node in nodes if node.key is not None]
        if keyed:
            buckets: dict[tuple[str, int], list[ReadableSpan]] = defaultdict(list)
            modes = {node.key[0] for node in keyed if node.key is not None}
            for span in free:
                for mode in modes:
                    buckets[(mode, self.key_of(mode, span))].append(span)
            used: set[int] = set()
            for node in keyed:
                assert node.key is not None
                bucket = buckets.get(node.key)
                while bucket and bucket[-1].context.span_id in used:
                    bucket.pop()
                if not bucket:
                    return None
                span = bucket.pop()
                used.add(span.context.span_id)
                result[id(node)] = span
            free = [span for span in free if span.context.span_id not in used]
        rest = [node for node in nodes if node.key is None]
        if not rest:
            return result
        # Kuhn's augmenting paths over the nodes with patterns or mixed kinds.
        owner: dict[int, int] = {}  # span index in free -> node index in rest
        for index in range(len(rest)):
            if not self._augment(index, rest, free, owner, set()):
                return None
        for span_index, node_index in owner.items():
            result[id(rest[node_index])] = free[span_index]
        return result

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

    def matches(self) -> bool:
        return self.assign(self.roots, self.forest.tops) is not None


# -- the difference, for the failure message -----------------------------------------


@dataclass
class _Row:
    status: str
    depth: int
    expected: str
    actual: str
    note: str = ""


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
        self.forest = matcher.forest
        self.capture = capture
        self.open_spans = open_spans
        self.pair: dict[int, ReadableSpan] = {}  # node id -> span
        self.status: dict[int, str] = {}  # node id -> status
        self.note: dict[int, str] = {}
        self.full: set[int] = set()  # node ids whose whole subtree matched
        self.claimed: set[int] = set()  # span ids
        self.nodes: dict[int, Node] = {}  # node id -> node, for the nodes paired or missing
        self.pending: deque[Node] = deque()
        self._align(matcher.roots, list(self.forest.tops))
        self._place_pending()

    # alignment ---------------------------------------------------------------

    def _take(self, node: Node, span: ReadableSpan, status: str) -> None:
        self.nodes[id(node)] = node
        self.pair[id(node)] = span
        self.status[id(node)] = status
        self.claimed.add(span.context.span_id)

    def _take_full(self, node: Node, span: ReadableSpan) -> None:
        """Pair a fully matched subtree: its root node, and claim every span under it.

        The nodes inside are paired only if the table shows them (``_full_rows``).
        """
        self._take(node, span, MATCHED)
        self.full.add(id(node))
        kid_ids = self.forest.kid_ids
        stack = list(kid_ids.get(span.context.span_id, ()))
        claimed = self.claimed
        while stack:
            span_id = stack.pop()
            claimed.add(span_id)
            stack += kid_ids.get(span_id, ())

    def _full_rows(self, node: Node, span: ReadableSpan, depth: int) -> list[_Row]:
        """The rows of a fully matched subtree, node by node."""
        rows = []
        stack = [(node, span, depth)]
        while stack:
            current, current_span, level = stack.pop()
            rows.append(_Row(MATCHED, level, current.label, _span_label(current_span)))
            assigned = self.m.assign(current.children, self.forest.kids(current_span)) or {}
            stack.extend(
                (child, assigned[id(child)], level + 1)
                for child in reversed(current.children)
                if id(child) in assigned
            )
        return rows

    def _align(self, nodes: list[Node], spans: list[ReadableSpan]) -> None:
        """Pair expected siblings with captured siblings, then their children, without recursion.

        Whole matching subtrees first, then name and kind, then name alone
        (wrong kind); what is left waits for ``_place_pending``.
        """
        work = [(nodes, spans)]
        while work:
            nodes, spans = work.pop()
            free = [span for span in spans if span.context.span_id not in self.claimed]
            if not nodes:
                continue
            used: set[int] = set()
            left: list[Node] = []
            keyed: dict[tuple[str, int], list[ReadableSpan]] = {}
            modes = {node.key[0] for node in nodes if node.key is not None}
            for mode in modes:
                for span in reversed(free):
                    keyed.setdefault((mode, self.m.key_of(mode, span)), []).append(span)
            for node in nodes:
                found = None
                if node.key is not None:
                    bucket = keyed.get(node.key, [])
                    while bucket and bucket[-1].context.span_id in used:
                        bucket.pop()
                    found = bucket.pop() if bucket else None
                else:
                    found = next(
                        (s for s in free if s.context.span_id not in used and self.m.full(node, s)), None
                    )
                if found is None:
                    left.append(node)
                    continue
                used.add(found.context.span_id)
                self._take_full(node, found)
            by_name: dict[str, list[ReadableSpan]] = {}
            for span in free:
                by_name.setdefault(span.name, []).append(span)
            for rule in (Node.fits, Node.names):
                still: list[Node] = []
                for node in left:
                    pool = by_name.get(node.name, []) if isinstance(node.name, str) else free
                    found = next((s for s in pool if s.context.span_id not in used and rule(node, s)), None)
                    if found is None:
                        still.append(node)
                        continue
                    used.add(found.context.span_id)
                    wrong_kind = node.kind is not None and found.kind is not node.kind
                    self._take(node, found, WRONG_KIND if wrong_kind else MATCHED)
                    if wrong_kind:
                        assert node.kind is not None
                        expected_kind, found_kind = node.kind.name.lower(), found.kind.name.lower()
                        self.note[id(node)] = f"expected kind {expected_kind}, found {found_kind}"
                    work.append((node.children, self.forest.kids(found)))
                left = still
            self.pending += left

    def _place_pending(self) -> None:
        """Expected spans not found where expected: misplaced if found elsewhere, else missing."""
        if not self.pending:
            return
        by_name: dict[str, list[ReadableSpan]] = defaultdict(list)
        for span in self.forest.ordered:
            by_name[span.name].append(span)
        claimed = self.claimed
        while self.pending:
            node = self.pending.popleft()
            if isinstance(node.name, str):
                candidates: Iterable[ReadableSpan] = by_name.get(node.name, ())
            else:
                candidates = (span for span in self.forest.ordered if node.names(span))
            found = fallback = None  # the first unclaimed span of that name and kind, else of that name
            for span in candidates:
                if span.context.span_id in claimed:
                    continue
                if node.fits(span):
                    found = span
                    break
                if fallback is None:
                    fallback = span
            found = found or fallback
            if found is None:
                self._missing(node)
                continue
            self._take(node, found, MISPLACED)
            self.note[id(node)] = self._where(node, found)
            self._align(node.children, self.forest.kids(found))

    def _missing(self, node: Node) -> None:
        self.status[id(node)] = MISSING
        self.nodes[id(node)] = node
        still_open = next((span for span in self.open_spans if node.names(span)), None)
        if still_open is not None:
            self.note[id(node)] = "a span of that name is still open" + (
                "" if self.timeout else ": pass timeout= to wait for it"
            )

    def _expected_parent_span(self, node: Node) -> tuple[Node | None, ReadableSpan | None]:
        parent = node.parent
        return parent, (self.pair.get(id(parent)) if parent is not None else None)

    def _where(self, node: Node, span: ReadableSpan) -> str:
        """Where a misplaced span is, and why it is not where expected."""
        parent_node, expected_parent = self._expected_parent_span(node)
        actual_parent = span.parent
        forest = self.forest
        if actual_parent is None or actual_parent.span_id in forest.ambient:
            where = "a root"
        elif actual_parent.span_id in forest.by_id and actual_parent.trace_id == span.context.trace_id:
            where = f"under {forest.by_id[actual_parent.span_id].name!r}"
        elif actual_parent.is_remote:
            where = f"under a remote parent (span {actual_parent.span_id:016x}) that is not captured"
        else:
            where = f"under span {actual_parent.span_id:016x}, which was not captured"
        if parent_node is None:
            return f"found {where}" + (" of another trace" if where == "a root" else "") + ", expected a root"
        expected = f"expected under {parent_node.label!r}"
        if expected_parent is None:
            return f"found {where}; {expected}"
        same_trace = forest.trace_key(span) == forest.trace_key(expected_parent)
        if where == "a root":
            where = "the root of another trace" if not same_trace else "a root of the same trace"
        elif not same_trace:
            where += " in another trace"
        text = f"found {where}; {expected}"
        target = expected_parent.context
        if any(link.context.span_id == target.span_id for link in span.links or ()):
            text += f" — it is linked to {expected_parent.name!r} instead of being its child"
        elif any(link.context.span_id == span.context.span_id for link in expected_parent.links or ()):
            text += f" — {expected_parent.name!r} links to it instead of being its parent"
        return text

    # presentation ------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for status in self.status.values():
            if status != MATCHED:
                counts[status] += 1
        extra = len(self.forest.by_id.keys() - self.claimed)
        if extra:
            counts[EXTRA] = extra
        return counts

    def rows(self) -> list[_Row]:
        """The side-by-side table: expected trees in order, extra spans where they hang."""
        rows: list[_Row] = []
        # Big expectations: every fully matched subtree takes one row.
        collapse_at = COLLAPSE_AT if sum(root.size for root in self.m.roots) <= ROW_LIMIT else 1
        stack: list[tuple[Node | ReadableSpan, int]] = [(root, 0) for root in reversed(self.m.roots)]
        while stack:
            item, depth = stack.pop()
            if isinstance(item, ReadableSpan):  # an extra span under a placed one
                rows += self._extra_rows(item, depth, "")
                continue
            node = item
            status = self.status.get(id(node), MISSING)
            span = self.pair.get(id(node))
            actual = _span_label(span) if span is not None else "—"
            if id(node) in self.full:
                assert span is not None
                if node.size > collapse_at:
                    note = f"and its {node.size - 1} descendants, all matched"
                    rows.append(_Row(MATCHED, depth, node.label, actual, note))
                else:
                    rows += self._full_rows(node, span, depth)
                continue
            rows.append(_Row(status, depth, node.label, actual, self.note.get(id(node), "")))
            if span is not None:  # shown after the expected children
                extras = [kid for kid in self.forest.kids(span) if kid.context.span_id not in self.claimed]
                stack.extend((extra, depth + 1) for extra in reversed(extras))
            stack.extend((child, depth + 1) for child in reversed(node.children))
        for top in self.forest.tops:
            if top.context.span_id in self.claimed:
                continue
            parent = top.parent
            if parent is None or parent.span_id in self.forest.ambient:
                note = "a root: a trace that was not expected"
            else:
                note = f"its parent (span {parent.span_id:016x}) was not captured"
            rows += self._extra_rows(top, 0, note)
        return rows

    def _extra_rows(self, span: ReadableSpan, depth: int, note: str) -> list[_Row]:
        rows = []
        stack = [(span, depth, note)]
        while stack:
            current, level, text = stack.pop()
            rows.append(_Row(EXTRA, level, "", _span_label(current), text))
            kids = [kid for kid in self.forest.kids(current) if kid.context.span_id not in self.claimed]
            stack.extend((kid, level + 1, "") for kid in reversed(kids))
        return rows

    def hint(self) -> str | None:
        """Why the first misplaced span that started a trace of its own did so (the boundary it crossed)."""
        for node_id, status in self.status.items():  # in the order they were placed
            node = self.nodes[node_id]
            span = self.pair.get(node_id)
            if span is None or status != MISPLACED or span.links:
                continue
            parent = span.parent
            if parent is not None and parent.span_id not in self.forest.ambient:
                continue
            _, expected_parent = self._expected_parent_span(node)
            if expected_parent is None or any(
                link.context.span_id == span.context.span_id for link in expected_parent.links or ()
            ):
                continue
            lost = Ref(span.context, span, repr(span.name))
            anchor = Ref(expected_parent.context, expected_parent, repr(expected_parent.name))
            return new_trace_hint(lost, anchor, self.capture)
        return None

    def marks(self) -> dict[int, str]:
        """Highlights for the rendered traces: the spans that are not where expected."""
        marks: dict[int, str] = {}
        for node_id, status in self.status.items():
            node = self.nodes[node_id]
            span = self.pair.get(node_id)
            if span is None or status == MATCHED:
                continue
            marks[span.context.span_id] = status
            if status == MISPLACED:  # keep the trace it belongs in on screen, and say where
                _, expected_parent = self._expected_parent_span(node)
                if expected_parent is not None:
                    marks.setdefault(expected_parent.context.span_id, f"expected parent of {span.name!r}")
        for span_id in self.forest.by_id.keys() - self.claimed:
            marks[span_id] = EXTRA
        return marks


def _span_label(span: ReadableSpan) -> str:
    return span.name + kind_tag(span.kind)


_ORDER = (MISPLACED, MISSING, WRONG_KIND, EXTRA)


def _focus(rows: list[_Row]) -> list[_Row]:
    """Past ROW_LIMIT rows: the rows that differ and their ancestors, matched runs elided."""
    if len(rows) <= ROW_LIMIT:
        return rows
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
    focused: list[_Row] = []
    dropped = 0
    for index, row in enumerate(rows):
        if keep[index]:
            if dropped:
                focused.append(
                    _Row("", rows[index - 1].depth, "...", "", f"{dropped} matched rows not shown")
                )
                dropped = 0
            focused.append(row)
        else:
            dropped += 1
    if dropped:
        focused.append(_Row("", rows[-1].depth, "...", "", f"{dropped} matched rows not shown"))
    return focused


def format_table(rows: list[_Row]) -> list[str]:
    rows = _focus(rows)
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


# -- the assertion ---------------------------------------------------------------


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


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """Big trees allocate many small objects: without this, the garbage collector
    would walk the whole capture again and again while they are made. (Not held
    while waiting for spans: other threads allocate then.)"""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _assert_trace_tree(
    expected: object, spans: TraceCapture | Iterable[ReadableSpan] | None, timeout: float | None
) -> None:
    __tracebackhide__ = True
    with _no_collection():
        roots = parse_expected(expected)
    capture = _source(spans)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(
                f"{_FUNC}() argument 'timeout' must be a number of seconds, not {type(timeout).__name__}"
            )
        if not (spans is None or isinstance(spans, TraceCapture)):
            raise TypeError(
                f"{_FUNC}() argument 'timeout' needs a capture to wait on: leave 'spans' out or pass "
                "the TraceCapture, not a list of spans"
            )
    if spans is None or isinstance(spans, TraceCapture):
        assert capture is not None
        if timeout:
            count = len(_walk(roots))
            waited = capture

            def ready(finished: list[ReadableSpan]) -> bool:
                if len(finished) < count:
                    return False
                with _no_collection():
                    return _matches(roots, finished, waited.ambient)

            capture.wait_until(ready, time.monotonic() + timeout)
        finished = capture.spans
        ambient: set[int] | frozenset[int] = capture.ambient
        open_spans = capture.open_spans()
    else:
        finished, ambient, open_spans = list(spans), frozenset(), []
    with _no_collection():
        matcher = Matcher(roots, Forest(finished, ambient))
        if matcher.matches():
            return
        _explain(matcher, capture, open_spans, timeout)


def _matches(roots: list[Node], spans: list[ReadableSpan], ambient: set[int] | frozenset[int]) -> bool:
    return Matcher(roots, Forest(spans, ambient)).matches()


def _source(spans: object) -> CaptureState | None:
    __tracebackhide__ = True
    if spans is None:
        capture = running_state()
        if capture is None:
            raise RuntimeError(
                f"{_FUNC}() compares the running test's spans, but no capture is running. Request the "
                "`tracechain` fixture (or mark the test with @pytest.mark.tracechain), or pass spans=."
            )
        return capture
    if isinstance(spans, TraceCapture):
        return state_of(spans)
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Iterable):
        raise TypeError(
            f"{_FUNC}() argument 'spans' must be a TraceCapture or an iterable of spans, "
            f"not {type(spans).__name__}"
        )
    return running_state()


def _explain(
    matcher: Matcher, capture: CaptureState | None, open_spans: list[ReadableSpan], timeout: float | None
) -> None:
    __tracebackhide__ = True
    diff = Diff(matcher, capture, open_spans, timeout)
    counts = diff.counts()
    summary = ", ".join(f"{counts[status]} {status}" for status in _ORDER if counts.get(status))
    traces = len(matcher.roots)
    found = len({matcher.forest.trace_key(top) for top in matcher.forest.tops})
    headline = (
        f"the captured spans do not have the expected shape: {summary or 'the trees differ'}"
        f" ({traces} expected trace{'s' if traces != 1 else ''}, {found} captured"
        + (f", after waiting {timeout:g} s" if timeout else "")
        + ")"
    )
    lines = [headline, "", *format_table(diff.rows())]
    hint = diff.hint()
    if hint:
        lines += ["", f"hint: {hint}"]
    origins = capture.origin_map if capture is not None else {}
    marks = diff.marks()
    forest = matcher.forest
    involved = {forest.trace_key(forest.by_id[span_id]) for span_id in marks if span_id in forest.by_id}
    involved |= {forest.trace_key(span) for span in diff.pair.values()} if len(forest.tops) <= 50 else set()
    top_traces = {forest.trace_key(top) for top in forest.tops}
    if involved >= top_traces:  # every trace: the forest is already grouped
        rendered = render_spans((), origins=origins, highlight=marks, limit=MESSAGE_LIMIT, graph=forest.graph)
    else:
        rendered = render_spans(
            [span for span in forest.ordered if forest.trace_key(span) in involved],
            origins=origins,
            ambient=forest.ambient,
            highlight=marks,
            limit=MESSAGE_LIMIT,
        )
    lines += ["", "traces involved:", rendered]
    raise TraceAssertionError("\n".join(lines))
