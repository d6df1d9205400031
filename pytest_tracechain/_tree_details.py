"""What a tree line may say about a span beyond its name and kind: ``{remote, links=[...], key=value}``.

A trailing brace group after ``name [kind]`` holds comma-separated items:

- ``remote``: the span's parent context is remote (it came through a carrier,
  or from another process);
- ``links=["name", ...]``: the names of the spans it links to, sorted;
  ``"?"`` stands for a linked span that is not among the spans compared;
- ``key=value``: an attribute and its value, a Python literal (a string in
  quotes, a number, ``True``/``False``, or a list of those).

``TraceCapture.tree()`` writes the group, ``assert_trace_tree`` checks it. A
brace group that holds no such item (``GET /users/{id}``) stays part of the name.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link

__all__ = [
    "NOT_CAPTURED",
    "RESERVED",
    "Details",
    "attribute_text",
    "link_names",
    "parse_details",
    "split_details",
]

NOT_CAPTURED = "?"
RESERVED = frozenset({"remote", "links"})
ATTRIBUTE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/:@]*")
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
_ITEM_START = re.compile(r"\s*(?P<key>[A-Za-z_][A-Za-z0-9_.\-/:@]*)\s*(?P<eq>=)?\s*")


@dataclass(frozen=True, slots=True)
class Details:
    """The brace group of one expected span; ``None`` fields are not checked."""

    remote: bool = False
    links: tuple[str, ...] | None = None
    attributes: tuple[tuple[str, object], ...] = ()

    def text(self) -> str:
        items = ["remote"] if self.remote else []
        if self.links is not None:
            items.append("links=" + value_text(list(self.links)))
        items += [f"{key}={value_text(value)}" for key, value in self.attributes]
        return "{" + ", ".join(items) + "}"

    def differences(self, span: ReadableSpan, link_names: Sequence[str]) -> str | None:
        """What ``span`` has otherwise than expected (``link_names``: its links' names, sorted), or None."""
        found = found_details(span, self, link_names)
        if (
            found.remote == self.remote
            and found.links == self.links
            and all(
                same_value(want, got)
                for (_, want), (_, got) in zip(self.attributes, found.attributes, strict=True)
            )
        ):
            return None
        return f"expected {self.text()}, found {found.text()}"


def found_details(span: ReadableSpan, like: Details, link_names: Sequence[str]) -> Details:
    """The details of ``span`` that ``like`` asks about, in its order (``link_names`` sorted)."""
    attributes = span.attributes or {}
    parent = span.parent
    return Details(
        remote=like.remote and parent is not None and parent.is_remote,
        links=tuple(link_names) if like.links is not None else None,
        attributes=tuple((key, _plain(attributes.get(key, _ABSENT))) for key, _ in like.attributes),
    )


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _plain(value: object) -> object:
    """Sequences as tuples (attributes hold tuples, literals lists), recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(item) for item in value)
    return value


def value_text(value: object) -> str:
    """A value as the Python literal a tree line holds (strings in double quotes)."""
    if isinstance(value, str):  # escaped where a line would break (JSON leaves these three)
        return json.dumps(value, ensure_ascii=False).translate(_LINE_BREAKS)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    if value is _ABSENT:
        return "absent"
    return repr(value)


def link_names(
    links: Iterable[Link], spans: Mapping[int, ReadableSpan], name: Callable[[str], str] | None = None
) -> list[str]:
    """The names of the spans ``links`` point to, sorted: ``NOT_CAPTURED`` for one not among ``spans``
    (by span id); ``name`` rewrites each name (a normaliser)."""
    names = []
    for link in links:
        linked = spans.get(link.context.span_id)
        if linked is None:
            names.append(NOT_CAPTURED)
        else:
            names.append(linked.name if name is None else name(linked.name))
    names.sort()
    return names


def attribute_text(attributes: Mapping[str, object], keys: Sequence[str]) -> list[tuple[str, object]]:
    """The chosen attributes a span has, in the order of ``keys``."""
    return [(key, _plain(attributes[key])) for key in keys if key in attributes]


# -- parsing -----------------------------------------------------------------------


def split_details(text: str) -> tuple[str, Details | None] | str:
    """``(the text before the group, its details)``; ``(text, None)`` when it ends in no group; or
    what is wrong with a group that holds items but not valid ones."""
    if not text.endswith("}"):
        return text, None
    error = None  # of the first group meant as details, if none is valid
    start = text.find(" {")
    while start != -1:
        parsed = parse_details(text[start + 2 : -1])
        if isinstance(parsed, Details):
            return text[:start].rstrip(), parsed
        if parsed is not None and error is None and _looks_like_items(text[start + 2 : -1]):
            error = parsed
        start = text.find(" {", start + 1)
    return error if error is not None else (text, None)


def _looks_like_items(body: str) -> bool:
    """A group meant as details: it starts with ``remote`` or ``key=`` (``{id}`` does not)."""
    match = _ITEM_START.match(body)
    if match is None:
        return False
    return match["eq"] is not None or match["key"] == "remote"


def parse_details(body: str) -> Details | str | None:
    """The details in a group's ``body``; an error message if it is meant as one but wrong; None
    if it is no group of details at all."""
    if not body.strip():
        return None
    remote, links, attributes = False, None, []
    position = 0
    seen: set[str] = set()
    while position < len(body):
        match = _ITEM_START.match(body, position)
        if match is None:
            return None
        key = match["key"]
        if key in seen:
            return f"{{{body}}}: {key!r} is given twice"
        seen.add(key)
        position = match.end()
        if match["eq"] is None:
            if key != "remote":
                return None
            remote = True
        else:
            end = _literal_end(body, position)
            value = _literal(body[position:end])
            if isinstance(value, _Bad):
                return f"{{{body}}}: the value of {key!r} is not a Python literal: {value.reason}"
            if key == "links":
                if not isinstance(value, tuple) or not all(isinstance(name, str) for name in value):
                    return f"{{{body}}}: links= takes a list of span names"
                links = tuple(sorted(value))
            else:
                attributes.append((key, value))
            position = end
        position = _after_item(body, position)
        if position < 0:
            return None
    return Details(remote, links, tuple(attributes))


def _after_item(body: str, position: int) -> int:
    """Past the comma after an item (the end when none follows); -1 if something else follows."""
    rest = body[position:].lstrip()
    if not rest:
        return len(body)
    if rest[0] != ",":
        return -1
    return len(body) - len(rest) + 1


class _Bad:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _literal(text: str) -> object:
    """The value of a literal (lists as tuples), or why it is none."""
    text = text.strip()
    if not text:
        return _Bad("it is empty")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return _Bad(f"{text!r} (quote strings)")
    if not _is_attribute_value(value):
        return _Bad(f"{text!r} is no attribute value (a string, number, bool or a list of them)")
    return _plain(value)


def _is_attribute_value(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(item, (str, bool, int, float)) for item in value)
    return isinstance(value, (str, bool, int, float))


_CLOSE = {"[": "]", "(": ")"}


def _literal_end(body: str, start: int) -> int:
    """Where the literal starting at ``start`` ends: the next comma outside strings and brackets."""
    depth: list[str] = []
    position = start
    while position < len(body):
        char = body[position]
        if char in "\"'":
            position = _string_end(body, position)
            continue
        if char in _CLOSE:
            depth.append(_CLOSE[char])
        elif depth and char == depth[-1]:
            depth.pop()
        elif char == "," and not depth:
            return position
        position += 1
    return position


def _string_end(body: str, start: int) -> int:
    """Just past the string literal opened at ``start`` (or the end of ``body``)."""
    quote = body[start]
    position = start + 1
    while position < len(body):
        char = body[position]
        if char == "\\":
            position += 2
            continue
        if char == quote:
            return position + 1
        position += 1
    return position


def same_value(expected: object, found: object) -> bool:
    """Equal and of the same types (``1`` is not ``True``, nor ``1.0``)."""
    if isinstance(expected, tuple) and isinstance(found, tuple):
        return len(expected) == len(found) and all(map(same_value, expected, found))
    return type(expected) is type(found) and expected == found
