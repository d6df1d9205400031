"""The OTLP decoder's shortcuts build what the SDK's own constructors build, and errors still name the span."""

from __future__ import annotations

import copy
import gc
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest

pytest.importorskip("opentelemetry.proto")  # the otlp extra
pytest.importorskip("opentelemetry.exporter.otlp.proto.common")  # its encoder makes the bodies

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState

from pytest_tracechain import _otlp_decode, _received
from pytest_tracechain._otlp_decode import BadRequest, decode
from pytest_tracechain._received import ReceivedSpan, make_parent_remote
from pytest_tracechain._router import Router


def _exported() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"process.pid": 4242, "service.name": "job"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("unit", "1.0")
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes={"job.id": 7, "q": "x"}):
        for _ in range(2):
            with tracer.start_as_current_span("child") as child:
                child.add_event("step", {"n": 1})
                with tracer.start_as_current_span("leaf"):
                    pass
                with tracer.start_as_current_span("leaf") as leaf:
                    leaf.set_status(StatusCode.ERROR, "boom")
    remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), TraceState([("k", "v")]))
    with tracer.start_as_current_span("linked", links=[Link(remote, {"why": "batch"})]):
        pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


def _body(spans: list[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


def test_the_direct_span_context_is_the_one_the_constructor_builds() -> None:
    fields = (2**128 - 1, 2**64 - 1, False, TraceFlags(1), TraceState(), True)
    direct = _otlp_decode._new_context(fields)
    built = SpanContext(*fields[:5])
    assert type(direct) is SpanContext
    assert direct == built
    assert (direct.trace_id, direct.span_id, direct.is_remote, direct.is_valid) == (
        2**128 - 1,
        2**64 - 1,
        False,
        True,
    )


def test_a_received_span_filled_has_every_field_the_sdk_s_constructor_sets() -> None:
    ((span, *_),) = decode(_body(_exported()[:1]), "protobuf").spans
    assert isinstance(span, ReceivedSpan)
    assert not _received._SDK_ONLY
    made = ReadableSpan("", resource=Resource({}))
    span.name  # noqa: B018 - decodes it
    assert {field for field in vars(made) if not hasattr(span, field)} == set()
    assert span._pending is None


def test_only_what_routing_and_checking_read_is_decoded_before_the_first_read() -> None:
    rows = decode(_body(_exported()), "protobuf").spans
    spans = [span for span, *_ in rows]
    assert all(span._pending is not None for span in spans)  # type: ignore[attr-defined]
    assert spans[0].kind is SpanKind.INTERNAL  # set when received: decodes nothing
    assert all(span._pending is not None for span in spans)  # type: ignore[attr-defined]
    assert spans[0].context is not None  # the first read of a deferred field decodes the whole scope
    assert all(span._pending is None for span in spans)  # type: ignore[attr-defined]


def test_a_span_read_from_many_threads_at_once_is_decoded_once() -> None:
    rows = decode(_body(_exported()), "protobuf").spans
    calls: list[int] = []
    start = threading.Barrier(8)
    seen: list[object] = []

    def read() -> None:
        start.wait()
        seen.append([span.context for span, *_ in rows])

    with patch.object(_otlp_decode, "_contexts", side_effect=_counting(calls)):
        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(calls) == len(rows)  # each span's contexts built once, not once per thread
    assert all(contexts == seen[0] for contexts in seen)


def _counting(calls: list[int]) -> Any:
    contexts = _otlp_decode._contexts

    def count(*args: Any) -> Any:
        calls.append(1)
        return contexts(*args)

    return count


def test_a_read_that_missed_a_field_another_thread_then_set_finds_it() -> None:
    # The window of a first read racing another thread's decode: this thread's lookup missed ``_name``,
    # then the other thread filled the span (``_pending`` is None) before ``__getattr__`` ran.
    rows = decode(_body(_exported()), "protobuf").spans
    span = rows[3][0]
    span._pending.decode()  # type: ignore[attr-defined]
    assert ReceivedSpan.__getattr__(span, "_name") == span.name  # type: ignore[arg-type]


def test_a_decoding_interrupted_midway_is_finished_by_the_next_read() -> None:
    rows = decode(_body(_exported()), "protobuf").spans
    contexts = _otlp_decode._contexts
    calls: list[int] = []

    def interrupted(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return contexts(*args)

    with patch.object(_otlp_decode, "_contexts", side_effect=interrupted), pytest.raises(KeyboardInterrupt):
        rows[0][0].name  # noqa: B018
    assert [span._pending is None for span, *_ in rows[:3]] == [True, True, False]  # type: ignore[attr-defined]
    assert [span.name for span, *_ in rows] == [span.name for span in _exported()]
    assert len(calls) == 3  # the two spans decoded before the interruption are not decoded again


def test_a_parent_found_remote_before_decoding_is_built_remote_at_it() -> None:
    rows = decode(_body(_exported()), "protobuf").spans
    span = next(span for span, *_, parent_id in rows if parent_id)
    make_parent_remote(span)
    assert span._pending is not None  # type: ignore[attr-defined]  # nothing decoded to say so
    assert span.parent is not None
    assert span.parent.is_remote
    assert all(other.parent is None or not other.parent.is_remote for other, *_ in rows if other is not span)
    decoded = next(other for other, *_, parent_id in rows if parent_id and other is not span)
    make_parent_remote(decoded)  # decoded already: its parent context is rebuilt
    assert decoded.parent is not None
    assert decoded.parent.is_remote


def test_a_request_whose_spans_were_all_dropped_is_freed_without_the_collector() -> None:
    router = Router()
    router.receiving = True  # and no test running: every span is dropped
    decoded = decode(_body(_exported()), "protobuf")
    assert router.receive_rows(decoded.spans, decoded.undecided) == len(decoded.spans)
    first = weakref.ref(decoded.spans[0][0])
    decoded.forget()
    gc.disable()
    try:
        del decoded
        assert first() is None
    finally:
        gc.enable()


def test_a_span_with_a_bad_link_and_a_bad_status_is_named_by_its_link() -> None:
    request = encode_spans(_exported())
    spans = request.resource_spans[0].scope_spans[0].spans
    index = next(i for i, span in enumerate(spans) if span.links)
    spans[index].links[0].span_id = bytes(8)
    spans[index].status.code = 9
    with pytest.raises(BadRequest, match=rf"spans\[{index}\]\.links\[0\]\.spanId is all zeros"):
        decode(request.SerializeToString(), "protobuf")


def test_a_copy_of_a_received_span_is_decoded() -> None:
    rows = decode(_body(_exported()), "protobuf").spans
    span = rows[0][0]
    copied = copy.copy(span)
    assert copied._pending is None  # type: ignore[attr-defined]
    assert copied.name == span.name
    assert copied.context == span.context


def test_a_missing_attribute_of_a_decoded_span_is_an_attribute_error() -> None:
    ((span, *_),) = decode(_body(_exported()[:1]), "protobuf").spans
    with pytest.raises(AttributeError, match="'ReceivedSpan' object has no attribute '_nothing'"):
        span._nothing  # type: ignore[attr-defined]  # noqa: B018
    assert span._pending is None  # type: ignore[attr-defined]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="CPython keeps instance fields inline from 3.11")
def test_decoded_spans_keep_their_fields_inline_without_a_dict_each() -> None:
    # In a fresh process, whose first request is a large one: the case the class's first span guards.
    code = """
import gc, sys
sys.path.insert(0, {tests!r})
from test_otlp_decode import _body, _many
from pytest_tracechain._otlp_decode import decode
rows = decode(_body(_many(600)), "protobuf").spans
rows[0][0].name
print(sum(any(type(r) is dict and "_kind" in r for r in gc.get_referents(span)) for span, *_ in rows))
"""
    out = subprocess.run(
        [sys.executable, "-c", code.format(tests=str(Path(__file__).parent))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "0"


def _many(n: int) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("unit")
    for _ in range(n // 3):
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
            tracer.start_span("leaf").end()
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_decoded_spans_are_the_exported_ones() -> None:
    sent = _exported()
    received = [span for span, *_ in decode(_body(sent), "protobuf").spans]
    assert len(received) == len(sent)
    for original, span in zip(sent, received, strict=True):
        assert span.name == original.name
        assert span.context == SpanContext(
            original.context.trace_id,
            original.context.span_id,
            False,
            TraceFlags(1),
            original.context.trace_state,
        )
        assert span.context.is_valid
        assert (span.parent.span_id if span.parent else None) == (
            original.parent.span_id if original.parent else None
        )
        assert span.kind is original.kind
        assert span.status.status_code is original.status.status_code
        assert span.status.description == original.status.description
        assert dict(span.attributes or {}) == dict(original.attributes or {})
        assert [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events] == [
            (e.name, dict(e.attributes or {}), e.timestamp) for e in original.events
        ]
        assert (span.start_time, span.end_time) == (original.start_time, original.end_time)
        assert span.resource.attributes["service.name"] == "job"
        assert span.instrumentation_scope is not None
        assert (span.instrumentation_scope.name, span.instrumentation_scope.version) == ("unit", "1.0")
    (linked,) = [span for span in received if span.name == "linked"]
    (link,) = linked.links
    assert link.context == SpanContext(
        0xABC, 0xDEF, True, TraceFlags(1)
    )  # the exporter sends no link trace state
    assert dict(link.attributes or {}) == {"why": "batch"}


def test_each_row_names_the_ids_the_router_routes_by() -> None:
    rows = decode(_body(_exported()), "protobuf").spans
    for span, origin, trace_id, span_id, parent_id in rows:
        assert (trace_id, span_id) == (span.context.trace_id, span.context.span_id)
        assert parent_id == (span.parent.span_id if span.parent else 0)
        assert origin.pid == 4242
    assert any(row[4] == 0 for row in rows)
    assert any(row[4] != 0 for row in rows)


def test_a_span_without_status_is_unset_and_one_with_status_keeps_it() -> None:
    statuses = [(span.name, span.status) for span, *_ in decode(_body(_exported()), "protobuf").spans]
    assert [
        (name, status.status_code, status.description) for name, status in statuses if name == "leaf"
    ] == [
        ("leaf", StatusCode.UNSET, None),
        ("leaf", StatusCode.ERROR, "boom"),
    ] * 2
    assert all(status.status_code is StatusCode.UNSET for name, status in statuses if name != "leaf")


def test_attribute_values_of_every_kind_and_their_empty_forms_are_decoded() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    values = {
        "s": "x",
        "empty": "",
        "i": 7,
        "zero": 0,
        "f": 1.5,
        "f0": 0.0,
        "t": True,
        "no": False,
        "strings": ("a", ""),
        "ints": (0, 1),
        "none": (),
    }
    with provider.get_tracer("unit").start_as_current_span("s", attributes=values):
        pass
    provider.shutdown()
    request = encode_spans(exporter.get_finished_spans())
    raw = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="raw")
    raw.value.bytes_value = b"\x00"
    nested = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="kv")
    nested.value.kvlist_value.values.add(key="n").value.string_value = ""
    request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="unset")
    ((span, *_),) = decode(request.SerializeToString(), "protobuf").spans
    assert dict(span.attributes or {}) == values | {"raw": b"\x00", "kv": {"n": ""}, "unset": None}
    assert [type(value) for value in (span.attributes or {}).values()][:8] == [
        str, str, int, int, float, float, bool, bool
    ]  # fmt: skip


def test_siblings_share_their_parent_s_context_which_the_parent_takes_as_its_own() -> None:
    received = {span.context.span_id: span for span, *_ in decode(_body(_exported()), "protobuf").spans}
    children = [span for span in received.values() if span.parent is not None]
    for span in children:
        parent = received[span.parent.span_id]  # type: ignore[union-attr]
        assert span.parent is parent.context
        assert span.parent.is_remote is False  # type: ignore[union-attr]
    leaves = [span for span in children if span.name == "leaf"]
    assert len({id(span.parent) for span in leaves}) == 2


needs_flags = pytest.mark.skipif(
    not _otlp_decode._HAS_FLAGS, reason="opentelemetry-proto before 1.25 has no span flags"
)


@needs_flags
def test_a_sibling_with_other_flags_gets_a_parent_context_of_its_own() -> None:
    sent = _exported()
    request = encode_spans(sent)
    spans = request.resource_spans[0].scope_spans[0].spans
    first, second = [span for span in spans if span.name == "leaf"][:2]
    second.flags = second.flags & ~0xFF  # no W3C flags: decoded as sampled, the same TraceFlags
    first.trace_state = "k=v"
    received = {
        span.context.span_id: span for span, *_ in decode(request.SerializeToString(), "protobuf").spans
    }
    one = received[int.from_bytes(first.span_id, "big")]
    other = received[int.from_bytes(second.span_id, "big")]
    assert one.parent == SpanContext(
        one.context.trace_id, one.parent.span_id, False, TraceFlags(1), TraceState([("k", "v")])
    )  # type: ignore[union-attr]
    assert one.parent is not other.parent
    assert other.parent is received[other.parent.span_id].context  # type: ignore[union-attr]


@needs_flags
def test_a_remote_parent_is_never_shared() -> None:
    sent = _exported()
    request = encode_spans(sent)
    spans = request.resource_spans[0].scope_spans[0].spans
    leaf = next(span for span in spans if span.name == "leaf")
    leaf.flags |= 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE, with HAS_IS_REMOTE already set
    received = {
        span.context.span_id: span for span, *_ in decode(request.SerializeToString(), "protobuf").spans
    }
    span = received[int.from_bytes(leaf.span_id, "big")]
    assert span.parent is not None
    assert span.parent.is_remote
    assert received[span.parent.span_id].context.is_remote is False


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("trace_id", b"abc", "traceId must be 16 bytes, got 3"),
        ("trace_id", bytes(16), "traceId is all zeros (an invalid id)"),
        ("span_id", bytes(9), "spanId must be 8 bytes, got 9"),
        ("span_id", bytes(8), "spanId is all zeros (an invalid id)"),
        ("parent_span_id", b"\x01", "parentSpanId must be 8 bytes, got 1"),
        ("parent_span_id", bytes(8), "parentSpanId is all zeros (an invalid id)"),
        ("kind", 9, "kind is 9, not an OTLP span kind (0-5)"),
    ],
)
def test_a_bad_field_is_named_with_the_index_of_its_span(field: str, value: object, reason: str) -> None:
    request = encode_spans(_exported())
    setattr(request.resource_spans[0].scope_spans[0].spans[2], field, value)
    with pytest.raises(BadRequest) as raised:
        decode(request.SerializeToString(), "protobuf")
    assert str(raised.value) == f"resourceSpans[0].scopeSpans[0].spans[2].{reason}"


def test_a_bad_status_code_is_named_with_the_index_of_its_span() -> None:
    request = encode_spans(_exported())
    request.resource_spans[0].scope_spans[0].spans[3].status.code = 7
    with pytest.raises(BadRequest) as raised:
        decode(request.SerializeToString(), "protobuf")
    assert str(raised.value) == (
        "resourceSpans[0].scopeSpans[0].spans[3].status.code is 7, not an OTLP status code (0-2)"
    )


def test_a_bad_link_is_named_with_its_span_and_its_index() -> None:
    request = encode_spans(_exported())
    spans = request.resource_spans[0].scope_spans[0].spans
    index = next(i for i, span in enumerate(spans) if span.links)
    spans[index].links[0].span_id = bytes(8)
    with pytest.raises(BadRequest) as raised:
        decode(request.SerializeToString(), "protobuf")
    assert str(raised.value) == (
        f"resourceSpans[0].scopeSpans[0].spans[{index}].links[0].spanId is all zeros (an invalid id)"
    )
