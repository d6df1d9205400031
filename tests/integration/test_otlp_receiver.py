"""The ``otlp_receiver`` fixture: OTLP/HTTP in, spans in the running test's capture out."""

from __future__ import annotations

import errno
import json
import pathlib
import select
import socket
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunPytest

pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")

from opentelemetry.proto.trace.v1 import trace_pb2

# Inner conftest: a raw HTTP client and builders of OTLP protobuf requests.
HELPERS = """
import http.client
import os
import socket
import urllib.parse

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
PROTOBUF = "application/x-protobuf"


def post(receiver, body, content_type=PROTOBUF, *, path="/v1/traces", method="POST", headers=None, timeout=10):
    url = urllib.parse.urlsplit(receiver.endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": content_type, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def value(v):
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, (list, tuple)):
        return AnyValue(array_value={"values": [value(x) for x in v]})
    if isinstance(v, dict):
        return AnyValue(kvlist_value={"values": attrs(v)})
    return AnyValue(string_value=v)


def attrs(mapping):
    return [KeyValue(key=k, value=value(v)) for k, v in mapping.items()]


# opentelemetry-proto before 1.25 has no span flags (OTLP 1.1).
HAS_FLAGS = "flags" in trace_pb2.Span.DESCRIPTOR.fields_by_name


def span(name, span_id, parent=b"", *, trace=None, flags=0x100, kind=1, start=1_000, end=2_000, **fields):
    # A new trace unless told: a trace belongs to the test that first held it.
    if HAS_FLAGS:
        fields["flags"] = flags
    return trace_pb2.Span(
        trace_id=trace or os.urandom(16), span_id=span_id, parent_span_id=parent, name=name, kind=kind,
        start_time_unix_nano=start, end_time_unix_nano=end, **fields,
    )


def request(*spans, pid=4242, scope="child.scope"):
    resource = {"service.name": "child"}
    if pid is not None:
        resource["process.pid"] = pid
    return ExportTraceServiceRequest(resource_spans=[{
        "resource": {"attributes": attrs(resource)},
        "scope_spans": [{"scope": {"name": scope, "version": "1.2"}, "spans": list(spans)}],
    }])


def accepted(receiver, tracechain, name="ok"):
    # A valid request right after a rejected one is answered 200 and captured.
    status, content_type, body = post(
        receiver, request(span(name, b"\\x07" * 8)).SerializeToString()
    )
    assert (status, content_type, body) == (200, PROTOBUF, b"")
    tracechain.wait_for(name, timeout=5)


def rpc_status(body):
    # google.rpc.Status: field 1 code (varint), field 2 message (string)
    assert body[0] == 0x08
    code = body[1]
    assert body[2] == 0x12
    length, start = 0, 3
    shift = 0
    while True:
        byte = body[start]
        length |= (byte & 0x7F) << shift
        start += 1
        shift += 7
        if not byte & 0x80:
            break
    return code, body[start:start + length].decode()


def chunked(data, size=7):
    # data in chunks of size bytes, then the last chunk
    return b"".join(
        b"%x\\r\\n%s\\r\\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size)
    ) + b"0\\r\\n\\r\\n"


def exchange(receiver, body, *, transfer_encoding="chunked", headers=(), timeout=5):
    # One request whose body is sent as it is, framing and all, on a connection that stays
    # open: the answer must come without the receiver waiting for the end of the stream.
    url = urllib.parse.urlsplit(receiver.endpoint)
    fields = [("Host", url.netloc), ("Content-Type", PROTOBUF), ("Transfer-Encoding", transfer_encoding), *headers]
    head = "POST /v1/traces HTTP/1.1\\r\\n" + "".join(f"{k}: {v}\\r\\n" for k, v in fields) + "\\r\\n"
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.getheader("Connection"), response.read()
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(HELPERS)
    return pytester


@pytest.mark.skipif(
    "flags" not in trace_pb2.Span.DESCRIPTOR.fields_by_name,
    reason="opentelemetry-proto before 1.25 has no span flags",
)
def test_protobuf_span_with_every_field(inner: pytest.Pytester, run_pytest: RunPytest) -> None:
    inner.makepyfile(
        """
        from opentelemetry.trace import SpanKind, StatusCode
        from pytest_tracechain import Origin
        from conftest import PROTOBUF, TRACE, attrs, post, request, span

        def test_fields(tracechain, otlp_receiver):
            sent = span(
                "GET /items", b"\\x02" * 8, b"\\x01" * 8, trace=TRACE, flags=0x301, kind=2,
                trace_state="vendor=1",
                attributes=attrs({
                    "s": "x", "b": True, "i": 7, "d": 1.5, "raw": b"\\x00\\x01",
                    "list": ["a", "b"], "nested": {"k": 1},
                }),
                events=[{"time_unix_nano": 1500, "name": "retry", "attributes": attrs({"n": 2})}],
                links=[{"trace_id": b"\\x09" * 16, "span_id": b"\\x03" * 8, "flags": 0x100,
                        "attributes": attrs({"why": "batch"})}],
                status={"code": 2, "message": "boom"},
            )
            status, content_type, body = post(otlp_receiver, request(sent).SerializeToString())
            assert (status, content_type, body) == (200, PROTOBUF, b"")

            got = tracechain.wait_for("GET /items")[0]
            assert got.context.trace_id == int.from_bytes(TRACE, "big")
            assert got.context.span_id == 0x0202020202020202
            assert got.context.trace_flags == 1
            assert got.context.trace_state.to_header() == "vendor=1"
            assert got.parent.span_id == 0x0101010101010101
            assert got.parent.is_remote
            assert got.kind is SpanKind.SERVER
            assert (got.start_time, got.end_time) == (1000, 2000)
            assert dict(got.attributes) == {
                "s": "x", "b": True, "i": 7, "d": 1.5, "raw": b"\\x00\\x01",
                "list": ("a", "b"), "nested": {"k": 1},
            }
            assert [(e.name, e.timestamp, dict(e.attributes)) for e in got.events] == [("retry", 1500, {"n": 2})]
            (link,) = got.links
            assert (link.context.trace_id, link.context.span_id, link.context.is_remote) == (
                0x09090909090909090909090909090909, 0x0303030303030303, False)
            assert dict(link.attributes) == {"why": "batch"}
            assert (got.status.status_code, got.status.description) == (StatusCode.ERROR, "boom")
            assert got.resource.attributes["service.name"] == "child"
            assert got.resource.attributes["process.pid"] == 4242
            assert (got.instrumentation_scope.name, got.instrumentation_scope.version) == ("child.scope", "1.2")
            assert tracechain.origin(got) == Origin(4242, None, None, None)
            assert "pid 4242" in tracechain.render()
            assert otlp_receiver.received == 1

        def test_no_pid_and_unset_fields(tracechain, otlp_receiver):
            sent = request(span("bare", b"\\x05" * 8, trace=b"\\x05" * 16, flags=0, kind=0), pid=None)
            status, _, _ = post(otlp_receiver, sent.SerializeToString())
            assert status == 200
            got = tracechain.wait_for("bare")[0]
            assert got.parent is None
            assert got.kind is SpanKind.INTERNAL
            assert got.status.status_code is StatusCode.UNSET
            assert got.context.trace_flags.sampled  # an exported span was sampled
            assert tracechain.origin(got) == Origin(0, None, None, None)
        """
    )
    run_pytest("--tb=short").assert_outcomes(passed=2)


def test_json_bodies(inner: pytest.Pytester, run_pytest: RunPytest) -> None:
    inner.makepyfile(
        """
        import json
        from opentelemetry.trace import SpanKind
        from conftest import HAS_FLAGS, accepted, post

        CAMEL = {"resourceSpans": [{
            "resource": {"attributes": [
                {"key": "process.pid", "value": {"intValue": "777"}},
                {"key": "service.name", "value": {"stringValue": "json-child"}},
            ]},
            "scopeSpans": [{"scope": {"name": "js"}, "spans": [{
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "spanId": "EEE19B7EC3C1B174",
                "parentSpanId": "EEE19B7EC3C1B173",
                "name": "camel", "kind": 5, "flags": 768,
                "startTimeUnixNano": "1544712660000000000",
                "endTimeUnixNano": "1544712661000000000",
                "attributes": [
                    {"key": "n", "value": {"intValue": "42"}},
                    {"key": "d", "value": {"doubleValue": 0.5}},
                    {"key": "blob", "value": {"bytesValue": "AAE="}},
                    {"key": "arr", "value": {"arrayValue": {"values": [{"boolValue": True}]}}},
                ],
                "links": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b172"}],
                "status": {"code": 1},
                "someFutureField": {"ignored": True},
            }]}],
        }]}

        SNAKE = {"resource_spans": [{"scope_spans": [{"spans": [{
            "trace_id": "5b8efff798038103d269b633813fc60d",
            "span_id": "eee19b7ec3c1b175",
            "parent_span_id": "",
            "name": "snake", "kind": 3,
            "start_time_unix_nano": 1, "end_time_unix_nano": 2,
        }]}]}]}

        def test_camel_case(tracechain, otlp_receiver):
            status, content_type, body = post(otlp_receiver, json.dumps(CAMEL), "application/json")
            assert (status, content_type, json.loads(body)) == (200, "application/json", {})
            got = tracechain.wait_for("camel")[0]
            assert (got.context.trace_id, got.context.span_id) == (
                0x5B8EFFF798038103D269B633813FC60C, 0xEEE19B7EC3C1B174)
            assert got.parent.span_id == 0xEEE19B7EC3C1B173
            # flags 768: the parent is remote (an older opentelemetry-proto ignores the flags)
            assert got.parent.is_remote is HAS_FLAGS
            assert got.kind is SpanKind.CONSUMER
            assert got.start_time == 1544712660000000000
            assert dict(got.attributes) == {"n": 42, "d": 0.5, "blob": b"\\x00\\x01", "arr": (True,)}
            assert got.links[0].context.span_id == 0xEEE19B7EC3C1B172
            assert tracechain.origin(got).pid == 777

        def test_snake_case_and_charset(tracechain, otlp_receiver):
            status, _, _ = post(otlp_receiver, json.dumps(SNAKE).encode(), "application/json; charset=utf-8")
            assert status == 200
            got = tracechain.wait_for("snake")[0]
            assert got.parent is None and got.kind is SpanKind.CLIENT

        def test_bad_ids(tracechain, otlp_receiver):
            bad = json.loads(json.dumps(SNAKE))
            bad["resource_spans"][0]["scope_spans"][0]["spans"][0]["span_id"] = "xyz"
            status, content_type, body = post(otlp_receiver, json.dumps(bad), "application/json")
            assert (status, content_type) == (400, "application/json")
            assert json.loads(body) == {
                "code": 3,
                "message": "resourceSpans[0].scopeSpans[0].spans[0].span_id must be 16 hex digits, got 'xyz'",
            }
            bad["resource_spans"][0]["scope_spans"][0]["spans"][0]["span_id"] = 5
            status, _, body = post(otlp_receiver, json.dumps(bad), "application/json")
            assert json.loads(body)["message"] == (
                "resourceSpans[0].scopeSpans[0].spans[0].span_id must be a hex string, not a number")
            accepted(otlp_receiver, tracechain)

        def test_not_otlp_json(tracechain, otlp_receiver):
            for body, message in [
                (b"[1]", "body must be a JSON object (ExportTraceServiceRequest), not an array"),
                (b"{", "body is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
                (b'{"resourceSpans": {}}', "resourceSpans must be a JSON array, not an object"),
                (b"\\xff", "body is not UTF-8 JSON"),
            ]:
                status, _, answer = post(otlp_receiver, body, "application/json")
                assert (status, json.loads(answer)["message"]) == (400, message)
            status, _, answer = post(otlp_receiver, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}', "application/json")
            assert status == 400
            assert json.loads(answer)["message"].startswith("body is not an OTLP JSON ExportTraceServiceRequest (")
            accepted(otlp_receiver, tracechain)

        def test_too_deep_and_too_many_values(tracechain, otlp_receiver):
            deep = b"[" * 100_000 + b"]" * 100_000
            status, _, answer = post(otlp_receiver, deep, "application/json")
            assert (status, json.loads(answer)) == (400, {"code": 3, "message": "body is JSON nested too deeply to decode"})
            # 6 MB that json.loads would make 2,000,001 dicts of
            empty_objects = b'{"resourceSpans": [' + b"{}," * 2_000_000 + b"{}]}"
            status, _, answer = post(otlp_receiver, empty_objects, "application/json")
            assert (status, json.loads(answer)) == (413, {"code": 8, "message": (
                "JSON body holds up to 4000004 values (counted by its ',', '{' and '['), over the limit "
                "of 4000000; export fewer spans per request")})
            accepted(otlp_receiver, tracechain)
        """
    )
    run_pytest("--tb=short").assert_outcomes(passed=5)


def test_compressed_bodies(inner: pytest.Pytester, run_pytest: RunPytest) -> None:
    inner.makepyfile(
        """
        import gzip, zlib
        import pytest
        from conftest import PROTOBUF, accepted, post, request, span

        @pytest.mark.parametrize("encoding, compress", [
            ("gzip", gzip.compress),
            ("deflate", zlib.compress),
            ("deflate", lambda data: (lambda z: z.compress(data) + z.flush())(zlib.compressobj(wbits=-15))),
        ])
        def test_compressed(tracechain, otlp_receiver, encoding, compress):
            body = compress(request(span("zipped", b"\\x04" * 8)).SerializeToString())
            status, content_type, answer = post(otlp_receiver, body, headers={"Content-Encoding": encoding})
            assert (status, content_type, answer) == (200, PROTOBUF, b"")
            tracechain.wait_for("zipped")

        def test_unknown_encoding(tracechain, otlp_receiver):
            status, _, answer = post(otlp_receiver, b"x", headers={"Content-Encoding": "br"})
            assert status == 415
            assert b"unsupported content encoding 'br'; send gzip, deflate or none" in answer
            accepted(otlp_receiver, tracechain)
        """
    )
    run_pytest("--tb=short").assert_outcomes(passed=4)


def test_bad_requests_are_answered_and_the_server_keeps_serving(
    inner: pytest.Pytester, run_pytest: RunPytest
) -> None:
    inner.makepyfile(
        """
        import gzip, http.client, socket, urllib.parse, zlib
        import pytest
        from pytest_tracechain import _otlp
        from conftest import PROTOBUF, accepted, post, request, rpc_status, span

        def test_garbage(tracechain, otlp_receiver):
            status, content_type, body = post(otlp_receiver, b"\\xff\\xff\\xff\\xff")
            assert (status, content_type) == (400, PROTOBUF)
            code, message = rpc_status(body)
            # The parser's own words depend on the protobuf version.
            assert (code, message[:63]) == (3, "body is not a protobuf ExportTraceServiceRequest (Error parsing")
            accepted(otlp_receiver, tracechain)

        def test_truncated_protobuf(tracechain, otlp_receiver):
            whole = request(span("cut", b"\\x06" * 8)).SerializeToString()
            status, _, body = post(otlp_receiver, whole[:-7])
            assert status == 400
            assert rpc_status(body)[1].startswith("body is not a protobuf ExportTraceServiceRequest (")
            accepted(otlp_receiver, tracechain)

        def test_truncated_gzip(tracechain, otlp_receiver):
            whole = gzip.compress(request(span("cut", b"\\x06" * 8)).SerializeToString())
            status, _, body = post(otlp_receiver, whole[:-9], headers={"Content-Encoding": "gzip"})
            assert (status, rpc_status(body)) == (400, (3, "gzip body is truncated"))
            status, _, body = post(otlp_receiver, b"not gzip at all", headers={"Content-Encoding": "gzip"})
            assert (status, rpc_status(body)) == (
                400, (3, "body is not valid gzip (Error -3 while decompressing data: incorrect header check)"))
            accepted(otlp_receiver, tracechain)

        def test_body_shorter_than_announced(tracechain, otlp_receiver):
            url = urllib.parse.urlsplit(otlp_receiver.endpoint)
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            conn.putrequest("POST", "/v1/traces")
            conn.putheader("Content-Type", PROTOBUF)
            conn.putheader("Content-Length", "100")
            conn.endheaders(b"only this")
            conn.sock.shutdown(socket.SHUT_WR)
            response = conn.getresponse()
            assert response.status == 400
            assert rpc_status(response.read())[1] == "body ended after 9 of the 100 bytes announced"
            conn.close()
            accepted(otlp_receiver, tracechain)

        def test_oversize_body(tracechain, otlp_receiver):
            url = urllib.parse.urlsplit(otlp_receiver.endpoint)
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            conn.putrequest("POST", "/v1/traces")
            conn.putheader("Content-Type", PROTOBUF)
            conn.putheader("Content-Length", str(_otlp.MAX_BODY_BYTES + 1))
            conn.endheaders()  # the body is never sent: the answer comes first
            response = conn.getresponse()
            assert (response.status, response.getheader("Connection")) == (413, "close")
            assert rpc_status(response.read()) == (
                8, "body of 67108865 bytes is over the limit of 67108864 bytes")
            conn.close()
            accepted(otlp_receiver, tracechain)

        def test_gzip_bomb(tracechain, otlp_receiver):
            squeezer = zlib.compressobj(9, zlib.DEFLATED, 31)
            block = bytes(1024 * 1024)
            bomb = b"".join(squeezer.compress(block) for _ in range(1024)) + squeezer.flush()
            assert len(bomb) < 2 * 1024 * 1024  # 1 GiB of zeros
            status, _, body = post(otlp_receiver, bomb, headers={"Content-Encoding": "gzip"})
            assert (status, rpc_status(body)) == (
                413, (8, "gzip body inflates to over the limit of 67108864 bytes"))
            accepted(otlp_receiver, tracechain)

        def test_too_many_messages(tracechain, otlp_receiver):
            # 4 MB of empty spans (2 bytes each) that would take 340 MB to parse
            spans = b"\\x12\\x00" * 2_000_000
            scope = b"\\x12" + _otlp._varint(len(spans)) + spans
            status, _, body = post(otlp_receiver, b"\\x0a" + _otlp._varint(len(scope)) + scope)
            assert (status, rpc_status(body)) == (413, (8, (
                "protobuf body holds up to 2000004 messages (counted by their tag bytes), over the limit "
                "of 2000000; export fewer spans per request")))
            accepted(otlp_receiver, tracechain)

        def test_wrong_content_type_path_and_method(tracechain, otlp_receiver):
            assert post(otlp_receiver, b"x", "text/plain") == (
                415, "text/plain; charset=utf-8",
                b"unsupported content type 'text/plain'; send application/x-protobuf or application/json\\n")
            assert post(otlp_receiver, b"x", path="/v1/metrics") == (
                404, "text/plain; charset=utf-8",
                b"no such path '/v1/metrics'; OTLP/HTTP traces go to /v1/traces\\n")
            assert post(otlp_receiver, None, method="GET") == (
                405, "text/plain; charset=utf-8", b"GET is not allowed on /v1/traces; use POST\\n")
            accepted(otlp_receiver, tracechain)

        def test_invalid_ids_and_enums(tracechain, otlp_receiver):
            for sent, reason in [
                (span("x", b"\\x01" * 3), "resourceSpans[0].scopeSpans[0].spans[0].spanId must be 8 bytes, got 3"),
                (span("x", b"\\x01" * 8, trace=b"\\x00" * 16),
                 "resourceSpans[0].scopeSpans[0].spans[0].traceId is all zeros (an invalid id)"),
                (span("x", b"\\x01" * 8, kind=9), "resourceSpans[0].scopeSpans[0].spans[0].kind is 9, not an OTLP span kind (0-5)"),
                (span("x", b"\\x01" * 8, status={"code": 5}),
                 "resourceSpans[0].scopeSpans[0].spans[0].status.code is 5, not an OTLP status code (0-2)"),
            ]:
                status, _, body = post(otlp_receiver, request(sent).SerializeToString())
                assert (status, rpc_status(body)) == (400, (3, reason))
            assert tracechain.spans == []
            assert otlp_receiver.rejected[-1] == (400, reason)
            accepted(otlp_receiver, tracechain)

        def test_handler_error_is_a_500(tracechain, otlp_receiver, monkeypatch, caplog):
            from pytest_tracechain import _otlp_decode

            def broken(*args):
                raise RuntimeError("broken checks")

            monkeypatch.setattr(_otlp_decode, "_check", broken)
            status, _, body = post(otlp_receiver, request(span("x", b"\\x01" * 8)).SerializeToString())
            assert (status, rpc_status(body)) == (
                500, (13, "internal error in pytest-tracechain's otlp_receiver (logged)"))
            assert "otlp_receiver: internal error while handling a request; answered 500" in caplog.text
            monkeypatch.undo()
            accepted(otlp_receiver, tracechain)

        def test_an_error_after_the_answer_is_logged_and_recorded(tracechain, otlp_receiver, monkeypatch, caplog):
            from pytest_tracechain import _provider

            def broken(*args):
                raise RuntimeError("broken router")

            monkeypatch.setattr(_provider.router(), "receive_answered", broken)
            status, _, body = post(otlp_receiver, request(span("x", b"\\x01" * 8)).SerializeToString())
            assert (status, body) == (200, b"")  # answered once checked: the spans were sound
            assert tracechain.spans == []  # waits for the capture, which failed
            assert (
                "otlp_receiver: internal error while capturing a request answered 200; its spans are lost"
                in caplog.text
            )
            assert otlp_receiver.rejected[-1] == (
                500, "internal error in pytest-tracechain's otlp_receiver after answering 200 (logged)")
            monkeypatch.undo()
            accepted(otlp_receiver, tracechain)
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(passed=11)


def test_chunked_bodies(inner: pytest.Pytester, run_pytest: RunPytest) -> None:
    inner.makepyfile(
        r"""
        import gzip, http.client, urllib.parse, zlib
        import pytest
        from pytest_tracechain import _otlp
        from conftest import PROTOBUF, accepted, chunked, exchange, request, rpc_status, span

        def test_chunked_then_another_request_on_the_same_connection(tracechain, otlp_receiver):
            url = urllib.parse.urlsplit(otlp_receiver.endpoint)
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            whole = request(span("chunked", b"\x21" * 8)).SerializeToString()
            # http.client sends an iterable body chunked
            conn.request("POST", "/v1/traces", body=iter([whole[i:i + 5] for i in range(0, len(whole), 5)]),
                         headers={"Content-Type": PROTOBUF})
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"")
            first = conn.sock
            squeezed = gzip.compress(request(span("chunked gzip", b"\x22" * 8)).SerializeToString())
            conn.request("POST", "/v1/traces", body=iter([squeezed[:9], squeezed[9:]]),
                         headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"})
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"")
            assert conn.sock is first  # kept alive after a chunked body
            conn.close()
            assert [s.name for s in tracechain.spans] == ["chunked", "chunked gzip"]

        def test_chunk_extensions(tracechain, otlp_receiver):
            framed = chunked(request(span("extended", b"\x23" * 8)).SerializeToString())
            framed = framed.replace(b"\r\n", b" ;name=value\r\n", 1)
            assert exchange(otlp_receiver, framed)[0] == 200
            tracechain.wait_for("extended")

        @pytest.mark.parametrize("framed, reason", [
            # int(_, 16) takes the first five: "-1" read the stream to its end
            (b"-1\r\n" + bytes(4096), "chunk size '-1' is not a hexadecimal number"),
            (b"-5\r\nhello\r\n0\r\n\r\n", "chunk size '-5' is not a hexadecimal number"),
            (b"+5\r\nhello\r\n0\r\n\r\n", "chunk size '+5' is not a hexadecimal number"),
            (b"0x5\r\nhello\r\n0\r\n\r\n", "chunk size '0x5' is not a hexadecimal number"),
            (b"1_0\r\n" + bytes(16) + b"\r\n0\r\n\r\n", "chunk size '1_0' is not a hexadecimal number"),
            (b"zz\r\n", "chunk size 'zz' is not a hexadecimal number"),
            (b"\r\n", "chunk size '' is not a hexadecimal number"),
            (b"5\nhello\r\n0\r\n\r\n", "chunk size line '5\\n' ends with LF, not CRLF"),
            (b"5\r\nhello0\r\n\r\n", "a chunk of 5 bytes is not followed by CRLF"),
            (b"0" * 2000 + b"5\r\nhello\r\n0\r\n\r\n",
             "chunk size line is longer than 1024 bytes ('0000000000000000000000000000000000000000'...)"),
            (b"5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n",
             "chunked body has trailer fields ('X-Checksum: 1\\r\\n'); the receiver accepts none"),
        ])
        def test_malformed(tracechain, otlp_receiver, framed, reason):
            status, connection, body = exchange(otlp_receiver, framed)
            assert (status, connection, rpc_status(body)) == (400, "close", (3, reason))
            assert otlp_receiver.rejected[-1] == (400, reason)
            accepted(otlp_receiver, tracechain)

        def test_other_transfer_codings(tracechain, otlp_receiver):
            framed = chunked(request(span("x", b"\x24" * 8)).SerializeToString())
            status, connection, body = exchange(otlp_receiver, framed, transfer_encoding="gzip, chunked")
            assert (status, connection, rpc_status(body)) == (400, "close", (
                3, "Transfer-Encoding 'gzip, chunked' is not supported; send chunked or a Content-Length"))
            accepted(otlp_receiver, tracechain)

        def test_over_the_body_limit(tracechain, otlp_receiver):
            # data under the limit; its 9 bytes of size line and the CRLF after it take it over
            framed = b"%x\r\n" % (_otlp.MAX_BODY_BYTES - 10)
            status, connection, body = exchange(otlp_receiver, framed)
            assert (status, connection, rpc_status(body)) == (413, "close", (
                8, "chunked body over the limit of 67108864 bytes (as sent, framing included) "
                   "with a chunk of 67108854 bytes"))
            accepted(otlp_receiver, tracechain)

        def test_gzip_bomb_inside_chunks(tracechain, otlp_receiver):
            squeezer = zlib.compressobj(9, zlib.DEFLATED, 31)
            block = bytes(1024 * 1024)
            bomb = b"".join(squeezer.compress(block) for _ in range(80)) + squeezer.flush()
            status, _, body = exchange(
                otlp_receiver, chunked(bomb, 4096), headers=[("Content-Encoding", "gzip")], timeout=30)
            assert (status, rpc_status(body)) == (413, (8, "gzip body inflates to over the limit of 67108864 bytes"))
            accepted(otlp_receiver, tracechain)
        """
    )
    run_pytest("--tb=short").assert_outcomes(passed=16)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="how a full backlog drops SYNs is Linux's")
