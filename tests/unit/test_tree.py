"""assert_trace_tree in process: passing, the whole failure message, its arguments, waiting, properties."""

from __future__ import annotations

import gc
import math
import os
import threading
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from pytest_tracechain import TraceAssertionError, TraceCapture, _tree, assert_trace_tree
from pytest_tracechain._origins import Origin, intern_origin
from pytest_tracechain._state import CaptureState
from tests.unit.spans import ctx, span

SERVER, CLIENT, PRODUCER, CONSUMER = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER
TREE = """
    GET /hello [server]
      service.User.Create
      user.events send [producer]
        user.events process [consumer]
"""


def handled(*, carry: bool = True, extra: bool = False, link_instead: bool = False) -> list[ReadableSpan]:
    """The spans of one request: GET /hello -> create user, publish -> consume."""
    create_parent: SpanContext | int | None = 1 if carry else None
    consumer: dict[str, object] = {"parent": 3}
    if link_instead:
        consumer = {"parent": None, "trace_id": 3, "links": [ctx(3)]}
    spans = [
        span("GET /hello", 1, kind=SERVER),
        span("service.User.Create", 2, create_parent, trace_id=1 if carry else 2),
        span("user.events send", 3, 1, kind=PRODUCER),
        span("user.events process", 4, kind=CONSUMER, **consumer),  # type: ignore[arg-type]
    ]
    if extra:
        spans.append(span("cache.get", 5, 1, kind=CLIENT))
    return spans


