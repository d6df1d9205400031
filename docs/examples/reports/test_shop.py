"""The suite behind the reports page's HTML screenshot and OTLP files.

``test_place_order`` has a broken chain and fails in fail mode; it is marked
``xfail(strict=True)`` so the examples stay green. The reports page runs the
suite with ``--runxfail``, so it fails as it would in your suite.
"""

from __future__ import annotations

import pytest
from shop import place_order, place_order_fixed

from pytest_tracechain import TraceCapture, assert_same_trace

pytestmark = pytest.mark.tracechain(check="fail")


# --8<-- [start:tests]
@pytest.mark.xfail(reason="the receipt thread loses the request's context", strict=True)
def test_place_order(tracechain: TraceCapture) -> None:
    assert place_order("o-1") == "201 Created"


def test_place_order_fixed(tracechain: TraceCapture) -> None:
    assert place_order_fixed("o-2") == "201 Created"
    assert_same_trace("POST /orders", "orders process", "send receipt")


# --8<-- [end:tests]