def test_a_burst_of_connections_waits_in_the_listen_backlog() -> None:
    """200 connections at once, none accepted yet: the kernel holds them all.

    The receiver accepts from one thread. With the standard library's backlog of
    5, the kernel drops the SYNs of the rest of a burst, whose exporters try again
    only 1, 3, 7... seconds later.
    """
    from pytest_tracechain import _otlp

    server = _otlp._listen()  # listening, never accepting
    sockets: list[socket.socket] = []
    try:
        address = server.server_address[:2]
        assert address[0] == "127.0.0.1"
        for _ in range(200):
            sock = socket.socket()
            sockets.append(sock)
            sock.setblocking(False)
            assert sock.connect_ex(address) in (0, errno.EINPROGRESS)
        pending = list(sockets)
        deadline = time.monotonic() + 0.5  # before the first retry of a dropped SYN, at 1 s
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], pending, [], 0.05)
            for sock in writable:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                pending.remove(sock)
        # The kernel caps the backlog at net.core.somaxconn (4096 since Linux 5.4, 128 before).
        cap = int(pathlib.Path("/proc/sys/net/core/somaxconn").read_text()) + 1
        assert len(sockets) - len(pending) == min(200, cap)
    finally:
        for sock in sockets:
            sock.close()
        server.server_close()


