"""The span graph: one index of a set of spans (links, tops, trace keys, walks)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan

from pytest_tracechain._graph import SpanGraph, Trace, is_root
from tests.unit.spans import ctx, span


def names(spans: list[ReadableSpan]) -> list[str]:
    return [s.name for s in spans]


def test_is_root_relative_to_the_ambient_spans() -> None:
    assert is_root(span("a", 1))
    assert not is_root(span("b", 2, 1))
    assert is_root(span("b", 2, 1), {1})
    assert not is_root(span("b", 2, 1), {3})
    graph = SpanGraph([span("b", 2, 1)], {1})
    assert graph.is_root(graph.by_id[2])


def test_a_span_id_given_twice_keeps_the_first() -> None:
    first, second = span("first", 1), span("second", 1)
    graph = SpanGraph([first, second])
    assert graph.by_id == {1: first}
    assert len(graph) == 1
    assert 1 in graph
    assert 2 not in graph


def test_ordered_by_start_time_with_a_missing_start_first() -> None:
    late, early = span("late", 1, start=50), span("early", 2, start=10)
    unknown = ReadableSpan(name="unknown", context=ctx(3), start_time=None, resource=late.resource)
    graph = SpanGraph([late, early, unknown])
    assert names(graph.ordered) == ["unknown", "early", "late"]
    assert names(graph.tops) == ["unknown", "early", "late"]
    at_zero = span("at zero", 4, start=0)
    assert names(SpanGraph([unknown, at_zero]).ordered) == ["unknown", "at zero"]  # None counts as 0


def test_children_are_linked_to_captured_parents_in_start_order() -> None:
    root = span("root", 1)
    second, first = span("second", 3, 1, start=30), span("first", 2, 1, start=20)
    grandchild = span("grandchild", 4, 2)
    graph = SpanGraph([grandchild, second, root, first])
    assert names(graph.tops) == ["root"]
    assert names(graph.kids(root)) == ["first", "second"]
    assert graph.kid_ids == {1: [2, 3], 2: [4]}
    assert names(graph.children[2]) == ["grandchild"]
    assert graph.kids(grandchild) == []


def test_a_parent_not_captured_another_trace_or_ambient_makes_a_top() -> None:
    orphan = span("orphan", 2, 99)
    other_trace = span("other", 3, ctx(1, trace_id=1), trace_id=2)
    under_ambient = span("under ambient", 4, 5)
    ambient_child = span("ambient child", 6, 4)
    root = span("root", 1)
    graph = SpanGraph([root, orphan, other_trace, under_ambient, ambient_child], {5})
    assert names(graph.tops) == ["root", "orphan", "other", "under ambient"]
    assert graph.kid_ids == {4: [6]}


def test_trace_keys_without_ambient_spans() -> None:
    graph = SpanGraph([span("a", 1), span("b", 2, 1), span("c", 3, trace_id=7), span("d", 4, 9)])
    assert graph.keys == {1: (1, 0), 2: (1, 0), 3: (7, 0), 4: (1, 0)}
    assert graph.key(graph.by_id[2]) == (1, 0)
    assert graph.counts == {(1, 0): 3, (7, 0): 1}
    assert {key: names(tops) for key, tops in graph.tops_by_trace.items()} == {
        (1, 0): ["a", "d"],
        (7, 0): ["c"],
    }


def test_each_root_under_an_ambient_span_starts_a_trace_of_its_own() -> None:
    spans = [span("r1", 2, 1), span("r1 child", 3, 2), span("r2", 4, 1), span("orphan", 5, 99)]
    graph = SpanGraph(spans, {1})
    assert graph.keys == {2: (1, 2), 3: (1, 2), 4: (1, 4), 5: (1, 0)}
    assert list(graph.counts.items()) == [((1, 2), 2), ((1, 4), 1), ((1, 0), 1)]


def test_traces_in_order_of_first_start() -> None:
    spans = [span("b", 5, trace_id=2), span("a", 1), span("b child", 6, 5, trace_id=2), span("a child", 7, 1)]
    graph = SpanGraph(spans)
    assert {key: names(members) for key, members in graph.traces().items()} == {
        (1, 0): ["a", "a child"],
        (2, 0): ["b", "b child"],
    }
    assert list(graph.traces()) == [(1, 0), (2, 0)]
    assert graph.trace_list() == [
        Trace(1, (graph.by_id[1], graph.by_id[7]), (graph.by_id[1],)),
        Trace(2, (graph.by_id[5], graph.by_id[6]), (graph.by_id[5],)),
    ]
    assert graph.trace_list()[1].trace_id_hex == "0" * 31 + "2"


def test_trace_roots_are_relative_to_the_ambient_span() -> None:
    graph = SpanGraph([span("r", 2, 1), span("orphan", 3, 99)], {1})
    (first, second) = graph.trace_list()
    assert names(list(first.roots)) == ["r"]
    assert second.roots == ()


def test_a_parent_cycle_is_entered_at_its_earliest_span() -> None:
    late = span("late", 2, 1, start=20)
    early = span("early", 1, 2, start=10)
    below = span("below", 3, 2, start=30)
    graph = SpanGraph([late, early, below, span("root", 4, start=5)])
    assert names(graph.cycles) == ["early"]
    assert names(graph.tops) == ["root", "early"]
    assert graph.kid_ids == {1: [2], 2: [3]}
    assert names(graph.kids(early)) == ["late"]
    assert graph.keys == {4: (1, 0), 1: (1, 0), 2: (1, 0), 3: (1, 0)}
    assert graph.counts == {(1, 0): 4}


def test_a_span_that_is_its_own_parent() -> None:
    loop = span("loop", 1, 1)
    graph = SpanGraph([loop])
    assert names(graph.cycles) == ["loop"]
    assert names(graph.tops) == ["loop"]
    assert graph.kid_ids == {1: []}
    assert graph.keys == {1: (1, 0)}


def test_two_separate_cycles() -> None:
    spans = [span("a", 1, 2), span("b", 2, 1), span("c", 3, 4), span("d", 4, 3)]
    graph = SpanGraph(spans)
    assert names(graph.cycles) == ["a", "c"]
    assert names(graph.tops) == ["a", "c"]
    assert len(graph.keys) == 4


def test_parent_chain_walks_up_and_stops_after_a_missing_parent() -> None:
    spans = [span("root", 1, 50), span("child", 2, 1), span("leaf", 3, 2)]
    graph = SpanGraph(spans)
    chain = list(graph.parent_chain(graph.by_id[3]))
    assert [(parent.span_id, found.name if found else None) for parent, found in chain] == [
        (2, "child"),
        (1, "root"),
        (50, None),
    ]
    assert list(graph.parent_chain(span("alone", 9))) == []


def test_parent_chain_stops_before_a_cycle() -> None:
    graph = SpanGraph([span("a", 1, 2), span("b", 2, 1)])
    chain = [
        (parent.span_id, found.name if found else None)
        for parent, found in graph.parent_chain(graph.by_id[1])
    ]
    assert chain == [(2, "b"), (1, "a")]


def test_parent_chain_crosses_traces_and_ambient_spans_like_a_lookup() -> None:
    # The walk follows span ids whatever the trace; callers decide what a boundary means.
    spans = [span("root", 1), span("child", 2, ctx(1, trace_id=1), trace_id=3)]
    graph = SpanGraph(spans, {1})
    assert [found.name if found else None for _, found in graph.parent_chain(graph.by_id[2])] == ["root"]


def test_has_ancestor() -> None:
    graph = SpanGraph([span("root", 1), span("child", 2, 1), span("leaf", 3, 2), span("other", 4)])
    leaf = graph.by_id[3]
    assert graph.has_ancestor(leaf, 2)
    assert graph.has_ancestor(leaf, 1)
    assert not graph.has_ancestor(leaf, 3)
    assert not graph.has_ancestor(leaf, 4)
    assert graph.has_ancestor(span("x", 8, 77), 77)  # a parent not in the graph still counts


def test_subtree_sizes_even_when_children_start_before_their_parents() -> None:
    spans = [span("root", 1, start=50), span("child", 2, 1, start=10), span("leaf", 3, 2, start=0)]
    spans += [span("sibling", 4, 1, start=50), span("other", 5, start=60)]
    assert SpanGraph(spans).subtree_sizes() == {1: 4, 2: 2, 3: 1, 4: 1, 5: 1}


def test_an_empty_graph() -> None:
    graph = SpanGraph([])
    assert (graph.by_id, graph.ordered, graph.tops, graph.keys, graph.cycles) == ({}, [], [], {}, [])
    assert graph.traces() == {}
    assert graph.subtree_sizes() == {}


@st.composite
def forests(draw: st.DrawFn) -> list[ReadableSpan]:
    """Spans over a few traces whose parents are earlier spans, missing spans or any span (cycles)."""
    count = draw(st.integers(min_value=1, max_value=40))
    made: list[ReadableSpan] = []
    for index in range(1, count + 1):
        choice = draw(st.sampled_from(["root", "child", "missing", "any"]))
        parent: int | None = None
        if choice == "child" and made:
            parent = draw(st.sampled_from(made)).context.span_id
        elif choice == "missing":
            parent = 1000 + index
        elif choice == "any":
            parent = draw(st.integers(min_value=1, max_value=count))
        start = draw(st.integers(min_value=0, max_value=100))
        made.append(span(f"s{index}", index, parent, trace_id=draw(st.integers(1, 2)), start=start))
    return made


@settings(max_examples=300, deadline=None)
@given(forests(), st.sets(st.integers(min_value=1, max_value=45), max_size=3))
def test_every_span_hangs_under_exactly_one_top(spans: list[ReadableSpan], ambient: set[int]) -> None:
    graph = SpanGraph(spans, ambient)
    reached: list[int] = []
    for top in graph.tops:
        stack = [top.context.span_id]
        while stack:
            span_id = stack.pop()
            reached.append(span_id)
            stack.extend(graph.kid_ids.get(span_id, ()))
            assert graph.keys[span_id] == graph.keys[top.context.span_id]
    assert sorted(reached) == sorted(graph.by_id)
    assert sum(graph.counts.values()) == len(graph.by_id)
    sizes = graph.subtree_sizes()
    assert sum(sizes[top.context.span_id] for top in graph.tops) == len(graph.by_id)
