"""Broken-chain detection: each defect, each boundary, each mode, and the reports users read."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import RunPytest

APP = """
import asyncio, contextvars, threading
from concurrent.futures import ThreadPoolExecutor
from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind

tracer = trace.get_tracer("app")


def job():
    with tracer.start_as_current_span("service.User.Create"):
        pass


def request_with_thread(carry=False):
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        target = contextvars.copy_context().run if carry else (lambda fn: fn())
        worker = threading.Thread(target=target, args=(job,), name="user-worker")
        worker.start()
        worker.join()


def request_with_pool(carry=False):
    with ThreadPoolExecutor(thread_name_prefix="jobs") as pool:
        with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
            if carry:
                pool.submit(contextvars.copy_context().run, job).result()
            else:
                pool.submit(job).result()


def request_with_run_in_executor(carry=False):
    async def handler():
        with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
            if carry:
                await asyncio.to_thread(job)
            else:
                await asyncio.get_running_loop().run_in_executor(None, job)
    asyncio.run(handler())


def request_with_task(carry=False):
    async def handler():
        with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
            task_context = None if carry else contextvars.Context()
            await asyncio.get_running_loop().create_task(_async_job(), context=task_context)
    asyncio.run(handler())


async def _async_job():
    job()


def publish(headers):
    with tracer.start_as_current_span("user.events send", kind=SpanKind.PRODUCER):
        propagate.inject(headers)


def consume(headers, use_headers=True):
    parent = propagate.extract(headers) if use_headers else None
    with tracer.start_as_current_span("user.events process", kind=SpanKind.CONSUMER, context=parent):
        pass
"""


def app_line(code: str) -> int:
    """The line of app.py (APP, as written) where ``code`` first appears."""
    return next(n for n, line in enumerate(APP.lstrip("\n").splitlines(), 1) if code in line)


@pytest.fixture
def app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(app=APP)


BOUNDARIES = ["thread", "pool", "run_in_executor"] + (["task"] if sys.version_info >= (3, 11) else [])


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_lost_context_at_each_boundary(
    pytester: pytest.Pytester, run_pytest: RunPytest, boundary: str
) -> None:
    pytester.makepyfile(
        f"""
        from app import request_with_{boundary}

        def test_broken(tracechain):
            request_with_{boundary}()

        def test_correct(tracechain):
            request_with_{boundary}(carry=True)
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(passed=1, failed=1)
    where = {
        "thread": (
            "thread 'user-worker'",
            f"a thread at app.py:{app_line('worker.start()')} from thread 'MainThread'",
        ),
        "pool": (
            "thread 'jobs_0'",
            f"an executor job at app.py:{app_line('pool.submit(job)')} from thread 'MainThread'",
        ),
        "run_in_executor": (
            "thread 'asyncio_0'",
            f"loop.run_in_executor at app.py:{app_line('run_in_executor(None, job)')} from thread 'MainThread',"
            " task 'Task-1'",
        ),
        "task": (
            "thread 'MainThread', task 'Task-2'",
            f"an asyncio task at app.py:{app_line('create_task(_async_job()')} from thread 'MainThread',"
            " task 'Task-1'",
        ),
    }[boundary]
    fix = {
        "thread": "  fix: start the thread with contextvars.copy_context().run (Thread(target=ctx.run, args=(fn,))),"
        " or use the OpenTelemetry threading instrumentation",
        "pool": "  fix: submit the job with contextvars.copy_context().run (executor.submit(ctx.run, fn)), or use"
        " the OpenTelemetry threading instrumentation",
        "run_in_executor": "  fix: use asyncio.to_thread (it copies the context), or"
        " loop.run_in_executor(None, contextvars.copy_context().run, fn)",
        "task": "  fix: create the task while the span is current and without an explicit context= (tasks copy"
        " the current context), or start the task's span with context= the request's context",
    }[boundary]
    result.stdout.fnmatch_lines(
        [
            "*_ test_broken _*",
            "1 broken trace chain:",
            f"[[]lost context] 'service.User.Create' started a new trace in {where[0]}, but the work was handed"
            f" over through {where[1]} while 'GET /hello' was current: the context did not cross the boundary",
            fix,
            "",
            "captured in this test:",
            "trace * · 1 span",
            "└─ GET /hello [[]server] · *",
            "trace * · 1 span",
            "└─ service.User.Create · *  ← lost context",
            "",
            "(pytest-tracechain's chain check, fail mode: see --tracechain-check and the marker)",
        ],
        consecutive=True,
    )


