"""``TraceCapture.tree()``: the captured traces as text in ``assert_trace_tree``'s syntax."""

from __future__ import annotations

import random
import re
import textwrap
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain import TraceAssertionError, TraceCapture, assert_trace_tree
from pytest_tracechain._state import CaptureState
from pytest_tracechain._tree_text import MAX_DEPTH, compare_trees, normalize_name, tree_text
from tests.unit.spans import ctx, span

SERVER, CLIENT, PRODUCER, CONSUMER = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER


def text(tree: str) -> str:
    """A tree as a test writes it: dedented, one line a span."""
    return textwrap.dedent(tree).strip("\n")


def capture_of(spans: Sequence[ReadableSpan], ambient: Sequence[int] = ()) -> TraceCapture:
    state = CaptureState("test_x")
    for each in spans:
        state.finished.append(each)
    state.ambient.update(ambient)
    return TraceCapture(state, _ispytest=True)


def signup() -> list[ReadableSpan]:
    return [
        span("POST /users", 1, kind=SERVER, attributes={"http.route": "/users", "http.status_code": 201}),
        span("users.create", 2, 1),
        span("INSERT users", 3, 2, kind=CLIENT, attributes={"db.system": "postgresql"}),
        span("user.created publish", 4, 1, kind=PRODUCER),
        span("user.created process", 5, ctx(4, remote=True), kind=CONSUMER),
        span("mail.send", 6, 5, kind=CLIENT),
    ]


# -- the text ----------------------------------------------------------------------


def test_the_text_is_what_a_user_writes_for_the_capture() -> None:
    assert tree_text(signup(), ()) == text("""
        POST /users [server]
          user.created publish [producer]
            user.created process [consumer] {remote}
              mail.send [client]
          users.create
            INSERT users [client]
    """)


def test_the_text_passes_assert_trace_tree_for_the_same_spans() -> None:
    spans = signup()
    assert_trace_tree(tree_text(spans, ()), spans)
    assert_trace_tree(tree_text(spans, (), attributes=["http.route", "db.system"]), spans)


def test_no_spans_is_an_empty_text_and_no_text_ends_in_a_newline() -> None:
    assert tree_text([], ()) == ""
    assert not tree_text(signup(), ()).endswith("\n")


def test_the_order_of_siblings_and_traces_does_not_depend_on_when_they_started() -> None:
    spans = [
        span("job", 1),
        span("step", 2, 1),
        span("fetch", 3, 2, kind=CLIENT),
        span("step", 4, 1),
        span("store", 5, 4, kind=CLIENT),
        span("step", 6, 1),
        span("GET /", 7, trace_id=2, kind=SERVER),
    ]
    expected = text("""
        GET / [server]
        job
          step
          step
            fetch [client]
          step
            store [client]
    """)
    rng = random.Random(7)
    for _ in range(20):
        starts = rng.sample(range(100), len(spans))  # parents may start after their children here
        shuffled = [
            span(s.name, s.context.span_id, s.parent, trace_id=s.context.trace_id, kind=s.kind, start=start)
            for s, start in zip(spans, starts, strict=True)
        ]
        rng.shuffle(shuffled)
        assert tree_text(shuffled, ()) == expected


def test_a_span_whose_parent_was_not_captured_stands_at_the_top() -> None:
    spans = [span("late", 2, 1), span("GET /", 3, ctx(9, trace_id=1, remote=True), kind=SERVER)]
    assert tree_text(spans, ()) == text("""
        GET / [server] {remote}
        late
    """)


def test_the_harness_span_is_left_out_and_its_children_are_roots() -> None:
    spans = [span("test_x", 1), span("a", 2, 1), span("b", 3, 2)]
    assert tree_text(spans[1:], {1}) == text("""
        a
          b
    """)


