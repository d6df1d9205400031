"""A small order service, the code under test on the getting-started page."""

from __future__ import annotations

import contextvars
import threading

from opentelemetry import trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer(__name__)


# --8<-- [start:orders]
def place_order(item: str) -> str:
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("inventory.reserve") as span:
            span.set_attribute("order.item", item)
        return "201 Created"


# --8<-- [end:orders]


# --8<-- [start:notify]
def place_order_and_notify(item: str, recipients: list[str]) -> str:
    """Place the order and mail the recipients from a background thread."""
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        in_this_trace = contextvars.copy_context()
        threading.Thread(target=in_this_trace.run, args=(notify, recipients)).start()
        return "202 Accepted"


def notify(recipients: list[str]) -> None:
    for recipient in recipients:
        with tracer.start_as_current_span("mail.send") as span:
            span.set_attribute("mail.to", recipient)


# --8<-- [end:notify]
