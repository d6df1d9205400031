import re

from orders import place_order

from pytest_tracechain import TraceCapture


def test_find_and_one(tracechain: TraceCapture) -> None:
    place_order("book")
    place_order("pen")

    assert len(tracechain.find("POST /orders")) == 2
    assert len(tracechain.find(re.compile(r"^inventory\."))) == 2
    assert tracechain.find(kind="server") == tracechain.find("POST /orders")

    pen = tracechain.one("inventory.reserve", attributes={"order.item": "pen"})
    assert pen.attributes == {"order.item": "pen"}
