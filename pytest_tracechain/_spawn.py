"""Recording the span current where work is handed to another thread.

While a test is captured, ``threading.Thread.start`` and
``ThreadPoolExecutor.submit`` (which ``loop.run_in_executor`` uses) note the
span that is current in the spawning thread. Nothing is propagated: the code
under test runs exactly as it would, context loss included; the record only
lets the chain analysis say that a root span in that thread or job lost its
spawner's trace. ProcessPoolExecutor is left alone (its jobs are pickled).
"""

from __future__ import annotations

import threading
from asyncio import _get_running_loop as _running_loop
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanContext

P = ParamSpec("P")
R = TypeVar("R")

THREAD = "thread"
EXECUTOR = "executor"
RUN_IN_EXECUTOR = "run_in_executor"


@dataclass(frozen=True, slots=True)
class Spawn:
    """Work handed to another thread while ``span_name`` was current in ``spawner_thread``."""

    boundary: str  # THREAD, EXECUTOR or RUN_IN_EXECUTOR
    span_context: SpanContext
    span_name: str | None
    spawner_thread: str


_NOT_IN_JOB: Any = object()
_jobs = threading.local()
_ATTRIBUTE = "_tracechain_spawn"
_originals: dict[str, Any] = {}


def current() -> Spawn | None:
    """The spawn record of the running executor job, else of the running thread."""
    job = getattr(_jobs, "spawn", _NOT_IN_JOB)
    if job is not _NOT_IN_JOB:
        return job  # type: ignore[no-any-return]
    found: Spawn | None = getattr(threading.current_thread(), _ATTRIBUTE, None)
    return found


def _record(boundary: str) -> Spawn | None:
    span = trace.get_current_span()
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return Spawn(boundary, context, getattr(span, "name", None), threading.current_thread().name)


def install(is_capturing: Callable[[], bool]) -> None:
    """Patch the spawn points; ``is_capturing`` says whether a test is captured now."""
    if _originals:
        return
    original_start = threading.Thread.start
    original_submit = ThreadPoolExecutor.submit

    def start(self: threading.Thread) -> None:
        if is_capturing():
            spawn = _record(THREAD)
            if spawn is not None:
                setattr(self, _ATTRIBUTE, spawn)
        original_start(self)

    def submit(
        self: ThreadPoolExecutor, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]:
        if not is_capturing():
            return original_submit(self, fn, *args, **kwargs)
        # A job runs in a pool thread that may have been started for another
        # job: its own record (None too) takes precedence over the thread's.
        spawn = _record(RUN_IN_EXECUTOR if _running_loop() is not None else EXECUTOR)

        def job(*job_args: P.args, **job_kwargs: P.kwargs) -> R:
            previous = getattr(_jobs, "spawn", _NOT_IN_JOB)
            _jobs.spawn = spawn
            try:
                return fn(*job_args, **job_kwargs)
            finally:
                _jobs.spawn = previous

        return original_submit(self, job, *args, **kwargs)

    _originals["start"] = original_start
    _originals["submit"] = original_submit
    threading.Thread.start = start  # type: ignore[method-assign]
    ThreadPoolExecutor.submit = submit  # type: ignore[method-assign, assignment]


def uninstall() -> None:
    if not _originals:
        return
    threading.Thread.start = _originals.pop("start")  # type: ignore[method-assign]
    ThreadPoolExecutor.submit = _originals.pop("submit")  # type: ignore[method-assign]
