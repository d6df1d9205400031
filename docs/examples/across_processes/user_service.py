"""The user service: a request handler that announces new users on a Redis stream.

The trace context travels in the stream entry's fields, next to the body, so
the job that reads the entry in another process can continue the trace.
"""

from __future__ import annotations

import json

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
        propagate.inject(fields)  # adds traceparent (and tracestate) while the PRODUCER span is current
        message_id: str = client.xadd(stream, fields)
        span.set_attribute("messaging.message.id", message_id)
        return message_id


# --8<-- [end:publish]
