"""A sign-up service with two real breakages, for the demo (docs/examples/demo)."""

from __future__ import annotations

import queue
import threading

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer(__name__)
outbox: queue.Queue[dict[str, str]] = queue.Queue()


def create_user(name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        insert_user(name)


def insert_user(name: str) -> None:
    with tracer.start_as_current_span("db.insert_user") as span:
        span.set_attribute("user.name", name)


def sign_up(name: str) -> None:
    """Creates the user, then sends the welcome mail from a thread."""
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        insert_user(name)
        mailer = threading.Thread(target=send_welcome, args=(name,))
        mailer.start()  # the thread starts with an empty context
        mailer.join()


def send_welcome(name: str) -> None:
    with tracer.start_as_current_span("mail.welcome") as span:
        span.set_attribute("mail.to", name)


def publish_signup(name: str) -> None:
    with tracer.start_as_current_span("users publish", kind=SpanKind.PRODUCER):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        outbox.put({"name": name, **headers})


def consume_signup() -> None:
    message = outbox.get()
    # Broken: the consumer ignores the headers and starts a new trace.
    with tracer.start_as_current_span("users process", kind=SpanKind.CONSUMER):
        send_welcome(message["name"])
