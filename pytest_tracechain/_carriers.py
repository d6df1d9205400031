"""Carriers: the headers a context travels in between processes (work in progress)."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext


def assert_carrier_has_context(carrier: object, span: ReadableSpan | SpanContext | str | None = None) -> None:
    """The carrier holds a valid trace context, ``span``'s when given."""
    raise NotImplementedError
