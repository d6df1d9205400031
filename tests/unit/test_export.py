"""OTLP JSON encoding by hand: ids as hex, enums as integers, 64-bit integers as strings, every value type."""

from __future__ import annotations

import hashlib
import inspect
import math
from typing import Any

import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from pytest_tracechain._export import (
    HAS_IS_REMOTE,
    IS_REMOTE,
    NAME_LIMIT,
    OPEN_ATTRIBUTE,
    any_value,
    encode_span,
    encode_spans,
    file_name,
)
from tests.unit.spans import RESOURCE

TRACE_ID, SPAN_ID, PARENT_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7, 0xB7AD6B7169203331
SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def test_any_value_of_each_type() -> None:
    assert any_value(True) == {"boolValue": True}
    assert any_value(False) == {"boolValue": False}
    assert any_value("x") == {"stringValue": "x"}
    assert any_value(0) == {"intValue": "0"}
    assert any_value(2**63 - 1) == {"intValue": "9223372036854775807"}
    assert any_value(-(2**63)) == {"intValue": "-9223372036854775808"}
    assert any_value(2**63) == {"stringValue": "9223372036854775808"}
    assert any_value(-(2**63) - 1) == {"stringValue": "-9223372036854775809"}
    assert any_value(1.5) == {"doubleValue": 1.5}
    assert any_value(-0.25) == {"doubleValue": -0.25}
    assert any_value(math.nan) == {"doubleValue": "NaN"}
    assert any_value(math.inf) == {"doubleValue": "Infinity"}
    assert any_value(-math.inf) == {"doubleValue": "-Infinity"}
    assert any_value(b"\x00\xff") == {"bytesValue": "AP8="}
    assert any_value(bytearray(b"hi")) == {"bytesValue": "aGk="}
    assert any_value(None) == {}
    assert any_value(object) == {"stringValue": "<class 'object'>"}


def test_any_value_of_arrays_and_maps() -> None:
    assert any_value([1, "a"]) == {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "a"}]}}
    assert any_value((True, 2.5)) == {"arrayValue": {"values": [{"boolValue": True}, {"doubleValue": 2.5}]}}
    assert any_value([]) == {"arrayValue": {"values": []}}
    assert any_value({"k": [None], 3: b"a"}) == {
        "kvlistValue": {
            "values": [
                {"key": "k", "value": {"arrayValue": {"values": [{}]}}},
                {"key": "3", "value": {"bytesValue": "YQ=="}},
            ]
        }
    }


def full_span() -> ReadableSpan:
    event = Event("retry", BoundedAttributes(1, {"attempt": 2, "dropped": 1}), timestamp=150)
    link = Link(
        SpanContext(0xABC, 0xDEF, is_remote=True, trace_state=TraceState([("vendor", "v")])),
        BoundedAttributes(1, {"why": "batch", "dropped": 1}),
    )
    return ReadableSpan(
        name="GET /",
        context=SpanContext(TRACE_ID, SPAN_ID, False, SAMPLED, TraceState([("a", "1"), ("b", "2")])),
        parent=SpanContext(TRACE_ID, PARENT_ID, is_remote=True),
        kind=SpanKind.SERVER,
        start_time=100,
        end_time=2**63 + 5,
        attributes=BoundedAttributes(3, {"s": "x", "i": 7, "f": 0.5, "b": False}),
        events=BoundedList.from_seq(1, [Event("dropped", timestamp=140), event]),  # keeps the newest
        links=BoundedList.from_seq(1, [Link(SpanContext(1, 2, False)), link]),
        status=Status(StatusCode.ERROR, "boom"),
        resource=RESOURCE,
    )


# Events and links count their dropped attributes since OpenTelemetry 1.25.
COUNTS_DROPPED = hasattr(Event, "dropped_attributes")
# Instrumentation scopes have attributes since OpenTelemetry 1.26.
SCOPE_ATTRIBUTES = "attributes" in inspect.signature(InstrumentationScope.__init__).parameters


def test_a_span_with_everything() -> None:
    expected = everything()
    if not COUNTS_DROPPED:
        for item in expected["events"] + expected["links"]:
            del item["droppedAttributesCount"]
    assert encode_span(full_span()) == expected


def everything() -> dict[str, Any]:
    return {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "00f067aa0ba902b7",
        "traceState": "a=1,b=2",
        "parentSpanId": "b7ad6b7169203331",
        "flags": 0x301,
        "name": "GET /",
        "kind": 2,
        "startTimeUnixNano": "100",
        "endTimeUnixNano": "9223372036854775813",
        "attributes": [
            {"key": "i", "value": {"intValue": "7"}},
            {"key": "f", "value": {"doubleValue": 0.5}},
            {"key": "b", "value": {"boolValue": False}},
        ],
        "droppedAttributesCount": 1,
        "events": [
            {
                "timeUnixNano": "150",
                "name": "retry",
                "attributes": [{"key": "dropped", "value": {"intValue": "1"}}],
                "droppedAttributesCount": 1,
            }
        ],
        "droppedEventsCount": 1,
        "links": [
            {
                "traceId": "00000000000000000000000000000abc",
                "spanId": "0000000000000def",
                "traceState": "vendor=v",
                "attributes": [{"key": "dropped", "value": {"intValue": "1"}}],
                "droppedAttributesCount": 1,
                "flags": 0x300,
            }
        ],
        "droppedLinksCount": 1,
        "status": {"message": "boom", "code": 2},
    }


