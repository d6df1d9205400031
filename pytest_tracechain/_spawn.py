"""Recording the span current where work is handed to another thread.

While a test is captured, ``threading.Thread.start``,
``ThreadPoolExecutor.submit`` (which ``loop.run_in_executor`` uses) and
``loop.create_task`` note the span that is current where the work is spawned. Nothing is propagated: the code
under test runs exactly as it would, context loss included; the record only
lets the chain analysis say that a root span in that thread or job lost its
spawner's trace. ProcessPoolExecutor is left alone (its jobs are pickled).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanContext

from pytest_tracechain._settings import Words

if TYPE_CHECKING:
    from concurrent.futures import Future

P = ParamSpec("P")
R = TypeVar("R")


class Boundary(Words):
    """Where work was handed to other code: each has its own words and fix."""

    THREAD = "thread"
    EXECUTOR = "executor"
    RUN_IN_EXECUTOR = "run_in_executor"
    TASK = "task"

    @property
    def label(self) -> str:
        """The boundary in a sentence: ``a thread``, ``loop.run_in_executor``."""
        return _LABELS[self]

    @property
    def fix(self) -> str:
        """How to carry the context across this boundary."""
        return _FIXES[self]


_LABELS = {
    Boundary.THREAD: "a thread",
    Boundary.EXECUTOR: "an executor job",
    Boundary.RUN_IN_EXECUTOR: "loop.run_in_executor",
    Boundary.TASK: "an asyncio task",
}
_FIXES = {
    Boundary.THREAD: "start the thread with contextvars.copy_context().run "
    "(Thread(target=ctx.run, args=(fn,))), or use the OpenTelemetry threading instrumentation",
    Boundary.EXECUTOR: "submit the job with contextvars.copy_context().run "
    "(executor.submit(ctx.run, fn)), or use the OpenTelemetry threading instrumentation",
    Boundary.RUN_IN_EXECUTOR: "use asyncio.to_thread (it copies the context), or "
    "loop.run_in_executor(None, contextvars.copy_context().run, fn)",
    Boundary.TASK: "create the task while the span is current and without an explicit context= "
    "(tasks copy the current context), or start the task's span with context= the request's context",
}


@dataclass(frozen=True, slots=True)
class Spawn:
    """Work handed over (``boundary``) while ``span_name`` was current in ``spawner``."""

    boundary: Boundary
    span_context: SpanContext
    span_name: str | None
    spawner: str  # "thread 'MainThread'", with ", task 'Task-1'" inside a task


# Bumped whenever a thread is renamed, so cached per-thread origins are refreshed.
renames = 0

_NOT_IN_JOB: Any = object()
_jobs = threading.local()
_ATTRIBUTE = "_tracechain_spawn"
_originals: dict[str, Any] = {}


# asyncio tasks (C objects) take no attributes: their records live here.
_tasks: weakref.WeakKeyDictionary[Any, Spawn] = weakref.WeakKeyDictionary()


def _no_loop() -> None:
    return None


# asyncio is not imported for the plugin's sake (it costs tens of milliseconds):
# these are bound by install() once the code under test has imported it. Before
# that no event loop can be running. ``asyncio_loaded`` lets hot paths skip the
# call altogether until then.
asyncio_loaded = False
running_loop: Callable[[], Any] = _no_loop
current_task: Callable[[], Any] = _no_loop


def running_task() -> Any:
    """The running asyncio task, or None (outside a loop, or before asyncio is loaded)."""
    return current_task() if asyncio_loaded and running_loop() is not None else None


def current() -> Spawn | None:
    """The spawn record of the running asyncio task, executor job, or thread."""
    if _tasks and running_loop() is not None:
        task = current_task()
        spawn = _tasks.get(task) if task is not None else None
        if spawn is not None:
            return spawn
    job = getattr(_jobs, "spawn", _NOT_IN_JOB)
    if job is not _NOT_IN_JOB:
        return job  # type: ignore[no-any-return]
    found: Spawn | None = getattr(threading.current_thread(), _ATTRIBUTE, None)
    return found


def _record(boundary: Boundary) -> Spawn | None:
    span = trace.get_current_span()
    context = span.get_span_context()
    if not context.is_valid:
        return None
    spawner = f"thread {threading.current_thread().name!r}"
    task = current_task() if running_loop() is not None else None
    if task is not None:
        spawner += f", task {task.get_name()!r}"
    return Spawn(boundary, context, getattr(span, "name", None), spawner)


def install(is_capturing: Callable[[], bool]) -> None:
    """Patch the spawn points whose modules are loaded; called at every test's setup.

    ``is_capturing`` says whether a test is captured now. Thread.start is
    patched at once; ThreadPoolExecutor.submit and loop.create_task when the
    code under test has imported concurrent.futures or asyncio (it normally
    has, at collection), so the plugin never imports them itself.
    """
    if "start" not in _originals:
        _patch_threads(is_capturing)
    if "submit" not in _originals and "concurrent.futures.thread" in sys.modules:
        _patch_executors(is_capturing)
    if "create_task" not in _originals and "asyncio.base_events" in sys.modules:
        _patch_tasks(is_capturing)


def _patch_threads(is_capturing: Callable[[], bool]) -> None:
    original_start = threading.Thread.start
    original_name: property = threading.Thread.__dict__["name"]

    def start(self: threading.Thread) -> None:
        if is_capturing():
            spawn = _record(Boundary.THREAD)
            if spawn is not None:
                setattr(self, _ATTRIBUTE, spawn)
        original_start(self)

    def set_name(self: threading.Thread, name: str) -> None:
        global renames
        assert original_name.fset is not None
        original_name.fset(self, name)
        renames += 1

    _originals["start"], _originals["name"] = original_start, original_name
    threading.Thread.start = start  # type: ignore[method-assign]
    threading.Thread.name = property(original_name.fget, set_name)  # type: ignore[assignment]


def _patch_executors(is_capturing: Callable[[], bool]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    original_submit = ThreadPoolExecutor.submit

    def submit(
        self: ThreadPoolExecutor, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]:
        if not is_capturing():
            return original_submit(self, fn, *args, **kwargs)
        # A job runs in a pool thread that may have been started for another
        # job: its own record (None too) takes precedence over the thread's.
        spawn = _record(Boundary.RUN_IN_EXECUTOR if running_loop() is not None else Boundary.EXECUTOR)

        def job(*job_args: P.args, **job_kwargs: P.kwargs) -> R:
            previous = getattr(_jobs, "spawn", _NOT_IN_JOB)
            _jobs.spawn = spawn
            try:
                return fn(*job_args, **job_kwargs)
            finally:
                _jobs.spawn = previous

        return original_submit(self, job, *args, **kwargs)

    _originals["submit"] = original_submit
    ThreadPoolExecutor.submit = submit  # type: ignore[method-assign, assignment]


def _patch_tasks(is_capturing: Callable[[], bool]) -> None:
    global running_loop, current_task, asyncio_loaded
    import asyncio

    running_loop, current_task = asyncio._get_running_loop, asyncio.current_task
    asyncio_loaded = True
    original_create_task = asyncio.BaseEventLoop.create_task

    def create_task(self: asyncio.BaseEventLoop, coro: Any, *args: Any, **kwargs: Any) -> Any:
        task = original_create_task(self, coro, *args, **kwargs)
        if is_capturing():
            spawn = _record(Boundary.TASK)
            if spawn is not None:
                _tasks[task] = spawn
        return task

    _originals["create_task"] = original_create_task
    asyncio.BaseEventLoop.create_task = create_task  # type: ignore[method-assign]


def uninstall() -> None:
    """Undo every patch (the asyncio helpers stay bound: they are only read)."""
    if "start" in _originals:
        threading.Thread.start = _originals.pop("start")  # type: ignore[method-assign]
        threading.Thread.name = _originals.pop("name")
    if "submit" in _originals:
        from concurrent.futures import ThreadPoolExecutor

        ThreadPoolExecutor.submit = _originals.pop("submit")  # type: ignore[method-assign]
    if "create_task" in _originals:
        import asyncio

        asyncio.BaseEventLoop.create_task = _originals.pop("create_task")  # type: ignore[method-assign]