def test_links_show_the_names_of_the_linked_spans_sorted_and_a_question_mark_for_one_not_captured() -> None:
    spans = [
        span("orders send", 1, kind=PRODUCER),
        span("audit", 2),
        span("batch", 3, links=[ctx(2), ctx(1), ctx(77, trace_id=9)]),
    ]
    assert tree_text(spans, ()) == text("""
        audit
        batch {links=["?", "audit", "orders send"]}
        orders send [producer]
    """)
    assert_trace_tree(tree_text(spans, ()), spans)


def test_a_trace_deeper_than_the_text_can_hold_is_an_error_naming_the_span() -> None:
    chain = [span("step", 1)] + [span("step", i, i - 1) for i in range(2, MAX_DEPTH + 2)]
    assert tree_text(chain[:MAX_DEPTH], ()).count("\n") == MAX_DEPTH - 1
    with pytest.raises(ValueError, match=r"TraceCapture.tree\(\): 'step' is 1,001 levels deep; .* where="):
        tree_text(chain, ())


# -- chosen attributes -------------------------------------------------------------


def test_chosen_attributes_in_the_order_given_and_only_where_a_span_has_them() -> None:
    assert tree_text(signup(), (), attributes=["http.status_code", "http.route", "db.system"]) == text("""
        POST /users [server] {http.status_code=201, http.route="/users"}
          user.created publish [producer]
            user.created process [consumer] {remote}
              mail.send [client]
          users.create
            INSERT users [client] {db.system="postgresql"}
    """)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('a "quoted" \\ value', r'"a \"quoted\" \\ value"'),
        (True, "True"),
        (3, "3"),
        (2.5, "2.5"),
        (("a", "b"), '["a", "b"]'),
        ((1, 2), "[1, 2]"),
        ("line\u2028break\x85", r'"line\u2028break\u0085"'),  # JSON leaves them, str.splitlines breaks there
    ],
)
def test_attribute_values_are_python_literals(value: object, shown: str) -> None:
    spans = [span("a", 1, attributes={"v": value})]
    assert tree_text(spans, (), attributes=["v"]) == f"a {{v={shown}}}"
    assert_trace_tree(tree_text(spans, (), attributes=["v"]), spans)


# -- normalised names --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("GET /users/42", "GET /users/<n>"),
        ("worker-3 poll", "worker-<n> poll"),
        ("s3 upload v2", "s3 upload v2"),
        ("orders.7f0c2a8e-1b3d-4c5e-9f60-718293a4b5c6 process", "orders.<uuid> process"),
        ("job 4bf92f3577b34da6a3ce929d0e0e4736", "job <hex>"),
        ("job 00f067aa0ba902b7", "job <hex>"),
        ("cache 1a2b3c4d", "cache <hex>"),
        ("amq.gen-JzTY20BRgKO-HjmUJj0wLg receive", "amq.gen-<id> receive"),
        ("_INBOX.k2Xb9QmT7 reply", "_INBOX.<id> reply"),
        ("deadbeef", "deadbeef"),
    ],
)
def test_the_built_in_normalizer_replaces_the_usual_random_parts(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


def test_normalize_applies_to_names_and_link_names() -> None:
    spans = [span("send 17", 1, kind=PRODUCER), span("batch 3", 2, links=[ctx(1)])]
    assert capture_of(spans).tree(normalize=True) == text("""
        batch <n> {links=["send <n>"]}
        send <n> [producer]
    """)


def test_normalize_takes_a_function_of_the_name() -> None:
    spans = [span("GET /users/42", 1, kind=SERVER)]
    assert capture_of(spans).tree(normalize=lambda name: re.sub(r"/\d+", "/{id}", name)) == (
        "GET /users/{id} [server]"
    )


def test_a_normalizer_that_returns_no_string_is_a_type_error_naming_the_name() -> None:
    with pytest.raises(
        TypeError, match=r"argument 'normalize' must return the name as a str, not NoneType \(for 'a'\)"
    ):
        capture_of([span("a", 1)]).tree(normalize=lambda name: None)  # type: ignore[arg-type,return-value]


# -- which spans -------------------------------------------------------------------


def test_where_keeps_the_spans_it_accepts_and_their_children_move_up() -> None:
    spans = signup()
    tree = capture_of(spans).tree(where=lambda s: s.name != "users.create")
    assert tree == text("""
        INSERT users [client]
        POST /users [server]
          user.created publish [producer]
            user.created process [consumer] {remote}
              mail.send [client]
    """)


def test_trace_keeps_one_trace_given_as_a_trace_a_span_or_an_id() -> None:
    spans = [span("GET /a", 1, kind=SERVER), span("a.work", 2, 1), span("GET /b", 3, trace_id=2, kind=SERVER)]
    capture = capture_of(spans)
    first = next(t for t in capture.traces() if t.trace_id == 1)
    for trace in (first, spans[1], 1, f"{1:032x}"):
        assert capture.tree(trace=trace) == "GET /a [server]\n  a.work"
    assert capture.tree(trace=5) == ""


# -- names that need a pattern ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("GET /items/[id]", "GET /items/[id]"),
        ("GET /users/{id}", "GET /users/{id}"),
        ("lookup [cached]", "lookup [cached]"),
        ("odd [server]", r"~odd \[server\]"),
        ("~tilde", "~~tilde"),
        (" padded ", r"~\x20padded\x20"),
        ("two\nlines", r"~two\x0alines"),
        ("x {remote}", r"~x \{remote\}"),
        ("", "~(?:)"),
        ("a.b*c", "a.b*c"),
    ],
)
def test_a_name_that_would_read_back_otherwise_becomes_an_exact_pattern(name: str, line: str) -> None:
    spans = [span(name, 1)]
    assert tree_text(spans, ()) == line
    assert_trace_tree(tree_text(spans, ()), spans)


