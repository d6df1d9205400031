"""The OTLP/HTTP receiver of the ``otlp_receiver`` fixture.

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) that accepts
``POST /v1/traces`` in protobuf (``application/x-protobuf``) or OTLP JSON
(``application/json``), optionally gzip- or deflate-compressed, decodes the
spans and hands them to the session's router, which puts them in the capture
of the test that owns them.

Answers, in the request's content type where it is one of those two:

- 200 with an empty ``ExportTraceServiceResponse`` once the request is parsed
  and every span checked; its spans then join the captures, and every read of
  a capture waits for the requests answered before it (``Router.settle``), so
  the exporter waits for the checks alone;
- 400 with a ``google.rpc.Status`` (code 3, INVALID_ARGUMENT) whose message
  says what is wrong and where (``resourceSpans[0].scopeSpans[0].spans[2].traceId
  must be 16 bytes, got 3``);
- 413 past ``MAX_BODY_BYTES`` of body as sent (a chunked body's framing
  included), ``MAX_DECOMPRESSED_BYTES`` once decompressed (decompression stops
  at the limit: a gzip bomb never inflates), or past what decoding may build:
  ``MAX_JSON_VALUES`` JSON values or ``MAX_PROTOBUF_MESSAGES`` protobuf
  messages (``_otlp_decode``; a body of empty objects costs memory per object,
  not per byte);
- 411 without ``Content-Length`` or chunked transfer encoding; 400 for a
  malformed chunked body (a chunk size that is not hexadecimal, a size line
  not ended by CRLF or longer than ``MAX_CHUNK_LINE``, a chunk not followed by
  CRLF, trailer fields) or another transfer coding;
- 415 for another content type or content encoding, 404 for another path,
  405 for another method on ``/v1/traces``, 500 if handling fails (logged; the
  server keeps serving).

The error bodies of 404, 405 and 415 are ``text/plain``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from pytest_tracechain._errors import TraceChainUsageError

if TYPE_CHECKING:
    from pytest_tracechain._router import Router

__all__ = ["MAX_BODY_BYTES", "MAX_DECOMPRESSED_BYTES", "OtlpReceiver", "serve"]

#: The largest request body accepted, as sent (compressed or not): 64 MiB.
MAX_BODY_BYTES = 64 * 1024 * 1024
#: The largest body accepted once decompressed: 64 MiB.
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024

#: The longest chunk-size line of a chunked body, extensions and CRLF included.
MAX_CHUNK_LINE = 1024
#: Connections the kernel queues until the receiver accepts them. The stdlib's 5
#: drops the SYNs of a burst of exporters, which then retry seconds later.
LISTEN_BACKLOG = 1024

#: Seconds a connection may stay silent, mid-request or idle between requests, before it is closed.
CONNECTION_TIMEOUT = 120

TRACES_PATH = "/v1/traces"
MISSING_EXTRA = (
    "the otlp_receiver fixture needs the otlp extra: pip install 'pytest-tracechain[otlp]' "
    "(it could not import {module})"
)
_MEDIA_TYPES = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
# A chunk-size line (RFC 9112, 7.1): hex digits, extensions, CRLF. int(_, 16)
# alone would take "-1", "+1", "0x1" and "1_0".
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r\n")
_INVALID_ARGUMENT = 3  # google.rpc.Code
_RESOURCE_EXHAUSTED = 8
_INTERNAL = 13
_log = logging.getLogger("pytest_tracechain.otlp")


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class OtlpReceiver:
    """A local OTLP/HTTP receiver: ``endpoint`` and ``env`` for the processes that export to it.

    Spans exported to ``endpoint + "/v1/traces"`` join the capture of the test
    that owns their trace (else the running test), with an ``Origin`` naming
    their process (``process.pid`` of their resource). It accepts protobuf and
    OTLP JSON, gzip or deflate; bodies over 64 MiB, sent or decompressed, or
    that would decode to more than 4 million JSON values or 2 million protobuf
    messages, get a 413, and malformed ones a 400 that names the bad field (a
    ``google.rpc.Status`` in the request's content type). The answer comes once
    the spans are checked, and they join the capture right after; a read of a
    capture waits for the requests answered before it, so a child that flushed
    its exporter before exiting has delivered, when it exits, everything its
    test then reads.
    """

    def __init__(self, endpoint: str) -> None:
        #: The base URL, ``http://127.0.0.1:<port>``.
        self.endpoint = endpoint
        #: The last 100 requests answered with a 4xx or 5xx status, or whose spans an internal error lost
        #: after their 200 (500): (status, reason), the latest last.
        self.rejected: deque[tuple[int, str]] = deque(maxlen=100)
        #: Spans accepted so far (including those dropped because no test was running).
        self.received = 0
        self._lock = threading.Lock()

    def _count(self, spans: int) -> None:
        with self._lock:
            self.received += spans

    @property
    def traces_endpoint(self) -> str:
        """The URL exporters post spans to: ``endpoint + "/v1/traces"``."""
        return self.endpoint + TRACES_PATH

    @property
    def env(self) -> dict[str, str]:
        """A copy of ``os.environ`` plus what a child process needs to export here.

        The OpenTelemetry SDK's own variables: the traces endpoint and protocol
        (``http/protobuf``), ``OTEL_TRACES_EXPORTER=otlp``, a 50 ms batch delay,
        the ``process`` resource detector (so spans name their process id), and
        ``NO_PROXY``/``no_proxy`` extended with ``127.0.0.1,localhost`` so that a
        proxy configured in the environment never takes the traffic.
        """
        env = dict(os.environ)
        env["OTEL_TRACES_EXPORTER"] = "otlp"
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = self.traces_endpoint
        env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
        env["OTEL_BSP_SCHEDULE_DELAY"] = "50"
        env["OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"] = _extend(
            env.get("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", ""), ["process"]
        )
        no_proxy = _extend(
            ",".join(filter(None, (env.get("NO_PROXY"), env.get("no_proxy")))), ["127.0.0.1", "localhost"]
        )
        env["NO_PROXY"] = env["no_proxy"] = no_proxy
        return env

    def __repr__(self) -> str:
        return f"<OtlpReceiver {self.traces_endpoint}: {self.received} spans received>"


def _extend(listing: str, names: list[str]) -> str:
    items = [item.strip() for item in listing.split(",") if item.strip()]
    return ",".join(dict.fromkeys(items + names))


@contextmanager
def serve() -> Iterator[OtlpReceiver]:
    """Run a receiver on 127.0.0.1 (a free port) until the block exits."""
    try:
        from pytest_tracechain import _otlp_decode
    except ImportError as exc:
        raise TraceChainUsageError(MISSING_EXTRA.format(module=exc.name or str(exc))) from None
    from pytest_tracechain import _provider

    router = _provider.router()
    router.receiving = True
    server = _listen()
    port = server.server_address[1]
    receiver = OtlpReceiver(f"http://127.0.0.1:{port}")
    server.receiver = receiver
    server.router = router
    server.check = _otlp_decode.check
    server.bad_request = _otlp_decode.BadRequest
    server.too_large = _otlp_decode.TooLarge
    thread = threading.Thread(target=server.serve_forever, name="tracechain-otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        router.settle()  # what it answered is captured before it stops
        router.stop_receiving()


def _listen() -> _Server:
    """The receiver's server, listening on 127.0.0.1 (a free port), not yet serving."""
    return _Server(("127.0.0.1", 0), _Handler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a thread per connection
    request_queue_size = LISTEN_BACKLOG
    receiver: OtlpReceiver
    router: Router
    check: Any
    bad_request: type[Exception]
    too_large: type[Exception]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request is no concern of the test run.
        _log.debug("otlp_receiver: error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse their connection
    server_version = "pytest-tracechain-otlp"
    # Seconds a connection may stall (mid-request, or idle between requests) before it is closed.
    timeout = CONNECTION_TIMEOUT
    server: _Server

    def do_POST(self) -> None:
        media_type = "text"
        try:
            if self.path.split("?", 1)[0] != TRACES_PATH:
                self._drain_or_close()
                raise _Reject(404, f"no such path {self.path!r}; OTLP/HTTP traces go to {TRACES_PATH}")
            content_type = self.headers.get("Content-Type", "")
            media = _MEDIA_TYPES.get(content_type.split(";", 1)[0].strip().lower())
            if media is None:
                self._drain_or_close()
                raise _Reject(
                    415,
                    f"unsupported content type {content_type!r}; "
                    "send application/x-protobuf or application/json",
                )
            media_type = media
            body = _decompress(self._read_body(), self.headers.get("Content-Encoding", ""))
            try:
                checked = self.server.check(body, media)
            except self.server.too_large as exc:
                raise _Reject(413, str(exc)) from None
            except self.server.bad_request as exc:
                raise _Reject(400, str(exc)) from None
            self.server.receiver._count(checked.count)
            number, running = self.server.router.answered()
            try:
                self._answer(200, media_type, b"" if media_type == "protobuf" else b"{}")
            finally:  # captured even when the exporter hung up before it read the answer
                self._capture(checked, number, running)
        except _Reject as rejection:
            self._reject(rejection.status, rejection.reason, media_type)
        except Exception:
            _log.exception("otlp_receiver: internal error while handling a request; answered 500")
            self._reject(500, "internal error in pytest-tracechain's otlp_receiver (logged)", media_type)

    def _capture(self, checked: Any, number: int, running: Any) -> None:
        """Put the spans of an answered request in the captures (reads of a capture wait for it)."""
        router = self.server.router
        try:
            decoded = checked.decode()
            if router.receive_answered(decoded.spans, decoded.undecided, running) == len(decoded.spans):
                decoded.forget()  # all dropped (no test running): freed now
        except Exception:
            _log.exception(
                "otlp_receiver: internal error while capturing a request answered 200; its spans are lost"
            )
            self.server.receiver.rejected.append(
                (500, "internal error in pytest-tracechain's otlp_receiver after answering 200 (logged)")
            )
        finally:
            router.captured(number)

    def _not_allowed(self) -> None:
        self._drain_or_close()
        if self.path.split("?", 1)[0] != TRACES_PATH:
            self._reject(404, f"no such path {self.path!r}; OTLP/HTTP traces go to {TRACES_PATH}", "text")
        else:
            self._reject(405, f"{self.command} is not allowed on {TRACES_PATH}; use POST", "text")

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

    def _read_body(self) -> bytes:
        transfer_encoding = ", ".join(self.headers.get_all("Transfer-Encoding", []))
        if transfer_encoding:
            if transfer_encoding.strip().lower() != "chunked":
                self.close_connection = True
                raise _Reject(
                    400,
                    f"Transfer-Encoding {transfer_encoding!r} is not supported; "
                    "send chunked or a Content-Length",
                )
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            raise _Reject(411, "a Content-Length header (or chunked transfer encoding) is required")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise _Reject(400, f"Content-Length {length_header!r} is not a number") from None
        if length < 0:
            self.close_connection = True
            raise _Reject(400, f"Content-Length {length} is negative")
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise _Reject(413, f"body of {length} bytes is over the limit of {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise _Reject(400, f"body ended after {len(body)} of the {length} bytes announced")
        return body

    def _read_chunked(self) -> bytes:
        """A chunked body; its framing counts against ``MAX_BODY_BYTES`` with its data.

        Counting the framing too bounds the time spent on a body of tiny chunks,
        and the data goes into one buffer, not an object per chunk.
        """
        keep_alive = not self.close_connection
        self.close_connection = True  # until the body has been read to its end
        body = bytearray()
        sent = 0
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE + 1)
            sent += len(line)
            match = _CHUNK_SIZE_LINE.fullmatch(line) if len(line) <= MAX_CHUNK_LINE else None
            if match is None:
                raise _Reject(400, _bad_chunk_line(line))
            size = int(match[1], 16)
            if size == 0:
                break
            if sent + size + 2 > MAX_BODY_BYTES:
                raise _Reject(
                    413,
                    f"chunked body over the limit of {MAX_BODY_BYTES} bytes (as sent, framing included) "
                    f"with a chunk of {size} bytes",
                )
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise _Reject(
                    400, f"chunked body ended inside a chunk, after {len(chunk)} of its {size} bytes"
                )
            if self.rfile.read(2) != b"\r\n":
                raise _Reject(400, f"a chunk of {size} bytes is not followed by CRLF")
            body += chunk
            sent += size + 2
        end = self.rfile.readline(MAX_CHUNK_LINE + 1)
        if end != b"\r\n":
            if not end:
                raise _Reject(400, "chunked body ended before the CRLF after its last chunk")
            raise _Reject(
                400, f"chunked body has trailer fields ({_excerpt(end)}); the receiver accepts none"
            )
        self.close_connection = not keep_alive
        return bytes(body)

    def _drain_or_close(self) -> None:
        """Skip a request body that will not be used, so the connection stays usable."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if 0 <= length <= 1024 * 1024 and "Transfer-Encoding" not in self.headers:
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _reject(self, status: int, reason: str, media_type: str) -> None:
        if status >= 500:
            _log.warning("otlp_receiver: answered %d: %s", status, reason)
        else:
            _log.warning("otlp_receiver: rejected a request (%d): %s", status, reason)
        self.server.receiver.rejected.append((status, reason))
        code = {413: _RESOURCE_EXHAUSTED, 500: _INTERNAL}.get(status, _INVALID_ARGUMENT)
        if media_type == "protobuf":
            body = _status_protobuf(code, reason)
        elif media_type == "json":
            import json

            body = json.dumps({"code": code, "message": reason}).encode()
        else:
            body = reason.encode() + b"\n"
        self._answer(status, media_type, body)

    def _answer(self, status: int, media_type: str, body: bytes) -> None:
        content_type = {"protobuf": "application/x-protobuf", "json": "application/json"}.get(
            media_type, "text/plain; charset=utf-8"
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status == 405:
            self.send_header("Allow", "POST")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("otlp_receiver: " + format, *args)


def _bad_chunk_line(line: bytes) -> str:
    """Why ``line`` (read with a limit of ``MAX_CHUNK_LINE + 1``) is not a chunk-size line."""
    if not line:
        return "chunked body ended before its last chunk"
    if len(line) > MAX_CHUNK_LINE:
        return f"chunk size line is longer than {MAX_CHUNK_LINE} bytes ({_excerpt(line)})"
    if not line.endswith(b"\r\n"):
        if line.endswith(b"\n"):
            return f"chunk size line {_excerpt(line)} ends with LF, not CRLF"
        return f"chunked body ended inside the chunk size line {_excerpt(line)}"
    return f"chunk size {_excerpt(line[:-2])} is not a hexadecimal number"


def _excerpt(raw: bytes) -> str:
    """``raw`` as a short printable string, for a reason."""
    text = raw[:40].decode("latin-1")
    return repr(text) + ("..." if len(raw) > 40 else "")


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > MAX_DECOMPRESSED_BYTES:
            raise _Reject(413, f"body over the limit of {MAX_DECOMPRESSED_BYTES} bytes")
        return body
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, 16 + zlib.MAX_WBITS, "gzip")
    if encoding == "deflate":
        # HTTP's deflate is zlib-wrapped; some clients send raw deflate.
        try:
            return _inflate(body, zlib.MAX_WBITS, "deflate")
        except _Reject as rejection:
            if rejection.status != 400:
                raise
            return _inflate(body, -zlib.MAX_WBITS, "deflate")
    raise _Reject(415, f"unsupported content encoding {encoding!r}; send gzip, deflate or none")


def _inflate(data: bytes, wbits: int, name: str) -> bytes:
    """Decompress at most ``MAX_DECOMPRESSED_BYTES``, never holding more than that plus one chunk."""
    inflater = zlib.decompressobj(wbits)
    limit = MAX_DECOMPRESSED_BYTES
    chunks: list[bytes] = []
    total = 0
    pending = data
    try:
        while not inflater.eof:
            chunk = inflater.decompress(pending, min(limit - total + 1, 1024 * 1024))
            total += len(chunk)
            if total > limit:
                raise _Reject(413, f"{name} body inflates to over the limit of {limit} bytes")
            chunks.append(chunk)
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break  # no input left and no progress: truncated
    except zlib.error as exc:
        raise _Reject(400, f"body is not valid {name} ({exc})") from None
    if not inflater.eof:
        raise _Reject(400, f"{name} body is truncated")
    return b"".join(chunks)


def _status_protobuf(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` message: field 1 ``code`` (varint), field 2 ``message`` (string)."""
    encoded = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(encoded)) + encoded


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
