"""``TraceCapture.tree()``: the captured traces as text in ``assert_trace_tree``'s syntax.

The text is made for snapshots: it holds names, kinds (where not INTERNAL),
the nesting, remote parents, links and chosen attributes, and nothing that
differs from run to run (no ids, timings, threads or pids). Siblings and
traces are in a canonical order that depends only on what the text shows: by
label, and where labels tie, by the shape of the subtrees below them (see
``_Layout``).
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, SpanKind

from pytest_tracechain._filters import parse_trace_id
from pytest_tracechain._graph import SpanGraph, Trace, collection_paused, links_of
from pytest_tracechain._render import kind_tag
from pytest_tracechain._tree_details import ATTRIBUTE_KEY, RESERVED, Details, attribute_text, link_names
from pytest_tracechain._tree_match import pre_order
from pytest_tracechain._tree_parse import label_parses_as

__all__ = ["MAX_DEPTH", "Normalizer", "capture_tree", "compare_trees", "normalize_name", "tree_text"]

Normalizer = Callable[[str], str]

# The usual random parts of span names, most specific first.
_RANDOM_PARTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<uuid>",
    ),
    (re.compile(r"\bamq\.gen-[A-Za-z0-9_-]+"), "amq.gen-<id>"),
    (re.compile(r"\b_INBOX\.[A-Za-z0-9]+"), "_INBOX.<id>"),
    (
        re.compile(
            r"(?<![0-9A-Za-z])(?:[0-9a-fA-F]{16,}"
            r"|(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,15})(?![0-9A-Za-z])"
        ),
        "<hex>",
    ),
    (re.compile(r"(?<![0-9A-Za-z])[0-9]+"), "<n>"),
)

# A name that may not survive as a plain label: parsed back before it is used.
_UNSURE = re.compile(r"^(?:$|~|\s)|\s$|[\]}]$")
# What str.splitlines() breaks a line at: a name holding one is always written as a pattern.
_LINE_BREAK = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_SPECIAL = frozenset("\\.^$*+?{}[]|()")
_UNSURE_NAME = "\0unsure"  # a marker: the name is checked with its suffix, label by label
_TAGS = {kind: kind_tag(kind) for kind in SpanKind}


def normalize_name(name: str) -> str:
    """``name`` with UUIDs, hex ids, temporary queue names and numbers replaced by placeholders."""
    for pattern, placeholder in _RANDOM_PARTS:
        name = pattern.sub(placeholder, name)
    return name


# The texts tree() returned last, held so that a failed ``tree() == expected`` can be told
# from other string comparisons by identity (a str cannot be weakly referenced).
_RETURNED: deque[str] = deque(maxlen=8)
_DIFF_LINES = 400
# Deeper than this, the text (two spaces a level) would grow with the square of the depth.
MAX_DEPTH = 1000


def compare_trees(left: object, right: object) -> list[str] | None:
    """A line-by-line diff for a failed ``==`` of a text ``tree()`` returned, or None for other values.

    pytest's own diff of two long strings skips their common start ("Skipping
    117 identical leading characters"), which cuts tree lines in half; this one
    shows whole lines, ``-`` expected and ``+`` captured.
    """
    if not (isinstance(left, str) and isinstance(right, str)):
        return None
    if any(left is text for text in _RETURNED):
        captured, expected = left, right
    elif any(right is text for text in _RETURNED):
        captured, expected = right, left
    else:
        return None
    lines = [
        line.rstrip()
        for line in difflib.ndiff(expected.splitlines(), captured.splitlines())
        if not line.startswith("?")
    ]
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"... {len(lines) - _DIFF_LINES} more lines"]
    return ["tree() == expected", "the captured trace tree differs (- expected, + captured):", *lines]


def capture_tree(
    spans: list[ReadableSpan],
    ambient: Collection[int],
    *,
    attributes: object,
    normalize: object,
    where: object,
    trace: object,
    func: str,
) -> str:
    """``tree_text`` of a capture's finished spans, after checking the public call's arguments."""
    __tracebackhide__ = True
    keys = _attribute_keys(attributes, func)
    normalizer = _normalizer(normalize, func)
    if trace is not None:
        spans = _of_trace(spans, trace, func)
    if where is not None:
        if not callable(where):
            raise TypeError(
                f"{func}() argument 'where' must be a function of a span that returns whether to show "
                f"it, not {type(where).__name__}"
            )
        spans = [span for span in spans if where(span)]
    text = tree_text(spans, ambient, attributes=keys, normalize=normalizer, func=func)
    if len(text) > 1:  # "" and one-character strings are shared by every such string
        _RETURNED.append(text)
    return text


def _attribute_keys(attributes: object, func: str) -> tuple[str, ...]:
    __tracebackhide__ = True
    if isinstance(attributes, (str, bytes)) or not isinstance(attributes, Iterable):
        raise TypeError(
            f"{func}() argument 'attributes' must be a list of attribute names, "
            f"not {type(attributes).__name__}"
        )
    keys = tuple(attributes)
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(
                f"{func}() argument 'attributes' must hold attribute names (str), not {type(key).__name__}"
            )
        if key in RESERVED or ATTRIBUTE_KEY.fullmatch(key) is None:
            why = (
                "is written for the remote parent and the links"
                if key in RESERVED
                else "cannot be written in a tree line (letters, digits and _ . - / : @, not first a digit)"
            )
            raise ValueError(f"{func}() argument 'attributes': {key!r} {why}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"{func}() argument 'attributes' names an attribute twice: {list(keys)!r}")
    return keys


def _normalizer(normalize: object, func: str) -> Normalizer | None:
    __tracebackhide__ = True
    if normalize is True:
        return normalize_name
    if normalize is False or normalize is None:
        return None
    if not callable(normalize):
        raise TypeError(
            f"{func}() argument 'normalize' must be True (the built-in placeholders), False, or a function "
            f"of a span name that returns the name to show, not {type(normalize).__name__}"
        )
    return normalize


def _of_trace(spans: list[ReadableSpan], trace: object, func: str) -> list[ReadableSpan]:
    """The spans of one trace: a ``Trace``, a span (its trace) or a trace id."""
    __tracebackhide__ = True
    if isinstance(trace, Trace):
        wanted = {span.context.span_id for span in trace.spans}
        return [span for span in spans if span.context.span_id in wanted]
    if isinstance(trace, ReadableSpan):
        trace_id = trace.context.trace_id
    elif isinstance(trace, (int, str)) and not isinstance(trace, bool):
        trace_id = parse_trace_id(trace, func, "trace")
    else:
        raise TypeError(
            f"{func}() argument 'trace' must be a Trace, a span, or a trace id (an int or 32-digit hex "
            f"string), not {type(trace).__name__}"
        )
    return [span for span in spans if span.context.trace_id == trace_id]


def tree_text(
    spans: Iterable[ReadableSpan],
    ambient: Collection[int],
    *,
    attributes: Sequence[str] = (),
    normalize: Normalizer | None = None,
    func: str = "TraceCapture.tree",
) -> str:
    """The text tree of ``spans``, one line a span, two spaces a level (no newline at the end: syrupy
    would keep it as a line of two spaces, which editors and hooks strip)."""
    with collection_paused():
        graph = SpanGraph(spans, ambient)
        labels = _Labels(graph, attributes, normalize, func)
        return _Layout(graph, labels).text()


class _Labels:
    """``name [kind] {details}`` of each span, as ``assert_trace_tree`` reads it back."""

    def __init__(
        self, graph: SpanGraph, attributes: Sequence[str], normalize: Normalizer | None, func: str
    ) -> None:
        self.graph = graph
        self.attributes = attributes
        self.normalize = normalize
        self.func = func
        self._names: dict[str, str] = {}  # a span name -> its name as written (normalised, escaped)

    def all(self) -> dict[int, str]:
        """Span id -> label, for every span of the graph (one loop: it runs once per span)."""
        labels: dict[int, str] = {}
        plain: dict[tuple[str, SpanKind], str] = {}  # labels without details, by name and kind
        chosen = self.attributes
        for span_id, span in self.graph.by_id.items():
            parent = span.parent
            links = links_of(span)
            if not (links or chosen or (parent is not None and parent.is_remote)):
                key = (span.name, span.kind)
                label = plain.get(key)
                if label is None:
                    label = plain[key] = self._make(span, None)
                labels[span_id] = label
                continue
            labels[span_id] = self._make(span, self._details(span, links))
        return labels

    def name(self, name: str) -> str:
        """The name as the normaliser gives it (checked to be a str)."""
        normalize = self.normalize
        if normalize is None:
            return name
        normalized = normalize(name)
        if not isinstance(normalized, str):
            raise TypeError(
                f"{self.func}() argument 'normalize' must return the name as a str, "
                f"not {type(normalized).__name__} (for {name!r})"
            )
        return normalized

    def _make(self, span: ReadableSpan, details: Details | None) -> str:
        suffix = _TAGS[span.kind] + (" " + details.text() if details is not None else "")
        written = self._names.get(span.name)
        if written is None:
            written = self._names[span.name] = self._written(span.name)
        if written is not _UNSURE_NAME:
            return written + suffix
        name = self.name(span.name)
        if label_parses_as(name + suffix, name, span.kind, details):
            return name + suffix
        return "~" + _escaped(name) + suffix

    def _written(self, raw: str) -> str:
        """The name as written in every label, or ``_UNSURE_NAME`` where that depends on the suffix."""
        name = self.name(raw)
        if _LINE_BREAK.search(name) is not None:
            return "~" + _escaped(name)
        if _UNSURE.search(name) is not None:
            return _UNSURE_NAME
        return name

    def _details(self, span: ReadableSpan, links: Sequence[Link] | None) -> Details | None:
        parent = span.parent
        remote = parent is not None and parent.is_remote
        chosen = attribute_text(span.attributes or {}, self.attributes) if self.attributes else []
        if not (remote or links or chosen):
            return None
        names = tuple(link_names(links, self.graph.by_id, self.name)) if links else None
        return Details(remote, names, tuple(chosen))


def _escaped(name: str) -> str:
    """A regular expression that matches exactly ``name`` and reads back as one line."""
    out = []
    last = len(name) - 1
    for index, char in enumerate(name):
        if char in _SPECIAL:
            out.append("\\" + char)
        elif char.isspace() and (char != " " or index in (0, last)):
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
            )
        else:
            out.append(char)
    return "".join(out) or "(?:)"


class _Layout:
    """The lines of the trees, siblings in canonical order: by label, then by shape.

    Siblings of one label are ordered by ``(height, rank)`` of their subtrees:
    lower subtrees first, and among subtrees of one height by their label and
    their children's ranks. Ranks depend on the labels and the shape alone,
    never on span ids or start times; identical subtrees tie (their order
    cannot show). They are computed once, and only if some label ties.
    """

    def __init__(self, graph: SpanGraph, labels: _Labels) -> None:
        self.graph = graph
        self.func = labels.func
        self.label = labels.all()
        self.kid_ids = graph.kid_ids
        self._order: dict[int, int] | None = None  # see _rank_all

    def text(self) -> str:
        label, kid_ids, ordered = self.label, self.kid_ids, self._ordered
        lines: list[str] = []
        stack = [
            (span_id, 0) for span_id in reversed(ordered([top.context.span_id for top in self.graph.tops]))
        ]
        pop, push = stack.pop, stack.extend
        while stack:
            span_id, depth = pop()
            if depth == MAX_DEPTH:
                raise ValueError(
                    f"{self.func}(): {self.graph.by_id[span_id].name!r} is {MAX_DEPTH + 1:,} levels deep; "
                    "the text indents two spaces a level, so it would grow with the square of the depth. "
                    "Leave levels out with where=, or assert the shape with assert_trace_tree and nested "
                    "tuples"
                )
            lines.append("  " * depth + label[span_id])
            kids = kid_ids.get(span_id)
            if kids:
                deeper = depth + 1
                push([(kid, deeper) for kid in reversed(ordered(kids))])
        return "\n".join(lines)

    def _ordered(self, span_ids: list[int]) -> list[int]:
        if len(span_ids) == 1:
            return span_ids
        if self._order is not None:
            return sorted(span_ids, key=self._order.__getitem__)
        label = self.label
        ordered = sorted(span_ids, key=label.__getitem__)
        if len({label[span_id] for span_id in span_ids}) == len(span_ids):
            return ordered
        kid_ids = self.kid_ids
        below = [kid_ids.get(span_id) for span_id in span_ids]
        if not any(below):
            return ordered  # tied leaves are identical
        if not any(kid in kid_ids for kids in below if kids for kid in kids):
            # Children that are all leaves: their sorted labels order these as the ranks would.
            keys = {
                span_id: (
                    label[span_id],
                    1 if kids else 0,
                    sorted([label[kid] for kid in kids]) if kids else [],
                )
                for span_id, kids in zip(span_ids, below, strict=True)
            }
            return sorted(span_ids, key=keys.__getitem__)
        return sorted(span_ids, key=self._rank_all().__getitem__)

    def _rank_all(self) -> dict[int, int]:
        """Span id -> the place of its subtree in the canonical order (label, height, then the children's
        places); equal for identical subtrees. Computed once, without recursion."""
        label, kid_ids = self.label, self.kid_ids
        order = pre_order(self.graph)
        # Subtrees by structure: (label, sorted child shapes) -> shape number, children first.
        shape_of: dict[int, int] = {}
        shapes: dict[tuple[str, tuple[int, ...]], int] = {}
        heights: list[int] = []
        for span_id in reversed(order):
            kids = kid_ids.get(span_id)
            below = tuple(sorted([shape_of[kid] for kid in kids])) if kids else ()
            key = (label[span_id], below)
            shape = shapes.get(key)
            if shape is None:
                shape = shapes[key] = len(heights)
                heights.append(1 + max([heights[kid] for kid in below]) if below else 0)
            shape_of[span_id] = shape
        # Shapes ranked height by height: by label, then by their children's ranks.
        rank: dict[int, tuple[int, int]] = {}
        by_height: dict[int, list[tuple[str, tuple[int, ...], int]]] = {}
        for (name, below), shape in shapes.items():
            by_height.setdefault(heights[shape], []).append((name, below, shape))
        for height in sorted(by_height):
            keyed = sorted(
                by_height[height], key=lambda item: (item[0], sorted([rank[kid] for kid in item[1]]))
            )
            for position, (_, _, shape) in enumerate(keyed):
                rank[shape] = (height, position)
        # One number per shape: siblings sort by label first, then by rank.
        canonical = sorted(shapes.items(), key=lambda item: (item[0][0], rank[item[1]]))
        place = {shape: index for index, (_, shape) in enumerate(canonical)}
        self._order = placed = {span_id: place[shape] for span_id, shape in shape_of.items()}
        return placed
