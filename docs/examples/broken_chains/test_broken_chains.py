"""Every broken chain the plugin knows, found without a trace assertion, and its fix.

The module's marker puts every test in fail mode. A broken test fails when its
call ends; it is marked ``xfail(strict=True)`` so the suite stays green while
the failure is real. Unended spans and contexts never detached are found after
teardown, where xfail does not reach: those tests run in warn mode and show
the warning instead (see the broken-chains page).
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from chains import (
    FixedHooks,
    Hooks,
    Jobs,
    Message,
    ProfileCache,
    Query,
    TracedQuery,
    charge,
    charge_leaky,
    consume,
    consume_ignoring_headers,
    first_event,
    first_event_lost,
    import_users,
    import_users_lost,
    list_users,
    publish,
    publish_handmade,
    request_export,
    serve,
    serve_inbox,
    show_profile,
    sign_up_inbox,
    sign_up_inbox_lost,
    sign_up_isolated,
    sign_up_isolated_lost,
    sign_up_offload,
    sign_up_offload_lost,
    sign_up_pool,
    sign_up_pool_lost,
    sign_up_queue,
    sign_up_queue_lost,
    sign_up_soon,
    sign_up_soon_lost,
    sign_up_task,
    sign_up_task_lost,
    sign_up_thread,
    sign_up_thread_lost,
    start_scheduler,
    work,
)
from opentelemetry import trace

from pytest_tracechain import TraceAssertionError, TraceCapture, assert_chain_intact

# --8<-- [start:module-marker]
pytestmark = pytest.mark.tracechain(check="fail")
# --8<-- [end:module-marker]

# --8<-- [start:teardown-markers]
# Found after teardown, where xfail does not reach: warn instead of failing, and show
# the warning.
WARN = pytest.mark.tracechain(check="warn")
SHOW_WARNING = pytest.mark.filterwarnings(
    "default::pytest_tracechain.TraceChainWarning"
)
# --8<-- [end:teardown-markers]


# --8<-- [start:pool]
@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs") as executor:
        yield executor


# --8<-- [end:pool]

# -- lost context ----------------------------------------------------------------------


# --8<-- [start:thread-lost]
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="the thread starts a new trace"
)
def test_thread_lost(tracechain: TraceCapture) -> None:
    sign_up_thread_lost("ada")
    tracechain.wait_for("service.User.Create")


# --8<-- [end:thread-lost]
# --8<-- [start:thread]
def test_thread(tracechain: TraceCapture) -> None:
    sign_up_thread("ada")
    tracechain.wait_for("service.User.Create")


# --8<-- [end:thread]


# --8<-- [start:executor-lost]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the executor job starts a new trace",
)
def test_executor_lost(tracechain: TraceCapture, pool: ThreadPoolExecutor) -> None:
    sign_up_pool_lost(pool, "ada")
    tracechain.wait_for("service.User.Create")


# --8<-- [end:executor-lost]
# --8<-- [start:executor]
def test_executor(tracechain: TraceCapture, pool: ThreadPoolExecutor) -> None:
    sign_up_pool(pool, "ada")
    tracechain.wait_for("service.User.Create")


# --8<-- [end:executor]


# --8<-- [start:run-in-executor-lost]
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="run_in_executor drops the context"
)
def test_run_in_executor_lost() -> None:
    asyncio.run(sign_up_offload_lost("ada"))


# --8<-- [end:run-in-executor-lost]
# --8<-- [start:run-in-executor]
def test_run_in_executor() -> None:
    asyncio.run(sign_up_offload("ada"))


# --8<-- [end:run-in-executor]


# --8<-- [start:task-lost]
@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="create_task(context=) is new in Python 3.11"
)
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="the task runs in an empty context"
)
def test_task_lost() -> None:
    asyncio.run(sign_up_task_lost("ada"))


# --8<-- [end:task-lost]
# --8<-- [start:task]
def test_task() -> None:
    asyncio.run(sign_up_task("ada"))


# --8<-- [end:task]


# --8<-- [start:worker]
@pytest.fixture(scope="module")
def jobs() -> Iterator[Jobs]:
    """A worker thread started before the tests, as an application starts it."""
    jobs: Jobs = queue.Queue()
    worker = threading.Thread(target=work, args=(jobs,), name="worker")
    worker.start()
    yield jobs
    jobs.put(None)
    worker.join()


# --8<-- [end:worker]


# --8<-- [start:queue-lost]
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="the job has no context"
)
def test_queue_lost(tracechain: TraceCapture, jobs: Jobs) -> None:
    sign_up_queue_lost(jobs, "ada")
    tracechain.wait_for("service.User.Create")


# --8<-- [end:queue-lost]
# --8<-- [start:queue]
def test_queue(tracechain: TraceCapture, jobs: Jobs) -> None:
    sign_up_queue(jobs, "ada")
    tracechain.wait_for("service.User.Create")


# --8<-- [end:queue]


# --8<-- [start:inbox-lost]
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="the job has no context"
)
def test_inbox_lost() -> None:
    asyncio.run(serve_inbox(sign_up_inbox_lost))


# --8<-- [end:inbox-lost]
# --8<-- [start:inbox]
def test_inbox() -> None:
    asyncio.run(serve_inbox(sign_up_inbox))


# --8<-- [end:inbox]


# --8<-- [start:fresh-context-lost]
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="a new Context is empty"
)
def test_fresh_context_lost() -> None:
    sign_up_isolated_lost("ada")


# --8<-- [end:fresh-context-lost]
# --8<-- [start:fresh-context]
def test_copied_context() -> None:
    sign_up_isolated("ada")


# --8<-- [end:fresh-context]


# --8<-- [start:callback-context-lost]
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="the callback's context is empty"
)
def test_callback_context_lost() -> None:
    asyncio.run(sign_up_soon_lost("ada"))


# --8<-- [end:callback-context-lost]
# --8<-- [start:callback-context]
def test_callback_context() -> None:
    asyncio.run(sign_up_soon("ada"))


# --8<-- [end:callback-context]


# -- orphan ----------------------------------------------------------------------------


# --8<-- [start:orphan-lost]
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="the cache's span is never captured"
)
def test_orphan() -> None:
    show_profile(ProfileCache(), "ada")


# --8<-- [end:orphan-lost]
# --8<-- [start:orphan]
def test_one_provider() -> None:
    show_profile(ProfileCache(tracer_provider=trace.get_tracer_provider()), "ada")


# --8<-- [end:orphan]


# -- carriers --------------------------------------------------------------------------


# --8<-- [start:dropped]
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="the consumer ignores the headers"
)
def test_dropped_carrier() -> None:
    outbox: list[Message] = []
    publish(outbox, "order 1")
    consume_ignoring_headers(outbox.pop())


# --8<-- [end:dropped]
# --8<-- [start:carried]
def test_carrier() -> None:
    outbox: list[Message] = []
    publish(outbox, "order 1")
    consume(outbox.pop())


# --8<-- [end:carried]


# --8<-- [start:teardown-consumer]
def deliver(consumer: Callable[[Message], None]) -> Iterator[list[Message]]:
    """An outbox whose messages a consumer takes at teardown, as a broker's may."""
    outbox: list[Message] = []
    yield outbox
    for message in outbox:
        consumer(message)


