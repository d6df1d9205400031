"""The difference between expected trees and captured spans: statuses, notes, counts, marks and hints."""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain._graph import SpanGraph
from pytest_tracechain._origins import Origin, intern_origin
from pytest_tracechain._state import CaptureState
from pytest_tracechain._tree_diff import (
    DIFFERS,
    EXTRA,
    MATCHED,
    MISPLACED,
    MISSING,
    STATUS_ORDER,
    WRONG_KIND,
    Diff,
)
from pytest_tracechain._tree_match import Matcher
from pytest_tracechain._tree_parse import Node, parse_expected, parse_text, walk
from tests.unit.spans import ctx, span

SERVER, CLIENT, CONSUMER = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.CONSUMER

Entry = tuple[str, str | None, str | None, str | None]


def diff_of(
    expected: object,
    spans: Sequence[ReadableSpan],
    *,
    ambient: frozenset[int] = frozenset(),
    open_spans: Sequence[ReadableSpan] = (),
    timeout: float | None = None,
    capture: CaptureState | None = None,
) -> tuple[Diff, list[Node]]:
    roots = parse_expected(expected)
    return Diff(Matcher(roots, SpanGraph(spans, ambient)), capture, list(open_spans), timeout), roots


def entries(diff: Diff, roots: list[Node]) -> list[Entry]:
    """(label, status, note, the paired span's name) of each expected node, in pre-order."""
    out: list[Entry] = []
    for node in walk(roots):
        paired = diff.pair.get(id(node))
        out.append(
            (node.label, diff.status.get(id(node)), diff.note.get(id(node)), paired.name if paired else None)
        )
    return out


def note_of(expected: str, spans: Sequence[ReadableSpan], label: str) -> str | None:
    diff, roots = diff_of(expected, spans)
    return next(entry[2] for entry in entries(diff, roots) if entry[0] == label)


def test_statuses_are_the_words_of_the_table() -> None:
    assert (MATCHED, MISSING, EXTRA, MISPLACED, WRONG_KIND, DIFFERS) == (
        "matched",
        "missing",
        "extra",
        "misplaced",
        "wrong kind",
        "differs",
    )
    assert STATUS_ORDER == ("misplaced", "missing", "wrong kind", "differs", "extra")


# -- alignment -----------------------------------------------------------------------


def test_whole_matching_subtrees_are_paired_and_claim_every_span_below() -> None:
    spans = [span("a", 1), span("b", 2, 1), span("c", 3, 2), span("x", 4, trace_id=2)]
    diff, roots = diff_of("a\n  b\n    c", spans)
    (a,) = roots
    assert diff.full == {id(a)}
    assert diff.claimed == {1, 2, 3}
    assert entries(diff, roots) == [
        ("a", MATCHED, None, "a"),
        ("b", None, None, None),
        ("c", None, None, None),
    ]
    assert diff.nodes == {id(a): a}
    assert dict(diff.counts()) == {EXTRA: 1}


def test_whole_subtrees_are_paired_before_names() -> None:
    # by name alone, the first expected 'a' would take the first captured one, whose child is 'y'
    spans = [span("a", 1), span("y", 2, 1), span("a", 3, trace_id=2), span("x", 4, 3, trace_id=2)]
    spans.append(span("stray", 5, trace_id=3))
    diff, roots = diff_of("a\n  x\na\n  ~y", spans)
    assert diff.full == {id(roots[0]), id(roots[1])}
    assert diff.pair[id(roots[0])] is spans[2]
    assert diff.pair[id(roots[1])] is spans[0]
    assert dict(diff.counts()) == {EXTRA: 1}


