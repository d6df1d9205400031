"""The user service: a request handler that announces new users on a Redis stream.

The trace context travels in the stream entry's fields, next to the body, so
the job that reads the entry in another process can continue the trace.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import redis
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer(__name__)


def hello(client: redis.Redis, stream: str, name: str) -> str:
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("service.User.Create"):
            user = {"name": name}
        publish_user_created(client, stream, user)
        return "201 Created"


# --8<-- [start:publish]
def publish_user_created(client: redis.Redis, stream: str, user: dict[str, str]) -> str:
    with tracer.start_as_current_span(
        f"{stream} publish",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "redis",
            "messaging.destination.name": stream,
            "messaging.operation.type": "send",
        },
    ) as span:
        fields = {"body": json.dumps(user)}
        # Adds traceparent (and tracestate) while the PRODUCER span is current.
        propagate.inject(fields)
        message_id: str = client.xadd(stream, fields)
        span.set_attribute("messaging.message.id", message_id)
        return message_id


# --8<-- [end:publish]


# --8<-- [start:resend]
WELCOME_MAIL = Path(__file__).with_name("welcome_mail.py")


def resend_welcome(name: str, env: Mapping[str, str], *args: str) -> None:
    """``POST /users/{name}/welcome``: the mail command runs in a process of its own."""
    with tracer.start_as_current_span(
        "POST /users/{name}/welcome", kind=SpanKind.SERVER
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # traceparent, and tracestate when there is one
        env = {**env, **{key.upper(): value for key, value in carrier.items()}}
        command = [sys.executable, str(WELCOME_MAIL), name, *args]
        subprocess.run(command, env=env, check=True, timeout=60)


# --8<-- [end:resend]