@pytest.fixture
def headerless_outbox() -> Iterator[list[Message]]:
    yield from deliver(consume_ignoring_headers)


@pytest.fixture
def outbox() -> Iterator[list[Message]]:
    yield from deliver(consume)


# --8<-- [end:teardown-consumer]
# --8<-- [start:dropped-at-teardown]
@WARN
@SHOW_WARNING
def test_dropped_at_teardown(headerless_outbox: list[Message]) -> None:
    publish(headerless_outbox, "order 1")


# --8<-- [end:dropped-at-teardown]
# --8<-- [start:carried-at-teardown]
def test_carried_at_teardown(outbox: list[Message]) -> None:
    publish(outbox, "order 1")


# --8<-- [end:carried-at-teardown]


# --8<-- [start:stale]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="the header names a span nobody recorded",
)
def test_stale_carrier() -> None:
    outbox: list[Message] = []
    publish_handmade(outbox, "order 1")
    consume(outbox.pop())


# --8<-- [end:stale]


# -- unended and leaked spans ----------------------------------------------------------


# --8<-- [start:unended]
@WARN
@SHOW_WARNING
def test_unended() -> None:
    assert charge_leaky(0) == "rejected"


# --8<-- [end:unended]
# --8<-- [start:ended]
def test_ended() -> None:
    assert charge(0) == "rejected"


