"""The renderer: its elision plan, its rows and their format; properties over arbitrary span forests."""

from __future__ import annotations

import os
import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from pytest_tracechain import TraceCapture
from pytest_tracechain._graph import SpanGraph
from pytest_tracechain._origins import Origin
from pytest_tracechain._render import (
    MAX_INDENT,
    Elision,
    format_duration,
    format_nanoseconds,
    kind_tag,
    paint,
    parent_note,
    plan_elision,
    render_spans,
    span_label,
    tree_rows,
)
from pytest_tracechain._state import CaptureState
from tests.unit.spans import RESOURCE, ctx, span

SPAN_LINE = re.compile(r"^(?P<indent>(?:│  |   )*)(?:├─ |└─ )(?P<name>s\d+)\b")


# One draw per span: (trace id, parent choice, which earlier span, kind, start, length or open).
SPAN_DRAWS = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=4),
        st.sampled_from(["root", "child", "missing", "remote"]),
        st.integers(min_value=0, max_value=59),
        st.sampled_from(list(SpanKind)),
        st.integers(min_value=0, max_value=1_000_000),
        st.one_of(st.none(), st.integers(min_value=0, max_value=1_000_000)),
    ),
    min_size=1,
    max_size=60,
)


@st.composite
def span_forests(draw: st.DrawFn) -> list[ReadableSpan]:
    """Spans over a few traces; parents are earlier spans of the trace, missing or remote spans."""
    spans: list[ReadableSpan] = []
    for index, (trace_id, choice, pick, kind, start, length) in enumerate(draw(SPAN_DRAWS)):
        same_trace = [s for s in spans if s.context.trace_id == trace_id]
        parent = None
        if choice == "child" and same_trace:
            parent = same_trace[pick % len(same_trace)].context
        elif choice in ("missing", "remote"):
            parent = SpanContext(trace_id, 10_000 + index, is_remote=choice == "remote")
        spans.append(
            ReadableSpan(
                name=f"s{index}",
                context=SpanContext(trace_id, index + 1, is_remote=False),
                parent=parent,
                kind=kind,
                start_time=start,
                end_time=None if length is None else start + length,
                resource=RESOURCE,
            )
        )
    return spans


@settings(max_examples=200, deadline=None)
@given(span_forests())
def test_every_span_is_shown_once_under_its_parent(spans: list[ReadableSpan]) -> None:
    output = render_spans(spans)
    shown: dict[str, int] = {}
    stack: list[str] = []
    for line in output.splitlines():
        if line.startswith("trace "):
            stack = []
            continue
        match = SPAN_LINE.match(line)
        assert match, line
        depth = len(match["indent"]) // 3
        name = match["name"]
        shown[name] = shown.get(name, 0) + 1
        del stack[depth:]
        span = next(s for s in spans if s.name == name)
        if depth:
            assert span.parent is not None
            assert span.parent.span_id == int(stack[-1][1:]) + 1, (name, stack)
        else:
            by_id = {s.context.span_id for s in spans}
            assert span.parent is None or span.parent.span_id not in by_id
        stack.append(name)
    assert shown == {s.name: 1 for s in spans}
    trace_counts = [int(m) for m in re.findall(r"^trace [0-9a-f]{32} · (\d+) spans?$", output, re.M)]
    assert sum(trace_counts) == len(spans)


@settings(max_examples=100, deadline=None)
@given(span_forests(), st.integers(min_value=0, max_value=70))
def test_limit_cuts_with_a_count(spans: list[ReadableSpan], limit: int) -> None:
    lines = render_spans(spans, limit=limit).splitlines()
    span_lines = [line for line in lines if SPAN_LINE.match(line)]
    assert len(span_lines) == min(limit, len(spans))
    if limit < len(spans):
        assert lines[-1] == f"... {len(spans) - limit} more spans not shown"
    else:
        assert not lines[-1].startswith("...")


