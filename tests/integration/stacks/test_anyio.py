"""AnyIO task groups and worker threads, on the asyncio backend and on trio.

The plugin records hand-offs at ``loop.create_task`` (asyncio only) and
``Thread.start``; trio tasks copy the spawner's context by nature, and both
backends' ``to_thread.run_sync`` run the function in a copy of the caller's
context. What has to hold on both: no finding for those, and a thread started
without the context is caught the same way on either backend.
"""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest
from tests.integration.stacks.conftest import NO_FINDINGS, assert_no_findings

APP = """
import threading

import anyio, anyio.to_thread
from opentelemetry import trace

tracer = trace.get_tracer("app")


def create_user():
    with tracer.start_as_current_span("service.User.Create"):
        pass


async def create_user_async():
    create_user()


async def handle_with_task_group():
    async with anyio.create_task_group() as tasks:
        with tracer.start_as_current_span("GET /hello"):
            tasks.start_soon(create_user_async)


async def handle_with_to_thread():
    with tracer.start_as_current_span("GET /hello"):
        await anyio.to_thread.run_sync(create_user)


async def create_user_in_a_thread():
    # A thread of its own, which starts with an empty context.
    worker = threading.Thread(target=create_user, name="user-worker")
    worker.start()
    await anyio.to_thread.run_sync(worker.join)


async def handle_with_task_starting_a_thread():
    async with anyio.create_task_group() as tasks:
        with tracer.start_as_current_span("GET /hello"):
            tasks.start_soon(create_user_in_a_thread)


def check_database():
    with tracer.start_as_current_span("db.ping"):
        pass


async def health_check():
    # Started outside any span: a trace of its own, rightly.
    await anyio.to_thread.run_sync(check_database)
"""

BACKENDS = '@pytest.mark.parametrize("backend", ["asyncio", "trio"])'


def test_task_groups_and_worker_threads_carry_the_context(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        f"""
        import anyio, pytest
        from pytest_tracechain import assert_child_of
        from app import handle_with_task_group, handle_with_to_thread

        {BACKENDS}
        def test_start_soon(tracechain, backend):
            anyio.run(handle_with_task_group, backend=backend)
            assert_child_of("service.User.Create", "GET /hello")
            assert tracechain.origin("service.User.Create").thread_name == "MainThread"

        {BACKENDS}
        def test_to_thread(tracechain, backend):
            anyio.run(handle_with_to_thread, backend=backend)
            assert_child_of("service.User.Create", "GET /hello")
            assert tracechain.origin("service.User.Create").thread_name != "MainThread"
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=4)


def test_thread_started_in_a_task_without_the_context(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        f"""
        import anyio, pytest
        from app import handle_with_task_starting_a_thread

        {BACKENDS}
        def test_start_soon(tracechain, backend):
            anyio.run(handle_with_task_starting_a_thread, backend=backend)
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=2)
    lost = (
        "[[]lost context] 'service.User.Create' started a new trace in thread 'user-worker', but the work was"
        " handed over through a thread* from thread 'MainThread'{} while 'GET /hello' was current: the context"
        " did not cross the boundary"
    )
    fix = "  fix: start the thread with contextvars.copy_context().run*"
    # On asyncio the spawner is the AnyIO task (named after its function) ...
    result.stdout.fnmatch_lines(
        [
            "*_ test_start_soon[[]asyncio] _*",
            "1 broken trace chain:",
            lost.format(", task 'app.create_user_in_a_thread'"),
            fix,
            "",
            "captured in this test:",
            "trace * · 1 span",
            "└─ GET /hello · * · thread 'MainThread', task 'app.handle_with_task_starting_a_thread'",
            "trace * · 1 span",
            "└─ service.User.Create · * · thread 'user-worker'  ← lost context",
        ],
        consecutive=True,
    )
    # ... on trio there are no asyncio tasks to name: only the thread.
    result.stdout.fnmatch_lines(
        [
            "*_ test_start_soon[[]trio] _*",
            "1 broken trace chain:",
            lost.format(""),
            fix,
            "",
            "captured in this test:",
            "trace * · 1 span",
            "└─ GET /hello · * · thread 'MainThread'",
            "trace * · 1 span",
            "└─ service.User.Create · * · thread 'user-worker'  ← lost context",
        ],
        consecutive=True,
    )


def test_untraced_job_in_a_reused_worker_thread(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        f"""
        import anyio, pytest
        from pytest_tracechain import assert_root
        from app import handle_with_to_thread, health_check

        {BACKENDS}
        def test_request_then_health_check(tracechain, backend):
            async def serve():
                await handle_with_to_thread()  # starts the worker thread while 'GET /hello' is current
                await health_check()  # in the same worker thread, with no span current
            anyio.run(serve, backend=backend)
            assert tracechain.origin("db.ping").thread_id == tracechain.origin("service.User.Create").thread_id
            assert_root("db.ping")

        def test_health_check_in_the_next_test(tracechain):
            # trio keeps its worker threads for the process, between tests and event loops
            anyio.run(health_check, backend="trio")
            assert_root("db.ping")
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS, "-p", "no:randomly"), passed=3)
