"""A request handler that accepts a request and leaves the work to the background.

Every handler opens the request's SERVER span and hands ``create_user`` to some
other unit of execution. The ``*_lost`` and ``*_tied`` handlers show the two
classic mistakes; the others show the fix for each kind of hand-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

tracer = trace.get_tracer(__name__)

ACCEPTED = "202 Accepted"


# --8<-- [start:service]
def create_user(name: str, parent: context.Context | None = None) -> None:
    """The slow part of the request; ``parent`` overrides the current context."""
    with tracer.start_as_current_span("service.User.Create", context=parent) as span:
        span.set_attribute("user.name", name)


# --8<-- [end:service]


# --8<-- [start:thread-lost]
def hello_thread_lost(name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        # A new thread starts with an empty context: create_user opens a new trace.
        threading.Thread(target=create_user, args=(name,), name="create-user").start()
        return ACCEPTED


# --8<-- [end:thread-lost]
# --8<-- [start:thread]
def hello_thread(name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        request_context = contextvars.copy_context()
        threading.Thread(
            target=request_context.run, args=(create_user, name), name="create-user"
        ).start()
        return ACCEPTED


# --8<-- [end:thread]


# --8<-- [start:pool-lost]
def hello_pool_lost(executor: Executor, name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        # Pool threads run jobs in their own context, not the submitter's.
        executor.submit(create_user, name)
        return ACCEPTED


# --8<-- [end:pool-lost]
# --8<-- [start:pool]
def hello_pool(executor: Executor, name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        # Hand over the trace only: the job's span gets the request's span as parent.
        executor.submit(create_user, name, parent=context.get_current())
        return ACCEPTED


# --8<-- [end:pool]


# --8<-- [start:task-service]
class SlowDatabase:
    """A database that answers only when the test says so."""

    def __init__(self) -> None:
        self._answered = asyncio.Event()

    async def insert(self, name: str) -> None:
        await self._answered.wait()

    def answer(self) -> None:
        self._answered.set()


async def create_user_async(db: SlowDatabase, name: str) -> None:
    with tracer.start_as_current_span("service.User.Create") as span:
        span.set_attribute("user.name", name)
        try:
            await db.insert(name)
        except asyncio.CancelledError as cancelled:
            # For trace viewers: a span records only Exception subclasses by itself.
            span.record_exception(cancelled)
            span.set_status(StatusCode.ERROR, "cancelled")
            raise


# --8<-- [end:task-service]
# --8<-- [start:task-server]
class Request:
    """What a framework hands a handler: tasks spawned on it end with the request."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        self._tasks.add(asyncio.create_task(work, name=name))

    async def send(self, response: str) -> None:
        # Writing to the client's socket gives the event loop a turn.
        await asyncio.sleep(0)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def serve(handler: Any, path: str, *args: Any) -> str:
    """Run one request the way a server does: handle, send the response, close."""
    request = Request(path)
    response: str = await handler(request, *args)
    await request.send(response)
    await request.close()
    return response


