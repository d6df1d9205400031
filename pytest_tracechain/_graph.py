"""The span graph: one index of a set of spans, built once per analysis.

Everything that needs the shape of a capture (the renderer, the HTML page,
the tree matcher, the assertions and the chain rules) reads it from a
``SpanGraph``; no other module walks parent chains or decides what a root is.

Roots are relative to the test: a span whose parent is one of the test's
*ambient* spans (a harness's per-test span, see docs/decisions.md) is a root,
and under such a harness each of those roots starts a trace of its own.
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, SpanContext

__all__ = ["SpanGraph", "Trace", "TraceKey", "collection_paused", "is_root"]

# A trace relative to the test: (trace id, relative root span id or 0). Spans
# under a test harness's ambient span share its trace id, so there each
# relative root starts a trace of its own.
TraceKey = tuple[int, int]

_NO_AMBIENT: frozenset[int] = frozenset()


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a graph of many spans is built or read.

    Indexing allocates many small objects: without this, the collector would
    walk the whole capture again and again while they are made. Never held
    while waiting for spans (other threads allocate then); the collector's
    settings are left as they were.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def is_root(span: ReadableSpan, ambient: Collection[int] = _NO_AMBIENT) -> bool:
    """No parent, or only one of the test's ambient spans."""
    parent = span.parent
    return parent is None or parent.span_id in ambient


def links_of(span: ReadableSpan) -> Sequence[Link]:
    """The links of ``span``, read from the span's own list (``links`` makes a copy, under a lock in
    older SDKs)."""
    links: Sequence[Link] | None = getattr(span, "_links", None)
    return links if links is not None else span.links


def has_links(span: ReadableSpan) -> bool:
    """Whether ``span`` has links (without the copy ``links`` makes)."""
    return bool(links_of(span))


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


def _start(span: ReadableSpan) -> int:
    return span.start_time or 0


