"""The expected trees of assert_trace_tree: the text, tuple and dict forms, kinds, patterns and errors."""

from __future__ import annotations

import re
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.trace import SpanKind

from pytest_tracechain._tree_parse import Node, parse_expected, parse_text, walk
from tests.unit.spans import span

Shape = tuple[str, object, object, list["Shape"]]
Tree = tuple[str, SpanKind | None, list["Tree"]]


def shape(nodes: list[Node]) -> list[Shape]:
    """(label, name or pattern text, kind, children) of each node, nested."""
    return [
        (
            node.label,
            node.name if isinstance(node.name, str) else f"re:{node.name.pattern}",
            node.kind,
            shape(node.children),
        )
        for node in nodes
    ]


def error(expected: object) -> str:
    with pytest.raises((ValueError, TypeError)) as info:
        parse_expected(expected)
    return str(info.value)


# -- the text form -------------------------------------------------------------------


def test_text_tree_levels_two_spaces_each() -> None:
    text = "a\n  b\n    c\n  d\ne\n"
    assert shape(parse_text(text)) == [
        ("a", "a", None, [("b", "b", None, [("c", "c", None, [])]), ("d", "d", None, [])]),
        ("e", "e", None, []),
    ]


def test_text_tree_common_indent_blank_lines_and_trailing_spaces_are_ignored() -> None:
    text = "\n    a   \n\n      b\n   \n    c\n"
    assert shape(parse_text(text)) == [("a", "a", None, [("b", "b", None, [])]), ("c", "c", None, [])]


def test_a_trailing_kind_in_any_case_sets_the_kind() -> None:
    nodes = parse_text("GET /hello [SERVER]\n  send [Producer]\n  call[client]\n  work   [internal]")
    assert shape(nodes) == [
        (
            "GET /hello [SERVER]",
            "GET /hello",
            SpanKind.SERVER,
            [
                ("send [Producer]", "send", SpanKind.PRODUCER, []),
                ("call[client]", "call", SpanKind.CLIENT, []),
                ("work   [internal]", "work", SpanKind.INTERNAL, []),
            ],
        )
    ]


def test_brackets_that_are_not_a_kind_stay_in_the_name() -> None:
    nodes = parse_text("GET /items/[id] [server]\n  lookup [cached]\n  [id] x\n  a [b] [consumer]")
    assert shape(nodes) == [
        (
            "GET /items/[id] [server]",
            "GET /items/[id]",
            SpanKind.SERVER,
            [
                ("lookup [cached]", "lookup [cached]", None, []),
                ("[id] x", "[id] x", None, []),
                ("a [b] [consumer]", "a [b]", SpanKind.CONSUMER, []),
            ],
        )
    ]


def test_a_tilde_name_is_a_regular_expression_the_whole_name_must_match() -> None:
    (node,) = parse_text("~GET /\\w+ [server]")
    assert shape([node]) == [("~GET /\\w+ [server]", "re:GET /\\w+", SpanKind.SERVER, [])]
    assert node.names(span("GET /hello", 1))
    assert not node.names(span("GET /hello/x", 1))
    assert not node.names(span("xGET /hello", 1))
    (plain,) = parse_text("a.b")
    assert plain.names(span("a.b", 1))
    assert not plain.names(span("axb", 1))


