from orders import place_order

from pytest_tracechain import TraceCapture


def test_traces_and_roots(tracechain: TraceCapture) -> None:
    place_order("book")
    place_order("pen")

    roots = [root.name for trace in tracechain.traces() for root in trace.roots]
    assert roots == ["POST /orders", "POST /orders"]