def test_name_and_kind_are_paired_before_name_alone() -> None:
    spans = [span("r", 1), span("s", 2, 1, kind=SERVER), span("s", 3, 1, kind=CLIENT)]
    diff, roots = diff_of("r\n  s [client]\n    m1\n  s\n    m2", spans)
    assert entries(diff, roots) == [
        ("r", MATCHED, None, "r"),
        ("s [client]", MATCHED, None, "s"),
        ("m1", MISSING, None, None),
        ("s", MATCHED, None, "s"),
        ("m2", MISSING, None, None),
    ]
    assert diff.pair[id(roots[0].children[0])] is spans[2]
    assert diff.full == set()


def test_wrong_kind_says_both_kinds() -> None:
    spans = [span("r", 1, kind=SERVER), span("c", 2, 1), span("d", 3, 2, kind=CONSUMER)]
    diff, roots = diff_of("r [client]\n  c [client]\n    d [consumer]\n    e", spans)
    assert entries(diff, roots) == [
        ("r [client]", WRONG_KIND, "expected kind client, found server", "r"),
        ("c [client]", WRONG_KIND, "expected kind client, found internal", "c"),
        ("d [consumer]", MATCHED, None, "d"),
        ("e", MISSING, None, None),
    ]
    assert dict(diff.counts()) == {WRONG_KIND: 2, MISSING: 1}


def test_the_first_started_span_of_a_name_is_paired_first() -> None:
    spans = [span("r", 1), span("s", 3, 1), span("s", 2, 1), span("t", 4, 2)]
    diff, roots = diff_of("r\n  s\n    t\n    u\n  s\n    v", spans)
    (r,) = roots
    first, second = r.children
    assert diff.pair[id(first)] is spans[2]  # id 2 started first
    assert diff.pair[id(second)] is spans[1]


def test_of_identical_whole_subtrees_the_first_started_is_paired_first() -> None:
    spans = [span("r", 1), span("b", 3, 1, start=30), span("b", 2, 1, start=20)]
    diff, roots = diff_of("r\n  b\n  b\n  c", spans)
    first, second, _ = roots[0].children
    assert diff.pair[id(first)] is spans[2]
    assert diff.pair[id(second)] is spans[1]
    assert diff.full == {id(first), id(second)}


def test_patterns_are_paired_by_their_match() -> None:
    spans = [span("r", 1), span("GET /a", 2, 1), span("q", 3, 2), span("other", 4, 1)]
    diff, roots = diff_of("r\n  ~GET .*\n    p\n  ~oth.r", spans)
    assert entries(diff, roots) == [
        ("r", MATCHED, None, "r"),
        ("~GET .*", MATCHED, None, "GET /a"),
        ("p", MISSING, None, None),
        ("~oth.r", MATCHED, None, "other"),
    ]
    assert id(roots[0].children[1]) in diff.full


def test_missing_extra_and_misplaced_together() -> None:
    spans = [
        span("GET /hello", 1, kind=SERVER),
        span("create", 2, trace_id=2),
        span("send", 3, 1),
        span("cache.get", 5, 1, kind=CLIENT),
    ]
    diff, roots = diff_of("GET /hello [server]\n  create\n  send\n    process\n    audit", spans)
    assert entries(diff, roots) == [
        ("GET /hello [server]", MATCHED, None, "GET /hello"),
        (
            "create",
            MISPLACED,
            "found the root of another trace; expected under 'GET /hello [server]'",
            "create",
        ),
        ("send", MATCHED, None, "send"),
        ("process", MISSING, None, None),
        ("audit", MISSING, None, None),
    ]
    assert diff.claimed == {1, 2, 3}
    assert dict(diff.counts()) == {MISPLACED: 1, MISSING: 2, EXTRA: 1}


def test_the_children_of_a_missing_node_are_not_looked_for() -> None:
    diff, roots = diff_of("p\n  c", [span("c", 1)])
    assert entries(diff, roots) == [("p", MISSING, None, None), ("c", None, None, None)]
    assert dict(diff.counts()) == {MISSING: 1, EXTRA: 1}


