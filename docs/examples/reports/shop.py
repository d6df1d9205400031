"""An order service: a request stores the order, publishes an event, mails a receipt.

``place_order`` hands the receipt to a thread without the request's context
(the lost-context mistake); ``place_order_fixed`` carries the context over.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

tracer = trace.get_tracer(__name__)
events: queue.Queue[dict[str, str]] = queue.Queue()


def store(order_id: str) -> None:
    with tracer.start_as_current_span("INSERT orders", kind=SpanKind.CLIENT) as span:
        span.set_attribute("db.system", "postgresql")
        span.set_attribute("order.id", order_id)
        # The database round trip (it stands for real work, not for synchronisation).
        time.sleep(0.004)


def publish(order_id: str) -> None:
    with tracer.start_as_current_span("orders publish", kind=SpanKind.PRODUCER) as span:
        span.set_attribute("messaging.destination.name", "orders")
        headers: dict[str, str] = {"order.id": order_id}
        propagate.inject(headers)
        events.put(headers)


def consume_one() -> None:
    headers = events.get(timeout=5)
    with tracer.start_as_current_span(
        "orders process", kind=SpanKind.CONSUMER, context=propagate.extract(headers)
    ) as span:
        span.set_attribute("messaging.destination.name", "orders")
        span.set_attribute("order.id", headers["order.id"])
        time.sleep(0.003)


def send_receipt(order_id: str) -> None:
    with tracer.start_as_current_span("send receipt") as span:
        span.set_attribute("order.id", order_id)
        time.sleep(0.006)
        span.set_status(StatusCode.ERROR, "SMTP server unavailable")


# --8<-- [start:place-order]
def place_order(order_id: str) -> str:
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        store(order_id)
        publish(order_id)
        consumer = threading.Thread(target=consume_one, name="orders-consumer")
        consumer.start()
        # The mistake: a new thread starts with an empty context.
        mailer = threading.Thread(target=send_receipt, args=(order_id,), name="mailer")
        mailer.start()
    consumer.join()
    mailer.join()
    return "201 Created"


# --8<-- [end:place-order]


def place_order_fixed(order_id: str) -> str:
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        store(order_id)
        publish(order_id)
        consumer = threading.Thread(target=consume_one, name="orders-consumer")
        consumer.start()
        # The fix: run the work in a copy of the current context.
        receipt = contextvars.copy_context()
        mailer = threading.Thread(
            target=receipt.run, args=(send_receipt, order_id), name="mailer"
        )
        mailer.start()
    consumer.join()
    mailer.join()
    return "201 Created"
