"""Orders that mail their recipients from a background thread."""

import contextvars
import threading

from opentelemetry import trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer(__name__)


def place_order_and_notify(item: str, recipients: list[str]) -> str:
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        in_this_trace = contextvars.copy_context()
        threading.Thread(target=in_this_trace.run, args=(notify, recipients)).start()
        return "202 Accepted"


def notify(recipients: list[str]) -> None:
    for recipient in recipients:
        with tracer.start_as_current_span("mail.send") as span:
            span.set_attribute("mail.to", recipient)
