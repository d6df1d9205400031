"""A small order service, the code under test on the getting-started page."""

from __future__ import annotations

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


def place_order_and_notify(item: str, recipients: list[str]) -> threading.Thread:
    """Place the order, then mail every recipient from a background thread."""

    def notify() -> None:
        for recipient in recipients:
            with tracer.start_as_current_span("mail.send") as span:
                span.set_attribute("mail.to", recipient)

    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        mailer = threading.Thread(target=notify, name="mailer")
        mailer.start()
    return mailer
