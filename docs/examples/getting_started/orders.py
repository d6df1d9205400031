"""An order service: a SERVER span per request, a child span for the stock."""

from opentelemetry import trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer(__name__)


def place_order(item: str) -> str:
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("inventory.reserve") as span:
            span.set_attribute("order.item", item)
        return "201 Created"
