"""Stress: the OTLP receiver under load and under attack.

200 exporters posting at once, then hostile bodies, each answered with a 4xx
and followed by a request that still works. Where a hostile body used to cost
memory (the receiver buffered a chunked stream to its end, or decoded a body
of empty objects), the test measures the peak RSS growth of the receiver's
process. Marked ``stress`` (``-m "not stress"`` leaves them out of a quick
run); CI runs them.
"""

from __future__ import annotations

import sys

import pytest

from tests.conftest import RunPytest
from tests.integration.test_otlp_receiver import HELPERS

pytestmark = pytest.mark.stress

pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

# Added to the receiver tests' inner conftest: OTLP JSON bodies and peak RSS.
STRESS_HELPERS = r'''
import base64
import gc
import json

from google.protobuf import json_format


def to_json(message):
    # OTLP JSON: proto3 JSON with hex trace and span ids
    data = json_format.MessageToDict(message)
    for resource_spans in data["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for one in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in one:
                        one[key] = base64.b64decode(one[key]).hex()
    return json.dumps(data).encode()


def _status_mib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


class PeakGrowth:
    """The growth of this process's peak RSS over the block, in MiB (Linux)."""

    def __enter__(self):
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # resets the peak (VmHWM) to the current RSS
            self.base = _status_mib("VmRSS")
        except OSError:  # no reset: growth past the peak so far only
            self.base = _status_mib("VmHWM")
        return self

    def __exit__(self, *exc_info):
        self.mib = max(0.0, _status_mib("VmHWM") - self.base)
'''


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(HELPERS + STRESS_HELPERS)
    return pytester


def test_200_exporters_at_once_are_all_answered_and_all_their_spans_received(
    inner: pytest.Pytester, run_pytest: RunPytest
) -> None:
    inner.makepyfile(
        r"""
        import gzip, http.client, os, socket, threading, time, urllib.parse
        from conftest import PROTOBUF, attrs, request, span, to_json

        EXPORTERS, SPANS = 200, 5

        def body_of(number):
            # Protobuf, gzipped protobuf, JSON, gzipped JSON in turn; a trace and a pid for each.
            trace = os.urandom(16)
            sent = request(*[
                span(f"exporter {number} span {i}", (number * SPANS + i + 1).to_bytes(8, "big"), trace=trace,
                     attributes=attrs({"exporter": number}))
                for i in range(SPANS)
            ], pid=10_000 + number)
            if number % 4 < 2:
                body, headers = sent.SerializeToString(), {"Content-Type": PROTOBUF}
            else:
                body, headers = to_json(sent), {"Content-Type": "application/json"}
            if number % 2:
                body, headers = gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
            return body, headers

        def test_burst(tracechain, otlp_receiver):
            url = urllib.parse.urlsplit(otlp_receiver.endpoint)
            bodies = [body_of(number) for number in range(EXPORTERS)]
            answers = [None] * EXPORTERS
            ready = threading.Barrier(EXPORTERS + 1)

            def export(number):
                body, headers = bodies[number]
                ready.wait()
                start = time.perf_counter()
                try:
                    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
                    conn.request("POST", "/v1/traces", body=body, headers=headers)
                    response = conn.getresponse()
                    answers[number] = (response.status, response.read(), time.perf_counter() - start)
                    conn.close()
                except OSError as exc:
                    answers[number] = (repr(exc), b"", time.perf_counter() - start)

            # A client stalled in the middle of its body holds a thread, not the receiver.
            stalled = socket.create_connection((url.hostname, url.port))
            stalled.sendall(b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\n"
                            b"Content-Length: 1000\r\n\r\nonly the start")
            before = otlp_receiver.received
            threads = [threading.Thread(target=export, args=(number,)) for number in range(EXPORTERS)]
            for thread in threads:
                thread.start()
            ready.wait()
            start = time.perf_counter()
            for thread in threads:
                thread.join(30)
            elapsed = time.perf_counter() - start
            stalled.close()

            wrong = [(number, answer) for number, answer in enumerate(answers) if answer is None or answer[0] != 200]
            assert not wrong, f"{len(wrong)} of {EXPORTERS} exporters got no 200, first: {wrong[:3]}"
            slowest = max(answer[2] for answer in answers)
            print(f"\n{EXPORTERS} exporters at once: all answered in {elapsed:.2f} s, the slowest after {slowest:.2f} s")
            assert slowest < 10

            spans = tracechain.spans
            assert otlp_receiver.received - before == len(spans) == EXPORTERS * SPANS
            for got in spans:
                number = int(got.name.split()[1])
                assert got.attributes["exporter"] == number
                assert tracechain.origin(got).pid == 10_000 + number
            assert {got.name for got in spans} == {
                f"exporter {number} span {i}" for number in range(EXPORTERS) for i in range(SPANS)
            }
        """
    )
    result = run_pytest("--tb=short", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["200 exporters at once: all answered in * s, the slowest after * s"])


