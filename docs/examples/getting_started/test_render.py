from orders import place_order

from pytest_tracechain import TraceCapture


def test_render(tracechain: TraceCapture) -> None:
    place_order("book")

    print(tracechain.render())  # shown with `pytest -s`, or when the test fails
    assert "inventory.reserve" in tracechain.render()
