"""Trace snapshots with syrupy: the trees are in __snapshots__/test_syrupy.ambr."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from checkout import BackgroundJobs, Broker, place_order, process, settle
from syrupy.assertion import SnapshotAssertion

from pytest_tracechain import TraceCapture


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def jobs() -> Iterator[BackgroundJobs]:
    background = BackgroundJobs()
    yield background
    background.join()


# --8<-- [start:first]
def test_place_order(
    tracechain: TraceCapture,
    broker: Broker,
    jobs: BackgroundJobs,
    snapshot: SnapshotAssertion,
) -> None:
    place_order(broker, jobs, ["book", "pen"])
    jobs.join()
    process(broker.receive())

    assert tracechain.tree(normalize=True) == snapshot


# --8<-- [end:first]


# --8<-- [start:two]
def test_place_order_and_settle(
    tracechain: TraceCapture,
    broker: Broker,
    jobs: BackgroundJobs,
    snapshot: SnapshotAssertion,
) -> None:
    place_order(broker, jobs, ["book"])
    jobs.join()
    message = broker.receive()
    process(message)
    order = tracechain.one("POST /orders")
    # One snapshot a trace: the request's, then the batch's.
    assert tracechain.tree(trace=order, normalize=True) == snapshot(name="request")

    settle([message])
    batch = tracechain.one("orders settle")
    assert tracechain.tree(trace=batch) == snapshot(name="batch")


# --8<-- [end:two]
