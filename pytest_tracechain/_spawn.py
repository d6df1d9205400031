"""Recording the span current where work is handed to other code.

While a test is captured, the hand-off points note the span that is current
where the work is handed over, and where in user code that happened:
``threading.Thread.start``, ``ThreadPoolExecutor.submit`` (and
``loop.run_in_executor``, which uses it), ``loop.create_task``, a ``put`` on
``queue.Queue``/``queue.SimpleQueue``/``asyncio.Queue`` (taken up by the
consumer's ``get``), a loop callback given a ``context=`` without the span,
``gevent.spawn``, and every ``inject`` into a carrier. Nothing is propagated:
the code under test runs exactly as it would, context loss included; the
records only let the chain analysis say that a root span in that work lost
its spawner's trace, or that a receiver dropped what was injected.
ProcessPoolExecutor is left alone (its jobs are pickled).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanContext

from pytest_tracechain._settings import Words
from pytest_tracechain._sites import is_machinery_code, user_site

if TYPE_CHECKING:
    from concurrent.futures import Future

P = ParamSpec("P")
R = TypeVar("R")

_CARRY_IN_JOB = (
    "carry the context in the job: put contextvars.copy_context() in it and run the handler with "
    "ctx.run(handler, job), or inject the context into a carrier in the job and start the worker's "
    "span as a CONSUMER with context=opentelemetry.propagate.extract(carrier)"
)


class Boundary(Words):
    """Where work was handed to other code: each has its own words and fix."""

    THREAD = "thread"
    EXECUTOR = "executor"
    RUN_IN_EXECUTOR = "run_in_executor"
    TASK = "task"
    QUEUE = "queue"
    SIMPLE_QUEUE = "simple_queue"
    ASYNCIO_QUEUE = "asyncio_queue"
    FRESH_CONTEXT = "fresh_context"
    CALLBACK = "callback"
    GREENLET = "greenlet"

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
    Boundary.QUEUE: "a queue.Queue",
    Boundary.SIMPLE_QUEUE: "a queue.SimpleQueue",
    Boundary.ASYNCIO_QUEUE: "an asyncio.Queue",
    Boundary.FRESH_CONTEXT: "a new contextvars.Context (Context().run)",
    Boundary.CALLBACK: "a loop callback given context=",
    Boundary.GREENLET: "a greenlet (gevent.spawn)",
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
    Boundary.QUEUE: _CARRY_IN_JOB,
    Boundary.SIMPLE_QUEUE: _CARRY_IN_JOB,
    Boundary.ASYNCIO_QUEUE: _CARRY_IN_JOB,
    Boundary.FRESH_CONTEXT: "run the work in a copy of the current context, taken where the span is "
    "current (contextvars.copy_context().run(fn)), not in a new contextvars.Context()",
    Boundary.CALLBACK: "leave out context= (a callback runs in a copy of the current context), or pass "
    "contextvars.copy_context() taken while the span is current",
    Boundary.GREENLET: "greenlets start with an empty context: spawn with "
    "gevent.spawn(contextvars.copy_context().run, fn)",
}


@dataclass(frozen=True, slots=True)
class Spawn:
    """Work handed over (``boundary``) while ``span_name`` was current in ``spawner``."""

    boundary: Boundary
    span_context: SpanContext
    span_name: str | None
    spawner: str  # "thread 'MainThread'", with ", task 'Task-1'" inside a task
    where: str | None = None  # file:line in user code
    source: tuple[int, int] = (0, 0)  # the handing thread's ident, and id() of its asyncio task (or 0)
    owner: Any = field(default=None, compare=False, repr=False)  # a weak reference to the test's capture

    def spawned_by(self) -> object | None:
        """The capture of the test that handed the work over (None once it is gone)."""
        return self.owner() if self.owner is not None else None

    def at(self) -> str:
        """`` at app.py:12``: where in user code, or nothing when unknown."""
        return f" at {self.where}" if self.where else ""

    def described(self) -> str:
        """``a thread at app.py:12 from thread 'MainThread'``."""
        return f"{self.boundary.label}{self.at()} from {self.spawner}"


@dataclass(frozen=True, slots=True)
class Injection:
    """A span context injected into a carrier at ``where``, at ``time_ns`` (wall clock)."""

    span_context: SpanContext
    span_name: str | None
    where: str | None
    time_ns: int


# Bumped whenever a thread is renamed, so cached per-thread origins are refreshed.
renames = 0

_NOT_IN_JOB: Any = object()
# A queue item taken up that was put without a record: no hand-off to blame.
_UNRECORDED = Spawn(Boundary.QUEUE, SpanContext(0, 0, False), None, "")
_MISSING: Any = object()
_jobs = threading.local()  # .spawn: the executor job's record; .handoff: the queue item's
_ATTRIBUTE = "_tracechain_spawn"
_HANDOFFS = "_tracechain_handoffs"  # on a queue: id(item) -> records of its puts, in order
_originals: dict[str, Any] = {}

# asyncio tasks (C objects) and greenlets take no attributes: their records live here.
_tasks: weakref.WeakKeyDictionary[Any, Spawn] = weakref.WeakKeyDictionary()
_task_handoffs: weakref.WeakKeyDictionary[Any, Spawn] = weakref.WeakKeyDictionary()
_greenlets: weakref.WeakKeyDictionary[Any, Spawn] = weakref.WeakKeyDictionary()
# Set in a contextvars.Context that a loop callback was given without the span.
_callback_spawn: ContextVar[Spawn | None] = ContextVar("tracechain_callback_spawn", default=None)
# Whether a record was ever put on a thread, an asyncio task or a greenlet: until then ``current``
# skips those look-ups (every root span pays them, and a WeakKeyDictionary's len() is Python code).
_on_threads = _on_tasks = _on_greenlets = False


def _no_loop() -> None:
    return None


# asyncio is not imported for the plugin's sake (it costs tens of milliseconds):
# these are bound by install() once the code under test has imported it. Before
# that no event loop can be running. ``asyncio_loaded`` lets hot paths skip the
# call altogether until then.
asyncio_loaded = False
running_loop: Callable[[], Any] = _no_loop
current_task: Callable[[], Any] = _no_loop
_getcurrent: Callable[[], Any] = _no_loop  # gevent's, once it is loaded


def running_task() -> Any:
    """The running asyncio task, or None (outside a loop, or before asyncio is loaded)."""
    return current_task() if asyncio_loaded and running_loop() is not None else None


def current() -> Spawn | None:
    """The hand-off record of the running task, executor job, queue item, thread or greenlet."""
    if _on_tasks and running_loop() is not None:
        task = current_task()
        if task is not None:
            spawn = _task_handoffs.get(task) or _tasks.get(task)
            if spawn is not None:
                return None if spawn is _UNRECORDED else spawn
    if asyncio_loaded:
        spawn = _callback_spawn.get()
        if spawn is not None:
            return spawn
    state = _jobs.__dict__
    job = state.get("spawn", _NOT_IN_JOB)
    if job is not _NOT_IN_JOB:
        return job  # type: ignore[no-any-return]
    handoff: Spawn | None = state.get("handoff")
    if handoff is not None:
        return None if handoff is _UNRECORDED else handoff
    if _on_greenlets:
        spawn = _greenlets.get(_getcurrent())
        if spawn is not None:
            return spawn
    if not _on_threads:
        return None
    found: Spawn | None = getattr(threading.current_thread(), _ATTRIBUTE, None)
    return found


def _spawner() -> str:
    spawner = f"thread {threading.current_thread().name!r}"
    task = running_task()
    if task is not None:
        spawner += f", task {task.get_name()!r}"
    return spawner


def _record(boundary: Boundary) -> Spawn | None:
    """The record of a hand-off here, or None (no span current). Never raises into the code under test."""
    try:
        span = trace.get_current_span()
        context = span.get_span_context()
        if not context.is_valid:
            return None
        owner = _current_capture()
        return Spawn(
            boundary,
            context,
            getattr(span, "name", None),
            _spawner(),
            user_site(sys._getframe(2)),
            _source(),
            weakref.ref(owner) if owner is not None else None,
        )
    except Exception:
        _recording_failed(boundary.label)
        return None


def _recording_failed(what: str) -> None:
    logging.getLogger("pytest_tracechain").exception(
        "pytest-tracechain: recording %s failed; the hand-off is not recorded. Please report this.", what
    )


def _source() -> tuple[int, int]:
    task = running_task()
    return (threading.get_ident(), id(task) if task is not None else 0)


# -- fresh contexts -------------------------------------------------------------------

# OpenTelemetry's context variable (None under another runtime context): unset
# in a new contextvars.Context, set in the context of a captured test's thread.
_otel_var: ContextVar[Any] | None = None
_marked = threading.local()  # .home: this thread's own context has the variable set


def mark_home() -> Any:
    """Called in the test's thread at each phase start: set OpenTelemetry's variable there.

    It is set to the value it already reads as (an empty context), so nothing
    changes for the code under test; but a new ``contextvars.Context`` entered
    in this thread, where it is unset, is now told apart from the thread's own.
    Returns the current OpenTelemetry context (None when it is not kept in a
    ``ContextVar`` this module knows).
    """
    _marked.home = True
    var = _otel_var
    if var is None:
        return None
    current = var.get(_MISSING)
    if current is _MISSING:
        current = var.get()
        var.set(current)
    return current


def in_fresh_context() -> bool:
    """Whether code runs in a new ``contextvars.Context`` entered in a marked thread."""
    var = _otel_var
    return (
        var is not None
        and var.get(_MISSING) is _MISSING
        and _marked.__dict__.get("home", False)
        and running_task() is None
    )


def fresh_context(span: Any, where: str | None) -> Spawn:
    """The record of a root started in a fresh context while ``span`` was open in this thread."""
    return Spawn(Boundary.FRESH_CONTEXT, span.get_span_context(), span.name, _spawner(), where)


# -- installing ---------------------------------------------------------------------------


def _nothing() -> object | None:
    return None


_current_capture: Callable[[], object | None] = _nothing  # the running test's capture state


_modules_seen = 0  # len(sys.modules) at the last install


def install(
    is_capturing: Callable[[], bool],
    injected: Callable[[Injection], None],
    current: Callable[[], object | None] = _nothing,
) -> None:
    """Patch the hand-off points whose modules are loaded; called at every test's setup.

    ``is_capturing`` says whether a test is captured now; ``injected`` takes
    each injection made while one is. Thread.start, queue.Queue and the W3C
    propagator are patched at once; the executor, asyncio, gevent and the
    other propagators when the code under test has imported them (it
    normally has, at collection), so the plugin never imports them itself.
    """
    global _otel_var, _current_capture, _modules_seen
    _current_capture = current
    if len(sys.modules) == _modules_seen and "start" in _originals:
        return  # nothing imported since the last test: nothing new to patch
    if "start" not in _originals:
        _patch_threads(is_capturing)
        _patch_queues(is_capturing)
        from opentelemetry import context

        context.get_current()  # before 1.25 the runtime context is loaded on first use
        _otel_var = getattr(context._RUNTIME_CONTEXT, "_current_context", None)
    if "submit" not in _originals and "concurrent.futures.thread" in sys.modules:
        _patch_executors(is_capturing)
    if "create_task" not in _originals and "asyncio.base_events" in sys.modules:
        _patch_tasks(is_capturing)
    if "gevent.spawn" not in _originals and "gevent" in sys.modules:
        _patch_gevent(is_capturing)
    _patch_propagators(is_capturing, injected)
    _modules_seen = len(sys.modules)


def _name_property(cls: type) -> property:
    """``Thread.name``, found along the class's MRO (gevent's Thread is a subclass)."""
    for klass in cls.__mro__:
        found = klass.__dict__.get("name")
        if isinstance(found, property):
            return found
    raise RuntimeError(f"{cls.__qualname__} has no name property")


def _patch_threads(is_capturing: Callable[[], bool]) -> None:
    thread_class = threading.Thread
    original_start = thread_class.start
    original_name = _name_property(thread_class)
    setter = original_name.fset
    assert setter is not None

    def start(self: threading.Thread) -> None:
        if is_capturing() and not _takes_work_later(self):
            spawn = _record(Boundary.THREAD)
            if spawn is not None:
                hand_to_thread(self, spawn)
        original_start(self)

    def set_name(self: threading.Thread, name: str) -> None:
        global renames
        setter(self, name)
        renames += 1

    _originals["thread_class"] = thread_class
    _originals["start"], _originals["name"] = original_start, thread_class.__dict__.get("name")
    thread_class.start = start  # type: ignore[method-assign]
    thread_class.name = property(original_name.fget, set_name)  # type: ignore[assignment]


def hand_to_thread(thread: threading.Thread, spawn: Spawn) -> None:
    """``spawn`` is the hand-off of the work ``thread`` runs (``current`` returns it there)."""
    global _on_threads
    setattr(thread, _ATTRIBUTE, spawn)
    _on_threads = True


def _takes_work_later(thread: threading.Thread) -> bool:
    """A thread running a pool's or a server's loop (trio's thread cache, ``serve_forever``)."""
    target = getattr(thread, "_target", None)
    return is_machinery_code(target if target is not None else type(thread).run)


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
        in_run_in_executor = _jobs.__dict__.get("run_in_executor", False)
        spawn = _record(Boundary.RUN_IN_EXECUTOR if in_run_in_executor else Boundary.EXECUTOR)

        def job(*job_args: P.args, **job_kwargs: P.kwargs) -> R:
            previous = _jobs.__dict__.get("spawn", _NOT_IN_JOB)
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
    loop_class = asyncio.BaseEventLoop
    original_create_task = loop_class.create_task
    original_run_in_executor = loop_class.run_in_executor

    def create_task(self: asyncio.BaseEventLoop, coro: Any, *args: Any, **kwargs: Any) -> Any:
        global _on_tasks
        task = original_create_task(self, coro, *args, **kwargs)
        if is_capturing():
            spawn = _record(Boundary.TASK)
            if spawn is not None:
                _tasks[task] = spawn
                _on_tasks = True
        return task

    def run_in_executor(self: asyncio.BaseEventLoop, executor: Any, func: Any, *args: Any) -> Any:
        # Tells submit that the job is handed over by run_in_executor.
        _jobs.run_in_executor = True
        try:
            return original_run_in_executor(self, executor, func, *args)
        finally:
            _jobs.run_in_executor = False

    _originals["create_task"] = original_create_task
    _originals["run_in_executor"] = original_run_in_executor
    loop_class.create_task = create_task  # type: ignore[method-assign]
    loop_class.run_in_executor = run_in_executor  # type: ignore[method-assign, assignment]
    _patch_callbacks(is_capturing, loop_class)
    _patch_asyncio_queue(is_capturing, asyncio.Queue)


def _patch_callbacks(is_capturing: Callable[[], bool], loop_class: Any) -> None:
    """``call_soon``/``call_at``/``call_soon_threadsafe`` given a ``context=`` that lacks the current span."""

    def note(context: Any) -> None:
        var = _otel_var
        if var is None or not is_capturing():
            return
        outside = var.get(None)
        if context.get(var) is outside:  # the same context (a task rescheduling itself): the common case
            return
        given = context.get(var)
        if given is not None and trace.get_current_span(given).get_span_context().is_valid:
            return
        # None (no span current here) clears a record left in a context given again.
        spawn = _record(Boundary.CALLBACK)
        if spawn is not None or context.get(_callback_spawn) is not None:
            with contextlib.suppress(RuntimeError):  # the context is entered elsewhere: leave it alone
                context.run(_callback_spawn.set, spawn)

    def wrap(name: str) -> None:
        original = getattr(loop_class, name)
        _originals[name] = original

        def scheduled(self: Any, *args: Any, context: Any = None) -> Any:
            if context is not None:
                note(context)
            return original(self, *args, context=context)

        scheduled.__name__ = scheduled.__qualname__ = name
        setattr(loop_class, name, scheduled)

    for name in ("call_soon", "call_at", "call_soon_threadsafe"):
        wrap(name)


# -- queues ---------------------------------------------------------------------------------


def _note_put(queue: Any, item: object, boundary: Boundary) -> Spawn | None:
    spawn = _record(boundary)
    if spawn is not None:
        handoffs = queue.__dict__.get(_HANDOFFS)
        if handoffs is None:
            handoffs = queue.__dict__.setdefault(_HANDOFFS, {})
        handoffs.setdefault(id(item), deque()).append(spawn)
    return spawn


def _forget_put(queue: Any, item: object, spawn: Spawn) -> None:
    """A put that failed (the queue was full): its record goes."""
    pending = queue.__dict__.get(_HANDOFFS, {}).get(id(item))
    if pending is not None and spawn in pending:
        pending.remove(spawn)


def _take(queue: Any, item: object) -> Spawn | None:
    """The record of ``item``'s put (None when it was put without a span or uncaptured)."""
    handoffs = queue.__dict__.get(_HANDOFFS)
    if not handoffs:
        return None
    pending = handoffs.get(id(item))
    if not pending:
        return None
    spawn: Spawn = pending.popleft()
    if not pending:
        handoffs.pop(id(item), None)
    return spawn


def _thread_takes(queue: Any, item: object) -> None:
    """The consumer thread now handles ``item``: its put's record is the thread's hand-off.

    An item put without a record replaces the thread's own record too (a pool
    thread started in one request, handling another's job). An item the same
    thread put is no hand-off (a connection pool's LIFO queue).
    """
    spawn = _take(queue, item)
    if spawn is not None and spawn.source[0] == threading.get_ident():
        return
    _jobs.__dict__["handoff"] = spawn if spawn is not None else _UNRECORDED


def _recording_put(original: Callable[[Any, Any], None], is_capturing: Callable[[], bool]) -> Any:
    def _put(self: Any, item: Any) -> None:
        if is_capturing():
            _note_put(self, item, Boundary.QUEUE)
        original(self, item)

    return _put


def _recording_get(original: Callable[[Any], Any]) -> Any:
    def _get(self: Any) -> Any:
        item = original(self)
        _thread_takes(self, item)
        return item

    return _get


def _patch_queues(is_capturing: Callable[[], bool]) -> None:
    """``queue.Queue`` and its LIFO and priority kinds, through their ``_put``/``_get``.

    Those are looked up on every put and get, so a worker that was already
    blocked in ``get`` when the patch came (a pool started at import) takes
    up the record of the item it wakes for.
    """
    import queue

    patched = []
    for queue_class in (queue.Queue, queue.LifoQueue, queue.PriorityQueue):
        if queue_class.__module__ != "queue":  # gevent's, once monkey-patched (C types): unrecorded
            continue
        originals = (queue_class.__dict__["_put"], queue_class.__dict__["_get"])
        queue_class._put = _recording_put(originals[0], is_capturing)  # type: ignore[method-assign]
        queue_class._get = _recording_get(originals[1])  # type: ignore[method-assign]
        patched.append((queue_class, *originals))
    if not patched:
        return
    original_done = patched[0][0].task_done

    def task_done(self: queue.Queue[Any]) -> None:
        original_done(self)
        state = _jobs.__dict__
        if state.get("handoff") is not None:  # the item is handled: no hand-off to blame until the next
            state["handoff"] = _UNRECORDED

    patched[0][0].task_done = task_done  # type: ignore[method-assign]
    _originals["queue"] = (patched, original_done)

    simple = queue.SimpleQueue
    if simple.__module__ != "_queue":  # replaced by gevent: left alone
        return

    class SimpleQueue(simple):  # type: ignore[valid-type, misc]
        """``queue.SimpleQueue``, recording puts (a C type: its methods cannot be patched)."""

        __module__ = "queue"
        __qualname__ = "SimpleQueue"

        def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
            # An executor's work items are recorded by submit.
            if is_capturing() and type(item).__module__ != "concurrent.futures.thread":
                _note_put(self, item, Boundary.SIMPLE_QUEUE)
            super().put(item, block, timeout)

        def put_nowait(self, item: Any) -> None:
            self.put(item, False)

        def get(self, block: bool = True, timeout: float | None = None) -> Any:
            item = super().get(block, timeout)
            _thread_takes(self, item)
            return item

        def get_nowait(self) -> Any:
            return self.get(False)

    _originals["simple_queue"] = simple
    queue.SimpleQueue = SimpleQueue  # type: ignore[misc]


def _patch_asyncio_queue(is_capturing: Callable[[], bool], queue_class: Any) -> None:
    original_put, original_get = queue_class.put_nowait, queue_class.get_nowait

    def put_nowait(self: Any, item: Any) -> None:
        spawn = _note_put(self, item, Boundary.ASYNCIO_QUEUE) if is_capturing() else None
        try:
            original_put(self, item)
        except BaseException:
            if spawn is not None:
                _forget_put(self, item, spawn)
            raise

    def get_nowait(self: Any) -> Any:
        global _on_tasks
        item = original_get(self)
        spawn = _take(self, item)
        task = current_task() if running_loop() is not None else None
        if task is not None and (spawn is None or spawn.source[1] != id(task)):
            _task_handoffs[task] = spawn if spawn is not None else _UNRECORDED
            _on_tasks = True
        return item

    _originals["asyncio_queue"] = (queue_class, original_put, original_get)
    queue_class.put_nowait = put_nowait
    queue_class.get_nowait = get_nowait


# -- gevent -------------------------------------------------------------------------------------


def _patch_gevent(is_capturing: Callable[[], bool]) -> None:
    """``gevent.spawn``/``spawn_later`` (its Greenlet is a C type: ``start`` cannot be patched)."""
    global _getcurrent
    gevent = sys.modules["gevent"]
    _getcurrent = gevent.getcurrent

    def wrap(name: str) -> None:
        original = getattr(gevent, name)
        _originals[f"gevent.{name}"] = original

        def spawn(*args: Any, **kwargs: Any) -> Any:
            global _on_greenlets
            greenlet = original(*args, **kwargs)
            if is_capturing():
                record = _record(Boundary.GREENLET)
                if record is not None:
                    _greenlets[greenlet] = record
                    _on_greenlets = True
            return greenlet

        spawn.__name__ = spawn.__qualname__ = name
        setattr(gevent, name, spawn)

    wrap("spawn")
    wrap("spawn_later")


# -- injections ---------------------------------------------------------------------------------

# The propagators whose inject is recorded, by module: patched once loaded.
_PROPAGATORS = {
    "opentelemetry.trace.propagation.tracecontext": ("TraceContextTextMapPropagator",),
    "opentelemetry.propagators.b3": ("B3MultiFormat", "B3SingleFormat"),
    "opentelemetry.propagators.jaeger": ("JaegerPropagator",),
}
_injecting = threading.local()  # .depth: inside a recorded inject (a composite's second format)


def _patch_propagators(is_capturing: Callable[[], bool], injected: Callable[[Injection], None]) -> None:
    if "opentelemetry.trace.propagation.tracecontext" not in sys.modules:
        import opentelemetry.trace.propagation.tracecontext  # noqa: F401  (small, and always used)
    for module_name, class_names in _PROPAGATORS.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for class_name in class_names:
            cls = getattr(module, class_name, None)
            key = f"inject:{module_name}.{class_name}"
            if cls is not None and key not in _originals and "inject" in cls.__dict__:
                _patch_inject(cls, key, is_capturing, injected)


def _patch_inject(
    cls: type, key: str, is_capturing: Callable[[], bool], injected: Callable[[Injection], None]
) -> None:
    original = cls.__dict__["inject"]

    def inject(self: Any, carrier: Any, context: Any = None, *args: Any, **kwargs: Any) -> None:
        original(self, carrier, context, *args, **kwargs)
        if not is_capturing() or _injecting.__dict__.get("depth"):
            return
        try:
            span = trace.get_current_span(context)
            span_context = span.get_span_context()
            if span_context.is_valid:
                _injecting.depth = 1
                injected(
                    Injection(
                        span_context, getattr(span, "name", None), user_site(sys._getframe(1)), time.time_ns()
                    )
                )
        except Exception:  # recording must never reach the code under test
            _recording_failed("an injection")
        finally:
            _injecting.depth = 0

    _originals[key] = (cls, original)
    cls.inject = inject  # type: ignore[attr-defined]


def uninstall() -> None:
    """Undo every patch (the asyncio and gevent helpers stay bound: they are only read)."""
    global _modules_seen
    _modules_seen = 0
    if "start" in _originals:
        thread_class = _originals.pop("thread_class")
        thread_class.start = _originals.pop("start")
        name = _originals.pop("name")
        if name is not None:
            thread_class.name = name
        else:
            del thread_class.name
    if "queue" in _originals:
        patched, original_done = _originals.pop("queue")
        for queue_class, put, get in patched:
            queue_class._put, queue_class._get = put, get
        patched[0][0].task_done = original_done
    if "simple_queue" in _originals:
        import queue

        queue.SimpleQueue = _originals.pop("simple_queue")  # type: ignore[misc]
    if "submit" in _originals:
        from concurrent.futures import ThreadPoolExecutor

        ThreadPoolExecutor.submit = _originals.pop("submit")  # type: ignore[method-assign]
    if "create_task" in _originals:
        import asyncio

        loop_class = asyncio.BaseEventLoop
        for name in ("create_task", "run_in_executor", "call_soon", "call_at", "call_soon_threadsafe"):
            setattr(loop_class, name, _originals.pop(name))
        queue_class, put_nowait, get_nowait = _originals.pop("asyncio_queue")
        queue_class.put_nowait, queue_class.get_nowait = put_nowait, get_nowait
    for key in [key for key in _originals if key.startswith("gevent.")]:
        setattr(sys.modules["gevent"], key.partition(".")[2], _originals.pop(key))
    for key in [key for key in _originals if key.startswith("inject:")]:
        cls, original = _originals.pop(key)
        cls.inject = original