# --8<-- [end:task-server]
# --8<-- [start:task-tied]
async def hello_task_tied(request: Request, db: SlowDatabase, name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        # Same trace, but the job dies with the request, like Go's `go job(ctx)`.
        request.spawn(create_user_async(db, name), name="create-user")
        return ACCEPTED


# --8<-- [end:task-tied]
# --8<-- [start:task]
# Keep a reference to fire-and-forget tasks, or they may be garbage collected mid-way.
background_tasks: set[asyncio.Task[None]] = set()


async def hello_task(request: Request, db: SlowDatabase, name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        # create_task copies the current context, so the job stays in the request's
        # trace; holding it outside the request decouples its lifetime.
        task = asyncio.create_task(create_user_async(db, name), name="create-user")
        background_tasks.add(task)
        task.add_done_callback(background_tasks.discard)
        return ACCEPTED


# --8<-- [end:task]


# --8<-- [start:offload-lost]
async def hello_offload_lost(name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        # run_in_executor does not copy the context into the executor's thread.
        await asyncio.get_running_loop().run_in_executor(None, create_user, name)
        return "201 Created"


# --8<-- [end:offload-lost]
# --8<-- [start:offload]
async def hello_offload(name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        # to_thread runs the function in a copy of the current context.
        await asyncio.to_thread(create_user, name)
        return "201 Created"


# --8<-- [end:offload]


# --8<-- [start:job]
@dataclass
class Job:
    """A unit of work for a worker; the sender decides how it carries the trace."""

    name: str
    context: contextvars.Context | None = None  # a copy of the sender's context
    headers: dict[str, str] = field(default_factory=dict)  # or the context, injected


def handle(job: Job) -> None:
    """What a worker does with a job."""
    if job.context is not None:
        job.context.run(create_user, job.name)  # in the sender's context
    elif job.headers:
        parent = propagate.extract(job.headers)  # continue the sender's trace
        with tracer.start_as_current_span(
            "users.create process", kind=SpanKind.CONSUMER, context=parent
        ):
            create_user(job.name)
    else:
        create_user(job.name)  # in the worker's own context


# --8<-- [end:job]
# --8<-- [start:worker-pool]
class WorkerPool:
    """Worker threads, started once at start-up, that take jobs off one queue."""

    def __init__(self, size: int = 2) -> None:
        self.jobs: queue.Queue[Job | None] = queue.Queue()  # None stops a worker
        self._workers = [
            threading.Thread(target=self._work, name=f"worker-{n}") for n in range(size)
        ]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        for _ in self._workers:
            self.jobs.put(None)
        for worker in self._workers:
            worker.join()

    def _work(self) -> None:
        for job in iter(self.jobs.get, None):
            try:
                handle(job)
            finally:
                self.jobs.task_done()


# --8<-- [end:worker-pool]
# --8<-- [start:queue-lost]
def hello_queue_lost(pool: WorkerPool, name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        # The job holds the name only: the worker runs it in its own, empty context.
        pool.jobs.put(Job(name))
        return ACCEPTED


# --8<-- [end:queue-lost]
# --8<-- [start:queue]
def hello_queue(pool: WorkerPool, name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        # A copy of the request's context goes with the job; the worker runs it there.
        pool.jobs.put(Job(name, context=contextvars.copy_context()))
        return ACCEPTED


# --8<-- [end:queue]
# --8<-- [start:queue-headers]
def hello_queue_headers(pool: WorkerPool, name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        job = Job(name)
        propagate.inject(job.headers)  # the context as text, as a message carries it
        pool.jobs.put(job)
        return ACCEPTED


# --8<-- [end:queue-headers]


# --8<-- [start:inbox]
async def consume(inbox: asyncio.Queue[Job]) -> None:
    """A consumer task, created at start-up, that handles what the handlers put in."""
    while True:
        job = await inbox.get()
        try:
            handle(job)
        finally:
            inbox.task_done()


async def serve_inbox(
    handler: Callable[[asyncio.Queue[Job], str], Awaitable[str]], name: str
) -> str:
    """Start the consumer, as the application does at start-up; take a request; stop."""
    inbox: asyncio.Queue[Job] = asyncio.Queue()
    consumer = asyncio.create_task(consume(inbox), name="consumer")  # no span current
    response = await handler(inbox, name)
    await inbox.join()
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    return response


# --8<-- [end:inbox]
# --8<-- [start:inbox-lost]
async def hello_inbox_lost(inbox: asyncio.Queue[Job], name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        await inbox.put(Job(name))  # the consumer task has a context of its own
        return ACCEPTED


# --8<-- [end:inbox-lost]
# --8<-- [start:inbox-fixed]
async def hello_inbox(inbox: asyncio.Queue[Job], name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        await inbox.put(Job(name, context=contextvars.copy_context()))
        return ACCEPTED


# --8<-- [end:inbox-fixed]