def test_notes_where_a_parent_is() -> None:
    remote = SpanContext(1, 99, is_remote=True)
    missing = SpanContext(1, 98, is_remote=False)
    spans = [
        ReadableSpan(
            name="consumer", context=SpanContext(1, 1, False), parent=remote, kind=SpanKind.CONSUMER
        ),
        ReadableSpan(name="orphan", context=SpanContext(1, 2, False), parent=missing),
    ]
    output = render_spans(spans, highlight={2: "here"})
    assert output.splitlines()[1:] == [
        "├─ consumer [consumer] · open (remote parent 0000000000000063)",
        "└─ orphan · open (parent 0000000000000062 not captured)  ← here",
    ]
    assert render_spans([]) == "  (no spans captured)"


# -- the elision plan ----------------------------------------------------------------

T1, T2, T3 = (f"trace {trace_id:032x}" for trace_id in (1, 2, 3))


def family() -> SpanGraph:
    """root -> a (a1, a2), b (b1) in trace 1; other -> o1 in trace 2; lone in trace 3: 9 spans."""
    return SpanGraph(
        [
            span("root", 1),
            span("a", 2, 1),
            span("b", 3, 1),
            span("a1", 4, 2),
            span("a2", 5, 2),
            span("b1", 6, 3),
            span("other", 7, trace_id=2),
            span("o1", 8, 7, trace_id=2),
            span("lone", 9, trace_id=3),
        ]
    )


def shown_traces(plan: Elision) -> list[tuple[int, list[str], int]]:
    return [(key[0], [top.name for top in tops], elided) for key, tops, elided in plan.traces]


def test_without_a_limit_everything_is_shown() -> None:
    plan = plan_elision(family())
    assert shown_traces(plan) == [(1, ["root"], 0), (2, ["other"], 0), (3, ["lone"], 0)]
    assert (plan.budget, plan.keep, plan.not_shown, plan.other_traces) == (sys.maxsize, None, 0, 0)


def test_a_limit_of_all_the_spans_or_more_cuts_nothing_even_with_a_highlight() -> None:
    for limit in (9, 10):
        plan = plan_elision(family(), highlight={5}, limit=limit)
        assert (plan.budget, plan.keep, plan.not_shown, plan.other_traces) == (sys.maxsize, None, 0, 0)
        assert len(list(plan.traces)) == 3


def test_below_the_limit_without_a_highlight_the_first_spans_are_shown() -> None:
    plan = plan_elision(family(), limit=8)
    assert shown_traces(plan) == [(1, ["root"], 0), (2, ["other"], 0), (3, ["lone"], 0)]
    assert (plan.budget, plan.keep, plan.not_shown, plan.other_traces) == (8, None, 1, 0)
    assert plan_elision(family(), highlight=(), limit=0).not_shown == 9


def test_a_negative_limit_shows_nothing() -> None:
    plan = plan_elision(family(), limit=-3)
    assert (plan.budget, plan.not_shown) == (0, 9)
    assert render_spans((), graph=family(), limit=-3) == "... 9 more spans not shown"


def test_past_the_limit_the_paths_to_the_highlighted_spans_are_kept() -> None:
    graph = family()
    plan = plan_elision(graph, highlight={5}, limit=3)
    assert plan.keep == {5, 2, 1}
    assert plan.sizes == graph.subtree_sizes()
    assert shown_traces(plan) == [(1, ["root"], 0)]
    assert (plan.budget, plan.not_shown, plan.other_traces) == (sys.maxsize, 0, 3)


def test_highlights_in_two_traces_keep_both_and_count_the_third() -> None:
    plan = plan_elision(family(), highlight={5, 8, 2}, limit=3)
    assert plan.keep == {5, 2, 1, 8, 7}
    assert shown_traces(plan) == [(1, ["root"], 0), (2, ["other"], 0)]
    assert plan.other_traces == 1


def test_a_highlighted_id_not_captured_keeps_nothing() -> None:
    plan = plan_elision(family(), highlight={99}, limit=3)
    assert plan.keep == set()
    assert plan.traces == ()
    assert plan.other_traces == 9
    assert render_spans((), graph=family(), highlight={99: "x"}, limit=3) == (
        "... 9 more spans in other traces not shown"
    )


def test_the_kept_path_stops_at_a_parent_not_captured() -> None:
    graph = SpanGraph([span("orphan", 2, 99), span("kid", 3, 2), span("other", 4)])
    assert plan_elision(graph, highlight={3}, limit=1).keep == {2, 3}


