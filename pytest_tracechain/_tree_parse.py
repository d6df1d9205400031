"""The expected trees of ``assert_trace_tree``: text, nested tuples or dicts, parsed into ``Node``s.

The text form is indented two spaces a level, with an optional trailing
``[kind]`` and ``~regex`` names; the nested forms may hold text trees. Errors
name the line, or the place in the nested structure, that is wrong.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeGuard

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain._filters import parse_kind
from pytest_tracechain._tree_details import Details, split_details

__all__ = ["FUNC", "KeyMode", "Node", "label_parses_as", "parse_expected", "parse_text", "walk"]

FUNC = "assert_trace_tree"
_KINDS = {kind.name.lower(): kind for kind in SpanKind}
_KIND_SUFFIX = re.compile(r"^(?P<name>.*?)\s*\[(?P<kind>[A-Za-z]+)\]$")
# Structural keys cover names and kinds ("k"), or names only ("n"), see _tree_match.
KeyMode = Literal["k", "n"]


@dataclass(eq=False, slots=True)
class Node:
    """One expected span: a name (exact or a pattern), an optional kind, children."""

    label: str
    name: str | re.Pattern[str]
    kind: SpanKind | None
    children: list[Node] = field(default_factory=list)
    details: Details | None = None  # the ``{...}`` group: remote parent, links, attributes
    # Structural keys (see _tree_match): set when the subtree has no pattern
    # and either every kind given ("k") or none given ("n").
    key: tuple[KeyMode, int] | None = None
    size: int = 1
    parent: Node | None = None  # set with the keys

    def names(self, span: ReadableSpan) -> bool:
        if isinstance(self.name, str):
            return span.name == self.name
        return self.name.fullmatch(span.name) is not None

    def fits(self, span: ReadableSpan) -> bool:
        """Name and kind match (children not looked at)."""
        return self.names(span) and (self.kind is None or span.kind is self.kind)

    def describe(self) -> str:
        return f"{self.label!r}"


def walk(roots: Iterable[Node]) -> list[Node]:
    """The nodes in pre-order (a list: cheaper than a generator for big trees)."""
    order: list[Node] = []
    stack = list(reversed(list(roots)))
    while stack:
        node = stack.pop()
        order.append(node)
        if node.children:
            stack += reversed(node.children)
    return order


# -- one label: ``name [kind]`` ----------------------------------------------------


def _label(text: str, where: str | _Where) -> Node:
    """A node from ``name [kind]``; ``where`` names the place for errors (formatted only then)."""
    __tracebackhide__ = True
    parsed = _parse_label(text)
    if isinstance(parsed, str):
        raise ValueError(f"{FUNC}(): {_where_text(where)}: {parsed}")
    label, name, kind, details = parsed
    return Node(label, name, kind, details=details)


@functools.lru_cache(maxsize=4096)
def _parse_label(text: str) -> tuple[str, str | re.Pattern[str], SpanKind | None, Details | None] | str:
    """(label, name or pattern, kind, details) of ``name [kind] {details}``, or what is wrong with it
    (cached: generated trees repeat their labels)."""
    text = label = text.strip()
    split = split_details(text)
    if isinstance(split, str):
        return split
    text, details = split
    name, kind = text, None
    match = _KIND_SUFFIX.match(text)
    if match is not None and match["kind"].lower() in _KINDS:
        name, kind = match["name"], _KINDS[match["kind"].lower()]
    if not name:
        return f"a span name is missing before {text!r}"
    if not name.startswith("~"):
        return label, name, kind, details
    if len(name) == 1:
        return "'~' must be followed by a regular expression"
    try:
        return label, re.compile(name[1:]), kind, details
    except re.error as exc:
        return f"{name[1:]!r} is not a valid regular expression: {exc}"


def label_parses_as(label: str, name: str, kind: SpanKind, details: Details | None) -> bool:
    """Whether ``label`` reads back as exactly this name, kind (none for INTERNAL) and details."""
    parsed = _parse_label(label)
    if isinstance(parsed, str):
        return False
    _, parsed_name, parsed_kind, parsed_details = parsed
    shown_kind = None if kind is SpanKind.INTERNAL else kind
    return parsed_name == name and parsed_kind is shown_kind and parsed_details == details


# -- the text form -----------------------------------------------------------------


def parse_text(text: str) -> list[Node]:
    """The roots of an indented text tree (two spaces a level)."""
    __tracebackhide__ = True
    lines = _tree_lines(text)
    base = min(len(line) - len(line.lstrip(" ")) for _, line in lines)
    roots: list[Node] = []
    stack: list[Node] = []
    for number, line in lines:
        indent = len(line) - len(line.lstrip(" ")) - base
        level = indent // 2
        if indent % 2 or level > len(stack):
            raise _indent_error(number, line, indent, len(stack))
        del stack[level:]
        node = _label(line, f"line {number}")
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
    return roots


def _tree_lines(text: str) -> list[tuple[int, str]]:
    """The non-blank lines with their numbers; none indented with tabs."""
    __tracebackhide__ = True
    lines = [(number, line.rstrip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ValueError(f"{FUNC}(): the expected tree is empty")
    for number, line in lines:
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise ValueError(f"{FUNC}(): line {number}: indent with spaces (two a level), not tabs")
    return lines


def _indent_error(number: int, line: str, indent: int, depth: int) -> ValueError:
    """What is wrong with a line indented by ``indent`` spaces, below ``depth`` open levels."""
    if indent % 2:
        return ValueError(
            f"{FUNC}(): line {number}: {line.strip()!r} is indented by {indent} spaces; "
            "use two spaces per level"
        )
    above = "a child of the line above" if depth else "the first line"
    return ValueError(
        f"{FUNC}(): line {number}: {line.strip()!r} is indented by {indent} spaces, deeper than "
        f"{above} ({2 * depth} at most); a child is indented one level (two spaces)"
    )


def _text_nodes(text: str, where: _Where) -> list[Node]:
    """A text tree, or one label, inside the nested form."""
    __tracebackhide__ = True
    return parse_text(text) if "\n" in text else [_label(text, where)]


# -- the nested form ---------------------------------------------------------------

# Where a value sits in the expected structure, for error messages: a linked
# list (parent, key or index), formatted only when an error needs it, so deep
# generated trees cost no string building.
_Where = tuple[object, object]
_ROOT: _Where = (None, "expected")
# A value still to parse: (value, where, the list its nodes go to, whether value is a children slot).
_Pending = tuple[object, _Where, list[Node], bool]


def _where_text(where: str | _Where | None) -> str:
    if isinstance(where, str):
        return where
    parts: list[str] = []
    while where is not None:
        parent, segment = where
        parts.append(segment if where is _ROOT else f"[{segment!r}]")  # type: ignore[arg-type]
        where = parent  # type: ignore[assignment]
    return "".join(reversed(parts))


def _is_node_tuple(value: object) -> TypeGuard[tuple[object, ...]]:
    if not isinstance(value, tuple) or not value or not isinstance(value[0], (str, re.Pattern)):
        return False
    if len(value) == 2:
        return value[1] is None or isinstance(value[1], (list, tuple, Mapping))
    return len(value) == 3 and isinstance(value[1], (str, SpanKind))


def _structure(value: object) -> list[Node]:
    """Nodes from the nested-tuple/dict form (a text tree may sit inside it), without recursion.

    A list or dict met again inside itself is an error, not a tree without end;
    one shared by siblings is no cycle. ``wheres`` holds the containers the
    walk is in (id -> where, innermost last), ``heights`` the stack height at
    which each one's items start: a container is left once the stack is below
    that, which is looked at only when the stack grows (the stack cannot grow
    back above a height without a list, tuple or dict being expanded). Only
    lists and mappings are watched: only a mutable container can hold itself.
    """
    __tracebackhide__ = True
    out: list[Node] = []
    stack: list[_Pending] = [(value, _ROOT, out, False)]
    wheres: dict[int, _Where] = {}
    heights: list[int] = []
    lowest = -1  # heights[-1], or -1 outside every container
    while stack:
        value, where, target, is_children = stack.pop()
        # The common shapes of generated trees first, by exact type (isinstance
        # against Mapping is slow, and this loop runs once per expected span).
        if type(value) is tuple and _is_node_tuple(value):
            stack.append(_tuple_node(value, where, target))
        elif type(value) is str:  # _text_nodes, inline: this runs once per leaf
            if "\n" in value:
                target += parse_text(value)
            else:
                target.append(_label(value, where))
        elif type(value) is list:
            if value:  # once per list of children
                lowest = _enter_list(value, where, target, stack, (wheres, heights))
        elif type(value) is tuple:
            if len(stack) < lowest:
                lowest = _leave(len(stack), heights, wheres)
            stack += _items(value, where, target)
        elif value is not None or not is_children:
            _other_value(value, where, target, is_children, stack, (wheres, heights))
            lowest = heights[-1] if heights else -1
    return out


# The containers the walk is in: id -> where (innermost last), and the stack heights of their items.
_Inside = tuple[dict[int, _Where], list[int]]


def _enter_list(
    value: list[object],
    where: _Where,
    target: list[Node],
    stack: list[_Pending],
    inside: _Inside,
) -> int:
    """Push a list of children; the new innermost height (a list met again inside itself is an error)."""
    __tracebackhide__ = True
    height = len(stack)
    _enter(value, where, inside, height)
    if len(value) == 1:  # a chain: one child a level
        stack.append((value[0], (where, 0), target, False))
    else:
        stack += _items(value, where, target)
    return height


def _enter(container: object, where: _Where, inside: _Inside, height: int) -> None:
    """The walk is in ``container``, its items from stack height ``height``; inside itself, an error."""
    __tracebackhide__ = True
    wheres, heights = inside
    _leave(height, heights, wheres)
    key = id(container)
    if key in wheres:
        raise _cycle(container, where, wheres[key])
    wheres[key] = where
    heights.append(height)


def _leave(height: int, heights: list[int], wheres: dict[int, _Where]) -> int:
    """Leave every container whose items start above ``height``; the innermost one's height, or -1."""
    while heights and heights[-1] > height:
        heights.pop()
        wheres.popitem()
    return heights[-1] if heights else -1


