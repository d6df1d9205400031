from orders import place_order

from pytest_tracechain import TraceCapture, assert_trace_tree


def test_tree(tracechain: TraceCapture) -> None:
    place_order("book")

    assert tracechain.tree() == "POST /orders [server]\n  inventory.reserve"
    assert_trace_tree(tracechain.tree())  # the same text is an expected tree
