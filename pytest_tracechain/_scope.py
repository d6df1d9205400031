"""Scope leaks: a context attached during a test and never detached, or
detached in another thread or context than the one that attached it (the
Python counterpart of OpenTelemetry Java's strict context storage).

While a test is captured, every attach made outside OpenTelemetry's own
`with` blocks (a manual ``context.attach``, as callbacks do) is recorded with
its thread and the place it was made; its detach removes the record. A detach
in the wrong context fails inside OpenTelemetry, which logs "Failed to
detach context" (async generators and callbacks cause it): we listen for that
log, which also covers attaches made before recording began, and report both
places. When the test's teardown ends,
records left by threads that have ended, or a span of the test still current
in the test's own thread, are leaks; the plugin then restores the context the
test started with, so the leak cannot reach later tests.
"""

from __future__ import annotations

import logging
import sys
import threading
from contextvars import Token
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from opentelemetry import context, trace

from pytest_tracechain._sites import user_site

_OTEL_CONTEXT_LOGGER = "opentelemetry.context"
_FAILED_DETACH = "Failed to detach context"
_OTEL = "opentelemetry."


@dataclass(frozen=True, slots=True)
class ScopeEvent:
    """A scope leak: ``what`` happened in ``thread``, at ``where`` (file:line) when known."""

    what: str
    thread: str
    where: str | None
    span_name: str | None = None


class Recording(Protocol):
    """The capture state, as the scope recorder sees it."""

    scope_events: list[ScopeEvent]

    def holds(self, span_id: int) -> bool: ...


class Routing(Protocol):
    """The router, as the scope recorder sees it: the running test's capture."""

    @property
    def current(self) -> Recording | None: ...


@dataclass(frozen=True, slots=True)
class _Attach:
    token: Token[context.Context]  # kept alive while recorded, so its id stays unique
    capture: Recording
    thread: threading.Thread
    where: str | None
    span_name: str | None


class _AttachRecorder:
    """Wraps ``opentelemetry.context.attach``/``detach`` to record attaches.

    OpenTelemetry's own ``use_span`` (every ``start_as_current_span``) gets a
    private view of the context module with the unwrapped functions: its
    attach and detach pair up in one ``with`` block, so recording them would
    only cost every span. Its leaks (async generators) still reach the
    failed-detach log.
    """

    def __init__(self, router: Routing) -> None:
        self.router = router
        self.live: dict[int, _Attach] = {}  # by id(token): tokens are not hashable
        self.detaching = threading.local()
        self.original_attach = context.attach
        self.original_detach = context.detach
        self.original_view: Any = getattr(trace, "context_api", None)

    def install(self) -> None:
        if self.original_view is context:
            view = ModuleType(context.__name__, context.__doc__)
            view.__dict__.update(vars(context))
            trace.context_api = view  # type: ignore[attr-defined]
        context.attach = self.attach  # type: ignore[assignment]
        context.detach = self.detach

    def uninstall(self) -> None:
        context.attach = self.original_attach
        context.detach = self.original_detach
        if self.original_view is context:
            trace.context_api = context  # type: ignore[attr-defined]

    def attach(self, ctx: context.Context) -> Token[context.Context]:
        token = self.original_attach(ctx)
        capture = self.router.current
        if capture is not None:
            try:
                caller = sys._getframe(1).f_globals.get("__name__")
                if not (isinstance(caller, str) and caller.startswith(_OTEL)):
                    span = trace.get_current_span(ctx)
                    self.live[id(token)] = _Attach(
                        token,
                        capture,
                        threading.current_thread(),
                        user_site(sys._getframe(1)),
                        getattr(span, "name", None),
                    )
            except Exception:  # recording must never reach the code under test
                logging.getLogger("pytest_tracechain").exception("pytest-tracechain: recording attach failed")
        return token

    def detach(self, token: Token[context.Context]) -> None:
        record = self.live.pop(id(token), None) if self.live else None
        if record is None:
            self.original_detach(token)
            return
        # OpenTelemetry logs a failed detach inside original_detach: the
        # listener takes the record from here.
        self.detaching.record = record
        self.original_detach(token)
        self.detaching.record = None

    def records_of(self, capture: Recording) -> list[_Attach]:
        return [record for record in list(self.live.values()) if record.capture is capture]


