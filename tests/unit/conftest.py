"""Fixtures of the in-process tests: a router on a provider of its own (never the global one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from pytest_tracechain._router import Router


@pytest.fixture
def router() -> Router:
    return Router()


@pytest.fixture
def tracer(router: Router) -> Iterator[Tracer]:
    provider = TracerProvider()  # not the global one: nothing leaks into other tests
    provider.add_span_processor(router)
    yield provider.get_tracer("unit")
    provider.shutdown()
