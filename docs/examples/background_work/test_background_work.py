"""Background work must stay in the request's trace and outlive the request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from handlers import (
    SlowDatabase,
    WorkerPool,
    background_tasks,
    hello_inbox,
    hello_inbox_lost,
    hello_offload,
    hello_offload_lost,
    hello_pool,
    hello_pool_lost,
    hello_queue,
    hello_queue_headers,
    hello_queue_lost,
    hello_task,
    hello_task_tied,
    hello_thread,
    hello_thread_lost,
    serve,
    serve_inbox,
)

from pytest_tracechain import (
    TraceAssertionError,
    TraceCapture,
    assert_child_of,
    assert_outlives,
    assert_remote_parent,
    assert_same_trace,
)

# --8<-- [start:lost]
LOST = pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the job starts without the request's context: a new root trace",
)
# --8<-- [end:lost]


# --8<-- [start:executor]
@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="jobs") as pool:
        yield pool


# --8<-- [end:executor]


# --8<-- [start:thread]
def test_thread_job_joins_the_request_trace(tracechain: TraceCapture) -> None:
    hello_thread("ada")

    [job] = tracechain.wait_for("service.User.Create")
    assert_child_of(job, "GET /hello")
    assert tracechain.origin(job).thread_name == "create-user"


# --8<-- [end:thread]


# --8<-- [start:thread-lost]
@LOST
def test_thread_started_without_context(tracechain: TraceCapture) -> None:
    hello_thread_lost("ada")

    [job] = tracechain.wait_for("service.User.Create")
    assert_child_of(job, "GET /hello")


# --8<-- [end:thread-lost]


# --8<-- [start:pool]
def test_pool_job_joins_the_request_trace(
    tracechain: TraceCapture, executor: ThreadPoolExecutor
) -> None:
    hello_pool(executor, "ada")

    [job] = tracechain.wait_for("service.User.Create")
    assert_child_of(job, "GET /hello")


# --8<-- [end:pool]


# --8<-- [start:pool-lost]
@LOST
def test_pool_job_without_context(
    tracechain: TraceCapture, executor: ThreadPoolExecutor
) -> None:
    hello_pool_lost(executor, "ada")

    [job] = tracechain.wait_for("service.User.Create")
    assert_child_of(job, "GET /hello")


# --8<-- [end:pool-lost]


# --8<-- [start:task]
def test_task_outlives_the_request(tracechain: TraceCapture) -> None:
    async def scenario() -> None:
        db = SlowDatabase()
        await serve(hello_task, "/hello", db, "ada")
        db.answer()  # the database answers after the response was sent
        await asyncio.gather(*background_tasks)

    asyncio.run(scenario())

    job = tracechain.one("service.User.Create")
    assert_child_of(job, "GET /hello")
    assert_outlives(job, "GET /hello")
    assert tracechain.origin(job).task_name == "create-user"


# --8<-- [end:task]


# --8<-- [start:task-tied]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the task belongs to the request and is cancelled when the request ends",
)
def test_task_tied_to_the_request(tracechain: TraceCapture) -> None:
    async def scenario() -> None:
        db = SlowDatabase()
        await serve(hello_task_tied, "/hello", db, "ada")
        db.answer()

    asyncio.run(scenario())

    assert_same_trace("service.User.Create", "GET /hello")  # the trace is fine...
    assert_outlives("service.User.Create", "GET /hello")  # ...the lifetime is not


# --8<-- [end:task-tied]


# --8<-- [start:offload]
def test_offloaded_call_joins_the_request_trace(tracechain: TraceCapture) -> None:
    asyncio.run(hello_offload("ada"))

    assert_child_of("service.User.Create", "GET /hello")


# --8<-- [end:offload]


# --8<-- [start:offload-lost]
@LOST
def test_run_in_executor_without_context(tracechain: TraceCapture) -> None:
    asyncio.run(hello_offload_lost("ada"))

    assert_child_of("service.User.Create", "GET /hello")


# --8<-- [end:offload-lost]


# --8<-- [start:worker-pool]
@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    """Started before the tests, as an application starts its workers at start-up."""
    workers = WorkerPool()
    workers.start()
    yield workers
    workers.stop()


# --8<-- [end:worker-pool]


# --8<-- [start:queue-lost]
@LOST
def test_queued_job_without_context(tracechain: TraceCapture, pool: WorkerPool) -> None:
    hello_queue_lost(pool, "ada")

    [job] = tracechain.wait_for("service.User.Create")
    assert_child_of(job, "GET /hello")


# --8<-- [end:queue-lost]


# --8<-- [start:queue]
def test_queued_job_runs_in_the_request_context(
    tracechain: TraceCapture, pool: WorkerPool
) -> None:
    hello_queue(pool, "ada")

    [job] = tracechain.wait_for("service.User.Create")
    assert_child_of(job, "GET /hello")
    assert tracechain.origin(job).thread_name in {"worker-0", "worker-1"}


# --8<-- [end:queue]


# --8<-- [start:queue-headers]
def test_queued_job_continues_the_trace_of_its_headers(
    tracechain: TraceCapture, pool: WorkerPool
) -> None:
    hello_queue_headers(pool, "ada")

    [process] = tracechain.wait_for("users.create process")
    assert_child_of(process, "GET /hello")
    assert_remote_parent(process)
    assert_child_of("service.User.Create", process)


# --8<-- [end:queue-headers]


# --8<-- [start:inbox-lost]
@LOST
def test_inbox_job_without_context(tracechain: TraceCapture) -> None:
    asyncio.run(serve_inbox(hello_inbox_lost, "ada"))

    assert_child_of("service.User.Create", "GET /hello")


# --8<-- [end:inbox-lost]


# --8<-- [start:inbox-fixed]
def test_inbox_job_runs_in_the_request_context(tracechain: TraceCapture) -> None:
    asyncio.run(serve_inbox(hello_inbox, "ada"))

    assert_child_of("service.User.Create", "GET /hello")
    assert tracechain.origin("service.User.Create").task_name == "consumer"


# --8<-- [end:inbox-fixed]