def _cycle(container: object, where: _Where, outer: _Where) -> ValueError:
    return ValueError(
        f"{FUNC}() argument 'expected' contains itself: {_where_text(where)} is "
        f"{_where_text(outer)} again (a {type(container).__name__} that holds itself has no end)"
    )


def _tuple_node(value: tuple[object, ...], where: _Where, target: list[Node]) -> _Pending:
    """The node of ``(name, children)`` or ``(name, kind, children)``; its children still to parse."""
    __tracebackhide__ = True
    node = _head(value[0], value[1] if len(value) == 3 else None, where)
    target.append(node)
    return value[-1], (where, value[0]), node.children, True


def _items(value: list[object] | tuple[object, ...], where: _Where, target: list[Node]) -> list[_Pending]:
    """The items of a list of siblings, last first (they are popped from a stack)."""
    return [(value[i], (where, i), target, False) for i in range(len(value) - 1, -1, -1)]


def _mapping_items(value: Mapping[object, object], where: _Where, target: list[Node]) -> list[_Pending]:
    """The nodes of a dict ``name -> children``; their children still to parse, last first."""
    __tracebackhide__ = True
    made: list[_Pending] = []
    for key, children in value.items():
        key_where = (where, key)
        node = _head(key, None, key_where)
        target.append(node)
        made.append((children, key_where, node.children, True))
    made.reverse()
    return made


