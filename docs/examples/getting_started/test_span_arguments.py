from orders import place_order

from pytest_tracechain import TraceCapture, assert_child_of


def test_three_ways_to_name_a_span(tracechain: TraceCapture) -> None:
    place_order("book")
    order = tracechain.one("POST /orders")
    reserve = tracechain.one("inventory.reserve")

    assert_child_of(reserve, order)  # captured spans
    assert_child_of(reserve.context, order.context)  # SpanContexts
    assert_child_of("inventory.reserve", "POST /orders")  # names, resolved with one()
