"""Code that breaks trace chains, one defect at a time, each next to its fix.

Nothing here raises or misbehaves: the code works, and only the traces are
wrong. ``test_broken_chains.py`` shows how pytest-tracechain's
chain check finds each defect without a single trace assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind

tracer = trace.get_tracer(__name__)


# --8<-- [start:service]
def create_user(name: str) -> None:
    with tracer.start_as_current_span("service.User.Create") as span:
        span.set_attribute("user.name", name)


async def create_user_async(name: str) -> None:
    create_user(name)


# --8<-- [end:service]


# -- lost context ----------------------------------------------------------------------


# --8<-- [start:thread-lost]
def sign_up_thread_lost(name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # A new thread starts with an empty context.
        threading.Thread(target=create_user, args=(name,), name="create-user").start()


# --8<-- [end:thread-lost]
# --8<-- [start:thread]
def sign_up_thread(name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        ctx = contextvars.copy_context()
        threading.Thread(
            target=ctx.run, args=(create_user, name), name="create-user"
        ).start()


# --8<-- [end:thread]


# --8<-- [start:executor-lost]
def sign_up_pool_lost(pool: Executor, name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # The job runs in the pool thread's context, not the submitter's.
        pool.submit(create_user, name)


# --8<-- [end:executor-lost]
# --8<-- [start:executor]
def sign_up_pool(pool: Executor, name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        pool.submit(contextvars.copy_context().run, create_user, name)


# --8<-- [end:executor]


# --8<-- [start:run-in-executor-lost]
async def sign_up_offload_lost(name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # run_in_executor does not copy the context into the executor's thread.
        await asyncio.get_running_loop().run_in_executor(None, create_user, name)


# --8<-- [end:run-in-executor-lost]
# --8<-- [start:run-in-executor]
async def sign_up_offload(name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        await asyncio.to_thread(create_user, name)  # runs in a copy of the context


# --8<-- [end:run-in-executor]


# --8<-- [start:task-lost]
async def sign_up_task_lost(name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # An empty context keeps request-scoped state out of the job, and the trace too.
        await asyncio.create_task(
            create_user_async(name), context=contextvars.Context()
        )


# --8<-- [end:task-lost]
# --8<-- [start:task]
async def sign_up_task(name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        await asyncio.create_task(create_user_async(name))  # copies the current context


# --8<-- [end:task]


# --8<-- [start:queue-lost]
Job = Callable[[], None]
Jobs = queue.Queue[Job | None]  # None stops the worker


def work(jobs: Jobs) -> None:
    """A worker thread's loop, started at start-up: it runs the jobs it takes off."""
    for job in iter(jobs.get, None):
        job()
        jobs.task_done()


