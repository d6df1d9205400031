"""What a TraceCapture offers, one method at a time (the getting-started page)."""

from __future__ import annotations

import os
import re

from opentelemetry.trace import SpanKind, Tracer
from orders import place_order, place_order_and_notify

from pytest_tracechain import TraceCapture, assert_child_of


# --8<-- [start:spans]
def test_spans_and_open_spans(tracechain: TraceCapture, tracer: Tracer) -> None:
    place_order("book")
    assert [span.name for span in tracechain.spans] == [
        "inventory.reserve",
        "POST /orders",
    ]

    long_poll = tracer.start_span("long poll")
    assert [span.name for span in tracechain.open_spans] == ["long poll"]
    long_poll.end()
    assert tracechain.open_spans == []


# --8<-- [end:spans]


# --8<-- [start:find]
def test_find_and_one(tracechain: TraceCapture) -> None:
    place_order("book")
    place_order("pen")

    assert len(tracechain.find("POST /orders")) == 2
    assert len(tracechain.find(re.compile(r"^inventory\."))) == 2
    assert tracechain.find(kind="server") == tracechain.find("POST /orders")

    pen = tracechain.one("inventory.reserve", attributes={"order.item": "pen"})
    assert pen.attributes == {"order.item": "pen"}


# --8<-- [end:find]


# --8<-- [start:wait_for]
def test_wait_for_background_spans(tracechain: TraceCapture) -> None:
    place_order_and_notify("book", ["ada@example.com", "grace@example.com"])

    mails = tracechain.wait_for("mail.send", count=2, timeout=5.0)
    for mail in mails:
        assert_child_of(mail, "POST /orders")


# --8<-- [end:wait_for]


# --8<-- [start:traces]
def test_traces_and_roots(tracechain: TraceCapture) -> None:
    place_order("book")
    place_order("pen")

    roots = [root.name for trace in tracechain.traces() for root in trace.roots]
    assert roots == ["POST /orders", "POST /orders"]


# --8<-- [end:traces]


# --8<-- [start:origin]
def test_origin(tracechain: TraceCapture) -> None:
    place_order_and_notify("book", ["ada@example.com"])

    [mail] = tracechain.wait_for("mail.send")
    origin = tracechain.origin(mail)
    assert origin.pid == os.getpid()
    assert origin.thread_name != "MainThread"
    assert origin.task_name is None  # not started in an asyncio task


# --8<-- [end:origin]


# --8<-- [start:render]
def test_render(tracechain: TraceCapture) -> None:
    place_order("book")

    print(tracechain.render())  # shown with `pytest -s`, or when the test fails
    assert "inventory.reserve" in tracechain.render()


# --8<-- [end:render]


# --8<-- [start:clear]
def test_clear(tracechain: TraceCapture) -> None:
    place_order("warm-up")
    tracechain.clear()

    place_order("book")
    assert tracechain.one("inventory.reserve").attributes == {"order.item": "book"}


# --8<-- [end:clear]


# --8<-- [start:arguments]
def test_three_ways_to_name_a_span(tracechain: TraceCapture) -> None:
    place_order("book")
    order = tracechain.one("POST /orders")
    reserve = tracechain.one("inventory.reserve")

    assert_child_of(reserve, order)  # captured spans
    assert_child_of(reserve.context, order.context)  # SpanContexts
    assert_child_of("inventory.reserve", "POST /orders")  # names, resolved with one()


# --8<-- [end:arguments]


# --8<-- [start:tracer]
def test_a_span_of_the_test_itself(tracechain: TraceCapture, tracer: Tracer) -> None:
    with tracer.start_as_current_span("checkout flow", kind=SpanKind.INTERNAL):
        place_order("book")

    assert_child_of("POST /orders", "checkout flow")


# --8<-- [end:tracer]