def _other_value(
    value: object,
    where: _Where,
    target: list[Node],
    is_children: bool,
    stack: list[_Pending],
    inside: _Inside,
) -> None:
    """The shapes the fast path of ``_structure`` does not take: subclasses, patterns, dicts, errors."""
    __tracebackhide__ = True
    if is_children and not isinstance(value, (str, Mapping, list, tuple)):
        raise TypeError(
            f"{FUNC}() argument 'expected': the children at {_where_text(where)} must be a list, "
            f"tuple or dict, not {type(value).__name__}"
        )
    if isinstance(value, str):
        target += _text_nodes(value, where)
    elif isinstance(value, re.Pattern):
        target.append(Node(f"~{value.pattern}", value, None))
    elif isinstance(value, Mapping):
        _enter(value, where, inside, len(stack))
        stack += _mapping_items(value, where, target)
    elif _is_node_tuple(value):
        stack.append(_tuple_node(value, where, target))
    elif isinstance(value, (list, tuple)):
        if isinstance(value, list):
            _enter(value, where, inside, len(stack))
        else:
            _leave(len(stack), inside[1], inside[0])
        stack += _items(value, where, target)
    else:
        raise TypeError(
            f"{FUNC}() argument 'expected' must be an indented text tree, nested (name, children) "
            f"tuples, or a dict of name -> children; {_where_text(where)} is {type(value).__name__}"
        )


def _head(name: object, kind: object, where: _Where) -> Node:
    """The node of a tuple's or dict's name, with the kind given apart (if any)."""
    __tracebackhide__ = True
    if isinstance(name, re.Pattern):
        node = Node(f"~{name.pattern}", name, None)
    elif isinstance(name, str) and kind is not None:
        node = _whole_name(name, where)
    elif isinstance(name, str):
        node = _label(name, where)
    else:
        raise TypeError(
            f"{FUNC}() argument 'expected': {_where_text(where)} has a name of type "
            f"{type(name).__name__}; a span name is a str or a compiled regex"
        )
    if kind is not None:
        try:
            node.kind = parse_kind(kind)
        except ValueError as exc:
            raise ValueError(f"{FUNC}(): {_where_text(where)}: {exc}") from None
        node.label = f"{node.label} [{node.kind.name.lower()}]"
    return node


def _whole_name(name: str, where: _Where) -> Node:
    """A name whose kind is given apart: all of it is name (a ``[kind]`` suffix included)."""
    __tracebackhide__ = True
    name = name.strip()
    if not name.startswith("~"):
        return Node(name, name, None)
    parsed = _parse_label(name)
    if isinstance(parsed, str):
        raise ValueError(f"{FUNC}(): {_where_text(where)}: {parsed}")
    return Node(name, parsed[1], None)


def parse_expected(expected: object) -> list[Node]:
    """The expected roots, from any of the three forms."""
    __tracebackhide__ = True
    if isinstance(expected, str):
        return parse_text(expected)
    if isinstance(expected, (Mapping, list, tuple)):
        roots = _structure(expected)
        if not roots:
            raise ValueError(f"{FUNC}(): the expected tree is empty")
        return roots
    raise TypeError(
        f"{FUNC}() argument 'expected' must be an indented text tree (str), nested (name, children) "
        f"tuples, or a dict of name -> children, not {type(expected).__name__}"
    )