def test_a_misplaced_span_keeps_its_children_aligned() -> None:
    spans = [span("r", 1), span("a", 2, 1), span("b", 3, 2), span("c", 4, 3), span("x", 5, 3)]
    diff, roots = diff_of("r\n  a\n  b\n    c\n    d", spans)
    assert entries(diff, roots) == [
        ("r", MATCHED, None, "r"),
        ("a", MATCHED, None, "a"),
        ("b", MISPLACED, "found under 'a'; expected under 'r'", "b"),
        ("c", MATCHED, None, "c"),
        ("d", MISSING, None, None),
    ]
    assert diff.claimed == {1, 2, 3, 4}


def test_elsewhere_prefers_name_and_kind_then_name_in_start_order() -> None:
    spans = [
        span("r", 1),
        span("p", 2, 1),
        span("s", 3, 2),
        span("s", 4, 2, kind=SERVER),
        span("t", 5, 2),
    ]
    diff, roots = diff_of("r\n  p\n  s [server]\n  ~t|u", spans)
    assert entries(diff, roots) == [
        ("r", MATCHED, None, "r"),
        ("p", MATCHED, None, "p"),
        ("s [server]", MISPLACED, "found under 'p'; expected under 'r'", "s"),
        ("~t|u", MISPLACED, "found under 'p'; expected under 'r'", "t"),
    ]
    assert diff.pair[id(roots[0].children[1])] is spans[3]
    spans[3] = span("s", 4, 2, kind=CLIENT)
    diff, roots = diff_of("r\n  p\n  s [server]", spans)
    assert diff.pair[id(roots[0].children[1])] is spans[2]  # no server span: the first of the name


def test_elsewhere_skips_claimed_spans() -> None:
    spans = [span("r", 1), span("a", 2, 1), span("b", 3, 2), span("b", 4, 2)]
    diff, roots = diff_of("r\n  a\n    b\n  b", spans)
    assert entries(diff, roots) == [
        ("r", MATCHED, None, "r"),
        ("a", MATCHED, None, "a"),
        ("b", MATCHED, None, "b"),
        ("b", MISPLACED, "found under 'a'; expected under 'r'", "b"),
    ]
    assert diff.pair[id(walk(roots)[2])] is spans[2]
    assert diff.pair[id(walk(roots)[3])] is spans[3]
    assert dict(diff.counts()) == {MISPLACED: 1}


# -- where a misplaced span is -------------------------------------------------------


def test_where_a_root_of_another_trace_or_of_the_same() -> None:
    other = [span("p", 1), span("c", 2, trace_id=2)]
    same = [span("p", 1), span("c", 2)]
    assert note_of("p\n  c", other, "c") == "found the root of another trace; expected under 'p'"
    assert note_of("p\n  c", same, "c") == "found a root of the same trace; expected under 'p'"


def test_where_under_a_span_of_this_trace_or_another() -> None:
    here = [span("p", 1), span("x", 3, 1), span("c", 2, 3)]
    there = [span("p", 1), span("x", 3, trace_id=2), span("c", 2, 3, trace_id=2)]
    assert note_of("p\n  c\n  x", here, "c") == "found under 'x'; expected under 'p'"
    assert note_of("p\n  c\nx", there, "c") == "found under 'x' in another trace; expected under 'p'"


def test_where_under_a_parent_that_was_not_captured() -> None:
    lost = [span("p", 1), span("c", 2, 7)]
    remote = [span("p", 1), span("c", 2, ctx(7, remote=True))]
    # the parent's id is captured, but the span is in another trace: not its parent
    elsewhere = [span("p", 1), span("c", 2, ctx(1, trace_id=1), trace_id=5)]
    assert note_of("p\n  c", lost, "c") == (
        "found under span 0000000000000007, which was not captured; expected under 'p'"
    )
    assert note_of("p\n  c", remote, "c") == (
        "found under a remote parent (span 0000000000000007) that is not captured; expected under 'p'"
    )
    assert note_of("p\n  c", elsewhere, "c") == (
        "found under span 0000000000000001, which was not captured in another trace; expected under 'p'"
    )