# --8<-- [end:ended]


# --8<-- [start:leaked]
@WARN
@SHOW_WARNING
def test_export_outlives_the_test() -> None:
    assert request_export("ada") == "202 Accepted"


# --8<-- [end:leaked]
# --8<-- [start:waited]
def test_export_within_the_test(tracechain: TraceCapture) -> None:
    assert request_export("grace") == "202 Accepted"
    [export] = tracechain.wait_for("report.export")
    assert export.attributes == {
        "user.name": "grace"
    }  # ada's export never shows up here


# --8<-- [end:waited]


# -- scope leaks -----------------------------------------------------------------------


# --8<-- [start:callback-lost]
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="detached on another thread"
)
def test_detached_in_another_thread() -> None:
    list_users(Query())


# --8<-- [end:callback-lost]
# --8<-- [start:callback]
def test_span_without_attach() -> None:
    list_users(TracedQuery())


# --8<-- [end:callback]


# --8<-- [start:stream-lost]
@pytest.mark.xfail(
    strict=True,
    raises=TraceAssertionError,
    reason="asyncio closes the generator elsewhere",
)
def test_async_generator_closed_elsewhere() -> None:
    assert asyncio.run(first_event_lost()) == "created"


# --8<-- [end:stream-lost]
# --8<-- [start:stream-closed]
def test_async_generator_closed_in_place() -> None:
    assert asyncio.run(first_event()) == "created"


# --8<-- [end:stream-closed]


# --8<-- [start:never-detached]
@WARN
@SHOW_WARNING
def test_never_detached() -> None:
    assert serve(Hooks(), "/broken") == "500 Internal Server Error"


# --8<-- [end:never-detached]
# --8<-- [start:detached]
def test_detached_on_every_path() -> None:
    assert serve(FixedHooks(), "/broken") == "500 Internal Server Error"
    assert serve(FixedHooks(), "/hello") == "200 OK"


# --8<-- [end:detached]


# -- single trace ----------------------------------------------------------------------


# --8<-- [start:single-trace-lost]
@pytest.mark.tracechain(check="fail", single_trace=True)
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="every user is a trace of its own"
)
def test_import_in_several_traces() -> None:
    import_users_lost(["ada", "grace"])


# --8<-- [end:single-trace-lost]
# --8<-- [start:single-trace]
@pytest.mark.tracechain(check="fail", single_trace=True)
def test_import_in_one_trace() -> None:
    import_users(["ada", "grace"])


# --8<-- [end:single-trace]


# -- new traces on purpose -------------------------------------------------------------


# --8<-- [start:lost-context-off]
@pytest.mark.tracechain(check="fail", lost_context=False)
def test_scheduler_starts_new_traces(tracechain: TraceCapture) -> None:
    start_scheduler(ticks=3).join()
    assert len(tracechain.traces()) == 4  # app.startup, and one per tick


# --8<-- [end:lost-context-off]


# -- on demand -------------------------------------------------------------------------


# --8<-- [start:on-demand-lost]
@pytest.mark.tracechain(check="off")
@pytest.mark.xfail(
    strict=True, raises=TraceAssertionError, reason="the consumer ignores the headers"
)
def test_on_demand_lost() -> None:
    outbox: list[Message] = []
    publish(outbox, "order 1")
    consume_ignoring_headers(outbox.pop())
    assert_chain_intact()


# --8<-- [end:on-demand-lost]
# --8<-- [start:on-demand]
@pytest.mark.tracechain(check="off")
def test_on_demand() -> None:
    outbox: list[Message] = []
    publish(outbox, "order 1")
    assert_chain_intact()  # mid-test: nothing is broken yet
    consume(outbox.pop())
    assert_chain_intact()


# --8<-- [end:on-demand]