def test_an_export_of_50_000_spans_stays_under_the_decoding_limits(
    inner: pytest.Pytester, run_pytest: RunPytest
) -> None:
    inner.makepyfile(
        r"""
        import json, os, time
        import pytest
        from conftest import PROTOBUF, attrs, post, request, span

        SPANS = 50_000

        def protobuf(trace):
            return request(*[
                span("work", (i + 1).to_bytes(8, "big"), (i - i % 10 + 1).to_bytes(8, "big") if i % 10 else b"",
                     trace=trace, attributes=attrs({"job.id": i, "queue": "user.events"}))
                for i in range(SPANS)
            ]).SerializeToString()

        def otlp_json(trace):
            # What an OTLP/HTTP JSON exporter sends, built directly: json_format is slow to build it.
            def one(i):
                return {
                    "traceId": trace.hex(), "spanId": f"{i + 1:016x}",
                    "parentSpanId": f"{i - i % 10 + 1:016x}" if i % 10 else "",
                    "name": "work", "kind": 1, "startTimeUnixNano": "1000", "endTimeUnixNano": "2000",
                    "attributes": [{"key": "job.id", "value": {"intValue": str(i)}},
                                   {"key": "queue", "value": {"stringValue": "user.events"}}],
                    "status": {},
                }
            return json.dumps({"resourceSpans": [{
                "resource": {"attributes": [{"key": "process.pid", "value": {"intValue": "4242"}}]},
                "scopeSpans": [{"scope": {"name": "child.scope"}, "spans": [one(i) for i in range(SPANS)]}],
            }]}).encode()

        @pytest.mark.parametrize("media", ["protobuf", "json"])
        def test_50_000_spans(tracechain, otlp_receiver, media):
            if media == "json":
                body, content_type = otlp_json(os.urandom(16)), "application/json"
            else:
                body, content_type = protobuf(os.urandom(16)), PROTOBUF
            start = time.perf_counter()
            status, _, answer = post(otlp_receiver, body, content_type, timeout=60)
            took = time.perf_counter() - start
            assert status == 200, answer
            print(f"\n{SPANS} spans in {len(body) / 1e6:.1f} MB of {media}: answered in {took:.2f} s")
            assert len(tracechain.spans) == SPANS
        """
    )
    result = run_pytest("--tb=short", "-s")
    result.assert_outcomes(passed=2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS from /proc/self/status")
def test_hostile_bodies_are_answered_4xx_within_bounded_memory_and_the_receiver_keeps_serving(
    inner: pytest.Pytester, run_pytest: RunPytest
) -> None:
    inner.makepyfile(
        r"""
        import gzip, http.client, json, socket, threading, urllib.parse, zlib
        import pytest
        from pytest_tracechain import _otlp
        from conftest import PROTOBUF, PeakGrowth, accepted, chunked, exchange, post, request, rpc_status, span

        MIB = 1024 * 1024
        HEAD = (b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")

        def field(tag, payload):
            return bytes([tag]) + _otlp._varint(len(payload)) + payload

        def test_chunk_size_minus_one_then_200_mib(tracechain, otlp_receiver):
            # "-1" read the stream to its end: 200 MiB sent, 200 MiB more RSS, then a 400.
            url = urllib.parse.urlsplit(otlp_receiver.endpoint)
            block = bytes(MIB)
            with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
                def flood():
                    try:
                        for _ in range(200):
                            sock.sendall(block)
                        sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass  # answered and closed: the receiver reads no more
                with PeakGrowth() as peak:
                    sock.sendall(HEAD + b"-1\r\n")
                    sender = threading.Thread(target=flood)
                    sender.start()
                    response = http.client.HTTPResponse(sock)
                    response.begin()
                    answer = (response.status, rpc_status(response.read()))
                    sender.join(30)
            print(f"\nchunk size -1 and 200 MiB: {answer[0]}, peak RSS +{peak.mib:.0f} MiB")
            assert answer == (400, (3, "chunk size '-1' is not a hexadecimal number"))
            assert peak.mib < 32
            accepted(otlp_receiver, tracechain)

        @pytest.mark.parametrize("framed", [
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"zz\r\n",
            b"5\r\nhello0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"f" * 5000 + b"\r\n",
            b"5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n",
        ], ids=["negative", "not-hex", "no-crlf-after-data", "lf-only", "long-size-line", "trailers"])
        def test_malformed_chunked(tracechain, otlp_receiver, framed):
            status, connection, _ = exchange(otlp_receiver, framed)
            assert (status, connection) == (400, "close")
            accepted(otlp_receiver, tracechain)

        def test_json_nested_100_000_deep(tracechain, otlp_receiver):
            deep = b"[" * 100_000 + b"]" * 100_000
            with PeakGrowth() as peak:
                status, _, answer = post(otlp_receiver, deep, "application/json")
            print(f"\nJSON nested 100,000 deep: {status}, peak RSS +{peak.mib:.0f} MiB")
            assert (status, json.loads(answer)) == (400, {"code": 3, "message": "body is JSON nested too deeply to decode"})
            assert peak.mib < 32
            accepted(otlp_receiver, tracechain)

        @pytest.mark.parametrize("media", ["json", "protobuf"])
        def test_huge_decoded_size(tracechain, otlp_receiver, media):
            # Just over the limits: 6 MB of JSON "{}," (150 MB of dicts), 4 MB of empty spans (340 MB).
            if media == "json":
                body = b"[" + b"{}," * 2_000_000 + b"{}]"
                content_type = "application/json"
            else:
                body = field(0x0A, field(0x12, b"\x12\x00" * 2_000_000))
                content_type = PROTOBUF
            with PeakGrowth() as peak:
                status, _, answer = post(otlp_receiver, body, content_type)
            print(f"\n{len(body) / MIB:.0f} MiB of empty {media} objects: {status}, peak RSS +{peak.mib:.0f} MiB")
            reason = json.loads(answer)["message"] if media == "json" else rpc_status(answer)[1]
            assert (status, "over the limit of" in reason) == (413, True), reason
            assert peak.mib < 2 * len(body) / MIB + 16  # the body itself, not what it would decode to
            accepted(otlp_receiver, tracechain)

        @pytest.mark.parametrize("framing", ["content-length", "chunked"])
        def test_gzip_bomb(tracechain, otlp_receiver, framing):
            squeezer = zlib.compressobj(9, zlib.DEFLATED, 31)
            bomb = b"".join(squeezer.compress(bytes(MIB)) for _ in range(256)) + squeezer.flush()
            with PeakGrowth() as peak:
                if framing == "chunked":
                    status, _, answer = exchange(otlp_receiver, chunked(bomb, 16 * 1024),
                                                 headers=[("Content-Encoding", "gzip")], timeout=30)
                else:
                    status, _, answer = post(otlp_receiver, bomb, headers={"Content-Encoding": "gzip"})
            print(f"\ngzip bomb of 256 MiB ({framing}): {status}, peak RSS +{peak.mib:.0f} MiB")
            assert (status, rpc_status(answer)) == (413, (8, "gzip body inflates to over the limit of 67108864 bytes"))
            assert peak.mib < 64 + 32  # inflated up to the limit, no further
            accepted(otlp_receiver, tracechain)

        def test_truncated_protobuf(tracechain, otlp_receiver):
            whole = request(span("cut", b"\x06" * 8)).SerializeToString()
            status, _, answer = post(otlp_receiver, whole[:-7])
            assert status == 400
            assert rpc_status(answer)[1].startswith("body is not a protobuf ExportTraceServiceRequest (")
            accepted(otlp_receiver, tracechain)
        """
    )
    result = run_pytest("--tb=short", "-s", "-p", "no:randomly")
    result.assert_outcomes(passed=13)
