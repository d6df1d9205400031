"""A small order service: a request handler, work in a thread, a message, its consumer
and a batch job.

``place_order`` answers ``POST /orders``: it reserves the stock in a background
thread and publishes an ``orders`` message, which a consumer processes by
calling the invoice service. Each order gets a fresh UUID, and the invoice
client names its span after the URL, so that name differs in every run.
``settle`` is a batch job: a trace of its own, linked to the messages it
settles. ``place_order_lost``, ``process_uninstrumented`` and
``Broker(publish_kind=SpanKind.INTERNAL)`` are the broken variants the
failing examples use.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind

tracer = trace.get_tracer(__name__)


# --8<-- [start:service]
def reserve_stock(items: list[str]) -> None:
    with tracer.start_as_current_span("stock.reserve") as span:
        span.set_attribute("order.items", len(items))
        for _ in items:
            with tracer.start_as_current_span("UPDATE stock", kind=SpanKind.CLIENT):
                pass  # the database call


def create_invoice(order_id: str) -> None:
    # The HTTP client names its span after the URL: the order id is in the name.
    url = f"/invoices/{order_id}"
    with tracer.start_as_current_span(f"PUT {url}", kind=SpanKind.CLIENT):
        pass  # the call to the invoice service


# --8<-- [end:service]


# --8<-- [start:broker]
@dataclass
class Message:
    topic: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)


class Broker:
    """An in-memory message broker: the producer injects the context into headers."""

    def __init__(self, publish_kind: SpanKind = SpanKind.PRODUCER) -> None:
        self._queue: queue.Queue[Message | None] = queue.Queue()
        self._publish_kind = publish_kind

    def publish(self, topic: str, body: str) -> None:
        with tracer.start_as_current_span(
            f"{topic} publish",
            kind=self._publish_kind,
            attributes={"messaging.destination.name": topic},
        ):
            message = Message(topic, body)
            propagate.inject(message.headers)
            self._queue.put(message)

    def receive(self, timeout: float = 5.0) -> Message:
        message = self._queue.get(timeout=timeout)
        assert message is not None, "the broker is closed"
        return message

    def listen(self) -> Iterator[Message]:
        """The messages as they come, until the broker is closed."""
        while (message := self._queue.get(timeout=30.0)) is not None:
            yield message

    def close(self) -> None:
        self._queue.put(None)


# --8<-- [end:broker]


# --8<-- [start:jobs]
class BackgroundJobs:
    """The threads handlers start, kept so that shutdown (or a test) can join them."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def start(self, target: Callable[..., object], *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name)
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        while self._threads:
            self._threads.pop().join()


# --8<-- [end:jobs]


# --8<-- [start:place-order]
def place_order(broker: Broker, jobs: BackgroundJobs, items: list[str]) -> str:
    order_id = str(uuid.uuid4())
    with tracer.start_as_current_span(
        "POST /orders", kind=SpanKind.SERVER, attributes={"http.route": "/orders"}
    ):
        # The thread runs in a copy of the request's context: same trace.
        request_context = contextvars.copy_context()
        jobs.start(request_context.run, reserve_stock, items, name="reserve-stock")
        broker.publish("orders", order_id)
    return order_id


# --8<-- [end:place-order]


# --8<-- [start:consumer]
def process(message: Message) -> None:
    """Continue the producer's trace: the context comes out of the headers."""
    parent = propagate.extract(message.headers)
    with tracer.start_as_current_span(
        f"{message.topic} process",
        kind=SpanKind.CONSUMER,
        context=parent,
        attributes={"messaging.destination.name": message.topic},
    ):
        create_invoice(message.body)


def run_consumer(broker: Broker) -> None:
    """The consumer's loop, in a thread of its own, until the broker closes."""
    for message in broker.listen():
        process(message)


# --8<-- [end:consumer]


# --8<-- [start:settle]
def settle(messages: list[Message]) -> None:
    """The nightly batch: a new trace, linked to each message it settles."""
    links = [
        Link(trace.get_current_span(propagate.extract(m.headers)).get_span_context())
        for m in messages
    ]
    with tracer.start_as_current_span(
        "orders settle", kind=SpanKind.CONSUMER, context=context.Context(), links=links
    ):
        for _ in messages:
            with tracer.start_as_current_span("UPDATE orders", kind=SpanKind.CLIENT):
                pass  # the database call


# --8<-- [end:settle]


# --8<-- [start:broken]
def place_order_lost(broker: Broker, jobs: BackgroundJobs, items: list[str]) -> str:
    order_id = str(uuid.uuid4())
    with tracer.start_as_current_span(
        "POST /orders", kind=SpanKind.SERVER, attributes={"http.route": "/orders"}
    ):
        # A new thread starts with an empty context: stock.reserve opens a new trace.
        jobs.start(reserve_stock, items, name="reserve-stock")
        broker.publish("orders", order_id)
    return order_id


def process_uninstrumented(message: Message) -> None:
    """The HTTP client lost its instrumentation: the invoice call makes no span."""
    parent = propagate.extract(message.headers)
    with tracer.start_as_current_span(
        f"{message.topic} process",
        kind=SpanKind.CONSUMER,
        context=parent,
        attributes={"messaging.destination.name": message.topic},
    ):
        pass  # the call to the invoice service, untraced


# --8<-- [end:broken]