def test_fits_needs_the_name_and_the_kind_when_one_is_given() -> None:
    server = span("a", 1, kind=SpanKind.SERVER)
    internal = span("a", 2)
    (any_kind,) = parse_text("a")
    (server_only,) = parse_text("a [server]")
    assert any_kind.fits(server)
    assert any_kind.fits(internal)
    assert server_only.fits(server)
    assert not server_only.fits(internal)
    assert not server_only.fits(span("b", 3, kind=SpanKind.SERVER))
    assert server_only.describe() == "'a [server]'"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "assert_trace_tree(): the expected tree is empty"),
        ("  \n\n   \n", "assert_trace_tree(): the expected tree is empty"),
        ("a\n\tb", "assert_trace_tree(): line 2: indent with spaces (two a level), not tabs"),
        ("a\n  \tb", "assert_trace_tree(): line 2: indent with spaces (two a level), not tabs"),
        ("\ta\n  b\n   c", "assert_trace_tree(): line 1: indent with spaces (two a level), not tabs"),
        ("a\n   b", "assert_trace_tree(): line 2: 'b' is indented by 3 spaces; use two spaces per level"),
        (
            "a\n\n  b\n   c",
            "assert_trace_tree(): line 4: 'c' is indented by 3 spaces; use two spaces per level",
        ),
        (
            "a\n    b",
            "assert_trace_tree(): line 2: 'b' is indented by 4 spaces, deeper than a child of the line "
            "above (2 at most); a child is indented one level (two spaces)",
        ),
        (
            "a\n  b\n      c",
            "assert_trace_tree(): line 3: 'c' is indented by 6 spaces, deeper than a child of the line "
            "above (4 at most); a child is indented one level (two spaces)",
        ),
        (
            "    a\n  b",
            "assert_trace_tree(): line 1: 'a' is indented by 2 spaces, deeper than the first line "
            "(0 at most); a child is indented one level (two spaces)",
        ),
        ("[server]", "assert_trace_tree(): line 1: a span name is missing before '[server]'"),
        ("a\n  [CLIENT]", "assert_trace_tree(): line 2: a span name is missing before '[CLIENT]'"),
        ("~", "assert_trace_tree(): line 1: '~' must be followed by a regular expression"),
        ("a\n  ~ [server]", "assert_trace_tree(): line 2: '~' must be followed by a regular expression"),
        (
            "~(unclosed",
            "assert_trace_tree(): line 1: '(unclosed' is not a valid regular expression: "
            "missing ), unterminated subpattern at position 0",
        ),
    ],
)
def test_text_errors_name_the_line(text: str, message: str) -> None:
    assert error(text) == message


def test_a_tab_inside_a_name_is_part_of_the_name() -> None:
    assert shape(parse_text("a\tb\n  c")) == [("a\tb", "a\tb", None, [("c", "c", None, [])])]


# -- the nested forms ----------------------------------------------------------------


def test_tuples_with_and_without_a_kind() -> None:
    nodes = parse_expected(
        (
            "GET /hello",
            "server",
            [
                "service.User.Create",
                ("user.events send [producer]", [("user.events process", SpanKind.CONSUMER, [])]),
                ("leaf", None),
                ("kids in a tuple", ("x", "y")),
            ],
        )
    )
    assert shape(nodes) == [
        (
            "GET /hello [server]",
            "GET /hello",
            SpanKind.SERVER,
            [
                ("service.User.Create", "service.User.Create", None, []),
                (
                    "user.events send [producer]",
                    "user.events send",
                    SpanKind.PRODUCER,
                    [("user.events process [consumer]", "user.events process", SpanKind.CONSUMER, [])],
                ),
                ("leaf", "leaf", None, []),
                ("kids in a tuple", "kids in a tuple", None, [("x", "x", None, []), ("y", "y", None, [])]),
            ],
        )
    ]


def test_a_kind_given_apart_takes_the_name_whole() -> None:
    nodes = parse_expected(
        [
            ("odd [server]", "internal", []),
            ("  padded  ", "CLIENT", []),
            ("~a.+ [client]", "server", []),
            (re.compile("b+"), SpanKind.PRODUCER, None),
        ]
    )
    assert shape(nodes) == [
        ("odd [server] [internal]", "odd [server]", SpanKind.INTERNAL, []),
        ("padded [client]", "padded", SpanKind.CLIENT, []),
        ("~a.+ [client] [server]", "re:a.+", SpanKind.SERVER, []),
        ("~b+ [producer]", "re:b+", SpanKind.PRODUCER, []),
    ]