def failure(expected: object, spans: object, **kwargs: object) -> str:
    with pytest.raises(TraceAssertionError) as info:
        assert_trace_tree(expected, spans, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def capture_of(
    spans: Sequence[ReadableSpan], thread: str = "MainThread"
) -> tuple[TraceCapture, CaptureState]:
    """A capture holding ``spans``, each started in the thread named ``thread``."""
    state = CaptureState("test_x")
    origin = intern_origin(Origin(os.getpid(), thread, 1))
    for finished in spans:
        state.origins[finished.context.span_id] = origin
        state.record_end(finished.context.span_id, finished)
    return TraceCapture(state, _ispytest=True), state


# -- passing -------------------------------------------------------------------------


def test_every_form_passes_for_the_same_spans() -> None:
    spans = handled()
    assert_trace_tree(TREE, spans)
    assert_trace_tree(
        "GET /hello [SERVER]\n  user.events send\n    user.events process\n  service.User.Create", spans
    )
    assert_trace_tree(
        (
            "GET /hello",
            "server",
            ["service.User.Create", ("user.events send", [("user.events process", [])])],
        ),
        spans,
    )
    assert_trace_tree(
        {"GET /hello": {"service.User.Create": None, "user.events send": ["user.events process"]}}, spans
    )
    assert_trace_tree([TREE], iter(spans))
    assert_trace_tree(TREE, tuple(spans))


def test_passing_returns_none() -> None:
    assert assert_trace_tree("a", [span("a", 1)]) is None  # type: ignore[func-returns-value]


# -- the whole message ---------------------------------------------------------------


def test_a_span_in_a_trace_of_its_own_is_misplaced() -> None:
    assert failure(TREE, handled(carry=False)) == "\n".join(
        [
            "the captured spans do not have the expected shape: 1 misplaced (1 expected trace, 2 captured)",
            "",
            "              expected                            actual",
            "  matched     GET /hello [server]                 GET /hello [server]",
            "  misplaced     service.User.Create                 service.User.Create  (found the root of "
            "another trace; expected under 'GET /hello [server]')",
            "  matched       user.events send [producer]         user.events send [producer]",
            "  matched         user.events process [consumer]      user.events process [consumer]",
            "",
            "traces involved:",
            "trace 00000000000000000000000000000001 · 3 spans",
            "└─ GET /hello [server] · 0 µs  ← expected parent of 'service.User.Create'",
            "   └─ user.events send [producer] · 0 µs",
            "      └─ user.events process [consumer] · 0 µs",
            "trace 00000000000000000000000000000002 · 1 span",
            "└─ service.User.Create · 0 µs  ← misplaced",
        ]
    )


def test_missing_extra_and_wrong_kind() -> None:
    expected = """
        GET /hello [server]
          service.User.Create [client]
          user.events send [producer]
            user.events process [consumer]
            audit.write
    """
    assert failure(expected, handled(extra=True)) == "\n".join(
        [
            "the captured spans do not have the expected shape: 1 missing, 1 wrong kind, 1 extra "
            "(1 expected trace, 1 captured)",
            "",
            "              expected                            actual",
            "  matched     GET /hello [server]                 GET /hello [server]",
            "  wrong kind    service.User.Create [client]        service.User.Create  "
            "(expected kind client, found internal)",
            "  matched       user.events send [producer]         user.events send [producer]",
            "  matched         user.events process [consumer]      user.events process [consumer]",
            "  missing         audit.write                         —",
            "  extra                                             cache.get [client]",
            "",
            "traces involved:",
            "trace 00000000000000000000000000000001 · 5 spans",
            "└─ GET /hello [server] · 0 µs",
            "   ├─ service.User.Create · 0 µs  ← wrong kind",
            "   ├─ user.events send [producer] · 0 µs",
            "   │  └─ user.events process [consumer] · 0 µs",
            "   └─ cache.get [client] · 0 µs  ← extra",
        ]
    )


def test_a_consumer_linked_instead_of_a_child_gets_the_hint_to_extract() -> None:
    message = failure(TREE, handled(link_instead=True))
    assert message.splitlines()[6] == (
        "  misplaced       user.events process [consumer]      user.events process [consumer]  "
        "(found the root of another trace; expected under 'user.events send [producer]' — it is linked "
        "to 'user.events send' instead of being its child)"
    )
    assert "hint:" not in message  # a span with links was linked on purpose


def test_the_hint_follows_the_table() -> None:
    spans = [span("request", 1), span("handle", 2, trace_id=2, kind=SERVER)]
    assert failure("request\n  handle", spans) == "\n".join(
        [
            "the captured spans do not have the expected shape: 1 misplaced (1 expected trace, 2 captured)",
            "",
            "              expected  actual",
            "  matched     request   request",
            "  misplaced     handle    handle [server]  (found the root of another trace; expected under "
            "'request')",
            "",
            "hint: 'handle' is a server span with no parent: it did not extract the context from the "
            "incoming carrier. Start it with context=opentelemetry.propagate.extract(headers).",
            "",
            "traces involved:",
            "trace 00000000000000000000000000000001 · 1 span",
            "└─ request · 0 µs  ← expected parent of 'handle'",
            "trace 00000000000000000000000000000002 · 1 span",
            "└─ handle [server] · 0 µs  ← misplaced",
        ]
    )


def test_headline_counts_expected_and_captured_traces() -> None:
    spans = [span("a", 1), span("b", 2, trace_id=2), span("c", 3, trace_id=3)]
    assert failure("a\nb", spans).splitlines()[0] == (
        "the captured spans do not have the expected shape: 1 extra (2 expected traces, 3 captured)"
    )
    assert failure("a\nb\nc\nd", spans).splitlines()[0] == (
        "the captured spans do not have the expected shape: 1 missing (4 expected traces, 3 captured)"
    )
    assert failure("a", [span("a", 1), span("b", 2, 1)]).splitlines()[0] == (
        "the captured spans do not have the expected shape: 1 extra (1 expected trace, 1 captured)"
    )
    assert failure("a\n  x", []).splitlines()[0] == (
        "the captured spans do not have the expected shape: 1 missing (1 expected trace, 0 captured)"
    )


def test_no_spans_at_all() -> None:
    assert failure("a", []) == "\n".join(
        [
            "the captured spans do not have the expected shape: 1 missing (1 expected trace, 0 captured)",
            "",
            "              expected  actual",
            "  missing     a         —",
            "",
            "traces involved:",
            "  (no spans captured)",
        ]
    )


def test_few_traces_show_the_matched_ones_too_many_only_those_that_differ() -> None:
    few = [span("a", 1), span("z", 2, trace_id=2)]
    assert failure("a", few).endswith(
        "traces involved:\n"
        "trace 00000000000000000000000000000001 · 1 span\n"
        "└─ a · 0 µs\n"
        "trace 00000000000000000000000000000002 · 1 span\n"
        "└─ z · 0 µs  ← extra"
    )
    fifty = [span("a", index, trace_id=index) for index in range(1, 50)]
    shown = failure(["a"] * 49, [*fifty, span("z", 99, trace_id=99)])
    assert shown.count("└─ a · 0 µs") == 49
    many = [span("a", index, trace_id=index) for index in range(1, 51)]
    message = failure(["a"] * 50, [*many, span("z", 99, trace_id=99)])
    assert message.endswith(
        "traces involved:\ntrace 00000000000000000000000000000063 · 1 span\n└─ z · 0 µs  ← extra"
    )
    assert message.splitlines()[0] == (
        "the captured spans do not have the expected shape: 1 extra (50 expected traces, 51 captured)"
    )


def test_a_large_failure_shows_the_rows_that_differ() -> None:
    spans = [span("root", 1)]
    for group in range(300):
        group_id = 2 + group * 30
        spans.append(span("group", group_id, 1))
        spans += [span("leaf", group_id + 1 + leaf, group_id) for leaf in range(21 if group == 150 else 20)]
    message = failure(("root", [("group", ["leaf"] * 20)] * 300), spans)
    assert message.split("\n\ntraces involved:\n")[0] == "\n".join(
        [
            "the captured spans do not have the expected shape: 1 extra (1 expected trace, 1 captured)",
            "",
            "              expected  actual",
            "  matched     root      root",
            "                ...         (299 matched rows not shown)",
            "  matched       group     group",
            "                  ...         (20 matched rows not shown)",
            "  extra                     leaf",
        ]
    )


def test_a_small_matched_trace_takes_one_row() -> None:
    spans = [
        span("root", 1),
        *(span("leaf", 2 + index, 1) for index in range(20)),
        span("stray", 99, trace_id=2),
    ]
    message = failure(("root", ["leaf"] * 20), spans)
    assert message.splitlines()[2:5] == [
        "              expected  actual",
        "  matched     root      root  (and its 20 descendants, all matched)",
        "  extra                 stray  (a root: a trace that was not expected)",
    ]


# -- with a capture ------------------------------------------------------------------


def test_a_capture_gives_its_spans_its_threads_and_its_ambient_span() -> None:
    spans = [span("request", 1, 9), span("auth", 2, 1), span("db.query", 3, 2), span("render", 4, 1)]
    capture, state = capture_of(spans)
    state.ambient.add(9)
    assert_trace_tree("request\n  auth\n    db.query\n  render", capture)
    table, rendered = failure("request\n  auth\n  render\n    db.query", capture).split(
        "\n\ntraces involved:\n"
    )
    assert table == "\n".join(
        [
            "the captured spans do not have the expected shape: 1 misplaced (1 expected trace, 1 captured)",
            "",
            "              expected      actual",
            "  matched     request       request",
            "  matched       auth          auth",
            "  matched       render        render",
            "  misplaced       db.query      db.query  (found under 'auth'; expected under 'render')",
        ]
    )
    lines = rendered.splitlines()
    assert lines[0] == "trace 00000000000000000000000000000001 · 4 spans"
    # (how the renderer notes a root under the ambient span is the renderer's business)
    assert lines[1].startswith("└─ request · 0 µs · thread 'MainThread'")
    assert lines[2:] == [
        "   ├─ auth · 0 µs · thread 'MainThread'",
        "   │  └─ db.query · 0 µs · thread 'MainThread'  ← misplaced",
        "   └─ render · 0 µs · thread 'MainThread'  ← expected parent of 'db.query'",
    ]


def test_a_list_of_spans_is_matched_without_the_captures_ambient_span() -> None:
    spans = [span("request", 1, 9), span("other", 2, 9)]
    _, state = capture_of(spans)
    state.ambient.add(9)
    assert_trace_tree("request\nother", spans)


def test_a_missing_span_that_is_still_open() -> None:
    capture, state = capture_of([span("request", 1)])
    state.open[2] = span("stuck", 2, 1, still_open=True)  # type: ignore[assignment]
    assert failure("request\n  stuck", capture).splitlines()[:5] == [
        "the captured spans do not have the expected shape: 1 missing (1 expected trace, 1 captured)",
        "",
        "              expected  actual",
        "  matched     request   request",
        "  missing       stuck     —  (a span of that name is still open: pass timeout= to wait for it)",
    ]
    assert failure("request\n  stuck", capture, timeout=0.01).splitlines()[:5] == [
        "the captured spans do not have the expected shape: 1 missing (1 expected trace, 1 captured, "
        "after waiting 0.01 s)",
        "",
        "              expected  actual",
        "  matched     request   request",
        "  missing       stuck     —  (a span of that name is still open)",
    ]


def test_timeout_waits_for_spans_that_end_late() -> None:
    capture, state = capture_of([span("request", 1)])
    late = span("late.job", 2, 1)
    timer = threading.Timer(0.05, state.record_end, (2, late))
    timer.start()
    try:
        assert_trace_tree("request\n  late.job", capture, timeout=5)
    finally:
        timer.join()


def test_timeout_zero_does_not_wait() -> None:
    capture, _ = capture_of([span("request", 1)])
    assert failure("request\n  late", capture, timeout=0).splitlines()[0] == (
        "the captured spans do not have the expected shape: 1 missing (1 expected trace, 1 captured)"
    )


def test_timeout_does_not_match_before_enough_spans_ended() -> None:
    # two spans expected, one captured under the name of both: no match, whatever the matcher says
    capture, _ = capture_of([span("a", 1)])
    assert "after waiting 0.01 s" in failure("a\na", capture, timeout=0.01)


# -- arguments -----------------------------------------------------------------------


def test_spans_must_be_a_capture_or_an_iterable_of_spans() -> None:
    for bad, kind in ((3, "int"), ("a", "str"), (b"a", "bytes")):
        with pytest.raises(TypeError) as info:
            assert_trace_tree("a", bad)  # type: ignore[arg-type]
        assert str(info.value) == (
            f"assert_trace_tree() argument 'spans' must be a TraceCapture or an iterable of spans, not {kind}"
        )


def test_timeout_must_be_a_number_of_seconds_and_needs_a_capture() -> None:
    capture, _ = capture_of([span("a", 1)])
    for bad, kind in (("1", "str"), (True, "bool"), ([1], "list")):
        with pytest.raises(TypeError) as info:
            assert_trace_tree("a", capture, timeout=bad)  # type: ignore[arg-type]
        assert (
            str(info.value)
            == f"assert_trace_tree() argument 'timeout' must be a number of seconds, not {kind}"
        )
    for timeout in (1, 0, 0.5):
        with pytest.raises(TypeError) as info:
            assert_trace_tree("a", [span("a", 1)], timeout=timeout)
        assert str(info.value) == (
            "assert_trace_tree() argument 'timeout' needs a capture to wait on: leave 'spans' out or pass "
            "the TraceCapture, not a list of spans"
        )
    assert_trace_tree("a", capture, timeout=1)
    assert_trace_tree("a", capture, timeout=0.5)


def test_without_spans_a_capture_must_be_running() -> None:
    with pytest.raises(RuntimeError) as info:
        assert_trace_tree("a")
    assert str(info.value) == (
        "assert_trace_tree() compares the running test's spans, but no capture is running. Request the "
        "`tracechain` fixture (or mark the test with @pytest.mark.tracechain), or pass spans=."
    )


def test_without_spans_the_running_capture_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    _, state = capture_of([span("a", 1), span("b", 2, 1)], thread="worker")
    monkeypatch.setattr(_tree, "running_state", lambda: state)
    assert_trace_tree("a\n  b")
    assert failure("a", None).endswith(
        "└─ a · 0 µs · thread 'worker'\n   └─ b · 0 µs · thread 'worker'  ← extra"
    )


def test_a_list_of_spans_takes_threads_and_hints_from_the_running_capture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spans = [span("p", 1), span("c", 2, trace_id=2)]
    _, state = capture_of(spans[:1])
    state.origins[2] = intern_origin(Origin(os.getpid(), "users", 2))
    monkeypatch.setattr(_tree, "running_state", lambda: state)
    message = failure("p\n  c", spans)
    assert "hint: the thread 'users' did not receive the context of 'p'." in message
    assert message.endswith("└─ c · 0 µs · thread 'users'  ← misplaced")


def test_the_garbage_collector_is_left_as_it_was() -> None:
    assert gc.isenabled()
    assert_trace_tree("a", [span("a", 1)])
    failure("b", [span("a", 1)])
    assert gc.isenabled()
    gc.disable()
    try:
        assert_trace_tree("a", [span("a", 1)])
        failure("b", [span("a", 1)])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_expected_tree_is_checked_first() -> None:
    with pytest.raises(ValueError, match="the expected tree is empty"):
        assert_trace_tree("", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="argument 'spans'"):
        assert_trace_tree("a", 3, timeout="x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([1, 2], "holds int at index 0, not a span (ReadableSpan)"),
        ((span("a", 1), "a"), "holds str at index 1, not a span (ReadableSpan)"),
        (iter([span("a", 1), None]), "holds NoneType at index 1, not a span (ReadableSpan)"),
    ],
    ids=["ints", "a_name", "an_iterator"],
)
def test_spans_that_are_not_spans_are_a_type_error_naming_the_argument(spans: object, message: str) -> None:
    # An AttributeError ('int' object has no attribute 'context') from inside the matching before.
    with pytest.raises(TypeError) as info:
        assert_trace_tree("a", spans)  # type: ignore[arg-type]
    assert str(info.value) == "assert_trace_tree() argument 'spans' " + message