def plain(**fields: object) -> ReadableSpan:
    arguments: dict[str, object] = {
        "name": "work",
        "context": SpanContext(1, 2, False),
        "start_time": 10,
        "end_time": 20,
        "resource": RESOURCE,
    }
    arguments.update(fields)
    return ReadableSpan(**arguments)  # type: ignore[arg-type]


def test_a_plain_root_span() -> None:
    assert encode_span(plain()) == {
        "traceId": "00000000000000000000000000000001",
        "spanId": "0000000000000002",
        "flags": HAS_IS_REMOTE,
        "name": "work",
        "kind": 1,
        "startTimeUnixNano": "10",
        "endTimeUnixNano": "20",
        "status": {},
    }


def test_kinds_parents_flags_and_status_codes() -> None:
    kinds = [encode_span(plain(kind=kind))["kind"] for kind in SpanKind]
    assert kinds == [1, 2, 3, 4, 5]
    local = encode_span(plain(parent=SpanContext(1, 0xFF, False), context=SpanContext(1, 2, False, SAMPLED)))
    assert (local["parentSpanId"], local["flags"]) == ("00000000000000ff", HAS_IS_REMOTE | 1)
    assert encode_span(plain(parent=SpanContext(1, 3, True)))["flags"] == HAS_IS_REMOTE | IS_REMOTE
    assert encode_span(plain(status=Status(StatusCode.OK)))["status"] == {"code": 1}
    assert encode_span(plain(status=Status(StatusCode.ERROR)))["status"] == {"code": 2}
    link = encode_span(plain(links=[Link(SpanContext(5, 6, False, SAMPLED))]))["links"]
    assert link == [{"traceId": f"{5:032x}", "spanId": f"{6:016x}", "flags": HAS_IS_REMOTE | 1}]
    event = encode_span(plain(events=[Event("e", timestamp=1)]))["events"]
    assert event == [{"timeUnixNano": "1", "name": "e"}]


def test_a_span_still_open_ends_at_the_export_time_and_says_so() -> None:
    still_open = plain(end_time=None, attributes={"k": "v"})
    encoded = encode_span(still_open, end_time=500)
    assert encoded["endTimeUnixNano"] == "500"
    assert encoded["attributes"] == [
        {"key": "k", "value": {"stringValue": "v"}},
        {"key": OPEN_ATTRIBUTE, "value": {"boolValue": True}},
    ]
    assert OPEN_ATTRIBUTE == "tracechain.unended"
    assert encode_span(still_open, end_time=5)["endTimeUnixNano"] == "10"  # never before its start
    assert encode_span(still_open)["endTimeUnixNano"] == "10"
    assert encode_span(plain(end_time=None, start_time=None))["startTimeUnixNano"] == "0"
    assert "attributes" not in encode_span(plain(attributes={}))


def test_spans_grouped_by_resource_then_scope() -> None:
    service = Resource({"service.name": "api"}, schema_url="https://schema/r")
    if not SCOPE_ATTRIBUTES:
        pytest.skip("this OpenTelemetry's instrumentation scopes have no attributes (1.26 added them)")
    scope_a = InstrumentationScope("lib.a", "1.0", "https://schema/a", {"x": 1})
    scope_b = InstrumentationScope("lib.b")
    spans = [
        plain(context=SpanContext(1, 1, False), resource=service, instrumentation_scope=scope_a),
        plain(context=SpanContext(1, 2, False), resource=RESOURCE, instrumentation_scope=scope_b),
        plain(context=SpanContext(1, 3, False), resource=service, instrumentation_scope=scope_b),
        plain(context=SpanContext(1, 4, False), resource=service, instrumentation_scope=scope_a),
        plain(context=SpanContext(1, 5, False), resource=service),
    ]
    request = encode_spans(spans)
    shape = [
        (
            resource_spans.get("schemaUrl"),
            [
                (scope["scope"], scope.get("schemaUrl"), [s["spanId"][-1] for s in scope["spans"]])
                for scope in resource_spans["scopeSpans"]
            ],
        )
        for resource_spans in request["resourceSpans"]
    ]
    assert shape == [
        (
            "https://schema/r",
            [
                (
                    {
                        "name": "lib.a",
                        "version": "1.0",
                        "attributes": [{"key": "x", "value": {"intValue": "1"}}],
                    },
                    "https://schema/a",
                    ["1", "4"],
                ),
                ({"name": "lib.b"}, None, ["3"]),
                ({}, None, ["5"]),
            ],
        ),
        (None, [({"name": "lib.b"}, None, ["2"])]),
    ]
    resources = [resource_spans["resource"] for resource_spans in request["resourceSpans"]]
    assert resources[0] == {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    assert encode_spans([]) == {"resourceSpans": []}


def test_an_open_span_in_a_request_gets_the_export_time() -> None:
    request = encode_spans([plain(end_time=None)], end_time=99)
    (span,) = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert span["endTimeUnixNano"] == "99"


def test_file_names() -> None:
    nodeid = "tests/test_x.py::test_y[a b]"
    digest = hashlib.blake2s(nodeid.encode(), digest_size=5).hexdigest()
    assert file_name(nodeid) == f"tests_test_x.py_test_y_a_b-{digest}.json"
    assert file_name("a::b") != file_name("a__b")
    assert file_name("::").startswith("test-")
    assert file_name("x" * 300).startswith("x" * NAME_LIMIT + "-")
    assert len(file_name("x" * 300)) == NAME_LIMIT + len("-0123456789.json")
