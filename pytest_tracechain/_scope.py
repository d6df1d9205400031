"""Scope leaks: a context attached during a test and never detached, or
detached in another thread or context than the one that attached it.

OpenTelemetry reports a detach in the wrong context by logging "Failed to
detach context" (async generators and callbacks cause it); we listen for that
log while a test is captured and note where the detach ran. A context left
attached in the test's own thread is found when the test's teardown ends: a
span of the test is still current. The plugin then restores the context the
test started with, so the leak cannot reach later tests.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from opentelemetry import context, trace

if TYPE_CHECKING:
    from pytest_tracechain._capture import Router, TraceCapture

_OTEL_CONTEXT_LOGGER = "opentelemetry.context"
_FAILED_DETACH = "Failed to detach context"
# Frames of these modules are machinery, not the place a user would fix.
_MACHINERY = ("logging", "opentelemetry", "contextlib", "pytest_tracechain", "asyncio", "threading")


@dataclass(frozen=True, slots=True)
class ScopeEvent:
    """A scope leak: ``what`` happened in ``thread``, at ``where`` (file:line) when known."""

    what: str
    thread: str
    where: str | None
    span_name: str | None = None


class _FailedDetachListener(logging.Handler):
    def __init__(self, router: Router) -> None:
        super().__init__()
        self.router = router

    def emit(self, record: logging.LogRecord) -> None:
        capture = self.router.current
        if capture is None or not record.getMessage().startswith(_FAILED_DETACH):
            return
        span = trace.get_current_span()
        event = ScopeEvent(
            "detached in another thread or context than the one that attached it",
            threading.current_thread().name,
            _user_site(sys._getframe()),
            getattr(span, "name", None),
        )
        capture._scope_events.append(event)


_listener: _FailedDetachListener | None = None


def install(router: Router) -> None:
    global _listener
    if _listener is None:
        _listener = _FailedDetachListener(router)
        logging.getLogger(_OTEL_CONTEXT_LOGGER).addHandler(_listener)


def uninstall() -> None:
    global _listener
    if _listener is not None:
        logging.getLogger(_OTEL_CONTEXT_LOGGER).removeHandler(_listener)
        _listener = None


def leftover(capture: TraceCapture, entry_context: context.Context) -> ScopeEvent | None:
    """At the end of teardown: is a span of this test still current here?

    If so, report it and restore ``entry_context``, the context the test began with.
    """
    span = trace.get_current_span()
    span_context = span.get_span_context()
    if not span_context.is_valid or span_context.span_id not in capture._origins:
        return None
    context.attach(entry_context)  # the leaked token is lost; restore the runner's context
    return ScopeEvent(
        "attached during the test and never detached: it is still current after the test's teardown",
        threading.current_thread().name,
        None,
        getattr(span, "name", None),
    )


def _user_site(frame: FrameType | None) -> str | None:
    while frame is not None:
        package = str(frame.f_globals.get("__name__", "")).split(".", 1)[0]
        if package not in _MACHINERY:
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return None