# -- the details in assert_trace_tree ------------------------------------------------


def differs_note(expected: str, spans: Sequence[ReadableSpan]) -> str:
    with pytest.raises(TraceAssertionError) as info:
        assert_trace_tree(expected, spans)
    return str(info.value)


def test_a_remote_parent_that_is_not_remote_differs() -> None:
    spans = [span("send", 1, kind=PRODUCER), span("process", 2, 1, kind=CONSUMER)]
    message = differs_note("send [producer]\n  process [consumer] {remote}", spans)
    assert "1 differs" in message
    assert re.search(
        r"differs +  process \[consumer\] \{remote\} +  process \[consumer\]  \(expected \{remote\}, found \{\}\)",
        message,
    ), message


def test_an_attribute_of_another_value_or_type_differs() -> None:
    spans = [span("GET", 1, kind=SERVER, attributes={"http.route": "/b", "n": 1})]
    assert '(expected {http.route="/a"}, found {http.route="/b"})' in differs_note(
        'GET [server] {http.route="/a"}', spans
    )
    assert "(expected {n=True}, found {n=1})" in differs_note("GET [server] {n=True}", spans)
    assert "(expected {x=1}, found {x=absent})" in differs_note("GET [server] {x=1}", spans)
    assert_trace_tree('GET [server] {http.route="/b", n=1}', spans)


def test_links_are_compared_by_the_names_of_the_linked_spans() -> None:
    spans = [span("a", 1), span("b", 2, links=[ctx(1)])]
    assert_trace_tree('a\nb {links=["a"]}', spans)
    assert '(expected {links=["?"]}, found {links=["a"]})' in differs_note('a\nb {links=["?"]}', spans)


def test_a_group_without_items_stays_in_the_name() -> None:
    spans = [span("GET /users/{id}", 1), span("f {a, b}", 2)]
    assert_trace_tree("GET /users/{id}\nf {a, b}", spans)