def sign_up_queue_lost(jobs: Jobs, name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # The worker runs the job in its own context, not the sender's.
        jobs.put(functools.partial(create_user, name))


# --8<-- [end:queue-lost]
# --8<-- [start:queue]
def sign_up_queue(jobs: Jobs, name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        ctx = contextvars.copy_context()  # goes with the job
        jobs.put(functools.partial(ctx.run, create_user, name))


# --8<-- [end:queue]


# --8<-- [start:inbox-lost]
Inbox = asyncio.Queue[Job]


async def consume_jobs(inbox: Inbox) -> None:
    """A consumer task, created before any request: it has a context of its own."""
    while True:
        job = await inbox.get()
        job()
        inbox.task_done()


async def sign_up_inbox_lost(inbox: Inbox, name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        await inbox.put(functools.partial(create_user, name))


# --8<-- [end:inbox-lost]
# --8<-- [start:inbox]
async def sign_up_inbox(inbox: Inbox, name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        ctx = contextvars.copy_context()
        await inbox.put(functools.partial(ctx.run, create_user, name))


# --8<-- [end:inbox]
# --8<-- [start:serve-inbox]
async def serve_inbox(sign_up: Callable[[Inbox, str], Awaitable[None]]) -> None:
    """Start the consumer, as the application does at start-up; take a request; stop."""
    inbox: Inbox = asyncio.Queue()
    consumer = asyncio.create_task(consume_jobs(inbox), name="consumer")
    await sign_up(inbox, "ada")
    await inbox.join()
    consumer.cancel()


# --8<-- [end:serve-inbox]


# --8<-- [start:fresh-context-lost]
def sign_up_isolated_lost(name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # A new Context keeps the job's context variables apart, and the trace out.
        contextvars.Context().run(create_user, name)


# --8<-- [end:fresh-context-lost]
# --8<-- [start:fresh-context]
def sign_up_isolated(name: str) -> None:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # A copy isolates as well: what the job sets stays in the copy.
        contextvars.copy_context().run(create_user, name)


# --8<-- [end:fresh-context]


# --8<-- [start:callback-context-lost]
async def sign_up_soon_lost(name: str) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def create() -> None:
        create_user(name)
        done.set_result(None)

    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # The callback runs in the context it is given: an empty one.
        loop.call_soon(create, context=contextvars.Context())
    await done


# --8<-- [end:callback-context-lost]
# --8<-- [start:callback-context]
async def sign_up_soon(name: str) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def create() -> None:
        create_user(name)
        done.set_result(None)

    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        loop.call_soon(create)  # runs in a copy of the current context
    await done


# --8<-- [end:callback-context]


# -- orphan ----------------------------------------------------------------------------


# --8<-- [start:orphan-cache]
class ProfileCache:
    """A cache client library with tracing built in."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        # Without a provider it sets up its own, which the application never sees.
        self._tracer = (tracer_provider or TracerProvider()).get_tracer("profile-cache")
        self._profiles: dict[str, dict[str, str]] = {}

    def get(self, user: str, load: Callable[[str], dict[str, str]]) -> dict[str, str]:
        with self._tracer.start_as_current_span("cache.get", kind=SpanKind.CLIENT):
            if user not in self._profiles:
                self._profiles[user] = load(user)
            return self._profiles[user]


def load_profile(user: str) -> dict[str, str]:
    with tracer.start_as_current_span("db.load_profile"):
        return {"name": user}


def show_profile(cache: ProfileCache, user: str) -> dict[str, str]:
    with tracer.start_as_current_span("GET /profile", kind=SpanKind.SERVER):
        return cache.get(user, load_profile)


# --8<-- [end:orphan-cache]


# -- carriers --------------------------------------------------------------------------


# --8<-- [start:message]
@dataclass
class Message:
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def consume(message: Message) -> None:
    parent = propagate.extract(message.headers)
    with tracer.start_as_current_span(
        "orders process", kind=SpanKind.CONSUMER, context=parent
    ):
        pass


# --8<-- [end:message]


# --8<-- [start:dropped]
def consume_ignoring_headers(message: Message) -> None:
    # The headers are never read: this span starts a trace of its own.
    with tracer.start_as_current_span("orders process", kind=SpanKind.CONSUMER):
        pass


# --8<-- [end:dropped]


# --8<-- [start:publish]
def publish(outbox: list[Message], body: str) -> None:
    with tracer.start_as_current_span("orders send", kind=SpanKind.PRODUCER):
        message = Message(body)
        propagate.inject(message.headers)  # while the PRODUCER span is current
        outbox.append(message)


# --8<-- [end:publish]


# --8<-- [start:stale]
def publish_handmade(outbox: list[Message], body: str) -> None:
    with tracer.start_as_current_span("orders send", kind=SpanKind.PRODUCER) as span:
        # Only the trace id is carried over; the span id is made up.
        trace_id = span.get_span_context().trace_id
        traceparent = f"00-{trace_id:032x}-{secrets.randbits(64):016x}-01"
        outbox.append(Message(body, {"traceparent": traceparent}))


# --8<-- [end:stale]


# -- unended and leaked spans ----------------------------------------------------------


# --8<-- [start:unended]
def charge_leaky(amount: int) -> str:
    span = tracer.start_span("payment.charge", kind=SpanKind.CLIENT)
    if amount <= 0:
        return "rejected"  # this path never ends the span
    span.set_attribute("payment.amount", amount)
    span.end()
    return "charged"


# --8<-- [end:unended]
# --8<-- [start:ended]
def charge(amount: int) -> str:
    with tracer.start_as_current_span("payment.charge", kind=SpanKind.CLIENT) as span:
        if amount <= 0:
            return "rejected"
        span.set_attribute("payment.amount", amount)
        return "charged"


# --8<-- [end:ended]


# --8<-- [start:export]
# One export at a time: jobs queue up in a single worker thread.
exports = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exporter")
EXPORT_SECONDS = 0.05


def request_export(user: str) -> str:
    with tracer.start_as_current_span("POST /exports", kind=SpanKind.SERVER):
        # The span covers the whole export, from acceptance to the end of the job.
        job = tracer.start_span("report.export", attributes={"user.name": user})
        exports.submit(run_export, job)
        return "202 Accepted"


def run_export(job: Span) -> None:
    with trace.use_span(job, end_on_exit=True):
        time.sleep(EXPORT_SECONDS)


# --8<-- [end:export]


# -- scope leaks -----------------------------------------------------------------------


# --8<-- [start:callback-lost]
class Query:
    """A callback-style database client: ``on_done`` runs on the driver's I/O thread."""

    def on_start(self) -> None:
        self.span = tracer.start_span("db.query", kind=SpanKind.CLIENT)
        # Make it current, so that what the driver does next nests under it.
        self.token = context.attach(trace.set_span_in_context(self.span))

    def on_done(self) -> None:
        context.detach(self.token)  # another thread: OpenTelemetry cannot detach it
        self.span.end()


# --8<-- [end:callback-lost]
# --8<-- [start:callback]
class TracedQuery(Query):
    """Keeps the span, never the context: nothing to detach, on any thread."""

    def on_start(self) -> None:
        self.span = tracer.start_span("db.query", kind=SpanKind.CLIENT)

    def on_done(self) -> None:
        self.span.end()


# --8<-- [end:callback]
# --8<-- [start:list-users]
def list_users(query: Query) -> None:
    with tracer.start_as_current_span("GET /users", kind=SpanKind.SERVER):
        query.on_start()
        io_thread = threading.Thread(target=query.on_done, name="db-io")
        io_thread.start()
        io_thread.join()


# --8<-- [end:list-users]


# --8<-- [start:stream]
async def order_events() -> AsyncIterator[str]:
    with tracer.start_as_current_span("orders stream"):  # current across every yield
        yield "created"
        yield "paid"


# --8<-- [end:stream]
# --8<-- [start:stream-lost]
async def first_event_lost() -> str:
    async for event in order_events():
        return event  # abandons the generator inside its span
    return "none"


# --8<-- [end:stream-lost]
# --8<-- [start:stream-closed]
async def first_event() -> str:
    async with contextlib.aclosing(order_events()) as events:
        async for event in events:
            return event  # aclosing closes the generator here, in this task
    return "none"


# --8<-- [end:stream-closed]


# --8<-- [start:hooks-lost]
class Hooks:
    """A small framework's request hooks: ``before``, then ``after`` or ``on_error``."""

    def before(self, path: str) -> None:
        self.span = tracer.start_span(f"GET {path}", kind=SpanKind.SERVER)
        self.token = context.attach(trace.set_span_in_context(self.span))

    def after(self) -> None:
        context.detach(self.token)
        self.span.end()

    def on_error(self, error: Exception) -> None:
        self.span.record_exception(error)
        self.span.end()  # forgets to detach: the span stays current


# --8<-- [end:hooks-lost]
# --8<-- [start:hooks]
class FixedHooks(Hooks):
    def on_error(self, error: Exception) -> None:
        self.span.record_exception(error)
        self.after()  # detach and end, like the success path


# --8<-- [end:hooks]


# --8<-- [start:serve]
def serve(hooks: Hooks, path: str) -> str:
    hooks.before(path)
    try:
        if path == "/broken":
            raise ValueError("no such page")
    except ValueError as error:
        hooks.on_error(error)
        return "500 Internal Server Error"
    hooks.after()
    return "200 OK"


# --8<-- [end:serve]


# -- single trace ----------------------------------------------------------------------


# --8<-- [start:import-lost]
def import_users_lost(names: list[str]) -> None:
    batch = tracer.start_span("import users")  # started, but never made current
    for name in names:
        create_user(name)  # so each user is a trace of its own
    batch.end()


# --8<-- [end:import-lost]
# --8<-- [start:import]
def import_users(names: list[str]) -> None:
    with tracer.start_as_current_span("import users"):
        for name in names:
            create_user(name)


# --8<-- [end:import]


# -- new traces on purpose -------------------------------------------------------------


# --8<-- [start:scheduler]
def start_scheduler(ticks: int) -> threading.Thread:
    """Runs periodic jobs; each tick is a trace of its own, by design."""

    def run() -> None:
        for tick in range(ticks):
            with tracer.start_as_current_span(
                "scheduler.tick", attributes={"tick": tick}
            ):
                pass

    with tracer.start_as_current_span("app.startup"):
        scheduler = threading.Thread(target=run, name="scheduler")
        scheduler.start()
    return scheduler


# --8<-- [end:scheduler]
