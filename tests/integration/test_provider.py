"""Provider handling: install at first use, attach to the app's SDK provider, refuse others."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import RunPytest
from tests.unit.test_architecture import DEFERRED


def test_plugin_import_does_not_import_the_sdk() -> None:
    code = (
        "import sys, pytest_tracechain.plugin, pytest_tracechain\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'google.protobuf')))\n"
        "assert not heavy, heavy\n"
        "assert pytest_tracechain.TraceAssertionError.__module__ == 'pytest_tracechain'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unused_plugin_installs_nothing(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_plain():
            assert not any(m.startswith("opentelemetry.sdk") for m in sys.modules)

        def test_still_nothing():
            from opentelemetry import trace
            assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        """
    )
    run_pytest().assert_outcomes(passed=2)


def test_a_failed_comparison_in_a_session_that_never_uses_the_plugin_imports_nothing(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    # The whole-line diff of tree() texts is a pytest_assertrepr_compare hook: it must not load the
    # snapshot modules (and OpenTelemetry with them) for other assertions.
    pytester.makepyfile(
        """
        import sys

        def test_strings():
            assert "a\\nb" == "a\\nc"

        def test_after():
            assert not any(m.startswith("opentelemetry") for m in sys.modules)
        """
    )
    result = run_pytest()
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.no_fnmatch_line("*captured trace tree*")


def test_a_passing_test_with_intact_chains_imports_none_of_the_deferred_modules(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    # The chain rules, the assertions, the trees and the outputs are imported at their first use:
    # a suite whose chains are intact never pays for them (tests/unit/test_architecture.py lists them).
    pytester.makeconftest(
        """
        import json, sys

        def pytest_unconfigure():
            loaded = [m.split(".")[1] for m in sys.modules if m.startswith("pytest_tracechain.")]
            with open("loaded.json", "w") as out:
                json.dump(sorted(loaded), out)
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        tracer = trace.get_tracer(__name__)

        @pytest.fixture
        def connection():
            span = tracer.start_span("connection")
            yield
            span.end()  # ends in teardown: checked again then

        def test_spans(tracechain, connection):
            with tracer.start_as_current_span("root"):
                with tracer.start_as_current_span("child"):
                    pass
            assert len(tracechain.spans) == 2

        def test_own_tracer(tracer):
            tracer.start_span("alone").end()
        """
    )
    run_pytest("-W", "error::pytest_tracechain.TraceChainWarning").assert_outcomes(passed=2)
    loaded = set(json.loads((pytester.path / "loaded.json").read_text()))
    assert {"_session", "_intact"} <= loaded  # the tests were captured and checked
    assert sorted(loaded & DEFERRED) == []


def test_installs_one_sdk_provider_at_first_use(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        # A proxy tracer taken at import time, before any provider exists.
        tracer = trace.get_tracer("app")
        providers = []

        def test_before_first_use():
            assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)

        def test_first(tracechain):
            providers.append(trace.get_tracer_provider())
            assert isinstance(providers[0], TracerProvider)
            tracer.start_span("via proxy tracer").end()
            assert [s.name for s in tracechain.spans] == ["via proxy tracer"]

        def test_second(tracechain, tracer):
            assert trace.get_tracer_provider() is providers[0]
            with tracer.start_as_current_span("via tracer fixture"):
                pass
            assert [s.name for s in tracechain.spans] == ["via tracer fixture"]
        """
    )
    run_pytest("-p", "no:randomly").assert_outcomes(passed=3)


def test_a_proxy_tracer_taken_at_import_is_bound_to_the_real_tracer(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")  # a ProxyTracer: no provider yet
        start_span = tracer.start_span  # the proxy's own method, held before its first call

        @tracer.start_as_current_span("decorated at import")
        def handler():
            with tracer.start_as_current_span("inside"):
                pass

        def test_spans_of_the_proxy_are_captured(tracechain):
            with tracer.start_as_current_span("first"):
                handler()
            # The first call bound the proxy: later spans skip its delegation.
            assert isinstance(tracer, trace.ProxyTracer)
            assert vars(tracer)["start_as_current_span"] == tracer._tracer.start_as_current_span
            tracer.start_span("second").end()
            start_span("held").end()
            assert [s.name for s in tracechain.spans] == [
                "inside", "decorated at import", "first", "second", "held"
            ]
            assert len({s.context.trace_id for s in tracechain.spans[:3]}) == 1

        other = trace.get_tracer("other")  # a ProxyTracer no test has used yet

        def test_a_method_looked_up_in_a_test_is_the_real_tracer_s(tracechain):
            span = other.start_as_current_span  # held before the proxy's first call
            assert span.__self__ is other._tracer  # no wrapper of the proxy's left on the way
            with span("held in the test"):
                pass
            assert [s.name for s in tracechain.spans] == ["held in the test"]
        """
    )
    run_pytest().assert_outcomes(passed=2)


def test_attaches_to_the_applications_sdk_provider(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makeconftest(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        app_exporter = InMemorySpanExporter()
        app_provider = TracerProvider()
        app_provider.add_span_processor(SimpleSpanProcessor(app_exporter))
        trace.set_tracer_provider(app_provider)
        """
    )
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from conftest import app_exporter, app_provider

        def test_it(tracechain):
            assert trace.get_tracer_provider() is app_provider
            trace.get_tracer("app").start_span("work").end()
            assert [s.name for s in tracechain.spans] == ["work"]
            # The application's own pipeline still gets its spans.
            assert [s.name for s in app_exporter.get_finished_spans()] == ["work"]
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_provider_set_later_by_the_code_under_test(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        app="""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        def start_app():
            provider = TracerProvider()
            trace.set_tracer_provider(provider)  # refused by OpenTelemetry: one was set already
            return provider
        """
    )
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from app import start_app

        def test_it(tracechain, caplog):
            provider = start_app()
            assert "Overriding of current TracerProvider is not allowed" in caplog.text
            provider.get_tracer("app").start_span("from its own provider").end()
            trace.get_tracer("app").start_span("from the global provider").end()
            assert [s.name for s in tracechain.spans] == ["from its own provider", "from the global provider"]
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_non_sdk_provider_is_a_clear_error(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makeconftest(
        """
        from opentelemetry import trace

        trace.set_tracer_provider(trace.NoOpTracerProvider())
        """
    )
    pytester.makepyfile(
        """
        def test_it(tracechain):
            pass

        def test_unaffected():
            pass
        """
    )
    result = run_pytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*pytest-tracechain needs an OpenTelemetry SDK TracerProvider"
            " (opentelemetry.sdk.trace.TracerProvider) as the global tracer provider, but the global provider"
            " is opentelemetry.trace.NoOpTracerProvider. Set an SDK TracerProvider before the first test that"
            " uses tracechain, or leave the global provider unset and the plugin installs one.",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    # Said once: not chained to itself by "During handling of the above exception".
    said = [
        line
        for line in result.stdout.lines
        # (the short summary line repeats it, cut to the terminal's width)
        if "pytest-tracechain needs an OpenTelemetry SDK TracerProvider" in line
        and not line.startswith("ERROR ")
    ]
    assert len(said) == 1, said
    result.stdout.no_fnmatch_line("*During handling of the above exception*")


def test_forked_child_does_not_record_into_the_parent(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        import os, sys
        import pytest
        from opentelemetry import trace

        @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
        def test_it(tracechain):
            tracer = trace.get_tracer("app")
            with tracer.start_as_current_span("parent"):
                pid = os.fork()
                if pid == 0:
                    tracer.start_span("in child").end()
                    os._exit(0 if tracechain.spans == [] else 1)
                _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert [s.name for s in tracechain.spans] == ["parent"]
        """
    )
    run_pytest("-W", "ignore::DeprecationWarning").assert_outcomes(passed=1)


def test_why_nothing_is_captured_with_the_sdk_disabled(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_finds_nothing(tracechain):
            with tracer.start_as_current_span("request"):
                pass
            tracechain.one("request")

        def test_also_nothing(tracechain):
            with tracer.start_as_current_span("request"):
                pass
        """
    )
    # The SDK reads OTEL_SDK_DISABLED when a provider is made: a process of its own.
    result = _run_with_env(pytester, monkeypatch, OTEL_SDK_DISABLED="true")
    result.assert_outcomes(passed=1, failed=1)
    reason = "OTEL_SDK_DISABLED=true is set, so the OpenTelemetry SDK makes no spans at all: unset it for the tests"
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: expected exactly one span named 'request', found none",
            "E   ",
            "E   captured in this test:",
            "E     (no spans captured)",
            "E   ",
            f"E   nothing can be captured: {reason}",
        ]
    )
    result.stdout.fnmatch_lines([f"tracechain: nothing was captured: {reason}"])
    assert result.stdout.str().count("tracechain: nothing was captured") == 1


def test_why_nothing_is_captured_with_an_always_off_sampler(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_finds_nothing(tracechain):
            with tracer.start_as_current_span("request"):
                pass
            tracechain.one("request")
        """
    )
    result = _run_with_env(pytester, monkeypatch, OTEL_TRACES_SAMPLER="always_off")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   nothing can be captured: the tracer provider's sampler (AlwaysOffSampler) drops every root"
            " span, so the spans a test starts are never recorded: use the default sampler in tests (unset"
            " OTEL_TRACES_SAMPLER, or TracerProvider(sampler=ALWAYS_ON))",
            "tracechain: nothing was captured: the tracer provider's sampler (AlwaysOffSampler) drops every*",
        ]
    )


def test_a_parent_based_ratio_sampler_gives_no_false_findings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import contextvars, threading
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def job():
            with tracer.start_as_current_span("job"):
                pass

        def test_many_requests(tracechain):
            for _ in range(200):  # about half the traces are sampled out, whole
                with tracer.start_as_current_span("request"):
                    worker = threading.Thread(target=contextvars.copy_context().run, args=(job,))
                    worker.start()
                    worker.join()
            names = [span.name for span in tracechain.spans]
            assert 0 < names.count("request") < 200
            assert names.count("job") == names.count("request")
        """
    )
    result = _run_with_env(
        pytester, monkeypatch, OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.5"
    )
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*tracechain: *")
    result.stdout.no_fnmatch_line("*broken trace chain*")


def _run_with_env(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, **env: str) -> pytest.RunResult:
    """A pytest process of its own with ``env`` set (the SDK reads it when the provider is made)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return pytester.runpytest_subprocess(
        "--tracechain-check=fail",
        "--tb=short",
        "-p",
        "no:randomly",
        "-p",
        "no:pytest_opentelemetry",
        "-p",
        "no:cacheprovider",
    )
