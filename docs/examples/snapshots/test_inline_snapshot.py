"""Trace snapshots with inline-snapshot: the expected tree is written into this file."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from checkout import (
    BackgroundJobs,
    Broker,
    Message,
    place_order,
    place_order_lost,
    process,
    process_uninstrumented,
    run_consumer,
    settle,
)
from inline_snapshot import snapshot
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain import TraceAssertionError, TraceCapture, assert_trace_tree


# --8<-- [start:fixtures]
@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def jobs() -> Iterator[BackgroundJobs]:
    background = BackgroundJobs()
    yield background
    background.join()


# --8<-- [end:fixtures]


# --8<-- [start:first]
def test_place_order(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    place_order(broker, jobs, ["book", "pen"])
    jobs.join()  # stock.reserve ends in the job's thread
    process(broker.receive())

    assert tracechain.tree(normalize=True) == snapshot("""\
POST /orders [server]
  orders publish [producer]
    orders process [consumer] {remote}
      PUT /invoices/<uuid> [client]
  stock.reserve
    UPDATE stock [client]
    UPDATE stock [client]\
""")


# --8<-- [end:first]


# --8<-- [start:attributes]
def test_place_order_with_attributes(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    place_order(broker, jobs, ["book"])
    jobs.join()
    process(broker.receive())

    tree = tracechain.tree(
        attributes=["http.route", "messaging.destination.name"], normalize=True
    )
    assert tree == snapshot("""\
POST /orders [server] {http.route="/orders"}
  orders publish [producer] {messaging.destination.name="orders"}
    orders process [consumer] {remote, messaging.destination.name="orders"}
      PUT /invoices/<uuid> [client]
  stock.reserve
    UPDATE stock [client]\
""")


# --8<-- [end:attributes]


# --8<-- [start:where]
def test_without_database_spans(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    place_order(broker, jobs, ["book", "pen", "ink"])
    jobs.join()
    process(broker.receive())

    # The ORM's spans come and go with its version: leave them out.
    def not_database(span: ReadableSpan) -> bool:
        return not span.name.startswith(("UPDATE ", "INSERT "))

    assert tracechain.tree(where=not_database, normalize=True) == snapshot("""\
POST /orders [server]
  orders publish [producer]
    orders process [consumer] {remote}
      PUT /invoices/<uuid> [client]
  stock.reserve\
""")


# --8<-- [end:where]


# --8<-- [start:links]
def test_settle_links_to_the_orders(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    place_order(broker, jobs, ["book"])
    place_order(broker, jobs, ["pen"])
    jobs.join()
    settle([broker.receive(), broker.receive()])

    assert tracechain.tree() == snapshot("""\
POST /orders [server]
  orders publish [producer]
  stock.reserve
    UPDATE stock [client]
POST /orders [server]
  orders publish [producer]
  stock.reserve
    UPDATE stock [client]
orders settle [consumer] {links=["orders publish", "orders publish"]}
  UPDATE orders [client]
  UPDATE orders [client]\
""")


# --8<-- [end:links]


# --8<-- [start:round-trip]
def test_a_snapshot_is_an_expected_tree(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    place_order(broker, jobs, ["book"])
    jobs.join()
    process(broker.receive())

    assert_trace_tree(tracechain.tree())  # passes for any capture
    # A snapshot pasted as the expected tree: a normalised name becomes a pattern.
    assert_trace_tree(r"""
        POST /orders [server] {http.route="/orders"}
          orders publish [producer]
            orders process [consumer] {remote}
              ~PUT /invoices/\S+ [client]
          stock.reserve
            UPDATE stock [client]
    """)


# --8<-- [end:round-trip]


# --8<-- [start:differs]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the expectation differs on purpose: another route, a link too many",
)
def test_details_differ(
    tracechain: TraceCapture, broker: Broker, jobs: BackgroundJobs
) -> None:
    place_order(broker, jobs, ["book"])
    jobs.join()
    settle([broker.receive()])

    assert_trace_tree("""
        POST /orders [server] {http.route="/api/orders"}
          orders publish [producer]
          stock.reserve
            UPDATE stock [client]
        orders settle [consumer] {links=["orders publish", "orders publish"]}
          UPDATE orders [client]
    """)


# --8<-- [end:differs]


# --8<-- [start:late]
@pytest.fixture
def consumer(broker: Broker) -> Iterator[threading.Thread]:
    """The order consumer, running in its own thread for the test."""
    thread = threading.Thread(target=run_consumer, args=(broker,), name="consumer")
    thread.start()
    yield thread
    broker.close()
    thread.join()


def test_late_spans(
    tracechain: TraceCapture,
    broker: Broker,
    jobs: BackgroundJobs,
    consumer: threading.Thread,
) -> None:
    place_order(broker, jobs, ["book"])

    # tree() shows finished spans: wait for the consumer's span to end first.
    tracechain.wait_for("orders process")
    jobs.join()
    assert tracechain.tree(normalize=True) == snapshot("""\
POST /orders [server]
  orders publish [producer]
    orders process [consumer] {remote}
      PUT /invoices/<uuid> [client]
  stock.reserve
    UPDATE stock [client]\
""")


# --8<-- [end:late]


# --8<-- [start:changed]
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="the code changed the trace: the snapshot no longer matches",
)
@pytest.mark.parametrize(
    ("place", "consume", "publish_kind"),
    [
        pytest.param(place_order_lost, process, SpanKind.PRODUCER, id="span-moves"),
        pytest.param(
            place_order, process_uninstrumented, SpanKind.PRODUCER, id="span-gone"
        ),
        pytest.param(place_order, process, SpanKind.INTERNAL, id="kind-changes"),
    ],
)
def test_a_changed_trace_fails(
    tracechain: TraceCapture,
    jobs: BackgroundJobs,
    place: Callable[[Broker, BackgroundJobs, list[str]], str],
    consume: Callable[[Message], None],
    publish_kind: SpanKind,
) -> None:
    broker = Broker(publish_kind)
    place(broker, jobs, ["book", "pen"])
    jobs.join()
    consume(broker.receive())

    assert tracechain.tree(normalize=True) == snapshot("""\
POST /orders [server]
  orders publish [producer]
    orders process [consumer] {remote}
      PUT /invoices/<uuid> [client]
  stock.reserve
    UPDATE stock [client]
    UPDATE stock [client]
""")


# --8<-- [end:changed]
