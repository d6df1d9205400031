"""Assertion helpers: pass paths, the failure text users read, argument checks."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import RunPytest

APP = """
import threading
from opentelemetry import trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer("app")


def in_thread(fn, *, name="worker"):
    thread = threading.Thread(target=fn, name=name)
    thread.start()
    thread.join()
"""


def test_passing_assertions(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        import contextvars
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import Link, SpanKind
        from pytest_tracechain import (
            assert_child_of, assert_descendant_of, assert_linked_to, assert_outlives,
            assert_remote_parent, assert_root, assert_same_trace, assert_span_kind,
        )
        from app import tracer, in_thread

        def test_all(tracechain):
            with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER) as request:
                ctx = contextvars.copy_context()
                in_thread(lambda: ctx.run(lambda: tracer.start_span("job").end()))
                with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER) as send:
                    headers = {}
                    propagate.inject(headers)
                    with tracer.start_as_current_span("deep"):
                        pass
            background = tracer.start_span("background", context=trace.set_span_in_context(request))
            background.end()
            consumer = tracer.start_span("process", kind=SpanKind.CONSUMER,
                                         context=propagate.extract(headers))
            consumer.end()
            batch = tracer.start_span("batch", context=context.Context(),
                                      links=[Link(send.get_span_context())])
            batch.end()

            # by name, by span object and by SpanContext
            assert_child_of("job", "GET /hello")
            assert_child_of(tracechain.one("job"), request)
            assert_child_of("job", request.get_span_context())
            assert_descendant_of("deep", "GET /hello")
            assert_descendant_of("process", "GET /hello")
            assert_same_trace("job", "deep", "process", request)
            assert_span_kind("GET /hello", "server")
            assert_span_kind("process", SpanKind.CONSUMER)
            assert_root("GET /hello")
            assert_root(batch)
            assert_remote_parent("process")
            assert_child_of("process", "send")
            assert_linked_to("batch", "send")
            assert_outlives("background", "GET /hello")
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_child_of_in_a_thread_without_context(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        from pytest_tracechain import assert_child_of, assert_same_trace
        from app import tracer, in_thread, SpanKind

        def test_child_of(tracechain):
            with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
                in_thread(lambda: tracer.start_span("service.User.Create").end(), name="user-worker")
            assert_child_of("service.User.Create", "GET /hello")

        def test_same_trace(tracechain):
            with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
                in_thread(lambda: tracer.start_span("service.User.Create").end(), name="user-worker")
            assert_same_trace("GET /hello", "service.User.Create")
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 'service.User.Create' is not a child of 'GET /hello'",
            "E     expected parent: 'GET /hello' (span *)",
            "E     found: no parent (it is the root of its own trace)",
            "E     'service.User.Create' started in thread 'user-worker'; 'GET /hello' in thread 'MainThread'",
            "E   ",
            "E   hint: 'service.User.Create' was handed over through a thread at app.py:10 from thread 'MainThread'"
            " without the context of 'GET /hello': start the thread with contextvars.copy_context().run"
            " (Thread(target=ctx.run, args=(fn,))), or use the OpenTelemetry threading instrumentation.",
            "E   ",
            "E   traces involved:",
            "E   trace * · 1 span",
            "E   └─ GET /hello [[]server] · * · thread 'MainThread'  ← expected parent",
            "E   trace * · 1 span",
            "E   └─ service.User.Create · * · thread 'user-worker'  ← child",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: expected 2 spans in one trace, found them in 2 traces:",
            "E     trace *: 'GET /hello'",
            "E     trace *: 'service.User.Create'",
            "E   ",
            "E   hint: 'service.User.Create' was handed over through a thread at app.py:10 from thread 'MainThread'*",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*_assertions.py*")


def test_child_of_through_an_executor_and_a_task(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        import asyncio
        from concurrent.futures import ThreadPoolExecutor
        from opentelemetry import context
        from pytest_tracechain import assert_child_of
        from app import tracer

        def test_executor(tracechain):
            with ThreadPoolExecutor() as pool:
                with tracer.start_as_current_span("request"):
                    pool.submit(lambda: tracer.start_span("job").end()).result()
            assert_child_of("job", "request")

        def test_run_in_executor(tracechain):
            async def main():
                with tracer.start_as_current_span("request"):
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(None, lambda: tracer.start_span("job").end())
            asyncio.run(main())
            assert_child_of("job", "request")

        def test_task_started_with_empty_context(tracechain):
            async def job():
                tracer.start_span("job", context=context.Context()).end()

            async def main():
                with tracer.start_as_current_span("request"):
                    await asyncio.create_task(job(), name="job-task")
            asyncio.run(main())
            assert_child_of("job", "request")

        def test_to_thread_is_fine(tracechain):
            async def main():
                with tracer.start_as_current_span("request"):
                    await asyncio.to_thread(lambda: tracer.start_span("job").end())
            asyncio.run(main())
            assert_child_of("job", "request")
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(failed=3, passed=1)
    result.stdout.fnmatch_lines(
        [
            "E   hint: 'job' was handed over through an executor job at"
            " test_child_of_through_an_executor_and_a_task.py:10 from thread 'MainThread' without"
            " the context of 'request': submit the job with contextvars.copy_context().run"
            " (executor.submit(ctx.run, fn)), or use the OpenTelemetry threading instrumentation.",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E   hint: 'job' was handed over through loop.run_in_executor at"
            " test_child_of_through_an_executor_and_a_task.py:17 from thread 'MainThread', task 'Task-*'"
            " without the context of 'request': use asyncio.to_thread (it copies the context),"
            " or loop.run_in_executor(None, contextvars.copy_context().run, fn).",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E     'job' started in thread 'MainThread', task 'job-task'; 'request' in thread 'MainThread', task 'Task-*'",
            "E   ",
            "E   hint: the asyncio task 'job-task' started a new trace: it was created outside 'request''s"
            " context (tasks copy the context current at create_task), or started its span with an empty context.",
        ],
        consecutive=True,
    )


def test_child_of_other_mismatches(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import Link
        from pytest_tracechain import assert_child_of
        from app import tracer, SpanKind

        def test_grandchild(tracechain):
            with tracer.start_as_current_span("request"):
                with tracer.start_as_current_span("handler"):
                    tracer.start_span("db").end()
            assert_child_of("db", "request")

        def test_reversed(tracechain):
            with tracer.start_as_current_span("request"):
                tracer.start_span("db").end()
            assert_child_of("request", "db")

        def test_linked_instead(tracechain):
            with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER) as send:
                pass
            tracer.start_span("process", kind=SpanKind.CONSUMER, context=context.Context(),
                              links=[Link(send.get_span_context())]).end()
            assert_child_of("process", "send")

        def test_consumer_ignores_headers(tracechain):
            with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER):
                headers = {}
                propagate.inject(headers)
            tracer.start_span("process", kind=SpanKind.CONSUMER, context=context.Context()).end()
            assert_child_of("process", "send")

        def test_stale_carrier(tracechain):
            with tracer.start_as_current_span("request"):
                headers = {}
                propagate.inject(headers)
                with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER):
                    pass
            tracer.start_span("process", kind=SpanKind.CONSUMER, context=propagate.extract(headers)).end()
            assert_child_of("process", "send")
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 'db' is not a child of 'request'",
            "E     expected parent: 'request' (span *)",
            "E     found: parent 'handler' (span *)",
            "E     'db' started in thread 'MainThread'; 'request' in thread 'MainThread'",
            "E   ",
            "E   hint: 'db' is a descendant of 'request' through 'handler'; use assert_descendant_of for"
            " indirect children.",
            "E   ",
            "E   traces involved:",
            "E   trace * · 3 spans",
            "E   └─ request · * · thread 'MainThread'  ← expected parent",
            "E      └─ handler · * · thread 'MainThread'",
            "E         └─ db · * · thread 'MainThread'  ← child",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(["E   hint: the relation is reversed: 'db' is a child of 'request'."])
    result.stdout.fnmatch_lines(
        [
            "E   hint: 'process' is linked to 'send' but is not its child: links mark a cause, parents make"
            " one trace.*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E   hint: 'process' is a consumer span with no parent: it did not extract the context from the"
            " incoming carrier. Start it with context=opentelemetry.propagate.extract(headers).",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E     found: parent 'request' (span *)",
            "*",
            "E   ",
            "E   hint: 'process''s remote parent is another span of the same trace: the carrier held a stale"
            " context. Inject the carrier inside the producer span.",
        ],
        consecutive=True,
    )


def test_descendant_root_kind_remote_link_failures(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind
        from pytest_tracechain import (
            assert_descendant_of, assert_linked_to, assert_remote_parent, assert_root, assert_span_kind,
        )
        from app import tracer, in_thread

        def test_descendant(tracechain):
            with tracer.start_as_current_span("request"):
                with tracer.start_as_current_span("handler"):
                    in_thread(lambda: tracer.start_span("job").end())
            assert_descendant_of("job", "request")

        def test_descendant_chain(tracechain):
            with tracer.start_as_current_span("other"):
                with tracer.start_as_current_span("handler"):
                    tracer.start_span("db").end()
            with tracer.start_as_current_span("request"):
                pass
            assert_descendant_of("db", "request")

        def test_root(tracechain):
            with tracer.start_as_current_span("request"):
                tracer.start_span("job").end()
            assert_root("job")

        def test_kind(tracechain):
            tracer.start_span("process").end()
            assert_span_kind("process", "consumer")

        def test_remote_parent_missing(tracechain):
            tracer.start_span("process", kind=SpanKind.CONSUMER).end()
            assert_remote_parent("process")

        def test_remote_parent_local(tracechain):
            with tracer.start_as_current_span("poll"):
                tracer.start_span("process", kind=SpanKind.CONSUMER).end()
            assert_remote_parent("process")

        def test_linked(tracechain):
            with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER):
                tracer.start_span("process", kind=SpanKind.CONSUMER).end()
            assert_linked_to("process", "send")
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(failed=7)
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 'request' is not an ancestor of 'job'",
            "E     parent chain of 'job': 'job' → (root)",
            "E     'job' started in thread 'worker'; 'request' in thread 'MainThread'",
            "E   ",
            "E   hint: 'job' was handed over through a thread at *.py:* from thread 'MainThread' without the context of 'request'*",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(["E     parent chain of 'db': 'db' → 'handler' → 'other' → (root)"])
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: expected 'job' to be a root span, found parent"
            " 'request' (span *)",
            "E   ",
            "E   hint: a root starts with no current span; to start one deliberately inside another span"
            " pass context=opentelemetry.context.Context() (and a link to the span that caused it).",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 'process' has kind INTERNAL, expected CONSUMER",
            "E   ",
            "E   hint: pass kind=SpanKind.CONSUMER when starting the span.",
            "E   ",
            "E   traces involved:",
            "E   trace * · 1 span",
            "E   └─ process · * · thread 'MainThread'  ← kind INTERNAL, expected CONSUMER",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: expected 'process' to have a remote parent (extracted"
            " from a carrier), found no parent (it is the root of its own trace)",
            "E   ",
            "E   hint: the span has no parent at all: extract the carrier and start the span with"
            " context=opentelemetry.propagate.extract(headers).",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: expected 'process' to have a remote parent (extracted"
            " from a carrier), found parent 'poll' (span *)",
            "E   ",
            "E   hint: the span's parent is a local span: it was started under the current span instead of"
            " the context extracted from the carrier.*",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: expected 'process' to be linked to 'send', found no links",
            "E   ",
            "E   hint: 'process' is a child of 'send', not linked to it. Use assert_child_of, or start the"
            " span with links=[[]trace.Link(producer_context)] for a batch consumer.",
        ],
        consecutive=True,
    )


def test_outlives(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        import asyncio, threading
        from opentelemetry import trace
        from pytest_tracechain import assert_outlives
        from app import tracer

        def test_cancelled_with_the_request(tracechain):
            async def job():
                with tracer.start_as_current_span("background"):
                    await asyncio.Event().wait()

            async def handler():
                with tracer.start_as_current_span("GET /hello"):
                    task = asyncio.create_task(job())
                    await asyncio.sleep(0)
                    task.cancel()  # tied to the request's lifetime
                    await asyncio.gather(task, return_exceptions=True)

            asyncio.run(handler())
            assert_outlives("background", "GET /hello")

        def test_ended_first(tracechain):
            with tracer.start_as_current_span("GET /hello"):
                tracer.start_span("background").end()
            assert_outlives("background", "GET /hello")

        def test_still_open(tracechain):
            with tracer.start_as_current_span("GET /hello"):
                background = tracer.start_span("background")
            try:
                assert_outlives("background", "GET /hello")
            finally:
                background.end()

        def test_errored(tracechain):
            with tracer.start_as_current_span("GET /hello") as request:
                job = tracer.start_span("background")
            try:
                with trace.use_span(job, end_on_exit=True):
                    raise RuntimeError("disk full")
            except RuntimeError:
                pass
            assert_outlives("background", "GET /hello")
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(failed=4)
    if sys.version_info >= (3, 11):
        result.stdout.fnmatch_lines(
            [
                "E   pytest_tracechain.TraceAssertionError: 'background' was cancelled (its asyncio task was"
                " being cancelled when the span ended), it did not outlive 'GET /hello'",
                "E   ",
                "E   hint: the work was tied to the request's lifetime and got cancelled with it.*",
            ],
            consecutive=True,
        )
    else:  # Task.cancelling() is new in 3.11: only the timing shows
        result.stdout.fnmatch_lines(
            ["E   pytest_tracechain.TraceAssertionError: 'background' ended * before 'GET /hello' ended;*"]
        )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 'background' ended * before 'GET /hello' ended;"
            " expected it to outlive it",
            "E   ",
            "E   hint: the work ended inside 'GET /hello''s lifetime: the handler waited for it (joined the"
            " thread or awaited the task) or cancelled it on the way out, instead of letting it run in the"
            " background.",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 'background' has not ended yet, so it cannot be shown"
            " to outlive 'GET /hello'",
            "E   ",
            "E   hint: wait for it first: tracechain.wait_for('background').",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 'background' ended with status ERROR"
            " (RuntimeError: disk full), it did not complete after 'GET /hello'",
        ]
    )


def test_argument_errors(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry.trace import SpanContext
        from pytest_tracechain import (
            TraceAssertionError, assert_child_of, assert_same_trace, assert_span_kind, assert_root,
        )
        from app import tracer

        def test_types(tracechain):
            tracer.start_span("a").end()
            with pytest.raises(TypeError, match=r"^assert_child_of\\(\\) argument 'parent' must be a span"
                               r" \\(ReadableSpan\\), a SpanContext or a span name, not int$"):
                assert_child_of("a", 42)
            with pytest.raises(TypeError, match=r"^assert_same_trace\\(\\) takes two or more spans, got 1$"):
                assert_same_trace("a")
            with pytest.raises(TypeError, match=r"^assert_span_kind\\(\\) argument 'kind' must be a SpanKind or its name, not NoneType$"):
                assert_span_kind("a", None)
            with pytest.raises(ValueError, match="kind='sever' is not a span kind"):
                assert_span_kind("a", "sever")
            unknown = SpanContext(trace_id=1, span_id=2, is_remote=False)
            with pytest.raises(TypeError, match=r"^assert_root\\(\\) cannot check span 0000000000000002:"
                               " it was not captured; pass the span itself$"):
                assert_root(unknown)

        def test_same_span(tracechain):
            tracer.start_span("a").end()
            with pytest.raises(ValueError, match=r"^assert_child_of\\(\\) got the same span, 'a', as child and parent$"):
                assert_child_of("a", "a")

        def test_unknown_name(tracechain):
            tracer.start_span("a").end()
            with pytest.raises(TraceAssertionError, match="expected exactly one span named 'b', found none"):
                assert_root("b")

        def test_names_without_capture():
            with pytest.raises(RuntimeError, match=r"assert_root\\(\\) got the span name 'a' for 'span', but no"
                               " capture is running: span names are looked up in the running test's capture."):
                assert_root("a")
        """
    )
    run_pytest().assert_outcomes(passed=4)


def test_assertions_work_with_plain_asserts(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    """Messages are built explicitly, so they do not depend on assertion rewriting."""
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        from pytest_tracechain import assert_child_of
        from app import tracer

        def test_it(tracechain):
            tracer.start_span("parent").end()
            tracer.start_span("child").end()
            assert_child_of("child", "parent")
        """
    )
    result = run_pytest("--assert=plain", "--tb=short")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E   pytest_tracechain.TraceAssertionError: 'child' is not a child of 'parent'"]
    )
