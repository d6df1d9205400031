"""A small user service: a request handler, background work in a thread, an event and
its consumer.

``signup`` answers ``POST /users``: it creates the user in a background thread
and publishes a ``user.created`` event, which a consumer processes by sending
a welcome mail. ``signup_lost`` starts the thread without the request's
context, and ``process_linked`` links to the producer instead of continuing
its trace: the two broken variants the tests show.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind

tracer = trace.get_tracer(__name__)

ACCEPTED = "202 Accepted"


# --8<-- [start:service]
def create_user(name: str) -> None:
    with tracer.start_as_current_span("users.create") as span:
        span.set_attribute("user.name", name)
        with tracer.start_as_current_span("INSERT users", kind=SpanKind.CLIENT):
            pass  # the database call


def send_welcome_mail(name: str) -> None:
    with tracer.start_as_current_span("mail.send", kind=SpanKind.CLIENT) as span:
        span.set_attribute("mail.to", name)


# --8<-- [end:service]


# --8<-- [start:broker]
@dataclass
class Message:
    topic: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)


class Broker:
    """An in-memory message broker: the producer injects the context into headers."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Message | None] = queue.Queue()

    def publish(self, topic: str, body: str) -> None:
        with tracer.start_as_current_span(f"{topic} publish", kind=SpanKind.PRODUCER):
            message = Message(topic, body)
            propagate.inject(message.headers)
            self._queue.put(message)

    def receive(self, timeout: float = 5.0) -> Message | None:
        """The next message, or None once the broker is closed."""
        return self._queue.get(timeout=timeout)

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


# --8<-- [start:signup]
def signup(broker: Broker, jobs: BackgroundJobs, name: str) -> str:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # The thread runs in a copy of the request's context: same trace.
        request_context = contextvars.copy_context()
        jobs.start(request_context.run, create_user, name, name="create-user")
        broker.publish("user.created", name)
        return ACCEPTED


# --8<-- [end:signup]
# --8<-- [start:signup-lost]
def signup_lost(broker: Broker, jobs: BackgroundJobs, name: str) -> str:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # A new thread starts with an empty context: create_user opens a new trace.
        jobs.start(create_user, name, name="create-user")
        broker.publish("user.created", name)
        return ACCEPTED


# --8<-- [end:signup-lost]


# --8<-- [start:import]
def import_users(broker: Broker, jobs: BackgroundJobs, names: list[str]) -> str:
    """``POST /users/import``: one background job creates all; an event per user."""

    def run_import() -> None:
        with tracer.start_as_current_span("users.import"):
            for name in names:
                create_user(name)

    with tracer.start_as_current_span("POST /users/import", kind=SpanKind.SERVER):
        jobs.start(contextvars.copy_context().run, run_import, name="import-users")
        for name in names:
            broker.publish("user.created", name)
        return ACCEPTED


# --8<-- [end:import]
# --8<-- [start:import-lost]
def import_users_lost(broker: Broker, jobs: BackgroundJobs, names: list[str]) -> str:
    def run_import() -> None:
        with tracer.start_as_current_span("users.import"):
            for name in names:
                create_user(name)

    with tracer.start_as_current_span("POST /users/import", kind=SpanKind.SERVER):
        # No context: the import starts a new trace.
        jobs.start(run_import, name="import-users")
        for name in names:
            broker.publish("user.created", name)
        return ACCEPTED


# --8<-- [end:import-lost]


# --8<-- [start:purge]
def purge_unverified() -> None:
    """A scheduled job: it starts a trace of its own."""
    with tracer.start_as_current_span("users.purge_unverified"):
        delete_unverified_users()


def delete_unverified_users() -> None:
    with tracer.start_as_current_span("DELETE users", kind=SpanKind.CLIENT):
        pass  # the database call


# --8<-- [end:purge]


# --8<-- [start:consumer]
def process(message: Message) -> None:
    """Continue the producer's trace: the context comes out of the headers."""
    parent = propagate.extract(message.headers)
    with tracer.start_as_current_span(
        f"{message.topic} process", kind=SpanKind.CONSUMER, context=parent
    ):
        send_welcome_mail(message.body)


def run_consumer(broker: Broker, handle: Callable[[Message], None] = process) -> None:
    """The consumer's loop, in a thread of its own, until the broker closes."""
    while (message := broker.receive(timeout=30.0)) is not None:
        handle(message)


# --8<-- [end:consumer]
# --8<-- [start:consumer-linked]
def process_linked(message: Message) -> None:
    """A new trace linked to the producer: right for a batch, wrong for one message."""
    producer = trace.get_current_span(
        propagate.extract(message.headers)
    ).get_span_context()
    with tracer.start_as_current_span(
        f"{message.topic} process",
        kind=SpanKind.CONSUMER,
        context=context.Context(),
        links=[Link(producer)],
    ):
        send_welcome_mail(message.body)


# --8<-- [end:consumer-linked]