def test_braces_in_the_name_before_the_group_stay_in_the_name() -> None:
    spans = [span("f {a=1} b", 1, ctx(9, remote=True)), span("g", 2, attributes={"k": "x {remote}"})]
    assert_trace_tree('f {a=1} b {remote}\ng {k="x {remote}"}', spans)
    assert tree_text(spans, (), attributes=["k"]) == 'f {a=1} b {remote}\ng {k="x {remote}"}'


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            "a {http.route=/users}",
            "line 1: {http.route=/users}: the value of 'http.route' is not a Python literal: '/users' (quote strings)",
        ),
        ("a {remote, remote}", "line 1: {remote, remote}: 'remote' is given twice"),
        ('a {links="b"}', 'line 1: {links="b"}: links= takes a list of span names'),
        (
            "a {n={1: 2}}",
            "line 1: {n={1: 2}}: the value of 'n' is not a Python literal: '{1: 2}' is no attribute value",
        ),
    ],
)
def test_a_group_meant_as_details_that_is_wrong_is_an_error_naming_the_line(line: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"assert_trace_tree(): {error}")):
        assert_trace_tree(line, [span("a", 1)])


# -- the round trip, over generated shapes -------------------------------------------

NAMES = ["a", "b", "GET /x", "odd [server]", "x {remote}", "~t", " s", "q [cached]", "n\nl", "{}", "k=1"]
KINDS = list(SpanKind)


@st.composite
def captures(draw: st.DrawFn) -> tuple[list[ReadableSpan], list[str]]:
    """A forest of up to 30 spans in up to 3 traces, with remote parents, links and attributes."""
    count = draw(st.integers(1, 30))
    spans: list[ReadableSpan] = []
    traces: dict[int, int] = {}
    for index in range(count):
        span_id = index + 1
        parent_index = draw(st.one_of(st.none(), st.integers(0, index - 1))) if index else None
        trace_id = traces[parent_index] if parent_index is not None else draw(st.integers(1, 3))
        traces[index] = trace_id
        parent = (
            ctx(parent_index + 1, trace_id, remote=draw(st.booleans())) if parent_index is not None else None
        )
        links = [
            ctx(draw(st.integers(1, count + 3)), draw(st.integers(1, 3)))
            for _ in range(draw(st.integers(0, 2)))
        ]
        attributes = draw(
            st.dictionaries(
                st.sampled_from(["k", "route"]),
                st.one_of(st.integers(), st.text(max_size=5), st.booleans()),
                max_size=2,
            )
        )
        spans.append(
            span(
                draw(st.sampled_from(NAMES)),
                span_id,
                parent,
                trace_id=trace_id,
                kind=draw(st.sampled_from(KINDS)),
                start=draw(st.integers(0, 1000)),
                links=links,
                attributes=attributes,
            )
        )
    return spans, draw(st.sampled_from([[], ["k"], ["route", "k"]]))


@settings(max_examples=200, deadline=None)
@given(captures(), st.randoms())
def test_assert_trace_tree_passes_for_the_tree_of_any_capture_and_the_text_is_canonical(
    capture: tuple[list[ReadableSpan], list[str]], rng: random.Random
) -> None:
    spans, attributes = capture
    tree = tree_text(spans, (), attributes=attributes)
    assert_trace_tree(tree, spans)
    shuffled = list(spans)
    rng.shuffle(shuffled)
    assert tree_text(shuffled, (), attributes=attributes) == tree


# -- the diff of a failed tree() == expected -------------------------------------------


def test_a_failed_comparison_with_a_returned_tree_shows_whole_lines() -> None:
    tree = capture_of(signup()).tree()
    expected = tree.replace("  users.create", "  users.created")
    lines = compare_trees(tree, expected)
    assert lines is not None
    assert lines[:2] == ["tree() == expected", "the captured trace tree differs (- expected, + captured):"]
    assert "-   users.created" in lines
    assert "+   users.create" in lines
    assert not any(line.startswith("?") for line in lines)
    assert compare_trees(expected, tree) == lines  # either side


def test_other_strings_get_no_tree_diff() -> None:
    capture_of(signup()).tree()
    assert compare_trees("a\nb\n", "a\nc\n") is None
    assert compare_trees(capture_of(signup()).tree(), 1) is None


def test_a_long_tree_diff_is_cut() -> None:
    tree = capture_of([span(f"s{i}", i + 1) for i in range(600)]).tree()
    lines = compare_trees(tree, "")
    assert lines is not None
    assert len(lines) == 2 + 400 + 1
    assert lines[-1] == "... 200 more lines"