def test_where_a_root_under_the_ambient_span() -> None:
    spans = [span("p", 1, 9), span("c", 2, 9)]
    diff, roots = diff_of("p\n  c", spans, ambient=frozenset({9}))
    assert entries(diff, roots)[1][2] == "found the root of another trace; expected under 'p'"


def test_where_an_expected_root_is_found_under_a_span() -> None:
    spans = [span("x", 1), span("r", 2, 1)]
    assert note_of("r\nx", spans, "r") == "found under 'x', expected a root"


def test_where_when_the_link_stands_for_the_parent() -> None:
    linked = [span("p", 1), span("c", 2, trace_id=2, links=[ctx(1)])]
    reverse = [span("c", 2, trace_id=2), span("p", 1, links=[ctx(2, trace_id=2)])]
    unrelated = [span("p", 1), span("c", 2, trace_id=2, links=[ctx(5)])]
    assert note_of("p\n  c", linked, "c") == (
        "found the root of another trace; expected under 'p' — it is linked to 'p' instead of being its child"
    )
    assert note_of("p\n  c", reverse, "c") == (
        "found the root of another trace; expected under 'p' — 'p' links to it instead of being its parent"
    )
    assert note_of("p\n  c", unrelated, "c") == "found the root of another trace; expected under 'p'"


def test_where_a_root_is_expected_or_the_expected_parent_has_no_span() -> None:
    # not reached through the alignment (a pending node's parent is always paired, and a
    # root found at a root is paired at the top level), so asked directly
    spans = [span("p", 1), span("c", 2, trace_id=2), span("d", 3, 1)]
    diff, roots = diff_of("q\n  c\nd", spans)
    q, c, d = walk(roots)
    assert diff._where(d, spans[1]) == "found a root of another trace, expected a root"
    assert diff._where(d, spans[2]) == "found under 'p', expected a root"
    assert diff._where(c, spans[1]) == "found a root; expected under 'q'"
    assert diff.expected_parent_span(c) == (q, None)
    assert diff.expected_parent_span(q) == (None, None)


# -- open spans ----------------------------------------------------------------------


def test_a_missing_span_that_is_still_open_says_so() -> None:
    spans = [span("request", 1)]
    still_open = [span("stuck", 2, 1, still_open=True), span("other", 3, 1, still_open=True)]
    diff, roots = diff_of("request\n  stuck\n  gone", spans, open_spans=still_open)
    assert entries(diff, roots)[1:] == [
        ("stuck", MISSING, "a span of that name is still open: pass timeout= to wait for it", None),
        ("gone", MISSING, None, None),
    ]
    diff, roots = diff_of("request\n  ~st.ck", spans, open_spans=still_open, timeout=0.5)
    assert entries(diff, roots)[1] == ("~st.ck", MISSING, "a span of that name is still open", None)


# -- marks and counts ----------------------------------------------------------------


def test_marks_name_what_is_not_where_expected_and_the_expected_parent() -> None:
    spans = [
        span("r", 1),
        span("a", 2, 1, kind=SERVER),
        span("b", 3, trace_id=2),
        span("x", 4, 1),
        span("y", 5, 4),
    ]
    diff, _ = diff_of("r\n  a [client]\n    b\n  c", spans)
    assert diff.marks() == {
        2: WRONG_KIND,  # not overwritten by "expected parent of 'b'"
        3: MISPLACED,
        4: EXTRA,
        5: EXTRA,
    }
    assert dict(diff.counts()) == {WRONG_KIND: 1, MISPLACED: 1, MISSING: 1, EXTRA: 2}
    diff, _ = diff_of("r\n  a\n    b", spans[:3])
    assert diff.marks() == {3: MISPLACED, 2: "expected parent of 'b'"}


def test_a_misplaced_root_marks_no_expected_parent() -> None:
    spans = [span("x", 1), span("r", 2, 1)]
    diff, _ = diff_of("r\nx", spans)
    assert diff.marks() == {2: MISPLACED}