CHILD = """
import sys
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind

processor, carrier = sys.argv[1], sys.argv[2]
provider = TracerProvider()
make = {"batch": BatchSpanProcessor, "simple": SimpleSpanProcessor}[processor]
provider.add_span_processor(make(OTLPSpanExporter()))
tracer = provider.get_tracer("child")
# "ignore" plays a consumer that does not extract the carrier.
context = None if carrier == "ignore" else propagate.extract({"traceparent": carrier})
with tracer.start_as_current_span("user.events process", context=context, kind=SpanKind.CONSUMER):
    with tracer.start_as_current_span("store"):
        pass
provider.shutdown()
"""


@pytest.mark.parametrize("processor", ["batch", "simple"])
def test_child_process_exporting_with_the_real_exporter(
    inner: pytest.Pytester, run_pytest: RunPytest, processor: str
) -> None:
    inner.makepyfile(child=CHILD)
    inner.makepyfile(
        """
        import subprocess, sys
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind
        from pytest_tracechain import (
            assert_chain_intact, assert_child_of, assert_remote_parent, assert_trace_tree,
        )

        def run_child(otlp_receiver, carrier):
            return subprocess.run(
                [sys.executable, "child.py", "PROCESSOR", carrier], env=otlp_receiver.env, check=True
            )

        def test_across_processes(tracechain, tracer, otlp_receiver):
            with tracer.start_as_current_span("user.events send", kind=SpanKind.PRODUCER):
                headers = {}
                propagate.inject(headers)
                child = subprocess.Popen(
                    [sys.executable, "child.py", "PROCESSOR", headers["traceparent"]], env=otlp_receiver.env
                )
                assert child.wait(timeout=60) == 0
            process, store = tracechain.wait_for("user.events process"), tracechain.wait_for("store")
            assert_child_of("user.events process", "user.events send")
            assert_remote_parent("user.events process")
            assert_child_of("store", "user.events process")
            assert not store[0].parent.is_remote
            assert tracechain.origin("store").pid == child.pid
            assert_chain_intact()
            assert_trace_tree('''
                user.events send [producer]
                  user.events process [consumer]
                    store
            ''')
            assert f"pid {child.pid}" in tracechain.render()
            print("\\n" + tracechain.render())

        def test_consumer_that_ignored_the_carrier(tracechain, tracer, otlp_receiver):
            with tracer.start_as_current_span("user.events send", kind=SpanKind.PRODUCER):
                run_child(otlp_receiver, "ignore")
            tracechain.wait_for("store")
            assert_chain_intact()
        """.replace("PROCESSOR", processor)
    )
    result = run_pytest("--tb=short", "-s")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "trace * · 3 spans",
            "└─ user.events send [[]producer] · * · thread 'MainThread'",
            "   └─ user.events process [[]consumer] · * · pid *",
            "      └─ store · * · pid *",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: 1 broken trace chain:",
            "E   [[]dropped carrier] 'user.events process' is a consumer root span with neither a parent "
            "nor a link, although 'user.events send' (producer) started before it and nothing continues "
            "its trace: the consumer did not extract what was injected",
        ]
    )


