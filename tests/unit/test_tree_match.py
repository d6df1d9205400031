"""Matching expected trees against captured spans: structural keys, assignment, order and count."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain._graph import SpanGraph
from pytest_tracechain._tree_match import Matcher, captured_keys, expected_keys, pop_unused
from pytest_tracechain._tree_parse import parse_expected, parse_text, walk
from tests.unit.spans import ctx, span

SERVER, CLIENT = SpanKind.SERVER, SpanKind.CLIENT


def matches(expected: object, spans: list[ReadableSpan], ambient: frozenset[int] = frozenset()) -> bool:
    return Matcher(parse_expected(expected), SpanGraph(spans, ambient)).matches()


def request() -> list[ReadableSpan]:
    """GET /hello [server] -> (create, send [producer] -> process [consumer])."""
    return [
        span("GET /hello", 1, kind=SERVER),
        span("create", 2, 1),
        span("send", 3, 1, kind=SpanKind.PRODUCER),
        span("process", 4, 3, kind=SpanKind.CONSUMER),
    ]


# -- matching ------------------------------------------------------------------------


def test_the_exact_shape_matches_and_sibling_order_does_not_matter() -> None:
    spans = request()
    assert matches("GET /hello [server]\n  create\n  send [producer]\n    process [consumer]", spans)
    assert matches("GET /hello [server]\n  send [producer]\n    process [consumer]\n  create", spans)
    assert matches("GET /hello\n  send\n    process\n  create", spans)
    assert matches("GET /hello [SERVER]\n  create [internal]\n  send\n    process [consumer]", spans)


def test_any_difference_fails() -> None:
    spans = request()
    assert not matches("GET /hello\n  create\n  send", spans)  # process extra
    assert not matches("GET /hello\n  create\n  send\n    process\n    audit", spans)  # audit missing
    assert not matches("GET /hello\n  create\n  send\n  process", spans)  # process misplaced
    assert not matches("GET /hello [client]\n  create\n  send\n    process", spans)  # wrong kind
    assert not matches("GET /hello\n  create [server]\n  send\n    process", spans)  # wrong kind, leaf
    assert not matches("GET /hello\n  created\n  send\n    process", spans)  # another name
    assert not matches("GET /hello\n  create\n  send\n    process\nGET /hello", spans)  # a root too many


def test_several_roots_are_several_traces_in_any_order() -> None:
    spans = [*request(), span("nightly", 5, trace_id=2), span("cleanup", 6, 5, trace_id=2)]
    tree = "GET /hello\n  create\n  send\n    process"
    assert matches(f"{tree}\nnightly\n  cleanup", spans)
    assert matches(f"nightly\n  cleanup\n{tree}", spans)
    assert matches(["nightly\n  cleanup", tree], spans)
    assert not matches(tree, spans)
    assert not matches("nightly\n  cleanup", spans)


def test_identical_siblings_are_counted() -> None:
    spans = [span("batch", 1), *(span("item", i, 1) for i in (2, 3, 4))]
    assert matches("batch\n  item\n  item\n  item", spans)
    assert not matches("batch\n  item\n  item", spans)
    assert not matches("batch\n  item\n  item\n  item\n  item", spans)


def test_patterns_and_mixed_kinds_are_assigned_by_augmenting_paths() -> None:
    # the first pattern could take 'ab' first; only moving it to 'ac' makes room for the second
    spans = [span("root", 1), span("ab", 2, 1), span("ac", 3, 1)]
    assert matches("root\n  ~a.\n  ~ab", spans)
    assert matches("root\n  ~ab\n  ~a.", spans)
    assert not matches("root\n  ~ab\n  ~ab", spans)
    # kinds given on some nodes only: matched span by span, not by key
    kinds = [span("root", 1), span("x", 2, 1, kind=CLIENT), span("x", 3, 1), span("y", 4, 3)]
    assert matches("root\n  x\n    y\n  x [client]", kinds)
    assert matches("root\n  x [client]\n  x\n    y", kinds)
    assert not matches("root\n  x [client]\n    y\n  x", kinds)


def test_keyed_and_unkeyed_siblings_together() -> None:
    spans = [span("root", 1), span("a", 2, 1), span("b", 3, 1), span("b", 4, 1)]
    assert matches("root\n  a\n  ~b\n  b", spans)
    assert matches("root\n  ~b\n  a\n  b", spans)
    assert not matches("root\n  a\n  ~a\n  b", spans)
    assert not matches("root\n  ~.\n  ~.\n  b\n  b", spans)


def test_names_only_and_kinds_keys_in_one_expectation() -> None:
    spans = [span("a", 1, kind=SERVER), span("b", 2, 1), span("c", 3, trace_id=2, kind=CLIENT)]
    assert matches("a [server]\n  b [internal]\nc", spans)
    assert matches("a\n  b\nc [client]", spans)
    assert not matches("a [server]\n  b [internal]\nc [server]", spans)


def test_a_names_only_node_never_takes_the_span_a_node_with_its_kind_needs() -> None:
    # Found by the round trip of TraceCapture.tree(): 'a' took 'a [server]' and left the
    # kinds node nothing, whatever the order of the spans.
    for spans in ([span("a", 1), span("a", 2, kind=SERVER)], [span("a", 1, kind=SERVER), span("a", 2)]):
        assert matches("a\na [server]", spans)
        assert matches("a [server]\na", spans)


def test_a_keyed_node_never_takes_the_span_only_a_pattern_fits() -> None:
    for spans in ([span("a", 1), span("a", 2, kind=SERVER)], [span("a", 1, kind=SERVER), span("a", 2)]):
        assert matches("a\n~a [server]", spans)
        assert matches("a [internal]\n~a [server]", spans)
    assert not matches("a\n~a [client]", [span("a", 1), span("a", 2, kind=SERVER)])


def test_a_span_under_the_ambient_span_is_a_root() -> None:
    spans = [span("test", 9), span("a", 1, 9), span("b", 2, 1)]
    assert matches("a\n  b\ntest", spans, frozenset({9}))
    assert not matches("test\n  a\n    b", spans, frozenset({9}))
    assert matches("test\n  a\n    b", spans)
    assert not matches("a\n  b\ntest", spans)


def test_a_span_whose_parent_was_not_captured_is_a_top() -> None:
    spans = [span("a", 1, 99), span("b", 2, ctx(7, trace_id=3, remote=True), trace_id=3)]
    assert matches("a\nb", spans)


# -- the pieces ----------------------------------------------------------------------


def test_expected_keys_set_sizes_parents_and_keys_of_plain_subtrees() -> None:
    roots = parse_text("a\n  b\n    c\n  ~d\ne [server]\n  f [client]\ng [server]\n  h")
    table: dict[tuple[object, ...], int] = {}
    modes = expected_keys(roots, table)
    a, b, c, d, e, f, g, h = walk(roots)
    assert modes == {"n", "k"}
    assert [node.size for node in (a, b, c, d, e, f, g, h)] == [4, 2, 1, 1, 2, 1, 2, 1]
    assert (a.parent, b.parent, c.parent, d.parent, e.parent, f.parent) == (None, a, b, a, None, e)
    assert h.parent is g
    assert d.key is None  # a pattern
    assert a.key is None  # a pattern below
    assert b.key is not None
    assert c.key is not None
    assert b.key[0] == c.key[0] == "n"
    assert e.key is not None
    assert f.key is not None
    assert e.key[0] == f.key[0] == "k"
    assert g.key is None  # kind given, not below
    assert h.key is not None
    assert h.key[0] == "n"
    assert len(table) == 5


def test_equal_subtrees_get_equal_keys_sibling_order_aside() -> None:
    table: dict[tuple[object, ...], int] = {}
    first, second, other = parse_text("r\n  x\n  y\nr\n  y\n  x\nr\n  x\n  x")
    expected_keys([first, second, other], table)
    assert first.key == second.key
    assert first.key != other.key
    spans = [
        span("r", 1),
        span("x", 2, 1),
        span("y", 3, 1),
        span("r", 4, trace_id=2),
        span("y", 5, 4, trace_id=2),
        span("x", 6, 4, trace_id=2),
        span("r", 7, trace_id=3, kind=SERVER),
        span("x", 8, 7, trace_id=3),
        span("y", 9, 7, trace_id=3),
    ]
    names = captured_keys(SpanGraph(spans), "n", table)
    kinds = captured_keys(SpanGraph(spans), "k", table)
    assert names[1] == names[4] == names[7] == first.key[1]  # type: ignore[index]
    assert names[2] == names[6] == names[8]
    assert names[2] != names[3]
    assert kinds[1] == kinds[4] != kinds[7]
    assert kinds[1] != names[1]
    assert len(names) == len(kinds) == len(spans)


def test_assign_pairs_node_ids_with_spans() -> None:
    roots = parse_text("a\n~b.\nb")
    spans = [span("bc", 1), span("a", 2, trace_id=2), span("b", 3, trace_id=3)]
    matcher = Matcher(roots, SpanGraph(spans))
    result = matcher.assign(roots, matcher.graph.tops)
    assert result is not None
    assert {id(node): result[id(node)].name for node in roots} == {
        id(roots[0]): "a",
        id(roots[1]): "bc",
        id(roots[2]): "b",
    }
    assert matcher.assign(roots, matcher.graph.tops[:2]) is None
    assert matcher.assign([], []) == {}
    assert matcher.key_of("n", spans[1]) == roots[0].key[1]  # type: ignore[index]


def test_full_compares_whole_subtrees_and_remembers() -> None:
    (node,) = parse_text("a\n  ~b")
    spans = [span("a", 1), span("b", 2, 1), span("a", 3, trace_id=2), span("c", 4, 3, trace_id=2)]
    matcher = Matcher([node], SpanGraph(spans))
    assert matcher.full(node, spans[0])
    assert not matcher.full(node, spans[2])
    assert not matcher.full(node, spans[1])  # the name differs
    (child,) = node.children
    assert matcher._memo == {
        (id(node), 1): True,
        (id(child), 2): True,
        (id(node), 3): False,
        (id(child), 4): False,
        (id(node), 2): False,
    }
    matcher._memo[(id(node), 1)] = False  # asked again: the answer is remembered
    assert not matcher.full(node, spans[0])


def test_full_of_a_keyed_node_compares_keys() -> None:
    (node,) = parse_text("a\n  b")
    spans = [span("a", 1), span("b", 2, 1), span("a", 3, trace_id=2), span("c", 4, 3, trace_id=2)]
    matcher = Matcher([node], SpanGraph(spans))
    assert node.key is not None
    assert matcher.full(node, spans[0])
    assert not matcher.full(node, spans[2])
    assert matcher._memo == {}
    assert not matcher.matches()


def test_pop_unused_skips_the_spans_taken() -> None:
    a, b, c = span("a", 1), span("b", 2), span("c", 3)
    bucket = [a, b, c]
    assert pop_unused(bucket, {3}) is b
    assert bucket == [a]
    assert pop_unused(bucket, set()) is a
    assert pop_unused(bucket, set()) is None
    assert pop_unused(None, set()) is None
    assert pop_unused([a], {1}) is None
