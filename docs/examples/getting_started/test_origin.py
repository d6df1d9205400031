import os

from notifications import place_order_and_notify

from pytest_tracechain import TraceCapture


def test_origin(tracechain: TraceCapture) -> None:
    place_order_and_notify("book", ["ada@example.com"])

    [mail] = tracechain.wait_for("mail.send")
    origin = tracechain.origin(mail)
    assert origin.pid == os.getpid()
    assert origin.thread_name != "MainThread"
    assert origin.task_name is None  # not started in an asyncio task
