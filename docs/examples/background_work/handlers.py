"""A request handler that accepts a request and leaves the work to run in the background.

Every handler opens the request's SERVER span and hands ``create_user`` to some
other unit of execution. The ``*_lost`` and ``*_tied`` handlers show the two
classic mistakes; the others show the fix for each kind of hand-off.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from concurrent.futures import Executor
from typing import Any

from opentelemetry import context, trace
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
        threading.Thread(target=request_context.run, args=(create_user, name), name="create-user").start()
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
            # Let trace viewers show it: spans record only Exception subclasses by themselves.
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
