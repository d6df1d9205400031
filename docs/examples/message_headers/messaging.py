"""A producer that puts the trace context into message headers, and consumers that
read it.

Three carrier shapes are shown, one per message class: a ``dict[str, str]``,
Kafka-style ``list[tuple[str, bytes]]`` record headers, and an AMQP properties
object whose ``headers`` may be ``None``. The broker is a ``queue.Queue`` and
the consumer a thread, so the whole chain runs in one test.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Link, SpanKind

tracer = trace.get_tracer(__name__)

TOPIC = "user.events"


# --8<-- [start:dict]
@dataclass
class Message:
    """Headers as ``dict[str, str]``: OpenTelemetry's default getter and setter fit."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def inject(self) -> None:
        propagate.inject(self.headers)

    def extract(self) -> Context:
        return propagate.extract(self.headers)


# --8<-- [end:dict]


# --8<-- [start:kafka]
KafkaHeaderList = list[tuple[str, bytes]]


class KafkaHeaders(Getter[KafkaHeaderList], Setter[KafkaHeaderList]):
    """Kafka record headers: an ordered list of ``(str, bytes)`` pairs."""

    def get(self, carrier: KafkaHeaderList, key: str) -> list[str] | None:
        values = [value.decode() for name, value in carrier if name == key]
        return values or None

    def keys(self, carrier: KafkaHeaderList) -> list[str]:
        return [name for name, _ in carrier]

    def set(self, carrier: KafkaHeaderList, key: str, value: str) -> None:
        carrier.append((key, value.encode()))


kafka_headers = KafkaHeaders()


@dataclass
class KafkaRecord:
    body: bytes
    headers: KafkaHeaderList = field(default_factory=list)

    def inject(self) -> None:
        propagate.inject(self.headers, setter=kafka_headers)

    def extract(self) -> Context:
        return propagate.extract(self.headers, getter=kafka_headers)


# --8<-- [end:kafka]


# --8<-- [start:amqp]
@dataclass
class BasicProperties:
    """AMQP message properties; ``headers`` is ``None`` until something is set."""

    content_type: str = "application/json"
    delivery_mode: int = 2
    headers: dict[str, str] | None = None


class AmqpHeaders(Getter[BasicProperties], Setter[BasicProperties]):
    def get(self, carrier: BasicProperties, key: str) -> list[str] | None:
        value = (carrier.headers or {}).get(key)
        return None if value is None else [value]

    def keys(self, carrier: BasicProperties) -> list[str]:
        return list(carrier.headers or {})

    def set(self, carrier: BasicProperties, key: str, value: str) -> None:
        if carrier.headers is None:
            carrier.headers = {}
        carrier.headers[key] = value


amqp_headers = AmqpHeaders()


@dataclass
class AmqpMessage:
    body: bytes
    properties: BasicProperties = field(default_factory=BasicProperties)

    def inject(self) -> None:
        propagate.inject(self.properties, setter=amqp_headers)

    def extract(self) -> Context:
        return propagate.extract(self.properties, getter=amqp_headers)


# --8<-- [end:amqp]


# --8<-- [start:producer]
AnyMessage = Message | KafkaRecord | AmqpMessage
Inbox = queue.Queue[AnyMessage | None]  # None tells the consumer to stop


def hello(outbox: Inbox, name: str, message_type: type[AnyMessage] = Message) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("service.User.Create"):
            user = {"name": name}
        send_user_created(outbox, user, message_type)
        return "201 Created"


def send_user_created(
    outbox: Inbox, user: dict[str, str], message_type: type[AnyMessage]
) -> None:
    with tracer.start_as_current_span(
        f"{TOPIC} send",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.destination.name": TOPIC,
            "messaging.operation.type": "send",
        },
    ):
        message = message_type(json.dumps(user).encode())
        message.inject()  # while the PRODUCER span is current
        outbox.put(message)


# --8<-- [end:producer]


# --8<-- [start:early]
def send_user_created_early(
    outbox: Inbox, user: dict[str, str], message_type: type[AnyMessage]
) -> None:
    message = message_type(json.dumps(user).encode())
    message.inject()  # too early: the PRODUCER span is not current yet
    with tracer.start_as_current_span(f"{TOPIC} send", kind=SpanKind.PRODUCER):
        outbox.put(message)


# --8<-- [end:early]


# --8<-- [start:consumer]
def send_welcome_mail(message: AnyMessage) -> None:
    with tracer.start_as_current_span("mail.Welcome.Send") as span:
        span.set_attribute("user.name", json.loads(message.body)["name"])


class Consumer:
    """A poll loop on its own thread; leaving the ``with`` block drains the queue."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self._thread = threading.Thread(target=self._run, name="user-events-consumer")

    def __enter__(self) -> Consumer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.inbox.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (message := self.inbox.get()) is not None:
            self.process(message)

    def process(self, message: AnyMessage) -> None:
        with tracer.start_as_current_span(
            f"{TOPIC} process",
            context=message.extract(),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.destination.name": TOPIC,
                "messaging.operation.type": "process",
            },
        ):
            send_welcome_mail(message)


# --8<-- [end:consumer]


# --8<-- [start:headerless]
class HeaderlessConsumer(Consumer):
    def process(self, message: AnyMessage) -> None:
        # The headers are never read, so this span starts a trace of its own.
        with tracer.start_as_current_span(f"{TOPIC} process", kind=SpanKind.CONSUMER):
            send_welcome_mail(message)


# --8<-- [end:headerless]


# --8<-- [start:batch]
class BatchConsumer(Consumer):
    """Takes up to ``max_batch`` queued messages at a time, processed under one span.

    A batch has many parents, so its span starts a new trace and links to the
    producer span of every message instead.
    """

    max_batch = 10

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self.inbox.get()]
            while len(batch) < self.max_batch and not self.inbox.empty():
                batch.append(self.inbox.get())
            messages = [message for message in batch if message is not None]
            stopping = len(messages) < len(batch)
            if messages:
                self.process_batch(messages)

    def process_batch(self, messages: list[AnyMessage]) -> None:
        links = [
            Link(trace.get_current_span(m.extract()).get_span_context())
            for m in messages
        ]
        with tracer.start_as_current_span(
            f"{TOPIC} process",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={"messaging.batch.message_count": len(messages)},
        ):
            for message in messages:
                send_welcome_mail(message)


# --8<-- [end:batch]