def test_correct_code_is_never_flagged(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytest.importorskip("opentelemetry.instrumentation.threading")
    pytester.makepyfile(
        """
        import queue, threading
        from concurrent.futures import ThreadPoolExecutor
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import Link, SpanKind
        import pytest

        tracer = trace.get_tracer("app")

        def handle(n):
            with tracer.start_as_current_span(f"GET /item/{n}", kind=SpanKind.SERVER):
                with tracer.start_as_current_span("db"):
                    pass

        def test_concurrent_independent_requests(tracechain):
            threads = [threading.Thread(target=handle, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(tracechain.traces()) == 8

        def test_server_started_outside_any_span(tracechain):
            inbox, done = queue.Queue(), threading.Event()

            def serve():
                for n in iter(inbox.get, None):
                    handle(n)
                done.set()

            server = threading.Thread(target=serve)
            server.start()
            for n in range(3):
                inbox.put(n)
            inbox.put(None)
            assert done.wait(10)
            server.join()

        def test_batch_consumer_with_links(tracechain):
            sent = []
            for n in range(3):
                with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER) as span:
                    sent.append(span.get_span_context())
            with tracer.start_as_current_span("process batch", kind=SpanKind.CONSUMER,
                                              context=context.Context(),
                                              links=[Link(c) for c in sent]):
                pass

        def test_requests_that_each_publish(tracechain):
            for n in range(3):
                with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
                    headers = {}
                    with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER):
                        propagate.inject(headers)
                with tracer.start_as_current_span("process", kind=SpanKind.CONSUMER,
                                                  context=propagate.extract(headers)):
                    pass

        def test_threading_instrumentation(tracechain):
            from opentelemetry.instrumentation.threading import ThreadingInstrumentor

            ThreadingInstrumentor().instrument()
            try:
                with tracer.start_as_current_span("GET /hello"):
                    worker = threading.Thread(target=lambda: tracer.start_span("job").end())
                    worker.start()
                    worker.join()
                    with ThreadPoolExecutor() as pool:
                        pool.submit(lambda: tracer.start_span("pooled").end()).result()
            finally:
                ThreadingInstrumentor().uninstrument()
            assert len(tracechain.traces()) == 1
        """
    )
    result = run_pytest("--tracechain-check=fail", "-W", "error::pytest_tracechain.TraceChainWarning")
    result.assert_outcomes(passed=5)
    result.stdout.no_fnmatch_line("*tracechain:*")


@pytest.mark.usefixtures("app")
def test_dropped_orphan_and_stale_carriers(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import propagate, trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
        from app import consume, publish, tracer

        def test_dropped_carrier(tracechain):
            headers = {}
            publish(headers)
            consume(headers, use_headers=False)

        def test_orphan(tracechain):
            stranger = NonRecordingSpan(SpanContext(0x1234, 0xABCD, is_remote=False, trace_flags=TraceFlags(1)))
            with tracer.start_as_current_span("child", context=trace.set_span_in_context(stranger)):
                pass

        def test_upstream_carrier_is_fine(tracechain):
            upstream = {"traceparent": f"00-{0xABC:032x}-{0xDEF:016x}-01"}
            consume(upstream)

        def test_stale_carrier(tracechain):
            with tracer.start_as_current_span("request") as request:
                trace_id = request.get_span_context().trace_id
            stale = {"traceparent": f"00-{trace_id:032x}-{0xDEAD:016x}-01"}
            consume(stale)
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=3, passed=1)
    result.stdout.fnmatch_lines(
        [
            "[[]dropped carrier] 'user.events process' is a consumer root span with neither a parent nor a link,"
            " although 'user.events send' (producer) injected its context into a carrier at"
            f" app.py:{app_line('propagate.inject(headers)')} before it started and nothing continues its"
            " trace: the consumer did not extract what was injected",
            "  fix: extract the context from the incoming headers and start the span with"
            " context=opentelemetry.propagate.extract(headers) (or links=[[]Link(...)] for a batch)",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "[[]orphan] 'child' has parent span 000000000000abcd, which is neither captured nor remote"
            " (extracted from a carrier)",
            "  fix: the parent belongs to work outside this test*",
            "",
            "captured in this test:",
            "trace 00000000000000000000000000001234 · 1 span",
            "└─ child · * (parent 000000000000abcd not captured)  ← orphan",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "[[]stale carrier] 'user.events process' has a remote parent 000000000000dead in trace *, which"
            " starts in this test, but no captured span has that id: the carrier held the wrong context",
            "  fix: inject the carrier inside the producer span, right before sending, and do not reuse headers"
            " between messages",
        ],
        consecutive=True,
    )


def test_client_calls_pair_only_with_servers_they_wait_for(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        tracer = trace.get_tracer("app")

        def handle():
            with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
                tracer.start_span("INSERT users", kind=SpanKind.CLIENT).end()

        def test_two_requests_each_with_a_database_call(tracechain):
            handle()
            handle()

        def test_server_ignored_the_callers_headers(tracechain):
            with tracer.start_as_current_span("GET /profile", kind=SpanKind.CLIENT):
                # the server side, in process: it starts a new trace instead of extracting
                tracer.start_span("GET /profile", kind=SpanKind.SERVER, context=trace.Context()).end()
        """
    )
    result = run_pytest("--tracechain-check=fail", "--tb=short")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "[[]dropped carrier] 'GET /profile' is a server root span with neither a parent nor a link,"
            " although 'GET /profile' (client) started before it and nothing continues its trace: the"
            " server did not extract what was injected",
        ]
    )
    result.stdout.fnmatch_lines(["*_ test_server_ignored_the_callers_headers _*"])


def test_unended_and_leaked_spans(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import threading
        from opentelemetry import trace

        tracer = trace.get_tracer("app")
        left_open = []

        def test_leaves_a_span_open(tracechain):
            left_open.append(tracer.start_span("background job"))

        def test_next(tracechain):
            left_open[0].end()  # ends during a later test
            assert tracechain.spans == []
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_leaves_a_span_open _*",
            "1 broken trace chain:",
            "[[]unended] 'background job' was started in this test and is still open after its teardown",
            "  fix: end the span (use `with tracer.start_as_current_span(...)`), or wait for the work that ends"
            " it (tracechain.wait_for) before the test returns",
            "",
            "captured in this test:",
            "trace * · 1 span",
            "└─ background job · open · thread 'MainThread'  ← unended",
        ],
        consecutive=True,
    )
    summary = [
        "*= tracechain =*",
        "tracechain: 1 test with broken chains",
        "  test_unended_and_leaked_spans.py::test_leaves_a_span_open: unended: 'background job'",
        "tracechain: span 'background job' of test_unended_and_leaked_spans.py::test_leaves_a_span_open"
        " ended * s after its test's teardown (work that outlived the test)",
    ]
    result.stdout.fnmatch_lines(summary, consecutive=True)
    # Through a pytest-xdist worker, the leak reaches the controller's summary in a report.
    pytest.importorskip("xdist")
    in_worker = run_pytest("--tracechain-check=fail", "-n", "1")
    in_worker.assert_outcomes(passed=2, errors=1)
    in_worker.stdout.fnmatch_lines(summary, consecutive=True)


def test_scope_leaks(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import asyncio, threading
        from opentelemetry import context, trace

        tracer = trace.get_tracer("app")

        def test_detached_in_another_thread(tracechain):
            with tracer.start_as_current_span("request") as span:
                token = context.attach(trace.set_span_in_context(span))
                closer = threading.Thread(target=context.detach, args=(token,), name="closer")
                closer.start()
                closer.join()

        def test_async_generator_closed_elsewhere(tracechain):
            async def events():
                with tracer.start_as_current_span("stream"):
                    yield 1
                    yield 2

            async def main():
                stream = events()
                await stream.__anext__()
                await asyncio.create_task(stream.aclose())

            asyncio.run(main())

        def test_never_detached(tracechain):
            span = tracer.start_span("handler")
            context.attach(trace.set_span_in_context(span))
            span.end()

        def test_thread_ended_without_detaching(tracechain):
            def work():
                span = tracer.start_span("worker span")
                context.attach(trace.set_span_in_context(span))
                span.end()

            worker = threading.Thread(target=work, name="forgetful")
            worker.start()
            worker.join()

        def test_next_test_is_unaffected(tracechain):
            assert not trace.get_current_span().get_span_context().is_valid
        """
    )
    result = run_pytest("--tracechain-check=fail", "-p", "no:logging")
    result.assert_outcomes(passed=3, failed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "[[]scope leak] a context (current span 'request') was detached in another thread or context than"
            " the one that attached it, in thread 'closer' (attached in thread 'MainThread' at"
            " test_scope_leaks.py:8)",
            "  fix: detach every token in the context that attached it: use `with` blocks (start_as_current_span,"
            " use_span) rather than attach/detach by hand, and do not keep a span current across `yield` in an"
            " async generator or a callback",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "[[]scope leak] a context (current span 'stream') was detached in another thread or context than the"
            " one that attached it, in thread 'MainThread' (detached at test_scope_leaks.py:15)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_never_detached _*",
            "1 broken trace chain:",
            "[[]scope leak] a context (current span 'handler') was attached during the test and never detached:"
            " it is still current after the test's teardown, in thread 'MainThread' (attached at"
            " test_scope_leaks.py:28)",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_thread_ended_without_detaching _*",
            "1 broken trace chain:",
            "[[]scope leak] a context (current span 'worker span') was attached and never detached by a thread"
            " that has ended, in thread 'forgetful' (attached at test_scope_leaks.py:34)",
        ],
        consecutive=True,
    )


