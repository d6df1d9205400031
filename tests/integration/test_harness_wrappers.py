"""A harness shaped like pytest-otel: a session span, and a span per test call
opened by a hook wrapper, from a tracer named after the session."""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest


def test_per_test_span_of_a_hook_wrapper_is_ambient(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makeconftest(
        """
        import pytest
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        harness = trace.get_tracer("My Test Suite")
        session_span = None

        def pytest_sessionstart(session):
            global session_span
            session_span = harness.start_span("Test Suite")

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(item):
            with harness.start_as_current_span(
                f"Running {item.name}", context=trace.set_span_in_context(session_span)
            ):
                yield

        @pytest.fixture
        def user_session():
            with trace.get_tracer("app").start_as_current_span("user session"):
                yield
        """
    )
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from pytest_tracechain import assert_child_of, assert_root

        tracer = trace.get_tracer("app")

        def test_roots(tracechain):
            assert trace.get_current_span().name == "Running test_roots"
            with tracer.start_as_current_span("GET /hello"):
                pass
            assert_root("GET /hello")
            assert [s.name for s in tracechain.spans] == ["GET /hello"]

        def test_fixture_span_stays_the_tests(user_session, tracechain):
            assert trace.get_current_span().name == "Running test_fixture_span_stays_the_tests"
            with tracer.start_as_current_span("GET /hello"):
                pass
            assert_root("GET /hello")
            assert [s.name for s in tracechain.open_spans] == ["user session"]
        """
    )
    run_pytest().assert_outcomes(passed=2)