def test_env_for_child_processes_and_the_server_stops_with_the_session(
    inner: pytest.Pytester, run_pytest: RunPytest
) -> None:
    inner.makepyfile(
        """
        import os, pathlib

        def test_env(otlp_receiver, monkeypatch):
            pathlib.Path("endpoint.txt").write_text(otlp_receiver.endpoint)
            monkeypatch.setenv("NO_PROXY", "example.com, localhost")
            monkeypatch.setenv("no_proxy", "internal")
            monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "os")
            monkeypatch.setenv("MY_SETTING", "kept")
            env = otlp_receiver.env
            assert env is not otlp_receiver.env  # a fresh dict each time
            assert otlp_receiver.endpoint.startswith("http://127.0.0.1:")
            assert env["MY_SETTING"] == "kept"
            assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == otlp_receiver.endpoint + "/v1/traces"
            assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
            assert env["OTEL_TRACES_EXPORTER"] == "otlp"
            assert env["OTEL_BSP_SCHEDULE_DELAY"] == "50"
            assert env["OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"] == "os,process"
            assert env["NO_PROXY"] == env["no_proxy"] == "example.com,localhost,internal,127.0.0.1"
        """
    )
    run_pytest("--tb=short").assert_outcomes(passed=1)
    host, port = (inner.path / "endpoint.txt").read_text().removeprefix("http://").split(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5).close()