def test_modes_marker_and_options(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makeini(
        """
        [pytest]
        tracechain_check = off
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from app import request_with_thread, tracer

        def test_off_by_ini(tracechain):
            request_with_thread()

        @pytest.mark.tracechain(check="warn")
        def test_warn_by_marker(tracechain):
            request_with_thread()

        @pytest.mark.tracechain(check="fail")
        def test_fail_by_marker():
            request_with_thread()

        @pytest.mark.tracechain(check="fail", lost_context=False)
        def test_rule_off():
            request_with_thread()

        @pytest.mark.tracechain(check="fail", single_trace=True)
        def test_single_trace():
            with tracer.start_as_current_span("one"):
                pass
            with tracer.start_as_current_span("two"):
                pass

        @pytest.mark.tracechain(check="fail")
        def test_failing_test_keeps_its_own_error():
            request_with_thread()
            assert False, "the test's own failure"
        """
    )
    result = run_pytest("-rA")
    result.assert_outcomes(passed=3, failed=3, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "  */test_modes_marker_and_options.py:8: TraceChainWarning: 1 broken trace chain:",
            "  [[]lost context] 'service.User.Create' started a new trace in thread 'user-worker'*",
        ]
    )
    # The warning points at the test's def line, which pytest prints after it: not at its decorator.
    result.stdout.fnmatch_lines(["    def test_warn_by_marker(tracechain):"])
    result.stdout.no_fnmatch_line('    @pytest.mark.tracechain(check="warn")')
    result.stdout.fnmatch_lines(
        [
            "*_ test_single_trace _*",
            "1 broken trace chain:",
            "[[]single trace] expected exactly one trace (single_trace=True), found 2",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_failing_test_keeps_its_own_error _*",
            "*AssertionError: the test's own failure*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*- tracechain: broken trace chains -*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "tracechain: 4 tests with broken chains",
            "  test_modes_marker_and_options.py::test_warn_by_marker: lost context: 'service.User.Create'",
            "  test_modes_marker_and_options.py::test_fail_by_marker: lost context: 'service.User.Create'",
            "  test_modes_marker_and_options.py::test_single_trace: single trace",
            "  test_modes_marker_and_options.py::test_failing_test_keeps_its_own_error: lost context:"
            " 'service.User.Create'",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(["PASSED test_modes_marker_and_options.py::test_rule_off"])

    # The warning is a real warning category: -W error turns it into a failure.
    strict = run_pytest("-W", "error::pytest_tracechain.TraceChainWarning", "-k", "warn_by_marker")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(
        [
            "*_ test_warn_by_marker _*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace*",
        ],
        consecutive=True,
    )
    strict.stdout.fnmatch_lines(
        ["(pytest-tracechain's chain check: a TraceChainWarning, turned into an error by -W)"]
    )
    strict.stdout.no_fnmatch_line("*plugin.py*")


def test_marker_is_registered_and_checked(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    markers = run_pytest("--markers")
    markers.stdout.fnmatch_lines(
        ["@pytest.mark.tracechain(check=None, single_trace=False, lost_context=True): capture this test's*"]
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.tracechain(chek="fail")
        def test_typo():
            pass

        @pytest.mark.tracechain(check="loud")
        def test_bad_mode():
            pass

        @pytest.mark.tracechain(check="")
        def test_empty_mode():
            pass

        @pytest.mark.tracechain(single_trace="no")
        def test_not_a_bool():
            pass

        @pytest.mark.tracechain(lost_context=0)
        def test_zero_is_not_false():
            pass

        @pytest.mark.tracechain(check=" FAIL ", single_trace=True, lost_context=False)
        def test_modes_in_any_case_as_in_the_ini(tracechain):
            pass
        """
    )
    result = run_pytest()
    result.assert_outcomes(errors=5, passed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.tracechain(check=''): check must be one of off, warn, fail"])
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.tracechain(single_trace='no'): single_trace must be True or False"]
    )
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.tracechain(lost_context=0): lost_context must be True or False"]
    )
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.tracechain got chek=; it takes only the keyword arguments check='off'|'warn'|'fail',"
            " single_trace=bool, lost_context=bool",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.tracechain(check='loud'): check must be one of off, warn, fail"]
    )
    bad_option = run_pytest("--tracechain-check=loud")
    assert bad_option.ret == pytest.ExitCode.USAGE_ERROR
    bad_option.stderr.fnmatch_lines(["*argument --tracechain-check: invalid choice: 'loud'*"])


def test_check_all_checks_tests_without_the_fixture(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        from app import request_with_thread

        def test_plain():
            request_with_thread()
        """
    )
    run_pytest("--tracechain-check=fail").assert_outcomes(passed=1)
    run_pytest("--tracechain-check=fail", "--tracechain-check-all").assert_outcomes(failed=1)
    pytester.makeini("[pytest]\ntracechain_check_all = true\ntracechain_check = fail\n")
    run_pytest().assert_outcomes(failed=1)


def test_findings_in_junitxml_and_under_xdist(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        import pytest
        from app import request_with_thread

        @pytest.mark.parametrize("n", range(4))
        def test_broken(tracechain, n):
            request_with_thread()

        @pytest.mark.parametrize("n", range(4))
        def test_correct(tracechain, n):
            request_with_thread(carry=True)
        """
    )
    for args in ([], ["-n", "2"]):
        result = run_pytest("--tracechain-check=warn", "--junitxml=report.xml", *args)
        result.assert_outcomes(passed=8, warnings=4)
        result.stdout.fnmatch_lines(["tracechain: 4 tests with broken chains"])
        cases = ET.parse(pytester.path / "report.xml").getroot().iter("testcase")
        properties = {
            case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")} for case in cases
        }
        assert properties["test_broken[0]"]["tracechain"] == "lost context: 'service.User.Create'"
        assert properties["test_broken[3]"]["tracechain.report"].startswith(
            "1 broken trace chain:\n[lost context]"
        )
        assert "tracechain" not in properties["test_correct[0]"]
        failing = run_pytest("--tracechain-check=fail", *args)
        failing.assert_outcomes(passed=4, failed=4)


def test_assert_chain_intact(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        import pytest
        from pytest_tracechain import TraceAssertionError, assert_chain_intact
        from app import request_with_thread

        @pytest.mark.tracechain(check="off", lost_context=False)
        def test_marker_rules_apply(tracechain):
            request_with_thread()
            assert_chain_intact()

        @pytest.mark.tracechain(check="off")
        def test_on_demand(tracechain):
            request_with_thread(carry=True)
            assert_chain_intact()
            assert_chain_intact(tracechain)
            assert_chain_intact(tracechain.spans)
            request_with_thread()
            assert_chain_intact()

        def test_arguments(tracechain):
            with pytest.raises(TypeError, match="argument 'capture' must be a TraceCapture or an iterable of spans, not int"):
                assert_chain_intact(3)
            with pytest.raises(TypeError, match="argument 'capture' holds str at index 0, not a span"):
                assert_chain_intact(["x"])

        def test_without_capture():
            with pytest.raises(RuntimeError, match="none is running: request the `tracechain` fixture"):
                assert_chain_intact()
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 1 broken trace chain:",
            "E   [[]lost context] 'service.User.Create' started a new trace in thread 'user-worker'*",
        ],
        consecutive=True,
    )


def test_two_sessions_in_one_process(pytester: pytest.Pytester) -> None:
    """Patches are undone at the end of a session and installed again by the next one."""
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        test_lost="""
        from app import request_with_thread

        def test_it(tracechain):
            request_with_thread()
        """
    )
    script = (
        "import pytest, threading\n"
        "original = threading.Thread.start\n"
        "args = ['-q', '-p', 'no:cacheprovider', '-p', 'no:pytest_opentelemetry', '--tracechain-check=fail',"
        " 'test_lost.py']\n"
        "assert pytest.main(args) == pytest.ExitCode.TESTS_FAILED\n"
        "assert threading.Thread.start is original\n"
        "assert pytest.main(args) == pytest.ExitCode.TESTS_FAILED\n"
    )
    result = pytester.run(sys.executable, "-c", script)
    assert result.ret == 0, result.stderr.str()
    # Once per session in the tracechain summary (the failure text itself may
    # repeat in the short summary: pytest prints it in full under CI=true).
    assert result.stdout.str().count("  test_lost.py::test_it: lost context: 'service.User.Create'") == 2
