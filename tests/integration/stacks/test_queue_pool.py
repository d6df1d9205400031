"""Worker pools fed through queues: a ``queue.Queue`` with threads started at start-up, an ``asyncio.Queue``
with a consumer task started before the request.

The workers exist before any request, so no span is current where they
start: the only place the context can travel is the job itself. Correct
jobs carry it (a copy of the context, or a carrier the worker extracts);
broken ones do not, and the worker's span starts a new trace.
"""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest
from tests.integration.stacks.conftest import NO_FINDINGS, assert_no_findings

APP = """
import asyncio, contextlib, contextvars, queue, threading
from dataclasses import dataclass

from opentelemetry import context as otel_context, propagate, trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer("app")


@dataclass
class Job:
    name: str
    context: contextvars.Context | None = None  # run the handler in it
    headers: dict | None = None  # extract the producer's context from them
    parent: otel_context.Context | None = None  # start the handler's span under it


def create_user(name, parent=None):
    with tracer.start_as_current_span("service.User.Create", context=parent, attributes={"user.name": name}):
        pass


def handle(job):
    if job.context is not None:
        job.context.run(create_user, job.name)
    elif job.headers is not None:
        parent = propagate.extract(job.headers)
        with tracer.start_as_current_span("users process", kind=SpanKind.CONSUMER, context=parent):
            create_user(job.name)
    else:
        create_user(job.name, parent=job.parent)


class Pool:
    # Worker threads taking jobs off one queue until they are stopped.

    def __init__(self, size=2):
        self.jobs = queue.Queue()
        self._workers = [threading.Thread(target=self._work, name=f"worker-{n}") for n in range(size)]

    def __enter__(self):
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc_info):
        for _ in self._workers:
            self.jobs.put(None)
        for worker in self._workers:
            worker.join()

    def _work(self):
        for job in iter(self.jobs.get, None):
            try:
                handle(job)
            finally:
                self.jobs.task_done()


NAMES = ("ada", "grace")


def sign_up(pool, names=NAMES):
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        for name in names:
            pool.jobs.put(Job(name))
    pool.jobs.join()


def sign_up_carrying_the_context(pool):
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        for name in NAMES:
            pool.jobs.put(Job(name, context=contextvars.copy_context()))
    pool.jobs.join()


def sign_up_with_headers(pool):
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        for name in NAMES:
            with tracer.start_as_current_span("users send", kind=SpanKind.PRODUCER):
                headers = {}
                propagate.inject(headers)
                pool.jobs.put(Job(name, headers=headers))
    pool.jobs.join()


async def consume(inbox):
    while True:
        job = await inbox.get()
        try:
            handle(job)
        finally:
            inbox.task_done()


async def serve(carry):
    inbox = asyncio.Queue()
    # The consumer task exists before the request: it was created outside any span.
    consumer = asyncio.create_task(consume(inbox), name="consumer")
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        await inbox.put(Job("ada", parent=otel_context.get_current() if carry else None))
    await inbox.join()
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
"""

CONFTEST = """
import pytest
from app import Pool


@pytest.fixture(scope="session")
def pool():
    with Pool() as started:
        yield started
"""

LOST_IN_THE_QUEUE = (
    "[[]lost context] 'service.User.Create' started a new trace in {where}, but the work was handed over"
    " through*[Qq]ueue* from {spawner} while 'POST /users' was current: the context did not cross the boundary"
)
# Whatever the words, the fix is to carry the context in the job.
CARRY_IN_THE_JOB = "  fix: *context*job*"


@pytest.fixture
def app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(app=APP)
    pytester.makeconftest(CONFTEST)


@pytest.mark.usefixtures("app")
def test_jobs_that_carry_the_context(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import asyncio
        from pytest_tracechain import assert_remote_parent, assert_trace_tree
        from app import serve, sign_up_carrying_the_context, sign_up_with_headers

        def test_copied_context(tracechain, pool):
            sign_up_carrying_the_context(pool)
            assert_trace_tree(
                '''
                POST /users [server]
                  service.User.Create
                  service.User.Create
                '''
            )
            assert {tracechain.origin(span).thread_name for span in tracechain.find("service.User.Create")} <= {
                "worker-0", "worker-1"
            }

        def test_carrier_in_the_job(tracechain, pool):
            sign_up_with_headers(pool)
            assert_trace_tree(
                '''
                POST /users [server]
                  users send [producer]
                    users process [consumer]
                      service.User.Create
                  users send [producer]
                    users process [consumer]
                      service.User.Create
                '''
            )
            for span in tracechain.find("users process"):
                assert_remote_parent(span)

        def test_asyncio_queue(tracechain):
            asyncio.run(serve(carry=True))
            assert_trace_tree(
                '''
                POST /users [server]
                  service.User.Create
                '''
            )
            assert tracechain.origin("service.User.Create").task_name == "consumer"
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=3)


@pytest.mark.usefixtures("app")
def test_job_put_on_a_queue_without_the_context(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        from app import sign_up

        def test_sign_up(tracechain, pool):
            sign_up(pool, names=["ada"])
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_sign_up _*",
            "1 broken trace chain:",
            LOST_IN_THE_QUEUE.format(where="thread 'worker-?'", spawner="thread 'MainThread'"),
            CARRY_IN_THE_JOB,
            "",
            "captured in this test:",
            "trace * · 1 span",
            "└─ POST /users [[]server] · * · thread 'MainThread'",
            "trace * · 1 span",
            "└─ service.User.Create · * · thread 'worker-?'  ← lost context",
        ],
        consecutive=True,
    )


@pytest.mark.usefixtures("app")
def test_job_put_on_an_asyncio_queue_without_the_context(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        from app import serve

        def test_sign_up(tracechain):
            asyncio.run(serve(carry=False))
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_sign_up _*",
            "1 broken trace chain:",
            LOST_IN_THE_QUEUE.format(
                where="thread 'MainThread', task 'consumer'", spawner="thread 'MainThread', task 'Task-1'"
            ),
            CARRY_IN_THE_JOB,
            "",
            "captured in this test:",
            "trace * · 1 span",
            "└─ POST /users [[]server] · * · thread 'MainThread', task 'Task-1'",
            "trace * · 1 span",
            "└─ service.User.Create · * · thread 'MainThread', task 'consumer'  ← lost context",
        ],
        consecutive=True,
    )