class SpanGraph:
    """The spans of one analysis, indexed once.

    - ``by_id``: span id -> span (the first of a span id given twice);
    - ``ordered``: the spans by start time;
    - ``children`` / ``kid_ids``: parent span id -> its children (spans, ids),
      by start time; a span is linked to its parent when the parent is among
      the spans, in the same trace and not ambient;
    - ``tops``: the spans not linked to a parent, by start time (roots, and
      spans whose parent was not captured); a span on a parent cycle (only
      received spans can form one) is made a top where the cycle is entered,
      so every span is reachable from exactly one top;
    - ``keys``: span id -> its ``TraceKey``; ``tops_by_trace`` and ``counts``
      by trace, in order of first start (computed on first use: matching a
      tree needs none of them).

    Cycles are looked for only when some parent does not come before its
    child in start order; otherwise none is possible.
    """

    __slots__ = (
        "_counts",
        "_cycles",
        "_keys",
        "_tops_by_trace",
        "ambient",
        "by_id",
        "children",
        "kid_ids",
        "ordered",
        "tops",
    )

    def __init__(self, spans: Iterable[ReadableSpan], ambient: Collection[int] = _NO_AMBIENT) -> None:
        self.ambient = ambient
        unique: dict[int, ReadableSpan] = {}
        for span in spans:
            unique.setdefault(span.context.span_id, span)
        self.by_id = unique
        self.ordered = ordered = sorted(unique.values(), key=_start)
        self.children: dict[int, list[ReadableSpan]] = {}
        self.kid_ids: dict[int, list[int]] = {}
        self.tops: list[ReadableSpan] = []
        self._keys: dict[int, TraceKey] | None = None
        self._cycles: list[ReadableSpan] = []
        self._tops_by_trace: dict[TraceKey, list[ReadableSpan]] | None = None
        self._counts: Counter[TraceKey] | None = None
        if not self._link(ordered):
            self._key_from_tops()  # a cycle is possible: find it now, so the tops are complete

    # -- building ------------------------------------------------------------------

    def _link(self, ordered: list[ReadableSpan]) -> bool:
        """Link children to parents; whether every parent came earlier (then no cycle is possible)."""
        unique, ambient, children, kid_ids, tops = (
            self.by_id,
            self.ambient,
            self.children,
            self.kid_ids,
            self.tops,
        )
        seen: set[int] = set()
        add = seen.add
        backwards = True
        for span in ordered:
            context = span.context
            parent = span.parent
            span_id = context.span_id
            if parent is not None:
                parent_id = parent.span_id
                if parent_id in unique and parent_id not in ambient and parent.trace_id == context.trace_id:
                    if parent_id not in seen:
                        backwards = False
                    kids = children.get(parent_id)
                    if kids is None:
                        children[parent_id] = [span]
                        kid_ids[parent_id] = [span_id]
                    else:
                        kids.append(span)
                        kid_ids[parent_id].append(span_id)
                    add(span_id)
                    continue
            tops.append(span)
            add(span_id)
        return backwards

    def _key_from_tops(self) -> dict[int, TraceKey]:
        """Give every span the trace key of its top; spans no top reaches are on a cycle."""
        self._keys = keys = dict[int, TraceKey]()
        self._key_subtrees(self.tops)
        if len(keys) == len(self.by_id):
            return keys
        # Only a parent cycle leaves spans unreached. Break each where it is
        # entered first (the earliest-started unreached span) and key again.
        for span in self.ordered:
            if span.context.span_id not in keys:
                self._cycles.append(span)
                self._cut_from_parent(span)
                self._key_subtrees([span])
        self.tops = sorted([*self.tops, *self._cycles], key=_start)
        return keys

    def _cut_from_parent(self, span: ReadableSpan) -> None:
        parent = span.parent
        assert parent is not None  # a span with no parent is a top
        span_id = span.context.span_id
        index = self.kid_ids[parent.span_id].index(span_id)
        del self.kid_ids[parent.span_id][index]
        del self.children[parent.span_id][index]

    def _key_subtrees(self, tops: Iterable[ReadableSpan]) -> None:
        keys, kid_ids, ambient = self._keys, self.kid_ids, self.ambient
        assert keys is not None
        for top in tops:
            context = top.context
            parent = top.parent
            top_id = context.span_id
            key = (context.trace_id, top_id if parent is not None and parent.span_id in ambient else 0)
            keys[top_id] = key
            stack = kid_ids.get(top_id)
            if not stack:
                continue
            stack = list(stack)
            while stack:
                span_id = stack.pop()
                keys[span_id] = key
                kids = kid_ids.get(span_id)
                if kids:
                    stack.extend(kids)

    # -- reading -------------------------------------------------------------------

    @property
    def keys(self) -> dict[int, TraceKey]:
        """Span id -> the trace it belongs to (computed on first use)."""
        keys = self._keys
        return keys if keys is not None else self._key_from_tops()

    @property
    def cycles(self) -> list[ReadableSpan]:
        """The spans made tops because their parents formed a cycle."""
        return self._cycles

    @property
    def tops_by_trace(self) -> dict[TraceKey, list[ReadableSpan]]:
        """The tops of each trace, by start; traces in order of first start."""
        if self._tops_by_trace is None:
            keys = self.keys
            grouped: dict[TraceKey, list[ReadableSpan]] = {}
            for top in self.tops:
                grouped.setdefault(keys[top.context.span_id], []).append(top)
            self._tops_by_trace = grouped
        return self._tops_by_trace

    @property
    def counts(self) -> Counter[TraceKey]:
        """The number of spans of each trace."""
        if self._counts is None:
            self._counts = Counter(self.keys.values())
        return self._counts

    def __len__(self) -> int:
        return len(self.by_id)

    def __contains__(self, span_id: object) -> bool:
        return span_id in self.by_id

    def is_root(self, span: ReadableSpan) -> bool:
        """No parent, or only the test's ambient span."""
        return is_root(span, self.ambient)

    def kids(self, span: ReadableSpan) -> list[ReadableSpan]:
        """The children of ``span``, by start time."""
        return self.children.get(span.context.span_id, [])

    def key(self, span: ReadableSpan) -> TraceKey:
        """The trace ``span`` belongs to, relative to the test."""
        return self.keys[span.context.span_id]

    def traces(self) -> dict[TraceKey, list[ReadableSpan]]:
        """The spans of each trace, by start time; traces in order of first start."""
        members: dict[TraceKey, list[ReadableSpan]] = {}
        keys = self.keys
        for span in self.ordered:
            members.setdefault(keys[span.context.span_id], []).append(span)
        return members

    def trace_list(self) -> list[Trace]:
        """``traces()`` as ``Trace`` records."""
        ambient = self.ambient
        return [
            Trace(key[0], tuple(members), tuple(s for s in members if is_root(s, ambient)))
            for key, members in self.traces().items()
        ]

    def parent_chain(self, span: ReadableSpan) -> Iterator[tuple[SpanContext, ReadableSpan | None]]:
        """``span``'s parent contexts upwards, each with its span when it is in the graph.

        Stops after the first parent that is not in the graph, and before a
        parent seen already (a cycle).
        """
        seen: set[int] = set()
        current: ReadableSpan | None = span
        while current is not None and current.parent is not None:
            parent = current.parent
            if parent.span_id in seen:
                return
            seen.add(parent.span_id)
            current = self.by_id.get(parent.span_id)
            yield parent, current

    def has_ancestor(self, span: ReadableSpan, ancestor_id: int) -> bool:
        """Whether span id ``ancestor_id`` is on ``span``'s parent chain."""
        return any(parent.span_id == ancestor_id for parent, _ in self.parent_chain(span))

    def subtree_sizes(self) -> dict[int, int]:
        """Span id -> the number of spans in its subtree (itself included)."""
        # Added up children first, in a post-order walk from the tops (start
        # times alone do not order a child after its parent: they may be equal
        # or skewed).
        sizes = dict.fromkeys(self.by_id, 1)
        children = self.kid_ids
        for top in self.tops:
            order: list[int] = []
            stack = [top.context.span_id]
            while stack:
                span_id = stack.pop()
                order.append(span_id)
                stack.extend(children.get(span_id, ()))
            for span_id in reversed(order):
                kids = children.get(span_id)
                if kids:
                    sizes[span_id] = 1 + sum(sizes[kid] for kid in kids)
        return sizes