def orphaned_family() -> SpanGraph:
    """``family`` with a second top in trace 1: orphan (parent 99 not captured) -> orphan kid."""
    spans = list(family().by_id.values())
    return SpanGraph([*spans, span("orphan", 10, 99), span("orphan kid", 11, 10)])


def test_tops_left_out_of_a_shown_trace_are_counted() -> None:
    plan = plan_elision(orphaned_family(), highlight={4}, limit=3)
    assert shown_traces(plan) == [(1, ["root"], 2)]
    assert plan.other_traces == 3


# -- the rows ------------------------------------------------------------------------


def rows_of(graph: SpanGraph, plan: Elision) -> list[tuple[int, list[tuple[str, str, int, str | int]]]]:
    return [
        (key[0], [(p, b, d, item if isinstance(item, int) else item.name) for p, b, d, item in rows])
        for key, rows in tree_rows(graph, plan)
    ]


FAMILY_ROWS = [
    ("", "└─ ", 0, "root"),
    ("   ", "├─ ", 1, "a"),
    ("   │  ", "├─ ", 2, "a1"),
    ("   │  ", "└─ ", 2, "a2"),
    ("   ", "└─ ", 1, "b"),
    ("      ", "└─ ", 2, "b1"),
]


def test_rows_depth_first_with_their_prefixes() -> None:
    graph = family()
    assert rows_of(graph, plan_elision(graph)) == [
        (1, FAMILY_ROWS),
        (2, [("", "└─ ", 0, "other"), ("   ", "└─ ", 1, "o1")]),
        (3, [("", "└─ ", 0, "lone")]),
    ]


def test_the_budget_runs_across_traces() -> None:
    graph = family()
    assert rows_of(graph, plan_elision(graph, limit=7)) == [(1, FAMILY_ROWS), (2, [("", "└─ ", 0, "other")])]
    assert rows_of(graph, plan_elision(graph, limit=6)) == [(1, FAMILY_ROWS)]
    assert rows_of(graph, plan_elision(graph, limit=2)) == [(1, FAMILY_ROWS[:2])]


def test_two_tops_of_a_trace_are_siblings() -> None:
    graph = orphaned_family()
    assert rows_of(graph, plan_elision(graph))[0] == (
        1,
        [
            ("", "├─ ", 0, "root"),
            ("│  ", "├─ ", 1, "a"),
            ("│  │  ", "├─ ", 2, "a1"),
            ("│  │  ", "└─ ", 2, "a2"),
            ("│  ", "└─ ", 1, "b"),
            ("│     ", "└─ ", 2, "b1"),
            ("", "└─ ", 0, "orphan"),
            ("   ", "└─ ", 1, "orphan kid"),
        ],
    )


def test_elided_branches_are_rows_of_their_size_after_the_kept_ones() -> None:
    graph = family()
    assert rows_of(graph, plan_elision(graph, highlight={5}, limit=3)) == [
        (
            1,
            [
                ("", "└─ ", 0, "root"),
                ("   ", "├─ ", 1, "a"),
                ("   │  ", "├─ ", 2, "a2"),
                ("   │  ", "└─ ", 2, 1),
                ("   ", "└─ ", 1, 2),
            ],
        )
    ]


def test_elided_tops_are_a_row_after_the_kept_tops() -> None:
    graph = orphaned_family()
    assert rows_of(graph, plan_elision(graph, highlight={1}, limit=3)) == [
        (1, [("", "├─ ", 0, "root"), ("│  ", "└─ ", 1, 5), ("", "└─ ", 0, 2)])
    ]


def chain(length: int) -> list[ReadableSpan]:
    return [span(f"s{i}", i + 1, i or None) for i in range(length)]


def test_the_prefix_stops_growing_at_max_indent() -> None:
    graph = SpanGraph(chain(MAX_INDENT + 3))
    ((_, walk),) = tree_rows(graph, plan_elision(graph))
    rows = list(walk)
    assert [(len(prefix), depth) for prefix, _, depth, _ in rows] == [
        (3 * min(depth, MAX_INDENT), depth) for depth in range(MAX_INDENT + 3)
    ]
    assert {prefix for prefix, *_ in rows[MAX_INDENT:]} == {"   " * MAX_INDENT}