def test_a_proxy_in_the_environment_does_not_take_the_traffic(
    inner: pytest.Pytester, run_pytest: RunPytest
) -> None:
    inner.makepyfile(child=CHILD)
    inner.makepyfile(
        """
        import socket, subprocess, sys

        def dead_port():
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                return sock.getsockname()[1]

        def test_proxy(tracechain, otlp_receiver, monkeypatch):
            proxy = f"http://127.0.0.1:{dead_port()}"
            for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
                monkeypatch.setenv(name, proxy)
            for name in ("no_proxy", "NO_PROXY"):
                monkeypatch.delenv(name, raising=False)
            subprocess.run([sys.executable, "child.py", "simple", "ignore"], env=otlp_receiver.env, check=True)
            tracechain.wait_for("store")
        """
    )
    run_pytest("--tb=short").assert_outcomes(passed=1)


def test_ownership_and_remote_parents_without_flags(inner: pytest.Pytester, run_pytest: RunPytest) -> None:
    inner.makepyfile(
        """
        import time
        from conftest import post, request, span
        from pytest_tracechain import assert_remote_parent, assert_child_of, _provider

        held = {}

        def test_first(tracechain, tracer, otlp_receiver):
            with tracer.start_as_current_span("send") as send:
                held["trace"] = send.get_span_context().trace_id.to_bytes(16, "big")
                held["span"] = send.get_span_context().span_id.to_bytes(8, "big")
                # No flags (an exporter that does not set them): the parent is a captured
                # span of another process, so it is remote; a parent in the same request is not.
                sent = request(
                    span("recv", b"\\x11" * 8, held["span"], trace=held["trace"], flags=0),
                    span("inner", b"\\x12" * 8, b"\\x11" * 8, trace=held["trace"], flags=0),
                )
                assert post(otlp_receiver, sent.SerializeToString())[0] == 200
            tracechain.wait_for("inner")
            assert_remote_parent("recv")
            assert_child_of("recv", "send")
            assert not tracechain.one("inner").parent.is_remote
            # A span of the same process as its parent, sent later: local.
            later = request(span("later", b"\\x13" * 8, b"\\x12" * 8, trace=held["trace"], flags=0))
            assert post(otlp_receiver, later.SerializeToString())[0] == 200
            assert not tracechain.wait_for("later")[0].parent.is_remote

        def test_second(tracechain, otlp_receiver):
            # A root of the first test's trace that arrives now belongs to the first test:
            # it never shows here (it is reported as a leak).
            late = request(span("late root", b"\\x14" * 8, trace=held["trace"], end=time.time_ns()))
            assert post(otlp_receiver, late.SerializeToString())[0] == 200
            fresh = request(span("fresh", b"\\x15" * 8, trace=b"\\x0f" * 16))
            assert post(otlp_receiver, fresh.SerializeToString())[0] == 200
            tracechain.wait_for("fresh")
            assert [s.name for s in tracechain.spans] == ["fresh"]
            held["receiver"] = otlp_receiver

        def test_a_test_that_only_receives_is_captured(otlp_receiver):
            assert _provider.router().current is not None

        def test_between_tests_spans_are_dropped():
            router = _provider.router()
            assert router.current is None  # this test captures nothing
            before = router.dropped
            receiver = held["receiver"]
            assert post(receiver, request(span("nobody", b"\\x16" * 8, trace=b"\\x0e" * 16)).SerializeToString())[0] == 200
            router.settle()  # answered first, then dropped
            assert router.dropped == before + 1
        """
    )
    result = run_pytest("--tb=short", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "tracechain: span 'late root' of test_ownership_and_remote_parents_without_flags.py::test_first "
            "ended * s after its test's teardown (work that outlived the test)",
            "tracechain: otlp_receiver dropped 1 span that arrived while no test was running",
        ]
    )


