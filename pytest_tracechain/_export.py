"""OTLP JSON for ``--tracechain-export``: spans as an ``ExportTraceServiceRequest``, encoded by hand.

The encoding follows the OTLP specification's JSON Protobuf Encoding:
lowerCamelCase keys, trace and span ids as lowercase hex (not base64), enums as
integers, 64-bit integers as decimal strings, ``bytes`` values as base64.
No protobuf is needed, so export works without the ``otlp`` extra.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, Status

Json = dict[str, Any]

# Span.flags bits (trace.proto): the parent's is_remote is known, and it is true.
HAS_IS_REMOTE = 0x100
IS_REMOTE = 0x200
# The attribute put on spans still open when the test ended (exported with the export time as end).
OPEN_ATTRIBUTE = "tracechain.unended"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def any_value(value: object) -> Json:
    """An OTLP ``AnyValue`` for a Python attribute value."""
    if isinstance(value, bool):  # before int: bool is an int
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (int, float)):
        return _number_value(value)
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": key_values(value)}}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if value is None:
        return {}
    return {"stringValue": str(value)}


def _number_value(value: float) -> Json:
    """int64 as a decimal string (a larger int as a string value); NaN and infinities by name."""
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return {"intValue": str(value)}
        return {"stringValue": str(value)}  # does not fit an int64
    if math.isnan(value):
        return {"doubleValue": "NaN"}
    if math.isinf(value):
        return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
    return {"doubleValue": value}


def key_values(attributes: Mapping[str, object] | None) -> list[Json]:
    return [{"key": str(key), "value": any_value(value)} for key, value in (attributes or {}).items()]


def _with_attributes(message: Json, attributes: Mapping[str, object] | None, dropped: int = 0) -> Json:
    if attributes:
        message["attributes"] = key_values(attributes)
    if dropped:
        message["droppedAttributesCount"] = dropped
    return message


def _span_flags(context: SpanContext, parent: SpanContext | None) -> int:
    flags = int(context.trace_flags) | HAS_IS_REMOTE
    if parent is not None and parent.is_remote:
        flags |= IS_REMOTE
    return flags


def _trace_state(context: SpanContext) -> str:
    state = context.trace_state
    return state.to_header() if state else ""


def encode_span(span: ReadableSpan, *, end_time: int | None = None) -> Json:
    """One OTLP ``Span``.

    A span still open gets ``end_time`` as its end and the ``tracechain.unended`` attribute.
    """
    context = span.context
    parent = span.parent
    attributes: dict[str, object] = dict(span.attributes or {})
    end = span.end_time
    if end is None:
        end = max(end_time or 0, span.start_time or 0)
        attributes[OPEN_ATTRIBUTE] = True
    message: Json = {
        "traceId": format(context.trace_id, "032x"),
        "spanId": format(context.span_id, "016x"),
    }
    state = _trace_state(context)
    if state:
        message["traceState"] = state
    if parent is not None:
        message["parentSpanId"] = format(parent.span_id, "016x")
    message["flags"] = _span_flags(context, parent)
    message["name"] = span.name
    message["kind"] = span.kind.value + 1  # OTLP numbers SPAN_KIND_UNSPECIFIED as 0
    message["startTimeUnixNano"] = str(span.start_time or 0)
    message["endTimeUnixNano"] = str(end)
    _with_attributes(message, attributes, span.dropped_attributes)
    events = [_encode_event(event) for event in span.events]
    _with_list(message, "events", events, "droppedEventsCount", span.dropped_events)
    links = [_encode_link(link) for link in span.links]
    _with_list(message, "links", links, "droppedLinksCount", span.dropped_links)
    message["status"] = _encode_status(span.status)
    return message


def _with_list(message: Json, key: str, items: list[Json], dropped_key: str, dropped: int) -> None:
    """The encoded ``items`` and the number dropped, each when there are some."""
    if items:
        message[key] = items
    if dropped:
        message[dropped_key] = dropped


def _encode_event(event: Event) -> Json:
    return _with_attributes(
        {"timeUnixNano": str(event.timestamp), "name": event.name},
        event.attributes,
        getattr(event, "dropped_attributes", 0),
    )


def _encode_link(link: Link) -> Json:
    linked = link.context
    encoded: Json = {"traceId": format(linked.trace_id, "032x"), "spanId": format(linked.span_id, "016x")}
    state = _trace_state(linked)
    if state:
        encoded["traceState"] = state
    _with_attributes(encoded, link.attributes, getattr(link, "dropped_attributes", 0))
    encoded["flags"] = int(linked.trace_flags) | HAS_IS_REMOTE | (IS_REMOTE if linked.is_remote else 0)
    return encoded


def _encode_status(status: Status) -> Json:
    encoded: Json = {}
    if status.description:
        encoded["message"] = status.description
    if status.status_code.value:
        encoded["code"] = status.status_code.value  # UNSET 0, OK 1, ERROR 2: as in OTLP
    return encoded


def _resource_key(span: ReadableSpan) -> tuple[Any, ...]:
    resource = span.resource
    return (tuple(sorted((k, repr(v)) for k, v in resource.attributes.items())), resource.schema_url)


def _scope_key(span: ReadableSpan) -> tuple[Any, ...]:
    scope = span.instrumentation_scope
    if scope is None:
        return ()
    attributes = getattr(scope, "attributes", None) or {}
    return (
        scope.name,
        scope.version,
        scope.schema_url,
        tuple(sorted((k, repr(v)) for k, v in attributes.items())),
    )


def encode_spans(spans: Iterable[ReadableSpan], *, end_time: int | None = None) -> Json:
    """An ``ExportTraceServiceRequest``: the spans grouped by resource, then by instrumentation scope."""
    resources: dict[tuple[Any, ...], tuple[Json, dict[tuple[Any, ...], Json]]] = {}
    for span in spans:
        resource_key = _resource_key(span)
        entry = resources.get(resource_key)
        if entry is None:
            resource = span.resource
            encoded_resource = _with_attributes({}, resource.attributes)
            resource_spans: Json = {"resource": encoded_resource, "scopeSpans": []}
            if resource.schema_url:
                resource_spans["schemaUrl"] = resource.schema_url
            entry = resources[resource_key] = (resource_spans, {})
        resource_spans, scopes = entry
        scope_key = _scope_key(span)
        scope_spans = scopes.get(scope_key)
        if scope_spans is None:
            scope_spans = {"scope": _scope(span), "spans": []}
            schema_url = span.instrumentation_scope.schema_url if span.instrumentation_scope else None
            if schema_url:
                scope_spans["schemaUrl"] = schema_url
            scopes[scope_key] = scope_spans
            resource_spans["scopeSpans"].append(scope_spans)
        scope_spans["spans"].append(encode_span(span, end_time=end_time))
    return {"resourceSpans": [resource_spans for resource_spans, _ in resources.values()]}


def _scope(span: ReadableSpan) -> Json:
    scope = span.instrumentation_scope
    if scope is None:
        return {}
    encoded: Json = {"name": scope.name}
    if scope.version:
        encoded["version"] = scope.version
    return _with_attributes(encoded, getattr(scope, "attributes", None))


# File names: the node id with everything but [A-Za-z0-9._-] replaced, cut to
# this many characters, then a hash of the whole node id (distinct ids that
# sanitise alike still get distinct names).
NAME_LIMIT = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(nodeid: str) -> str:
    """A safe, unique file name for a test's export: ``tests_test_x.py_test_y-1a2b3c4d5e.json``."""
    stem = _UNSAFE.sub("_", nodeid).strip("._") or "test"
    digest = hashlib.blake2s(nodeid.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()
    return f"{stem[:NAME_LIMIT]}-{digest}.json"
