"""The side-by-side table of a failed assert_trace_tree: its rows, their collapse and focus, the text."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain._graph import SpanGraph
from pytest_tracechain._tree_diff import Diff
from pytest_tracechain._tree_match import Matcher
from pytest_tracechain._tree_parse import parse_expected
from pytest_tracechain._tree_table import (
    COLLAPSE_AT,
    ROW_LIMIT,
    Row,
    focus,
    format_table,
    name_kind,
    table_rows,
)
from tests.unit.spans import span

RowTuple = tuple[str, int, str, str, str]


def rows_of(
    expected: object, spans: Sequence[ReadableSpan], ambient: frozenset[int] = frozenset()
) -> list[RowTuple]:
    diff = Diff(Matcher(parse_expected(expected), SpanGraph(spans, ambient)), None, [])
    return [(row.status, row.depth, row.expected, row.actual, row.note) for row in table_rows(diff)]


def leaves(parent: int, count: int, first_id: int, name: str = "leaf") -> list[ReadableSpan]:
    return [span(name, first_id + index, parent) for index in range(count)]


def test_limits() -> None:
    assert (ROW_LIMIT, COLLAPSE_AT) == (200, 12)


def test_name_kind_shows_the_kind_unless_internal() -> None:
    assert name_kind(span("a", 1, kind=SpanKind.SERVER)) == "a [server]"
    assert name_kind(span("a", 1)) == "a"


# -- rows ----------------------------------------------------------------------------


def test_rows_follow_the_expected_trees_with_extras_under_their_parent_then_stray_traces() -> None:
    spans = [
        span("GET /hello", 1, kind=SpanKind.SERVER),
        span("create", 2, trace_id=2),
        span("send", 3, 1),
        span("cache.get", 5, 1, kind=SpanKind.CLIENT),
        span("cache.hit", 6, 5),
        span("orphan", 7, 99),
        span("nightly", 8, trace_id=3),
    ]
    assert rows_of("GET /hello [server]\n  create [client]\n  send\n    process\n      step", spans) == [
        ("matched", 0, "GET /hello [server]", "GET /hello [server]", ""),
        (
            "misplaced",
            1,
            "create [client]",
            "create",
            "found the root of another trace; expected under 'GET /hello [server]'",
        ),
        ("matched", 1, "send", "send", ""),
        ("missing", 2, "process", "—", ""),
        ("missing", 3, "step", "—", ""),
        ("extra", 1, "", "cache.get [client]", ""),
        ("extra", 2, "", "cache.hit", ""),
        ("extra", 0, "", "orphan", "its parent (span 0000000000000063) was not captured"),
        ("extra", 0, "", "nightly", "a root: a trace that was not expected"),
    ]


def test_a_stray_top_under_the_ambient_span_is_a_root() -> None:
    spans = [span("a", 1, 9), span("b", 2, 9)]
    assert rows_of("a", spans, frozenset({9}))[1] == (
        "extra",
        0,
        "",
        "b",
        "a root: a trace that was not expected",
    )


def test_an_extra_span_shows_its_unclaimed_children_only() -> None:
    spans = [span("r", 1), span("x", 2, 1), span("y", 3, 2), span("c", 4, 2), span("z", 5, 3)]
    assert rows_of("r\n  c", spans) == [
        ("matched", 0, "r", "r", ""),
        ("misplaced", 1, "c", "c", "found under 'x'; expected under 'r'"),
        ("extra", 1, "", "x", ""),
        ("extra", 2, "", "y", ""),
        ("extra", 3, "", "z", ""),
    ]


def test_a_wrong_kind_row_notes_both_kinds() -> None:
    spans = [span("r", 1, kind=SpanKind.CLIENT), span("x", 2, trace_id=2)]
    assert rows_of("r [server]", spans)[0] == (
        "wrong kind",
        0,
        "r [server]",
        "r [client]",
        "expected kind server, found client",
    )


def test_a_small_fully_matched_subtree_is_shown_node_by_node() -> None:
    spans = [span("r", 1), span("a", 2, 1), span("c", 4, 2), span("b", 3, 1), span("x", 5, trace_id=2)]
    assert rows_of("r\n  b\n  a\n    c", spans) == [
        ("matched", 0, "r", "r", ""),
        ("matched", 1, "b", "b", ""),
        ("matched", 1, "a", "a", ""),
        ("matched", 2, "c", "c", ""),
        ("extra", 0, "", "x", "a root: a trace that was not expected"),
    ]


def test_a_fully_matched_subtree_of_more_than_collapse_at_spans_takes_one_row() -> None:
    stray = span("stray", 99, trace_id=2)
    twelve = [span("r", 1), *leaves(1, COLLAPSE_AT - 1, 2)]
    thirteen = [span("r", 1), *leaves(1, COLLAPSE_AT, 2)]
    expanded = rows_of(("r", ["leaf"] * (COLLAPSE_AT - 1)), [*twelve, stray])
    assert len(expanded) == COLLAPSE_AT + 1
    assert expanded[:2] == [("matched", 0, "r", "r", ""), ("matched", 1, "leaf", "leaf", "")]
    assert rows_of(("r", ["leaf"] * COLLAPSE_AT), [*thirteen, stray]) == [
        ("matched", 0, "r", "r", "and its 12 descendants, all matched"),
        ("extra", 0, "", "stray", "a root: a trace that was not expected"),
    ]


def test_in_a_large_expectation_every_fully_matched_subtree_takes_one_row() -> None:
    # 1 + 39 * 5 = 196 expected spans, then 200, then 201
    def case(groups: int, extra_leaves: int) -> tuple[object, list[ReadableSpan]]:
        spans = [span("r", 1)]
        next_id = 2
        for group in range(groups):
            group_id = next_id
            spans.append(span("g", group_id, 1))
            count = 4 + (extra_leaves if group == 0 else 0)
            spans += leaves(group_id, count, group_id + 1)
            next_id += 1 + count
        spans.append(span("stray", next_id, trace_id=2))
        first = ("g", ["leaf"] * (4 + extra_leaves))
        return ("r", [first, *[("g", ["leaf"] * 4)] * (groups - 1), "gone"]), spans

    expected, spans = case(39, 3)  # 1 + 8 + 38 * 5 + 1 = 200 expected spans: groups stay expanded
    rows = rows_of(expected, spans)
    assert rows[:3] == [
        ("matched", 0, "r", "r", ""),
        ("matched", 1, "g", "g", ""),
        ("matched", 2, "leaf", "leaf", ""),
    ]
    assert len(rows) == 200 + 1
    expected, spans = case(39, 4)  # 201
    rows = rows_of(expected, spans)
    assert rows[:3] == [
        ("matched", 0, "r", "r", ""),
        ("matched", 1, "g", "g", "and its 8 descendants, all matched"),
        ("matched", 1, "g", "g", "and its 4 descendants, all matched"),
    ]
    assert rows[-2:] == [
        ("missing", 1, "gone", "—", ""),
        ("extra", 0, "", "stray", "a root: a trace that was not expected"),
    ]
    assert len(rows) == 1 + 39 + 1 + 1


def test_a_fully_matched_leaf_in_a_large_expectation_is_one_plain_row() -> None:
    spans = [span("r", 1), *leaves(1, ROW_LIMIT, 2), span("stray", 999, trace_id=2)]
    rows = rows_of(("r", [*["leaf"] * ROW_LIMIT, "gone"]), spans)
    assert rows[:2] == [("matched", 0, "r", "r", ""), ("matched", 1, "leaf", "leaf", "")]
    assert len(rows) == 1 + ROW_LIMIT + 2


def test_the_children_of_a_missing_node_are_missing_too() -> None:
    assert rows_of("p\n  c\n    d", [span("c", 1)]) == [
        ("missing", 0, "p", "—", ""),
        ("missing", 1, "c", "—", ""),
        ("missing", 2, "d", "—", ""),
        ("extra", 0, "", "c", "a root: a trace that was not expected"),
    ]


# -- focus ---------------------------------------------------------------------------


def matched(depth: int, label: str = "m") -> Row:
    return Row("matched", depth, label, label)


def test_focus_leaves_up_to_row_limit_rows_alone() -> None:
    rows = [matched(0), *[matched(1) for _ in range(ROW_LIMIT - 2)], Row("missing", 1, "x", "—")]
    assert len(rows) == ROW_LIMIT
    assert focus(rows) is rows


def test_focus_keeps_the_rows_that_differ_and_their_ancestors() -> None:
    rows = [
        matched(0, "root"),
        *[matched(1) for _ in range(100)],
        matched(1, "group"),
        *[matched(2) for _ in range(50)],
        Row("extra", 2, "", "leaf"),
        *[matched(2) for _ in range(40)],
        *[matched(1) for _ in range(10)],
    ]
    assert len(rows) == ROW_LIMIT + 3
    assert focus(rows) == [
        matched(0, "root"),
        Row("", 1, "...", "", "100 matched rows not shown"),
        matched(1, "group"),
        Row("", 2, "...", "", "50 matched rows not shown"),
        Row("extra", 2, "", "leaf"),
        Row("", 1, "...", "", "50 matched rows not shown"),
    ]


def test_focus_keeps_a_differing_root_and_what_follows_it() -> None:
    rows = [
        Row("missing", 0, "a", "—"),
        *[matched(0) for _ in range(ROW_LIMIT)],
        Row("extra", 0, "", "z"),
    ]
    assert focus(rows) == [
        Row("missing", 0, "a", "—"),
        Row("", 0, "...", "", "200 matched rows not shown"),
        Row("extra", 0, "", "z"),
    ]


def test_focus_keeps_only_ancestors_above_the_shallowest_kept_row() -> None:
    rows = [
        matched(0, "root"),
        matched(1, "a"),
        Row("missing", 1, "x", "—"),
        *[matched(1) for _ in range(ROW_LIMIT)],
        matched(1, "b"),
        Row("missing", 2, "y", "—"),
    ]
    assert focus(rows) == [
        matched(0, "root"),
        Row("", 1, "...", "", "1 matched rows not shown"),
        Row("missing", 1, "x", "—"),
        Row("", 1, "...", "", "200 matched rows not shown"),
        matched(1, "b"),
        Row("missing", 2, "y", "—"),
    ]


def test_an_elided_run_takes_the_depth_of_its_last_row() -> None:
    rows = [
        matched(0, "root"),
        matched(1, "group"),
        *[matched(2) for _ in range(ROW_LIMIT)],
        Row("missing", 1, "x", "—"),
    ]
    assert focus(rows) == [
        matched(0, "root"),
        Row("", 2, "...", "", "201 matched rows not shown"),
        Row("missing", 1, "x", "—"),
    ]


# -- the text ------------------------------------------------------------------------


def test_format_table_pads_columns_to_the_longest_expected_label() -> None:
    rows = [
        Row("matched", 0, "GET /hello [server]", "GET /hello [server]"),
        Row("misplaced", 1, "create", "create", "found under 'x'; expected under 'GET /hello [server]'"),
        Row("missing", 2, "audit", "—"),
        Row("extra", 1, "", "cache.get [client]"),
    ]
    assert format_table(rows) == [
        "              expected             actual",
        "  matched     GET /hello [server]  GET /hello [server]",
        "  misplaced     create               create  (found under 'x'; expected under 'GET /hello [server]')",
        "  missing         audit                —",
        "  extra                              cache.get [client]",
    ]


def test_format_table_is_at_least_as_wide_as_its_header() -> None:
    assert format_table([Row("missing", 0, "a", "—"), Row("extra", 0, "", "b")]) == [
        "              expected  actual",
        "  missing     a         —",
        "  extra                 b",
    ]


def test_format_table_counts_two_spaces_a_level_in_the_width() -> None:
    assert format_table([Row("matched", 0, "a", "a"), Row("missing", 3, "deep", "—")]) == [
        "              expected    actual",
        "  matched     a           a",
        "  missing           deep        —",
    ]


def test_format_table_caps_the_expected_column() -> None:
    long = "x" * 60
    assert format_table([Row("missing", 0, long, "—"), Row("extra", 0, "", "b")]) == [
        "              " + "expected".ljust(48) + "  actual",
        f"  missing     {long}  —",
        "  extra       " + " " * 48 + "  b",
    ]


def test_format_table_shows_row_limit_rows_and_counts_the_rest() -> None:
    rows = [Row("missing", 0, f"s{index}", "—") for index in range(ROW_LIMIT + 5)]
    lines = format_table(rows)
    assert len(lines) == 1 + ROW_LIMIT + 1
    assert lines[1] == "  missing     s0        —"
    assert lines[-2] == "  missing     s199      —"
    assert lines[-1] == "  ... 5 more rows not shown"
    assert format_table(rows[:ROW_LIMIT])[-1] == "  missing     s199      —"


def test_format_table_focuses_first() -> None:
    rows = [matched(0, "root"), *[matched(1) for _ in range(ROW_LIMIT)], Row("extra", 1, "", "z")]
    assert format_table(rows) == [
        "              expected  actual",
        "  matched     root      root",
        "                ...         (200 matched rows not shown)",
        "  extra                   z",
    ]