def test_an_expected_tree_that_contains_itself_is_a_value_error_and_the_collector_runs_again() -> None:
    # With the garbage collector paused for the parse, this looped for ever, growing, before.
    expected: list[object] = ["a"]
    expected.append(("b", expected))
    with pytest.raises(ValueError, match=r"^assert_trace_tree\(\) argument 'expected' contains itself: "):
        assert_trace_tree(expected, [span("a", 1)])
    assert gc.isenabled()


# -- properties ----------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "GET /x", "c.d", "[e] f"])


@st.composite
def forests(draw: st.DrawFn) -> list[ReadableSpan]:
    """Spans of a few traces: each span's parent is an earlier span of its trace, or none."""
    count = draw(st.integers(min_value=1, max_value=25))
    spans: list[ReadableSpan] = []
    trace_of: dict[int, int] = {}
    for span_id in range(1, count + 1):
        candidates = list(trace_of)
        parent = draw(st.sampled_from([None, *candidates])) if candidates else None
        trace_id = trace_of[parent] if parent is not None else span_id
        trace_of[span_id] = trace_id
        start = draw(st.integers(min_value=0, max_value=5))
        kind = draw(st.sampled_from(list(SpanKind)))
        spans.append(span(draw(NAMES), span_id, parent, trace_id=trace_id, kind=kind, start=start))
    return spans