def test_a_trace_deeper_than_the_recursion_limit_renders_with_its_depth() -> None:
    length = sys.getrecursionlimit() + 50
    lines = render_spans(chain(length)).splitlines()
    assert len(lines) == length + 1
    assert lines[MAX_INDENT + 1] == "   " * MAX_INDENT + f"└─ s{MAX_INDENT} · 0 µs"
    assert (
        lines[MAX_INDENT + 2] == "   " * MAX_INDENT + f"└─ [depth {MAX_INDENT + 1}] s{MAX_INDENT + 1} · 0 µs"
    )
    assert lines[-1] == "   " * MAX_INDENT + f"└─ [depth {length - 1}] s{length - 1} · 0 µs"


# -- the format ----------------------------------------------------------------------


def test_format_nanoseconds() -> None:
    assert format_nanoseconds(0) == "0 µs"
    assert format_nanoseconds(2_000) == "2 µs"
    assert format_nanoseconds(999_999) == "1000 µs"
    assert format_nanoseconds(1_000_000) == "1.0 ms"
    assert format_nanoseconds(1_260_000) == "1.3 ms"
    assert format_nanoseconds(999_999_999) == "1000.0 ms"
    assert format_nanoseconds(1_000_000_000) == "1.00 s"
    assert format_nanoseconds(61_234_000_000) == "61.23 s"


def test_format_duration_of_open_spans() -> None:
    assert format_duration(span("a", 1, start=10, end=2_010)) == "2 µs"
    assert format_duration(span("a", 1, still_open=True)) == "open"
    no_start = ReadableSpan(name="a", context=ctx(1), start_time=None, end_time=50, resource=RESOURCE)
    assert format_duration(no_start) == "open"


def test_kind_tags_and_paint() -> None:
    assert kind_tag(SpanKind.INTERNAL) == ""
    assert kind_tag(SpanKind.SERVER) == " [server]"
    assert kind_tag(SpanKind.CONSUMER) == " [consumer]"
    assert paint("x", "1", "31", color=False) == "x"
    assert paint("x", "1", "31", color=True) == "\x1b[1;31mx\x1b[0m"
    assert paint("", "1", color=True) == ""


def errored(description: str | None = "boom", code: StatusCode = StatusCode.ERROR) -> ReadableSpan:
    return ReadableSpan(
        name="GET /",
        context=ctx(1),
        kind=SpanKind.SERVER,
        start_time=0,
        end_time=2_500_000,
        status=Status(code, description),
        resource=RESOURCE,
    )


def test_span_labels() -> None:
    here = Origin(pid=os.getpid(), thread_name="MainThread", thread_id=1)
    elsewhere = Origin(pid=4242, thread_name=None, thread_id=None, task_name="Task-2")
    assert span_label(errored(code=StatusCode.OK)) == "GET / [server] · 2.5 ms"
    assert (
        span_label(errored(None, StatusCode.UNSET), here) == "GET / [server] · 2.5 ms · thread 'MainThread'"
    )
    assert span_label(errored(None), elsewhere) == "GET / [server] · 2.5 ms · pid 4242, task 'Task-2' · ERROR"
    assert span_label(errored(), here, this_pid=1) == (
        f"GET / [server] · 2.5 ms · pid {os.getpid()}, thread 'MainThread' · ERROR: boom"
    )
    assert (
        span_label(errored(), elsewhere, this_pid=4242)
        == "GET / [server] · 2.5 ms · task 'Task-2' · ERROR: boom"
    )


def test_span_labels_in_colour() -> None:
    here = Origin(pid=os.getpid(), thread_name="MainThread", thread_id=1)
    assert span_label(errored(), here, color=True) == (
        "\x1b[1mGET /\x1b[0m\x1b[36m [server]\x1b[0m · \x1b[2m2.5 ms\x1b[0m · "
        "\x1b[2mthread 'MainThread'\x1b[0m · \x1b[31;1mERROR: boom\x1b[0m"
    )
    assert (
        span_label(span("work", 1, start=0, end=5), color=True) == "\x1b[1mwork\x1b[0m · \x1b[2m0 µs\x1b[0m"
    )


def test_parent_notes() -> None:
    assert parent_note(span("root", 1)) == ""
    assert parent_note(span("consumer", 1, ctx(99, remote=True))) == " (remote parent 0000000000000063)"
    assert parent_note(span("orphan", 1, 98)) == " (parent 0000000000000062 not captured)"
    assert parent_note(span("under the harness", 1, 98), {98}) == ""


