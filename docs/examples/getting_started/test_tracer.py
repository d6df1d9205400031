from opentelemetry.trace import SpanKind, Tracer
from orders import place_order

from pytest_tracechain import assert_child_of


def test_a_span_of_the_test_itself(tracer: Tracer) -> None:
    with tracer.start_as_current_span("checkout flow", kind=SpanKind.INTERNAL):
        place_order("book")

    assert_child_of("POST /orders", "checkout flow")