def test_counts_leave_out_what_matched() -> None:
    spans = [span("a", 1), span("b", 2, 1)]
    diff, _ = diff_of("a\n  b\n  c", spans)
    assert dict(diff.counts()) == {MISSING: 1}
    assert diff.counts()[EXTRA] == 0


# -- hints ---------------------------------------------------------------------------


def test_hint_a_server_or_consumer_span_that_did_not_extract_the_context() -> None:
    spans = [span("p", 1), span("c", 2, trace_id=2, kind=SERVER)]
    diff, _ = diff_of("p\n  c", spans)
    assert diff.hint() == (
        "'c' is a server span with no parent: it did not extract the context from the incoming "
        "carrier. Start it with context=opentelemetry.propagate.extract(headers)."
    )
    spans = [span("p", 1), span("c", 2, trace_id=2, kind=CONSUMER)]
    diff, _ = diff_of("p\n  c", spans)
    assert diff.hint() == (
        "'c' is a consumer span with no parent: it did not extract the context from the incoming "
        "carrier. Start it with context=opentelemetry.propagate.extract(headers)."
    )


def test_hint_the_thread_that_did_not_receive_the_context() -> None:
    capture = CaptureState("t")
    capture.origins[1] = intern_origin(Origin(os.getpid(), "MainThread", 1))
    capture.origins[2] = intern_origin(Origin(os.getpid(), "users", 2))
    spans = [span("p", 1), span("c", 2, trace_id=2)]
    diff, _ = diff_of("p\n  c", spans, capture=capture)
    assert diff.hint() == (
        "the thread 'users' did not receive the context of 'p'. Carry it over with "
        "contextvars.copy_context().run, pass context= to the span, or use the OpenTelemetry "
        "threading instrumentation."
    )
    diff, _ = diff_of("p\n  c", spans)
    assert diff.hint() is None  # no capture: nothing known of threads


def test_no_hint_for_a_span_with_links_under_another_parent_or_linked_to() -> None:
    linked = [span("p", 1), span("c", 2, trace_id=2, kind=SERVER, links=[ctx(1)])]
    under = [span("p", 1), span("x", 3, trace_id=2), span("c", 2, 3, trace_id=2, kind=SERVER)]
    reverse = [span("p", 1, links=[ctx(2, trace_id=2)]), span("c", 2, trace_id=2, kind=SERVER)]
    wrong_kind = [span("p", 1), span("c", 2, 1, kind=SERVER)]
    for spans, expected in (
        (linked, "p\n  c"),
        (under, "p\n  c\nx"),
        (reverse, "p\n  c"),
        (wrong_kind, "p\n  c [client]"),
    ):
        diff, _ = diff_of(expected, spans)
        assert diff.hint() is None, spans


def test_no_hint_for_a_misplaced_root() -> None:
    spans = [span("x", 1), span("r", 2, 1, kind=SERVER)]
    diff, _ = diff_of("r\nx", spans)
    assert diff.hint() is None


def test_the_hint_is_for_the_first_misplaced_span_that_qualifies() -> None:
    spans = [
        span("p", 1),
        span("a", 2, trace_id=2, links=[ctx(1)], kind=SERVER),
        span("b", 3, trace_id=3, kind=CONSUMER),
        span("c", 4, trace_id=4, kind=SERVER),
    ]
    diff, _ = diff_of("p\n  a\n  b\n  c", spans)
    assert diff.hint() == (
        "'b' is a consumer span with no parent: it did not extract the context from the incoming "
        "carrier. Start it with context=opentelemetry.propagate.extract(headers)."
    )


def test_a_diff_of_node_lists_made_by_hand() -> None:
    roots = parse_text("a")
    diff = Diff(Matcher(roots, SpanGraph([span("b", 1)])), None, [])
    assert diff.timeout is None
    assert diff.capture is None
    assert entries(diff, roots) == [("a", MISSING, None, None)]
    assert not diff.pending