def test_a_render_with_origins_notes_and_marks() -> None:
    spans = [
        span("root", 1, 7, kind=SpanKind.SERVER, start=0, end=3_000_000),
        span("child", 2, 1, start=10, end=20),
        span("remote", 3, ctx(9, remote=True), trace_id=2),
        span("under the harness", 4, 8, trace_id=3),
    ]
    origins = {1: Origin(pid=os.getpid(), thread_name="MainThread", thread_id=1), 2: Origin(1, "worker", 2)}
    output = render_spans(spans, origins=origins, ambient={8}, highlight={2: "lost", 4: "late"})
    assert output.splitlines() == [
        f"{T1} · 2 spans",
        "└─ root [server] · 3.0 ms · thread 'MainThread' (parent 0000000000000007 not captured)",
        "   └─ child · 0 µs · pid 1, thread 'worker'  ← lost",
        f"{T2} · 1 span",
        "└─ remote · 0 µs (remote parent 0000000000000009)",
        f"{T3} · 1 span",
        "└─ under the harness · 0 µs  ← late",
    ]


def test_the_elided_render_and_its_count_of_other_traces() -> None:
    assert render_spans((), graph=family(), highlight={5: "here"}, limit=3).splitlines() == [
        f"{T1} · 6 spans",
        "└─ root · 0 µs",
        "   ├─ a · 0 µs",
        "   │  ├─ a2 · 0 µs  ← here",
        "   │  └─ ... 1 more spans",
        "   └─ ... 2 more spans",
        "... 3 more spans in other traces not shown",
    ]


def test_the_cut_render_and_its_count() -> None:
    assert render_spans((), graph=family(), limit=7).splitlines() == [
        f"{T1} · 6 spans",
        *(prefix + branch + name + " · 0 µs" for prefix, branch, _, name in FAMILY_ROWS),
        f"{T2} · 2 spans",
        "└─ other · 0 µs",
        "... 2 more spans not shown",
    ]
    assert render_spans((), graph=family(), limit=9).splitlines()[-1] == "└─ lone · 0 µs"


def test_colour_codes_only_when_asked_for() -> None:
    spans = [span("orphan", 2, 99), span("kid", 3, 2), span("leaf", 4, 2), span("lone", 5, trace_id=2)]
    output = render_spans(spans, highlight={3: "here"}, limit=2, color=True)
    assert output.splitlines() == [
        f"\x1b[1m{T1} · 3 spans\x1b[0m",
        "└─ \x1b[1morphan\x1b[0m · \x1b[2m0 µs\x1b[0m\x1b[33m (parent 0000000000000063 not captured)\x1b[0m",
        "   ├─ \x1b[1mkid\x1b[0m · \x1b[2m0 µs\x1b[0m\x1b[31;1m  ← here\x1b[0m",
        "   └─ \x1b[33m... 1 more spans\x1b[0m",
        "\x1b[33m... 1 more spans in other traces not shown\x1b[0m",
    ]
    assert (
        render_spans(spans, limit=1, color=True).splitlines()[-1]
        == "\x1b[33m... 3 more spans not shown\x1b[0m"
    )
    assert "\x1b" not in render_spans(spans, highlight={3: "here"}, limit=2)


def test_a_child_starting_before_its_parent_past_the_limit_with_a_highlight() -> None:
    # The subtree sizes once came from start order and raised KeyError here.
    spans = [
        span("root", 1, start=100),
        span("child", 2, 1, start=50),
        span("grandchild", 3, 2, start=50),
        span("other", 4, 1, start=200),
        span("leaf", 5, 4, start=200),
    ]
    assert render_spans(spans, highlight={3: "here"}, limit=2).splitlines() == [
        f"{T1} · 5 spans",
        "└─ root · 0 µs",
        "   ├─ child · 0 µs",
        "   │  └─ grandchild · 0 µs  ← here",
        "   └─ ... 2 more spans",
    ]


# -- properties of the elision -------------------------------------------------------

