"""Hand-offs beyond threads, executors and tasks: queues, fresh contexts, loop callbacks;
where each happened; and findings on spans that end during teardown."""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest

APP = """
import asyncio, contextvars, queue, threading
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer("app")


def handle(job):
    if "context" in job:
        job["context"].run(create_user)
    elif "carrier" in job:
        parent = propagate.extract(job["carrier"])
        with tracer.start_as_current_span("users process", kind=SpanKind.CONSUMER, context=parent):
            pass
    else:
        create_user()


def create_user():
    with tracer.start_as_current_span("service.User.Create"):
        pass


def worker(jobs):
    while (job := jobs.get()) is not None:
        handle(job)
        if isinstance(jobs, queue.Queue):
            jobs.task_done()


def start_pool(jobs):
    thread = threading.Thread(target=worker, args=(jobs,), name="pool-worker", daemon=True)
    thread.start()
    return thread


def request(jobs, carry=None):
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        if carry == "context":
            jobs.put({"context": contextvars.copy_context()})
        elif carry == "carrier":
            carrier = {}
            propagate.inject(carrier)
            jobs.put({"carrier": carrier})
        else:
            jobs.put({})


async def async_request(carry=False):
    jobs = asyncio.Queue()

    async def consume():
        while (job := await jobs.get()) is not None:
            if "context" in job:
                job["context"].run(create_user)
            else:
                create_user()
            jobs.task_done()

    consumer = asyncio.get_running_loop().create_task(consume(), name="consumer")
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        await jobs.put({"context": contextvars.copy_context()} if carry else {})
    await jobs.join()
    await jobs.put(None)
    await consumer


def request_in_a_new_context(carry=False):
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        context = contextvars.copy_context() if carry else contextvars.Context()
        context.run(create_user)


async def request_with_a_callback(carry=False):
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def callback():
        create_user()
        done.set_result(None)

    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        context = contextvars.copy_context() if carry else contextvars.Context()
        loop.call_soon(callback, context=context)
    await done
"""


def app_line(code: str) -> int:
    """The line of app.py (APP, as written) where ``code`` first appears."""
    return next(n for n, line in enumerate(APP.lstrip("\n").splitlines(), 1) if code in line)


CARRY_IN_JOB = (
    "  fix: carry the context in the job: put contextvars.copy_context() in it and run the handler with"
    " ctx.run(handler, job), or inject the context into a carrier in the job and start the worker's span as"
    " a CONSUMER with context=opentelemetry.propagate.extract(carrier)"
)


@pytest.mark.parametrize("kind", ["Queue", "SimpleQueue", "LifoQueue"])
def test_a_job_put_on_a_queue_for_a_pool_started_before_the_test(
    pytester: pytest.Pytester, run_pytest: RunPytest, kind: str
) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        f"""
        import queue
        import pytest
        from pytest_tracechain import assert_child_of
        import app

        # Started before any test: the most common background-work shape. (A SimpleQueue,
        # a C type, is recorded only when made after the plugin started: here in a fixture.)
        if "{kind}" != "SimpleQueue":
            jobs = queue.{kind}()
            app.start_pool(jobs)

        @pytest.fixture(scope="module", autouse=True)
        def pool():
            global jobs
            if "{kind}" == "SimpleQueue":
                jobs = queue.SimpleQueue()
                app.start_pool(jobs)

        def test_broken(tracechain):
            app.request(jobs)
            tracechain.wait_for("service.User.Create")

        @pytest.mark.parametrize("carry", ["context", "carrier"])
        def test_correct(tracechain, carry):
            app.request(jobs, carry=carry)
            job = tracechain.wait_for("users process" if carry == "carrier" else "service.User.Create")[0]
            assert_child_of(job, "POST /users")

        def test_a_job_without_a_span_in_the_same_worker(tracechain):
            jobs.put({{}})  # no span current: nothing was lost
            tracechain.wait_for("service.User.Create")
        """
    )
    result = run_pytest("--tracechain-check=fail", "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    label = "a queue.SimpleQueue" if kind == "SimpleQueue" else "a queue.Queue"
    result.stdout.fnmatch_lines(
        [
            "*_ test_broken _*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace in thread 'pool-worker', but the work was"
            f" handed over through {label} at app.py:{app_line('jobs.put({})')} from thread 'MainThread' while"
            " 'POST /users' was current: the context did not cross the boundary",
            CARRY_IN_JOB,
        ],
        consecutive=True,
    )


def test_an_asyncio_queue_consumer_task(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        import asyncio
        import app

        def test_broken(tracechain):
            asyncio.run(app.async_request())

        def test_correct(tracechain):
            asyncio.run(app.async_request(carry=True))
        """
    )
    result = run_pytest("--tracechain-check=fail", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "[[]lost context] 'service.User.Create' started a new trace in thread 'MainThread', task 'consumer',"
            " but the work was handed over through an asyncio.Queue at"
            f" app.py:{app_line('await jobs.put({')} from thread 'MainThread', task 'Task-1' while"
            " 'POST /users' was current: the context did not cross the boundary",
            CARRY_IN_JOB,
        ],
        consecutive=True,
    )


def test_fresh_contexts(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        import asyncio, contextvars
        import app

        def test_context_run(tracechain):
            app.request_in_a_new_context()

        def test_copied_context_run(tracechain):
            app.request_in_a_new_context(carry=True)

        def test_a_new_context_outside_any_span(tracechain):
            contextvars.Context().run(app.create_user)

        def test_callback(tracechain):
            asyncio.run(app.request_with_a_callback())

        def test_callback_with_a_copy(tracechain):
            asyncio.run(app.request_with_a_callback(carry=True))
        """
    )
    result = run_pytest("--tracechain-check=fail", "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_context_run _*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace in thread 'MainThread', but the work was"
            " handed over through a new contextvars.Context (Context().run) from thread"
            " 'MainThread' while 'POST /users' was current: the context did not cross the boundary",
            "  fix: run the work in a copy of the current context, taken where the span is current"
            " (contextvars.copy_context().run(fn)), not in a new contextvars.Context()",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_callback _*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace in thread 'MainThread', but the work was"
            f" handed over through a loop callback given context= at app.py:{app_line('loop.call_soon(')} from"
            " thread 'MainThread', task 'Task-1' while 'POST /users' was current: the context did not cross the"
            " boundary",
            "  fix: leave out context= (a callback runs in a copy of the current context), or pass"
            " contextvars.copy_context() taken while the span is current",
        ],
        consecutive=True,
    )


