from notifications import place_order_and_notify

from pytest_tracechain import TraceCapture, assert_child_of


def test_wait_for_background_spans(tracechain: TraceCapture) -> None:
    place_order_and_notify("book", ["ada@example.com", "grace@example.com"])

    mails = tracechain.wait_for("mail.send", count=2, timeout=5.0)
    for mail in mails:
        assert_child_of(mail, "POST /orders")