def test_dicts_patterns_and_text_trees_inside_the_nested_form() -> None:
    nodes = parse_expected(
        {
            "GET /hello [server]": {
                "service.User.Create": None,
                re.compile(r"user\.events send"): {"user.events process [consumer]": []},
                "text below": "a\n  b",
                "one name below": "c [client]",
            },
            "second": ["x", re.compile("y+"), "z\n  w"],
        }
    )
    assert shape(nodes) == [
        (
            "GET /hello [server]",
            "GET /hello",
            SpanKind.SERVER,
            [
                ("service.User.Create", "service.User.Create", None, []),
                (
                    "~user\\.events send",
                    "re:user\\.events send",
                    None,
                    [("user.events process [consumer]", "user.events process", SpanKind.CONSUMER, [])],
                ),
                ("text below", "text below", None, [("a", "a", None, [("b", "b", None, [])])]),
                ("one name below", "one name below", None, [("c [client]", "c", SpanKind.CLIENT, [])]),
            ],
        ),
        (
            "second",
            "second",
            None,
            [
                ("x", "x", None, []),
                ("~y+", "re:y+", None, []),
                ("z", "z", None, [("w", "w", None, [])]),
            ],
        ),
    ]


def test_a_list_of_roots_and_nested_lists_flatten_into_siblings() -> None:
    nodes = parse_expected(["a", ["b", ("c", ["d"])], "e\n  f"])
    assert shape(nodes) == [
        ("a", "a", None, []),
        ("b", "b", None, []),
        ("c", "c", None, [("d", "d", None, [])]),
        ("e", "e", None, [("f", "f", None, [])]),
    ]


def test_tuples_that_are_not_nodes_are_lists_of_siblings() -> None:
    # ("a", "b"): the second item is no children; ("a", 3, []) has no kind in the middle
    assert shape(parse_expected(("a", "b"))) == [("a", "a", None, []), ("b", "b", None, [])]
    assert shape(parse_expected(("a", re.compile("b")))) == [("a", "a", None, []), ("~b", "re:b", None, [])]
    assert shape(parse_expected(("a", "b", "c", []))) == [
        ("a", "a", None, []),
        ("b", "b", None, []),
        ("c", "c", None, []),
    ]