def test_a_plain_submit_from_async_code_is_named_as_such(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        """
        import asyncio
        from concurrent.futures import ThreadPoolExecutor
        import app

        def test_submit(tracechain):
            async def handler():
                with ThreadPoolExecutor(thread_name_prefix="jobs") as pool:
                    with app.tracer.start_as_current_span("POST /users"):
                        pool.submit(app.create_user).result()
            asyncio.run(handler())
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "[[]lost context] 'service.User.Create' started a new trace in thread 'jobs_0', but the work was"
            " handed over through an executor job at test_a_plain_submit_from_async_code_is_named_as_such.py:9"
            " from thread 'MainThread', task 'Task-1' while 'POST /users' was current: the context did not cross"
            " the boundary",
            "  fix: submit the job with contextvars.copy_context().run (executor.submit(ctx.run, fn)), or use the"
            " OpenTelemetry threading instrumentation",
        ],
        consecutive=True,
    )


def test_a_span_that_ends_during_teardown_is_analysed_then(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import propagate, trace
        from opentelemetry.trace import SpanKind

        tracer = trace.get_tracer("app")

        @pytest.fixture
        def consumer():
            # A consumer fixture: the message it handles ends when the fixture stops.
            handling = []
            yield handling
            for span in handling:
                span.end()

        def test_consumer_ignored_the_headers(tracechain, consumer):
            headers = {}
            with tracer.start_as_current_span("orders send", kind=SpanKind.PRODUCER):
                propagate.inject(headers)
            consumer.append(tracer.start_span("orders process", kind=SpanKind.CONSUMER))

        def test_consumer_used_the_headers(tracechain, consumer):
            headers = {}
            with tracer.start_as_current_span("orders send", kind=SpanKind.PRODUCER):
                propagate.inject(headers)
            parent = propagate.extract(headers)
            consumer.append(tracer.start_span("orders process", kind=SpanKind.CONSUMER, context=parent))
        """
    )
    result = run_pytest("--tracechain-check=fail", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_consumer_ignored_the_headers _*",
            "1 broken trace chain:",
            "[[]dropped carrier] 'orders process' is a consumer root span with neither a parent nor a link,"
            " although 'orders send' (producer) injected its context into a carrier at"
            " test_a_span_that_ends_during_teardown_is_analysed_then.py:18 before it started and nothing"
            " continues its trace: the consumer did not extract what was injected",
        ],
        consecutive=True,
    )


def test_the_hint_for_a_span_received_from_another_process(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        child="""
        import os
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"process.pid": os.getpid()}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=os.environ["ENDPOINT"])))
        # The child starts its own root: the context was never handed to it.
        with provider.get_tracer("child").start_as_current_span("job"):
            pass
        provider.shutdown()
        """
    )
    pytester.makepyfile(
        """
        import os, subprocess, sys
        from opentelemetry import trace
        from pytest_tracechain import assert_same_trace

        def test_job_in_a_child_process(tracechain, otlp_receiver):
            with trace.get_tracer("app").start_as_current_span("request"):
                env = {**os.environ, "ENDPOINT": otlp_receiver.endpoint + "/v1/traces"}
                subprocess.run([sys.executable, "child.py"], env=env, check=True)
            assert_same_trace("request", "job")
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   hint: 'job' was received from pid *, where it started a new trace instead of continuing"
            " 'request': pass the context to that process in a carrier (message or HTTP headers, an"
            " environment variable) and start its first span there with"
            " context=opentelemetry.propagate.extract(carrier).",
        ]
    )
    result.stdout.no_fnmatch_line("*the thread None*")
