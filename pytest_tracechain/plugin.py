"""pytest hooks and fixtures of pytest-tracechain (the ``pytest11`` entry point).

Kept thin and free of OpenTelemetry imports: a session where no test uses the
plugin imports nothing and installs no tracer provider.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from pytest_tracechain._capture import TraceCapture

capture_key = pytest.StashKey["TraceCapture"]()

_FIXTURES = ("tracechain", "tracer")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tracechain(check=None, single_trace=False, lost_context=True): capture this test's "
        "OpenTelemetry spans (as if it used the tracechain fixture) and check its trace chains.",
    )


def _wants_capture(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return any(name in names for name in _FIXTURES) or item.get_closest_marker("tracechain") is not None


def _start_capture(item: pytest.Item) -> TraceCapture:
    from pytest_tracechain import _provider
    from pytest_tracechain._capture import TraceCapture
    from pytest_tracechain._errors import TraceChainUsageError

    try:
        router = _provider.router()
    except TraceChainUsageError as exc:
        pytest.fail(str(exc), pytrace=False)
    capture = TraceCapture(item.nodeid)
    item.stash[capture_key] = capture
    router.open(capture)
    return capture


def _mark_ambient(item: pytest.Item) -> None:
    """The span current when a test phase starts belongs to the test harness."""
    capture = item.stash.get(capture_key, None)
    if capture is None:
        return
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        capture._add_ambient(context.span_id)


def _phase_ended(item: pytest.Item) -> None:
    capture = item.stash.get(capture_key, None)
    if capture is not None:
        capture._phase_ended()


# trylast: run inside other plugins' wrappers, so the span they open for the
# phase (pytest-opentelemetry) is already current and counts as ambient.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    if _wants_capture(item):
        _start_capture(item)
        _mark_ambient(item)
    try:
        return (yield)
    finally:
        _phase_ended(item)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    _mark_ambient(item)
    try:
        return (yield)
    finally:
        _phase_ended(item)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    _mark_ambient(item)
    try:
        return (yield)
    finally:
        capture = item.stash.get(capture_key, None)
        if capture is not None:
            from pytest_tracechain import _provider

            router = _provider.existing_router()
            if router is not None:
                router.close(capture)
            del item.stash[capture_key]


@pytest.fixture
def tracechain(request: pytest.FixtureRequest) -> TraceCapture:
    """The spans started during this test (a ``TraceCapture``)."""
    capture: TraceCapture | None = request.node.stash.get(capture_key, None)
    if capture is None:  # requested through getfixturevalue(): start now
        capture = _start_capture(request.node)
    return capture


@pytest.fixture
def tracer(request: pytest.FixtureRequest) -> Tracer:
    """An OpenTelemetry tracer of the provider in use, for spans the test opens itself."""
    from pytest_tracechain import _provider

    if request.node.stash.get(capture_key, None) is None:
        _start_capture(request.node)
    return _provider.tracer()
