from orders import place_order

from pytest_tracechain import TraceCapture, assert_child_of


def test_reserving_stock_is_part_of_the_order(tracechain: TraceCapture) -> None:
    place_order("book")

    assert_child_of("inventory.reserve", "POST /orders")