def tree_text(spans: list[ReadableSpan], shuffle: st.DataObject) -> str:
    """The text tree of ``spans`` by their own structure, names and kinds; siblings in any order."""
    kids: dict[int | None, list[ReadableSpan]] = {}
    for each in spans:
        kids.setdefault(each.parent.span_id if each.parent else None, []).append(each)
    lines: list[str] = []

    def add(level: list[ReadableSpan], depth: int) -> None:
        for each in shuffle.draw(st.permutations(level)):
            lines.append("  " * depth + f"{each.name} [{each.kind.name.lower()}]")
            add(kids.get(each.context.span_id, []), depth + 1)

    add(kids[None], 0)
    return "\n".join(lines)


@settings(max_examples=40, deadline=None)
@given(forests(), st.data())
def test_the_tree_of_the_spans_themselves_passes(spans: list[ReadableSpan], data: st.DataObject) -> None:
    assert_trace_tree(tree_text(spans, data), spans)


@settings(max_examples=40, deadline=None)
@given(forests(), st.data())
def test_removing_or_renaming_a_span_fails(spans: list[ReadableSpan], data: st.DataObject) -> None:
    text = tree_text(spans, data)
    index = data.draw(st.integers(min_value=0, max_value=len(spans) - 1))
    removed = spans[:index] + spans[index + 1 :]
    with pytest.raises(TraceAssertionError, match="do not have the expected shape"):
        assert_trace_tree(text, removed)
    victim = spans[index]
    renamed = span(
        victim.name + "-renamed",
        victim.context.span_id,
        victim.parent,
        trace_id=victim.context.trace_id,
        kind=victim.kind,
        start=victim.start_time,
    )
    with pytest.raises(TraceAssertionError, match="do not have the expected shape") as info:
        assert_trace_tree(text, [renamed if each is victim else each for each in spans])
    assert f"{victim.name}-renamed" in str(info.value)


@pytest.mark.parametrize("timeout", [math.inf, math.nan, 1e300, -0.5])
def test_assert_trace_tree_rejects_timeouts_it_cannot_wait(timeout: float) -> None:
    with pytest.raises(
        ValueError,
        match=r"^assert_trace_tree\(\) argument 'timeout' must be a number of seconds from 0 to 9223372036, not ",
    ):
        assert_trace_tree("a", spans=TraceCapture(CaptureState("t"), _ispytest=True), timeout=timeout)


def test_received_spans_on_a_parent_cycle_are_matched_not_a_key_error() -> None:
    # a -> b -> c -> a by parent: the graph enters the cycle at 'a', the earliest.
    a, b, c = span("a", 1, 3, start=10), span("b", 2, 1, start=20), span("c", 3, 2, start=30)
    assert_trace_tree("a\n  b\n    c", spans=[a, b, c])
    with pytest.raises(TraceAssertionError, match="1 extra"):
        assert_trace_tree("a\n  b", spans=[a, b, c])
