from opentelemetry.trace import Tracer
from orders import place_order

from pytest_tracechain import TraceCapture


def test_spans_and_open_spans(tracechain: TraceCapture, tracer: Tracer) -> None:
    place_order("book")
    assert [span.name for span in tracechain.spans] == [
        "inventory.reserve",
        "POST /orders",
    ]

    long_poll = tracer.start_span("long poll")
    assert [span.name for span in tracechain.open_spans] == ["long poll"]
    long_poll.end()
    assert tracechain.open_spans == []
