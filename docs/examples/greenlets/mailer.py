"""A request handler that sends the welcome mail in a greenlet, under gevent.

Run under ``python -m gevent.monkey --module pytest``, where the standard
library is monkey-patched before the tests import anything. ``sign_up_lost``
spawns the greenlet as it is; ``sign_up`` spawns it in a copy of the context.
"""

from __future__ import annotations

import contextvars

import gevent
from opentelemetry import trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer(__name__)


# --8<-- [start:mail]
def send_welcome_mail(name: str) -> None:
    with tracer.start_as_current_span("mail.Welcome.Send") as span:
        span.set_attribute("user.name", name)


# --8<-- [end:mail]
# --8<-- [start:spawn-lost]
def sign_up_lost(name: str) -> gevent.Greenlet:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        # A greenlet starts with an empty context, not the spawner's.
        return gevent.spawn(send_welcome_mail, name)


# --8<-- [end:spawn-lost]
# --8<-- [start:spawn]
def sign_up(name: str) -> gevent.Greenlet:
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        return gevent.spawn(contextvars.copy_context().run, send_welcome_mail, name)


# --8<-- [end:spawn]