def test_subclasses_and_other_mappings_take_the_slow_path_to_the_same_nodes() -> None:
    class Name(str):
        pass

    class Items(list[object]):
        pass

    class Pair(tuple[object, ...]):
        pass

    expected = Items(
        [
            Pair(("a", Items(["b", Name("c\n  d")]))),
            Name("e"),
            types.MappingProxyType({"f": Pair(("g", "h"))}),
            Pair(("i", "j")),
        ]
    )
    assert shape(parse_expected(expected)) == [
        ("a", "a", None, [("b", "b", None, []), ("c", "c", None, [("d", "d", None, [])])]),
        ("e", "e", None, []),
        ("f", "f", None, [("g", "g", None, []), ("h", "h", None, [])]),
        ("i", "i", None, []),
        ("j", "j", None, []),
    ]


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        (
            42,
            "assert_trace_tree() argument 'expected' must be an indented text tree (str), nested "
            "(name, children) tuples, or a dict of name -> children, not int",
        ),
        (
            b"a",
            "assert_trace_tree() argument 'expected' must be an indented text tree (str), nested "
            "(name, children) tuples, or a dict of name -> children, not bytes",
        ),
        ([], "assert_trace_tree(): the expected tree is empty"),
        ({}, "assert_trace_tree(): the expected tree is empty"),
        ([[], ()], "assert_trace_tree(): the expected tree is empty"),
        (
            ("a", 3, []),
            "assert_trace_tree() argument 'expected' must be an indented text tree, nested (name, children) "
            "tuples, or a dict of name -> children; expected[1] is int",
        ),
        (
            [("a", [1])],
            "assert_trace_tree() argument 'expected' must be an indented text tree, nested (name, children) "
            "tuples, or a dict of name -> children; expected[0]['a'][0] is int",
        ),
        (
            [None],
            "assert_trace_tree() argument 'expected' must be an indented text tree, nested (name, children) "
            "tuples, or a dict of name -> children; expected[0] is NoneType",
        ),
        (
            {"a": 5},
            "assert_trace_tree() argument 'expected': the children at expected['a'] must be a list, tuple "
            "or dict, not int",
        ),
        (
            {"a": {"b": re.compile("c")}},
            "assert_trace_tree() argument 'expected': the children at expected['a']['b'] must be a list, "
            "tuple or dict, not Pattern",
        ),
        (
            {3: None},
            "assert_trace_tree() argument 'expected': expected[3] has a name of type int; a span name is "
            "a str or a compiled regex",
        ),
        (
            ("x", [("~(", "server", [])]),
            "assert_trace_tree(): expected['x'][0]: '(' is not a valid regular expression: "
            "missing ), unterminated subpattern at position 0",
        ),
        (("~", "server", []), "assert_trace_tree(): expected: '~' must be followed by a regular expression"),
        (
            {"a": ["b", "[server]"]},
            "assert_trace_tree(): expected['a'][1]: a span name is missing before '[server]'",
        ),
        (
            ["a", "b\n   c"],
            "assert_trace_tree(): line 2: 'c' is indented by 3 spaces; use two spaces per level",
        ),
        (
            ("a", "bogus", []),
            "assert_trace_tree(): expected: kind='bogus' is not a span kind; use a SpanKind or one of: "
            "internal, server, client, producer, consumer",
        ),
        (
            {"a": [("b", "bogus", [])]},
            "assert_trace_tree(): expected['a'][0]: kind='bogus' is not a span kind; use a SpanKind or "
            "one of: internal, server, client, producer, consumer",
        ),
    ],
)
def test_nested_errors_name_the_place(expected: object, message: str) -> None:
    assert error(expected) == message


def test_errors_are_value_or_type_errors() -> None:
    with pytest.raises(TypeError, match="must be an indented text tree"):
        parse_expected(42)
    with pytest.raises(TypeError, match="must be a list, tuple or dict"):
        parse_expected({"a": 5})
    with pytest.raises(ValueError, match="the expected tree is empty"):
        parse_expected("")
    with pytest.raises(ValueError, match="the expected tree is empty"):
        parse_expected([])
    with pytest.raises(ValueError, match="use two spaces per level"):
        parse_expected("a\n   b")


def self_containing() -> list[tuple[object, str]]:
    """Expected structures that hold themselves, and the error naming where."""
    in_dict: dict[str, object] = {"a": None}
    in_dict["a"] = in_dict
    in_list: list[object] = ["a"]
    in_list.append(in_list)
    in_tuple: list[object] = []
    in_tuple.append(("a", [("b", in_tuple)]))
    deeper: dict[str, object] = {"a": {"b": ["c"]}}
    deeper["a"]["b"].append({"d": deeper["a"]})  # type: ignore[index]
    prefix = "assert_trace_tree() argument 'expected' contains itself: "
    return [
        (in_dict, prefix + "expected['a'] is expected again (a dict that holds itself has no end)"),
        (in_list, prefix + "expected[1] is expected again (a list that holds itself has no end)"),
        (
            in_tuple,
            prefix + "expected[0]['a'][0]['b'] is expected again (a list that holds itself has no end)",
        ),
        (
            deeper,
            prefix
            + "expected['a']['b'][1]['d'] is expected['a'] again (a dict that holds itself has no end)",
        ),
    ]


@pytest.mark.parametrize(("expected", "message"), self_containing(), ids=["dict", "list", "tuple", "deeper"])
def test_an_expected_tree_that_contains_itself_is_an_error_not_an_endless_loop(
    expected: object, message: str
) -> None:
    # It looped for ever (the garbage collector paused, every turn adding nodes) before.
    with pytest.raises(ValueError, match="contains itself") as info:
        parse_expected(expected)
    assert str(info.value) == message


