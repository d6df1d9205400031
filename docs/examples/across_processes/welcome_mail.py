"""A command that sends one welcome mail, run by the user service as a process.

Run as ``python welcome_mail.py NAME [--ignore-environment]``. The caller puts
the trace context in the environment, as ``TRACEPARENT`` (and ``TRACESTATE``),
the carrier OpenTelemetry specifies for a process; the command continues that
trace. ``--ignore-environment`` is the broken variant. It exports its spans as
``user_events_job.py`` does.
"""

from __future__ import annotations

import argparse
import os
import sys

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from user_events_job import configure_tracing

tracer = trace.get_tracer(__name__)


# --8<-- [start:command]
def context_from_environment() -> Context:
    # Environment variable names are upper case; the propagator reads lower case.
    names = ("TRACEPARENT", "TRACESTATE")
    carrier = {name.lower(): os.environ[name] for name in names if name in os.environ}
    return propagate.extract(carrier)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--ignore-environment", action="store_true")
    args = parser.parse_args()

    provider = configure_tracing()
    parent = None if args.ignore_environment else context_from_environment()
    try:
        with tracer.start_as_current_span("mail.Welcome.Send", context=parent) as span:
            span.set_attribute("user.name", args.name)
    finally:
        provider.shutdown()
    return 0


# --8<-- [end:command]

if __name__ == "__main__":
    sys.exit(main())
