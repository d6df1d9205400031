from orders import place_order

from pytest_tracechain import TraceCapture


def test_clear(tracechain: TraceCapture) -> None:
    place_order("warm-up")
    tracechain.clear()

    place_order("book")
    assert tracechain.one("inventory.reserve").attributes == {"order.item": "book"}
