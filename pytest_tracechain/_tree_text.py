"""``TraceCapture.tree()``: the captured traces as text in ``assert_trace_tree``'s syntax.

The text is made for snapshots: it holds names, kinds (where not INTERNAL),
the nesting, remote parents, links and chosen attributes, and nothing that
differs from run to run (no ids, timings, threads or pids). Siblings and
traces are in a canonical order that depends only on what the text shows: by
label; where labels tie, by the labels of their children, then by a digest of
the subtrees below them.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence

from opentelemetry.sdk.trace import ReadableSpan

from pytest_tracechain._filters import parse_trace_id
from pytest_tracechain._graph import SpanGraph, Trace, collection_paused
from pytest_tracechain._render import kind_tag
from pytest_tracechain._tree_details import ATTRIBUTE_KEY, NOT_CAPTURED, RESERVED, Details, attribute_text
from pytest_tracechain._tree_parse import label_parses_as

__all__ = ["Normalizer", "capture_tree", "compare_trees", "normalize_name", "tree_text"]

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


def normalize_name(name: str) -> str:
    """``name`` with UUIDs, hex ids, temporary queue names and numbers replaced by placeholders."""
    for pattern, placeholder in _RANDOM_PARTS:
        name = pattern.sub(placeholder, name)
    return name


# The texts tree() returned last, held so that a failed ``tree() == expected`` can be told
# from other string comparisons by identity (a str cannot be weakly referenced).
_RETURNED: deque[str] = deque(maxlen=8)
_DIFF_LINES = 400


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
    """The text tree of ``spans``, one line a span, two spaces a level, ending in a newline."""
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
        self.by_id: dict[int, str] = {}

    def of(self, span: ReadableSpan) -> str:
        span_id = span.context.span_id
        label = self.by_id.get(span_id)
        if label is None:
            label = self.by_id[span_id] = self._make(span)
        return label

    def name(self, name: str) -> str:
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

    def _make(self, span: ReadableSpan) -> str:
        name, tag = self.name(span.name), kind_tag(span.kind)
        details = self._details(span)
        suffix = tag + (" " + details.text() if details is not None else "")
        if _LINE_BREAK.search(name) is None and (
            _UNSURE.search(name) is None or label_parses_as(name + suffix, name, span.kind, details)
        ):
            return name + suffix
        return "~" + _escaped(name) + suffix

    def _details(self, span: ReadableSpan) -> Details | None:
        parent = span.parent
        remote = parent is not None and parent.is_remote
        links = span.links
        chosen = attribute_text(span.attributes or {}, self.attributes) if self.attributes else []
        if not (remote or links or chosen):
            return None
        by_id = self.graph.by_id
        names = None
        if links:
            names = []
            for link in links:
                linked = by_id.get(link.context.span_id)
                names.append(self.name(linked.name) if linked is not None else NOT_CAPTURED)
            names.sort()
        return Details(remote, tuple(names) if names is not None else None, tuple(chosen))


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
    """The lines of the trees, siblings in canonical order."""

    def __init__(self, graph: SpanGraph, labels: _Labels) -> None:
        self.graph = graph
        self.labels = labels
        self.digests: dict[int, bytes] = {}

    def text(self) -> str:
        graph, label_of = self.graph, self.labels.of
        kids = graph.children
        lines: list[str] = []
        stack = [(span, 0) for span in reversed(self._ordered(graph.tops))]
        while stack:
            span, depth = stack.pop()
            lines.append("  " * depth + label_of(span))
            below = kids.get(span.context.span_id)
            if below:
                stack += [(kid, depth + 1) for kid in reversed(self._ordered(below))]
        return "".join(line + "\n" for line in lines)

    def _ordered(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        """By label; spans of one label by the digest of their subtrees (identical subtrees tie)."""
        if len(spans) == 1:
            return spans
        label_of, kids = self.labels.of, self.graph.children
        ordered: list[ReadableSpan] = []
        for _, same in itertools.groupby(sorted(spans, key=label_of), key=label_of):
            group = list(same)
            if len(group) > 1 and any(span.context.span_id in kids for span in group):
                group.sort(key=self._tie_break)
            ordered += group
        return ordered

    def _tie_break(self, span: ReadableSpan) -> tuple[list[str], bytes]:
        """Siblings of one label: by their children's labels, then by a digest of what lies deeper."""
        label_of = self.labels.of
        below = sorted(label_of(kid) for kid in self.graph.children.get(span.context.span_id, ()))
        return below, self._digest(span)

    def _digest(self, top: ReadableSpan) -> bytes:
        """A digest of the subtree of ``top`` (its labels and shape, sibling order aside), memoised."""
        digests, kids, label_of = self.digests, self.graph.children, self.labels.of
        stack = [(top, False)]
        while stack:
            span, expanded = stack.pop()
            span_id = span.context.span_id
            if span_id in digests:
                continue
            below = kids.get(span_id, ())
            if not expanded and below:
                stack.append((span, True))
                stack += [(kid, False) for kid in below]
                continue
            digest = hashlib.blake2b(label_of(span).encode("utf-8", "surrogatepass") + b"\0", digest_size=16)
            for child in sorted(digests[kid.context.span_id] for kid in below):
                digest.update(child)
            digests[span_id] = digest.digest()
        return digests[top.context.span_id]
