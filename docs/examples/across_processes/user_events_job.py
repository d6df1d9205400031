"""The job that welcomes new users: it reads one entry from a Redis stream, in a process
of its own.

Run as ``python user_events_job.py [--ignore-headers]`` with ``REDIS_URL`` and
``USER_EVENTS_STREAM`` in the environment. It exports its spans over OTLP/HTTP
to wherever the standard ``OTEL_EXPORTER_OTLP_*`` variables point.
``--ignore-headers`` is the broken variant: the job never reads the trace
context from the entry's fields.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import redis
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

READ_TIMEOUT_MS = 10_000

tracer = trace.get_tracer(__name__)


# --8<-- [start:setup]
def configure_tracing() -> TracerProvider:
    # Resource.create runs the detectors named in OTEL_EXPERIMENTAL_RESOURCE_DETECTORS;
    # "process" adds process.pid, which tells the test which process a span came from.
    provider = TracerProvider(
        resource=Resource.create({"service.name": "user-events-job"})
    )
    # The exporter reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (or
    # OTEL_EXPORTER_OTLP_ENDPOINT); the batch processor reads OTEL_BSP_SCHEDULE_DELAY.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


# --8<-- [end:setup]


# --8<-- [start:process]
def process(
    stream: str, fields: dict[str, str], *, ignore_headers: bool = False
) -> None:
    parent: Context | None = None if ignore_headers else propagate.extract(fields)
    with tracer.start_as_current_span(
        f"{stream} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "redis",
            "messaging.destination.name": stream,
            "messaging.operation.type": "process",
        },
    ):
        send_welcome_mail(json.loads(fields["body"]))


def send_welcome_mail(user: dict[str, str]) -> None:
    with tracer.start_as_current_span("mail.Welcome.Send") as span:
        span.set_attribute("user.name", user["name"])


# --8<-- [end:process]


# --8<-- [start:main]
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--ignore-headers", action="store_true", help="the broken variant"
    )
    args = parser.parse_args()
    stream = os.environ["USER_EVENTS_STREAM"]

    provider = configure_tracing()
    try:
        with redis.Redis.from_url(
            os.environ["REDIS_URL"], decode_responses=True
        ) as client:
            reply = client.xread({stream: "0"}, count=1, block=READ_TIMEOUT_MS)
        if not reply:
            print(f"no entry on {stream} within {READ_TIMEOUT_MS} ms", file=sys.stderr)
            return 1
        [(_, entries)] = reply  # one stream: (key, entries)
        [(_, fields)] = entries  # one entry: (id, fields)
        process(stream, fields, ignore_headers=args.ignore_headers)
    finally:
        provider.shutdown()  # flushes: the spans are exported before the process exits
    return 0


# --8<-- [end:main]

if __name__ == "__main__":
    sys.exit(main())