class _FailedDetachListener(logging.Handler):
    def __init__(self, router: Routing, recorder: _AttachRecorder | None) -> None:
        super().__init__()
        self.router = router
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        # An exception here would reach OpenTelemetry's detach, in user code.
        try:
            self._note(record)
        except Exception:
            self.handleError(record)

    def _note(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith(_FAILED_DETACH):
            return
        attach = None
        if self.recorder is not None:
            attach = getattr(self.recorder.detaching, "record", None)
            self.recorder.detaching.record = None
        capture = attach.capture if attach is not None else self.router.current
        if capture is None:
            return
        here = user_site(sys._getframe())
        where = f"detached at {here}" if here else None
        if attach is not None:
            attached = f"attached in thread {attach.thread.name!r}" + (
                f" at {attach.where}" if attach.where else ""
            )
            where = f"{attached}, {where}" if where else attached
        capture.scope_events.append(
            ScopeEvent(
                "detached in another thread or context than the one that attached it",
                threading.current_thread().name,
                where,
                attach.span_name if attach is not None else getattr(trace.get_current_span(), "name", None),
            )
        )


_listener: _FailedDetachListener | None = None
_recorder: _AttachRecorder | None = None


def install(router: Routing) -> None:
    global _listener, _recorder
    if _listener is not None:
        return
    _recorder = _AttachRecorder(router)
    _recorder.install()
    _listener = _FailedDetachListener(router, _recorder)
    logging.getLogger(_OTEL_CONTEXT_LOGGER).addHandler(_listener)


def uninstall() -> None:
    global _listener, _recorder
    if _listener is not None:
        logging.getLogger(_OTEL_CONTEXT_LOGGER).removeHandler(_listener)
        _listener = None
    if _recorder is not None:
        _recorder.uninstall()
        _recorder = None


def leftover(capture: Recording, entry_context: context.Context) -> list[ScopeEvent]:
    """At the end of teardown: contexts of this test that were never detached.

    Recorded attaches left by this (the test's) thread or by threads that
    have ended are leaks; so is a span of the test still current here, even
    when its attach was not recorded. In that case the context the test began
    with (``entry_context``) is restored, so the leak cannot reach later tests.
    """
    current = context.get_current()
    if (current is entry_context or not current) and (_recorder is None or not _recorder.live):
        return []  # most tests: nothing attached by hand is left, and no span of the test is current
    return _leftovers(capture, entry_context, current)


def _leftovers(
    capture: Recording, entry_context: context.Context, current: context.Context
) -> list[ScopeEvent]:
    """``leftover`` where something may be left: the recorded attaches and the current span, read."""
    here = threading.current_thread()
    records = [
        r
        for r in (_recorder.records_of(capture) if _recorder is not None else [])
        if r.thread is here or not r.thread.is_alive()
    ]
    span = trace.get_current_span(current)
    span_context = span.get_span_context()
    still_current = span_context.is_valid and capture.holds(span_context.span_id)
    if still_current:
        context.attach(entry_context)  # the leaked token is lost; restore the runner's context
    events: list[ScopeEvent] = []
    for record in records:
        if _recorder is not None:
            _recorder.live.pop(id(record.token), None)
        what = "attached during the test and never detached"
        if record.thread is not here:
            what = "attached and never detached by a thread that has ended"
        elif still_current and record.span_name == getattr(span, "name", None):
            what += ": it is still current after the test's teardown"
            still_current = False
        where = f"attached at {record.where}" if record.where else None
        events.append(ScopeEvent(what, record.thread.name, where, record.span_name))
    if still_current:  # attached where recording does not reach (OpenTelemetry's own with-blocks)
        events.append(
            ScopeEvent(
                "attached during the test and never detached: it is still current after the test's teardown",
                here.name,
                None,
                getattr(span, "name", None),
            )
        )
    return events