ANY_SPAN_LINE = re.compile(r"^(?:│  |   )*(?:├─ |└─ )(?:\[depth \d+\] )?(?P<name>s\d+)\b")
ELIDED_LINE = re.compile(r"^(?:│  |   )*(?:├─ |└─ )\.\.\. (\d+) more spans$")
OTHER_TRACES_LINE = re.compile(r"^\.\.\. (\d+) more spans in other traces not shown$")


@settings(max_examples=150, deadline=None)
@given(span_forests(), st.integers(min_value=0, max_value=70), st.data())
def test_past_the_limit_every_highlighted_span_is_shown_and_the_counts_add_up(
    spans: list[ReadableSpan], limit: int, data: st.DataObject
) -> None:
    chosen = data.draw(st.lists(st.sampled_from([s.name for s in spans]), min_size=1, max_size=4))
    by_name = {s.name: s.context.span_id for s in spans}
    highlight = {by_name[name]: "here" for name in chosen}
    shown: list[str] = []
    elided = 0
    for line in render_spans(spans, highlight=highlight, limit=limit).splitlines():
        if line.startswith("trace "):
            continue
        counted = ELIDED_LINE.match(line) or OTHER_TRACES_LINE.match(line)
        if counted:
            elided += int(counted[1])
            continue
        match = ANY_SPAN_LINE.match(line)
        assert match, line
        shown.append(match["name"])
        assert line.endswith("  ← here") == (match["name"] in chosen)
    assert set(chosen) <= set(shown)
    assert len(set(shown)) == len(shown)
    assert len(shown) + elided == len(spans)


# -- the arguments of TraceCapture.render ------------------------------------------------


def a_capture() -> TraceCapture:
    state = CaptureState("test_x")
    for finished in (span("root", 1), span("child", 2, 1)):
        state.record_end(finished.context.span_id, finished)
    return TraceCapture(state, _ispytest=True)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"highlight": [1, 2]},
            TypeError,
            "argument 'highlight' must be a mapping of span ids (int) to marks (str), not list",
        ),
        (
            {"highlight": {"1": "here"}},
            TypeError,
            "argument 'highlight' must map span ids (int) to marks (str); it has a key of type str",
        ),
        (
            {"highlight": {True: "here"}},
            TypeError,
            "argument 'highlight' must map span ids (int) to marks (str); it has a key of type bool",
        ),
        (
            {"highlight": {1: 2}},
            TypeError,
            "argument 'highlight' must map span ids (int) to marks (str); the mark of span "
            "0000000000000001 is int",
        ),
        ({"limit": "x"}, TypeError, "argument 'limit' must be an int or None, not str"),
        ({"limit": 2.5}, TypeError, "argument 'limit' must be an int or None, not float"),
        ({"limit": True}, TypeError, "argument 'limit' must be an int or None, not bool"),
        ({"limit": -1}, ValueError, "argument 'limit' must be at least 0, not -1"),
        ({"color": "x"}, TypeError, "argument 'color' must be True or False, not str"),
        ({"color": None}, TypeError, "argument 'color' must be True or False, not NoneType"),
        ({"color": 1}, TypeError, "argument 'color' must be True or False, not int"),
    ],
    ids=[
        "highlight_list",
        "highlight_str_key",
        "highlight_bool_key",
        "highlight_int_mark",
        "limit_str",
        "limit_float",
        "limit_bool",
        "limit_negative",
        "color_str",
        "color_none",
        "color_int",
    ],
)
def test_render_checks_its_arguments(
    arguments: dict[str, object], error: type[Exception], message: str
) -> None:
    # highlight=[1, 2] was an AttributeError ('list' object has no attribute 'get') from inside,
    # limit="x" a TypeError comparing int and str, color="x" painted the output.
    with pytest.raises(error) as info:
        a_capture().render(**arguments)  # type: ignore[arg-type]
    assert type(info.value) is error
    assert str(info.value) == "TraceCapture.render() " + message


def test_render_takes_the_arguments_it_documents() -> None:
    capture = a_capture()
    assert capture.render(limit=0, color=False) == "... 2 more spans not shown"
    assert capture.render(highlight={2: "here"}, limit=1).endswith("child · 0 µs  ← here")
    assert capture.render(highlight={}, limit=None, color=True).count("\x1b[") > 0
    assert capture.render(highlight={99: ""}) == capture.render()