def test_a_subtree_shared_by_siblings_is_no_cycle() -> None:
    leaves = ["leaf", "leaf"]
    group = ("group", leaves)
    shared: dict[str, object] = {"x": leaves}
    tree = [("root", [group, group, shared, shared])]
    kids = shape(parse_expected(tree))[0][3]
    assert [label for label, *_ in kids] == ["group", "group", "x", "x"]
    assert all(len(kid[3]) == 2 for kid in kids)
    # Left, then met again higher on the stack (a tuple of siblings grew it): still no cycle.
    assert [label for label, *_ in shape(parse_expected([leaves, (leaves, leaves, leaves)]))] == ["leaf"] * 8


def test_walk_is_pre_order() -> None:
    roots = parse_text("a\n  b\n    c\n  d\ne")
    assert [node.label for node in walk(roots)] == ["a", "b", "c", "d", "e"]
    assert walk([]) == []


# -- properties ----------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b.c", "GET /x", "d e", "[x] y", "f [g]"])
KINDS = st.sampled_from([None, *SpanKind])


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> Tree:
    name, kind = draw(NAMES), draw(KINDS)
    children = draw(st.lists(trees(depth + 1), max_size=3)) if depth < 3 else []
    return name, kind, children


def as_text(tree: Tree, depth: int, lines: list[str]) -> None:
    name, kind, children = tree
    lines.append("  " * depth + name + (f" [{kind.name.lower()}]" if kind is not None else ""))
    for child in children:
        as_text(child, depth + 1, lines)


def as_tuple(tree: Tree) -> object:
    name, kind, children = tree
    kids = [as_tuple(child) for child in children]
    return (name, kind, kids) if kind is not None else (name, kids)


def as_shape(tree: Tree) -> Shape:
    name, kind, children = tree
    label = name + (f" [{kind.name.lower()}]" if kind is not None else "")
    return label, name, kind, [as_shape(child) for child in children]


@settings(max_examples=60, deadline=None)
@given(st.lists(trees(), min_size=1, max_size=3), st.integers(min_value=0, max_value=6))
def test_every_form_of_a_generated_tree_parses_to_the_same_nodes(forest: list[Tree], indent: int) -> None:
    lines: list[str] = []
    for tree in forest:
        as_text(tree, 0, lines)
    text = "\n".join(" " * indent + line for line in lines)
    expected = [as_shape(tree) for tree in forest]
    assert shape(parse_expected(text)) == expected
    assert shape(parse_expected([as_tuple(tree) for tree in forest])) == expected
    assert shape(parse_expected(["\n".join(lines)])) == expected


@st.composite
def shared_forests(draw: st.DrawFn) -> list[object]:
    """Nested forms whose subtrees are shared: each node's children are drawn from those made before."""
    made: list[object] = [[], ()]
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        children = draw(st.lists(st.sampled_from(made), max_size=3))
        wrap = draw(st.sampled_from(["tuple", "dict", "list", "tuple_of_children"]))
        name = draw(NAMES)
        if wrap == "tuple":
            made.append((name, children))
        elif wrap == "tuple_of_children":
            made.append((name, tuple(children)))
        elif wrap == "dict":
            made.append({name: children})
        else:
            made.append([(name, children), name])
    return draw(st.lists(st.sampled_from(made[2:]), min_size=1, max_size=3))


def unshared(value: object) -> object:
    """The same structure with no object in two places."""
    if isinstance(value, dict):
        return {key: unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unshared(item) for item in value]
    if isinstance(value, tuple):
        return tuple(unshared(item) for item in value)
    return value


@settings(max_examples=200, deadline=None)
@given(shared_forests())
def test_shared_subtrees_parse_as_their_copies_and_are_never_taken_for_a_cycle(forest: list[object]) -> None:
    assert shape(parse_expected(forest)) == shape(parse_expected(unshared(forest)))