def test_a_request_is_answered_once_checked_and_reads_wait_until_it_is_captured(
    inner: pytest.Pytester, run_pytest: RunPytest
) -> None:
    """The exporter waits for the parse and the checks only; a read of the capture waits for the rest."""
    inner.makepyfile(
        """
        import threading
        from conftest import post, request, span
        from pytest_tracechain import _otlp_decode

        def test_answered_then_captured(tracechain, otlp_receiver, monkeypatch):
            release = threading.Event()
            decode = _otlp_decode.Checked.decode

            def held_back(self):
                assert release.wait(30)
                return decode(self)

            monkeypatch.setattr(_otlp_decode.Checked, "decode", held_back)
            status, _, _ = post(otlp_receiver, request(span("sent", b"\\x21" * 8)).SerializeToString())
            assert status == 200  # answered while its spans are held back
            assert otlp_receiver.received == 1
            read, returned = [], threading.Event()

            def read_names():
                read.extend(one.name for one in tracechain.spans)
                returned.set()

            threading.Thread(target=read_names, daemon=True).start()
            assert not returned.wait(0.2)  # the read waits for the answered request
            release.set()
            assert returned.wait(10)
            assert read == ["sent"]

        def test_a_malformed_span_is_still_refused_before_the_answer(tracechain, otlp_receiver):
            status, _, body = post(otlp_receiver, request(span("bad", b"\\x22" * 3)).SerializeToString())
            assert status == 400
            assert tracechain.spans == []
        """
    )
    run_pytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_missing_extra_names_the_install_command(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makeconftest(
        """
        import sys
        sys.modules["opentelemetry.proto"] = None
        """
    )
    pytester.makepyfile(
        """
        def test_needs_receiver(otlp_receiver):
            pass
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain._errors.TraceChainUsageError: the otlp_receiver fixture needs the otlp extra: "
            "pip install 'pytest-tracechain[[]otlp]' (it could not import opentelemetry.proto*)",
        ]
    )


# -- the decoder, property-based: any body is decoded or rejected with a reason ------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
hex_ids = st.sampled_from(
    ["", "00", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "zz" * 8, "0" * 32]
)
span_keys = st.sampled_from(
    [
        "traceId",
        "spanId",
        "parentSpanId",
        "name",
        "kind",
        "flags",
        "startTimeUnixNano",
        "attributes",
        "events",
        "links",
        "status",
        "traceState",
        "trace_id",
        "span_id",
    ]
)
spans_json = st.dictionaries(span_keys, hex_ids | json_values, max_size=8)
requests_json = st.fixed_dictionaries(
    {
        "resourceSpans": st.lists(
            st.fixed_dictionaries(
                {
                    "resource": json_values,
                    "scopeSpans": st.lists(
                        st.fixed_dictionaries(
                            {"scope": json_values, "spans": st.lists(spans_json, max_size=3)}
                        ),
                        max_size=2,
                    ),
                }
            ),
            max_size=2,
        )
    }
)


def decode_or_reason(body: bytes, media_type: str) -> list | str:
    """The decoded spans, or the reason the body was rejected; anything else raised fails the test."""
    from pytest_tracechain._otlp_decode import BadRequest, decode

    try:
        decoded = decode(body, media_type)
    except BadRequest as exc:
        return str(exc)
    assert all(span.context is not None and span.context.is_valid for span, *_ in decoded.spans)
    return decoded.spans


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300))
def test_any_protobuf_body_is_decoded_or_rejected_with_a_reason(body: bytes) -> None:
    assert decode_or_reason(body, "protobuf") != ""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests_json | json_values)
def test_any_json_body_is_decoded_or_rejected_with_a_reason(request: object) -> None:
    assert decode_or_reason(json.dumps(request).encode(), "json") != ""


# -- the decoder: what a body may cost ------------------------------------------------------


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    from pytest_tracechain._otlp import _varint

    return bytes([tag]) + _varint(len(payload)) + payload


def test_json_nested_too_deeply_is_a_bad_request() -> None:
    # json.loads raises RecursionError (the receiver answered 500)
    assert (
        decode_or_reason(b"[" * 100_000 + b"]" * 100_000, "json")
        == "body is JSON nested too deeply to decode"
    )
    assert decode_or_reason(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "json") == (
        "body is JSON nested too deeply to decode"
    )
    # Shallow enough for json.loads, too deep for the protobuf message it would become.
    value: dict[str, object] = {"intValue": "1"}
    for _ in range(150):
        value = {"arrayValue": {"values": [value]}}
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": value}]}}]}
    reason = decode_or_reason(json.dumps(body).encode(), "json")
    assert isinstance(reason, str)
    assert reason.startswith("body is not an OTLP JSON ExportTraceServiceRequest (")


def test_protobuf_nested_too_deeply_is_a_bad_request() -> None:
    value = b"\x18\x01"  # AnyValue.int_value
    for _ in range(10_000):
        value = _field(0x2A, _field(0x0A, value))  # AnyValue.array_value: ArrayValue.values
    attribute = _field(0x0A, b"k") + _field(0x12, value)  # KeyValue
    body = _field(0x0A, _field(0x0A, _field(0x0A, attribute)))  # request.resource_spans.resource.attributes
    reason = decode_or_reason(body, "protobuf")
    assert isinstance(reason, str)
    assert reason.startswith("body is not a protobuf ExportTraceServiceRequest (")


def test_bodies_that_would_decode_to_too_much_are_too_large() -> None:
    from pytest_tracechain._otlp_decode import (
        MAX_JSON_VALUES,
        MAX_PROTOBUF_MESSAGES,
        BadRequest,
        TooLarge,
        decode,
    )

    # 6 MB of "{}," would be 2,000,001 dicts (150 MB); json.loads never runs
    with pytest.raises(TooLarge, match=r"^JSON body holds up to 4000003 values "):
        decode(b"[" + b"{}," * (MAX_JSON_VALUES // 2) + b"{}]", "json")
    # 20 MB of short strings, 4,000,001 str objects (320 MB)
    with pytest.raises(TooLarge, match=r"^JSON body holds up to 4000002 values "):
        decode(b"[" + b'"ab",' * MAX_JSON_VALUES + b'"ab"]', "json")
    # Empty spans, 2 bytes each: 4 MB would be 340 MB of parsed messages.
    empty_spans = b"\x12\x00" * MAX_PROTOBUF_MESSAGES
    with pytest.raises(TooLarge, match=r"^protobuf body holds up to 2000004 messages "):
        decode(_field(0x0A, _field(0x12, empty_spans)), "protobuf")
    # Over-long tags (0x92 0x00 is 0x12), which the parser takes as well.
    overlong = b"\x92\x00\x00" * MAX_PROTOBUF_MESSAGES
    with pytest.raises(TooLarge, match=r"^protobuf body holds up to 2000002 messages "):
        decode(_field(0x0A, _field(0x12, overlong)), "protobuf")
    # Just under the limit: decoded (and rejected for what it is)
    with pytest.raises(
        BadRequest, match=r"^body must be a JSON object \(ExportTraceServiceRequest\), not an array$"
    ):
        decode(b"[" + b"{}," * (MAX_JSON_VALUES // 2 - 2) + b"{}]", "json")


any_values = st.deferred(
    lambda: (
        st.builds(lambda v: {"string_value": v}, st.text(max_size=4))
        | st.builds(lambda v: {"int_value": v}, st.integers(-(2**63), 2**63 - 1))
        | st.builds(lambda v: {"bytes_value": v}, st.binary(max_size=6))
        | st.builds(lambda vs: {"array_value": {"values": vs}}, st.lists(any_values, max_size=3))
        | st.builds(
            lambda kv: {"kvlist_value": {"values": [{"key": k, "value": v} for k, v in kv.items()]}},
            st.dictionaries(st.text(max_size=3), any_values, max_size=3),
        )
    )
)
attribute_lists = st.lists(
    st.fixed_dictionaries({"key": st.text(max_size=4), "value": any_values}), max_size=3
)
proto_spans = st.fixed_dictionaries(
    {
        "trace_id": st.binary(max_size=16),
        "span_id": st.binary(max_size=8),
        "name": st.text(max_size=6),
        "attributes": attribute_lists,
        "events": st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=3), "attributes": attribute_lists}), max_size=2
        ),
        "links": st.lists(
            st.fixed_dictionaries({"span_id": st.binary(max_size=8), "attributes": attribute_lists}),
            max_size=2,
        ),
        "status": st.fixed_dictionaries({"message": st.text(max_size=3)}),
    }
)
proto_requests = st.lists(
    st.fixed_dictionaries(
        {
            "resource": st.fixed_dictionaries({"attributes": attribute_lists}),
            "scope_spans": st.lists(
                st.fixed_dictionaries(
                    {
                        "scope": st.fixed_dictionaries({"attributes": attribute_lists}),
                        "spans": st.lists(proto_spans, max_size=3),
                    }
                ),
                max_size=2,
            ),
        }
    ),
    max_size=2,
)


def _messages(message: object) -> int:
    """The sub-messages of ``message`` at any depth, and the elements of its repeated strings."""
    from google.protobuf.message import Message

    total = 0
    for _, value in message.ListFields():  # type: ignore[attr-defined]
        if isinstance(value, Message):
            total += 1 + _messages(value)
        elif not isinstance(value, (str, bytes, int, float)):  # a repeated field
            for item in value:
                if isinstance(item, Message):
                    total += 1 + _messages(item)
                elif isinstance(item, (str, bytes)):
                    total += 1
    return total


def _json_values(value: object) -> int:
    if isinstance(value, dict):
        return 1 + sum(_json_values(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(_json_values(item) for item in value)
    return 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resource_spans=proto_requests)
def test_the_message_count_bounds_what_protobuf_decoding_builds(resource_spans: list) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from pytest_tracechain import _otlp_decode

    request = ExportTraceServiceRequest(resource_spans=resource_spans)
    body = request.SerializeToString()
    assert _otlp_decode._count(body, _otlp_decode._NOT_MESSAGE_TAGS) >= _messages(request)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests_json | json_values)
def test_the_value_count_bounds_what_json_decoding_builds(request: object) -> None:
    from pytest_tracechain import _otlp_decode

    body = json.dumps(request).encode()
    assert _otlp_decode._count(body, _otlp_decode._NOT_JSON_SEPARATORS) + 1 >= _json_values(request)
