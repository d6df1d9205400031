"""Alongside plugins that trace the test run itself: roots are relative to the test."""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest

pytest.importorskip("pytest_opentelemetry")


def test_roots_are_relative_to_the_test(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_tracechain import assert_child_of, assert_root, assert_same_trace

        tracer = trace.get_tracer("app")

        @pytest.fixture
        def server():
            with tracer.start_as_current_span("server start"):
                pass
            yield
            tracer.start_span("server stop").end()

        def test_it(server, tracechain):
            harness = trace.get_current_span()
            assert harness.get_span_context().is_valid  # pytest-opentelemetry's span for this test
            with tracer.start_as_current_span("GET /hello") as request:
                tracer.start_span("db").end()
            assert request.parent.span_id == harness.get_span_context().span_id
            assert_root("GET /hello")
            assert_root("server start")
            assert_child_of("db", "GET /hello")
            assert [s.name for s in tracechain.spans] == ["server start", "db", "GET /hello"]
            assert [s.name for t in tracechain.traces() for s in t.roots] == ["server start", "GET /hello"]
            print()
            print(tracechain.render())

        def test_traces_are_relative_to_the_test(tracechain):
            with tracer.start_as_current_span("first request"):
                tracer.start_span("first db").end()
            with tracer.start_as_current_span("second request"):
                pass
            first, second = tracechain.traces()
            assert first.trace_id == second.trace_id  # both under the harness's span...
            assert [s.name for s in first.spans] == ["first request", "first db"]
            assert [s.name for s in second.roots] == ["second request"]  # ...yet two traces
            assert_same_trace("first request", "first db")
            assert_same_trace("first request", "second request")

        def test_failure_shows_only_the_tests_spans(tracechain):
            tracer.start_span("request").end()
            tracer.start_span("job").end()
            assert_child_of("job", "request")
        """
    )
    result = run_pytest("-s", "--tb=short", harness=True)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "trace * · 1 span",
            "└─ server start · * · thread 'MainThread'",
            "trace * · 2 spans",
            "└─ GET /hello · * · thread 'MainThread'",
            "   └─ db · * · thread 'MainThread'",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: expected 2 spans in one trace, found them in 2 traces:",
            "E     trace * (root *): 'first request'",
            "E     trace * (root *): 'second request'",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 'job' is not a child of 'request'",
            "E     expected parent: 'request' (span *)",
            "E     found: no parent but the test's ambient span (it is a root)",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*::call*")
    result.stdout.no_fnmatch_line("*fixture teardown*")
    result.stdout.no_fnmatch_line("*setup ·*")


def test_chain_checks_under_the_harness(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    """The harness's own with-blocks restore the context after each phase; a leak is found anyway."""
    pytester.makepyfile(
        """
        from opentelemetry import context, trace
        from pytest_tracechain import assert_chain_intact

        tracer = trace.get_tracer("app")

        def test_clean(tracechain):
            with tracer.start_as_current_span("GET /hello"):
                tracer.start_span("db").end()
            assert_chain_intact()
            assert_chain_intact(tracechain.spans)  # a plain list: roots under the harness still count

        def test_never_detached(tracechain):
            span = tracer.start_span("handler")
            context.attach(trace.set_span_in_context(span))
            span.end()
        """
    )
    result = run_pytest("--tracechain-check=fail", harness=True)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_never_detached _*",
            "1 broken trace chain:",
            "[[]scope leak] a context (current span 'handler') was attached during the test and never detached,"
            " in thread 'MainThread' (attached at test_chain_checks_under_the_harness.py:14)",
        ],
        consecutive=True,
    )
