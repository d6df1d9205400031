"""The consumer's span must continue the trace that the producer put in the headers."""

from __future__ import annotations

import queue

import pytest
from messaging import (
    AmqpMessage,
    AnyMessage,
    BatchConsumer,
    Consumer,
    HeaderlessConsumer,
    Inbox,
    KafkaRecord,
    Message,
    hello,
    send_user_created_early,
    tracer,
)
from opentelemetry.trace import SpanKind

from pytest_tracechain import (
    TraceAssertionError,
    TraceCapture,
    assert_carrier_has_context,
    assert_child_of,
    assert_linked_to,
    assert_remote_parent,
    assert_root,
    assert_span_kind,
)


# --8<-- [start:roundtrip]
@pytest.mark.parametrize("message_type", [Message, KafkaRecord, AmqpMessage])
def test_consumer_continues_the_producer_trace(
    tracechain: TraceCapture, message_type: type[AnyMessage]
) -> None:
    inbox: Inbox = queue.Queue()
    with Consumer(inbox):
        hello(inbox, "ada", message_type)

    producer = tracechain.one("user.events send")
    consumer = tracechain.one("user.events process")
    assert_span_kind(producer, "producer")
    assert_span_kind(consumer, SpanKind.CONSUMER)
    assert_child_of(consumer, producer)
    assert_remote_parent(consumer)


# --8<-- [end:roundtrip]


# --8<-- [start:carrier]
def test_the_headers_carry_the_producer_span(tracechain: TraceCapture) -> None:
    inbox: Inbox = queue.Queue()
    hello(inbox, "ada")

    message = inbox.get_nowait()
    sent = tracechain.one("user.events send").context
    assert isinstance(message, Message)
    traceparent = f"00-{sent.trace_id:032x}-{sent.span_id:016x}-{sent.trace_flags:02x}"
    assert message.headers["traceparent"] == traceparent


# --8<-- [end:carrier]


# --8<-- [start:carriers]
def headers_of(message: AnyMessage) -> object:
    if isinstance(message, AmqpMessage):
        return message.properties.headers
    return message.headers  # dict[str, str], or Kafka's list[tuple[str, bytes]]


@pytest.mark.parametrize("message_type", [Message, KafkaRecord, AmqpMessage])
def test_every_carrier_holds_the_producer_span(
    tracechain: TraceCapture, message_type: type[AnyMessage]
) -> None:
    inbox: Inbox = queue.Queue()
    hello(inbox, "ada", message_type)

    assert_carrier_has_context(headers_of(inbox.get_nowait()), "user.events send")


# --8<-- [end:carriers]


# --8<-- [start:early]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the producer injects before its span starts: the headers name the request",
)
def test_headers_injected_before_the_producer_span(tracechain: TraceCapture) -> None:
    inbox: Inbox = queue.Queue()
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        send_user_created_early(inbox, {"name": "ada"}, Message)

    message = inbox.get_nowait()
    assert_carrier_has_context(headers_of(message), "user.events send")


# --8<-- [end:early]


# --8<-- [start:headerless]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the consumer ignores the headers, so its span starts a new trace",
)
def test_consumer_that_ignores_the_headers(tracechain: TraceCapture) -> None:
    inbox: Inbox = queue.Queue()
    with HeaderlessConsumer(inbox):
        hello(inbox, "ada")

    assert_child_of("user.events process", "user.events send")


# --8<-- [end:headerless]


# --8<-- [start:batch]
def test_batch_consumer_links_every_message(tracechain: TraceCapture) -> None:
    inbox: Inbox = queue.Queue()
    for name in ("ada", "grace", "edsger"):
        hello(inbox, name)
    with BatchConsumer(inbox):
        pass  # the consumer takes all three messages as one batch, then stops

    batch = tracechain.one("user.events process")
    assert_root(batch)
    producers = tracechain.find("user.events send")
    assert len(producers) == 3
    for producer in producers:
        assert_linked_to(batch, producer)


# --8<-- [end:batch]
