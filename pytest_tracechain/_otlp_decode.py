"""OTLP trace requests (protobuf or OTLP JSON) decoded into SDK ``ReadableSpan`` objects.

Imports ``opentelemetry.proto`` (the ``otlp`` extra): only ``_otlp`` imports this module.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

from google.protobuf import json_format  # type: ignore[import-untyped,unused-ignore]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped,unused-ignore]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from pytest_tracechain._export import HAS_IS_REMOTE, IS_REMOTE
from pytest_tracechain._origins import Origin
from pytest_tracechain._received import ReceivedSpan

if TYPE_CHECKING:
    from pytest_tracechain._router import ReceivedRow

__all__ = [
    "MAX_JSON_VALUES",
    "MAX_PROTOBUF_MESSAGES",
    "BadRequest",
    "Checked",
    "Decoded",
    "TooLarge",
    "check",
    "decode",
]

# OTLP span and link flags (opentelemetry/proto/trace/v1/trace.proto, SpanFlags):
# the low byte holds the W3C trace flags.
TRACE_FLAGS_MASK = 0xFF
# opentelemetry-proto before 1.25 predates the flags fields (OTLP 1.1): with it,
# every span counts as one whose exporter set no flags.
_HAS_FLAGS = "flags" in ProtoSpan.DESCRIPTOR.fields_by_name

# OTLP's SpanKind enum is the SDK's shifted by one (0 is SPAN_KIND_UNSPECIFIED).
_KINDS = (
    SpanKind.INTERNAL,
    SpanKind.INTERNAL,
    SpanKind.SERVER,
    SpanKind.CLIENT,
    SpanKind.PRODUCER,
    SpanKind.CONSUMER,
)
_UNSET = Status(StatusCode.UNSET)
_OK = Status(StatusCode.OK)
_STATUSES = (_UNSET, _OK, None)  # by OTLP status code; an error's holds its message
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_EMPTY_STATE = TraceState()
_PID_KEY = "process.pid"
# Received resources are cached by their serialized form: an exporter sends the
# same resource with every batch, and building a Resource validates every attribute.
_RESOURCE_CACHE_SIZE = 64

#: The most values (objects, arrays, strings, numbers) a JSON body may hold. A
#: 50,000-span export has about 800,000; 4 million empty objects or short strings
#: decode to about 330 MB.
MAX_JSON_VALUES = 4_000_000
#: The most messages a protobuf body may hold (spans, attributes, their values...).
#: A 50,000-span export counts about 700,000; 2 million empty spans parse to 340 MB.
MAX_PROTOBUF_MESSAGES = 2_000_000


class BadRequest(ValueError):
    """The request is not a valid OTLP trace export; the message says where and why."""


class TooLarge(BadRequest):
    """The request would take more memory to decode than the receiver gives one (a 413)."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """The spans of one request, each as ``Router.receive_rows`` takes it.

    A row holds the span, its origin and the ids the router routes it by (the
    trace id, its span id and its parent's, 0 for none), so the router does
    not read them back through the span's properties. ``undecided`` holds the
    span ids whose parent's remoteness the exporter did not say (no
    ``SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE``) and that this request does not
    settle either; the router decides those (see ``Router.receive_rows``).
    """

    spans: list[ReceivedRow]
    undecided: frozenset[int]
    scopes: tuple[_ScopeSpans, ...] = ()

    def forget(self) -> None:
        """The router took none of the spans: let go of them now, not when the garbage collector finds them.

        (Each span and its scope refer to each other until the scope is decoded.)
        """
        for scope in self.scopes:
            scope.forget()


#: A span that passed the checks, as they read it: its trace id, span id and parent span id (bytes,
#: b"" for none), kind, status code, links (its ``Link`` objects where it has any) and flags.
_CheckedSpan = tuple[bytes, bytes, bytes, int, int, Any, int]


@dataclass(frozen=True, slots=True)
class Checked:
    """A request whose every span passed the checks behind a 400: what the receiver answers 200 for.

    What the checks read (ids, kind, status code, links, flags) is kept as
    they read it for ``decode``, which turns it into the spans the router
    takes, after the answer: the child waits for the parse and the checks
    alone. ``count`` is the number of spans.
    """

    count: int
    parts: tuple[tuple[_ScopeSpans, Origin, list[_CheckedSpan]], ...]

    def decode(self) -> Decoded:
        """The spans, each as ``Router.receive_rows`` takes it."""
        spans: list[ReceivedRow] = []
        undecided: list[tuple[int, int, int]] = []  # (span id, parent span id, pid)
        append = spans.append
        received_span, from_bytes, kinds, statuses = ReceivedSpan, int.from_bytes, _KINDS, _STATUSES
        for scope, origin, checked in self.parts:
            first = len(spans)
            for trace_raw, span_raw, parent_raw, kind, code, links, flags in checked:
                span_id = from_bytes(span_raw, "big")
                parent_id = from_bytes(parent_raw, "big") if parent_raw else 0
                if parent_id and not flags & HAS_IS_REMOTE:
                    undecided.append((span_id, parent_id, origin.pid))
                status = statuses[code] or _error_status(scope.messages[len(spans) - first])
                span = received_span(kinds[kind], status, links if links else (), scope)
                append((span, origin, from_bytes(trace_raw, "big"), span_id, parent_id))
            # The spans, not their rows: a row (a tuple) kept until the first read would be one more object
            # per span for the garbage collector to traverse while the child exports.
            scope.spans = [cast("ReceivedSpan", row[0]) for row in spans[first:]]
        scopes = tuple(scope for scope, _, _ in self.parts)
        if not undecided:  # exporters that set the flags (opentelemetry-python's since 1.25) leave none
            return Decoded(spans, frozenset(), scopes)
        # A parent sent in the same request by the same process is local.
        local_ids = {(origin.pid, span_id) for _, origin, _, span_id, _ in spans}
        return Decoded(
            spans,
            frozenset(span_id for span_id, parent_id, pid in undecided if (pid, parent_id) not in local_ids),
            scopes,
        )


def decode(body: bytes, media_type: str) -> Decoded:
    """Decode an ``ExportTraceServiceRequest`` body; ``media_type`` is ``protobuf`` or ``json``."""
    return check(body, media_type).decode()


def check(body: bytes, media_type: str) -> Checked:
    """Parse an ``ExportTraceServiceRequest`` body and check every span; ``BadRequest`` says what is wrong.

    ``media_type`` is ``protobuf`` or ``json``.
    """
    if media_type == "json":
        request = _parse_json(body)
    else:
        # Every byte counted is a byte of the body: a short body cannot exceed the limit.
        messages = _count(body, _NOT_MESSAGE_TAGS) if len(body) > MAX_PROTOBUF_MESSAGES else 0
        if messages > MAX_PROTOBUF_MESSAGES:
            raise TooLarge(
                f"protobuf body holds up to {messages} messages (counted by their tag bytes), over the "
                f"limit of {MAX_PROTOBUF_MESSAGES}; export fewer spans per request"
            )
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise BadRequest(f"body is not a protobuf ExportTraceServiceRequest ({exc})") from None
    return _check(request)


# -- what decoding will cost -------------------------------------------------------------
#
# Decoding allocates per value or message, not per byte: 60 MB of JSON "{}," took
# 1.5 GB, 8 MB of empty protobuf spans 0.7 GB. So their number is bounded first,
# from the raw body in one pass at C speed (bytes.translate: 9 ms for the 17 MB of
# a 50,000-span JSON export, whose decoding takes 3 s). Bytes inside strings
# count too: the bound is an over-estimate.


def _all_but(wanted: set[int]) -> bytes:
    return bytes(byte for byte in range(256) if byte not in wanted)


def _count(body: bytes, others: bytes) -> int:
    """How many bytes of ``body`` are not in ``others``; 64 KiB at a time, which is as fast as all at once."""
    step = 1 << 16
    return sum(len(body[start : start + step].translate(None, others)) for start in range(0, len(body), step))


def _message_tag_bytes(descriptor: Any, seen: set[str] | None = None) -> set[int]:
    """The first byte of the tag of every field, at any depth, that decoding allocates an element for.

    Every sub-message (and element of a repeated string) begins with its tag,
    so counting these bytes bounds their number.
    """
    seen = set() if seen is None else seen
    seen.add(descriptor.full_name)
    tags: set[int] = set()
    for field in descriptor.fields:
        is_message = field.message_type is not None
        # protobuf 7 drops ``label`` for ``is_repeated`` (6.31 and later)
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if is_message or (repeated and field.type in (field.TYPE_STRING, field.TYPE_BYTES)):
            # The tag's first byte, wire type 2 (length-delimited): without the continuation
            # bit, and with it, as in longer tags and over-long encodings of short ones,
            # which parsers take too.
            low = (field.number << 3 | 2) & 0x7F
            tags |= {low, low | 0x80}
        if is_message and field.message_type.full_name not in seen:
            tags |= _message_tag_bytes(field.message_type, seen)
    return tags


_NOT_MESSAGE_TAGS = _all_but(_message_tag_bytes(ExportTraceServiceRequest.DESCRIPTOR))
# In JSON, a container of n values holds n - 1 commas: values <= commas + "{" + "[" + 1.
_NOT_JSON_SEPARATORS = _all_but(set(b",{["))


# -- protobuf messages to SDK objects ------------------------------------------------------


_resource_cache: dict[bytes, tuple[Resource, int]] = {}


class _Invalid(Exception):
    """A bad field; ``path`` is relative to the span (``links[0].spanId``), the caller prefixes it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem
        self.index = 0  # of the span in its scope's list


def _resource(message: ProtoResource) -> tuple[Resource, int]:
    """The SDK resource and the pid it names (0 when it names none)."""
    key = message.SerializeToString(deterministic=True)
    cached = _resource_cache.get(key)
    if cached is not None:
        return cached
    attributes = _attributes(message.attributes)
    pid = attributes.get(_PID_KEY)
    if isinstance(pid, str) and pid.isdigit():
        pid = int(pid)
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
        pid = 0
    resource = Resource(attributes)
    if len(_resource_cache) >= _RESOURCE_CACHE_SIZE:
        _resource_cache.clear()
    _resource_cache[key] = (resource, pid)
    return resource, pid


def _scope(message: InstrumentationScope, schema_url: str) -> SdkScope:
    attributes = _attributes(message.attributes) if message.attributes else None
    try:
        return SdkScope(message.name, message.version or None, schema_url or None, attributes)
    except TypeError:  # opentelemetry-sdk before 1.25: no scope attributes
        return SdkScope(message.name, message.version or None, schema_url or None)


def _value(value: AnyValue) -> Any:
    """An ``AnyValue`` as a Python value: arrays become tuples, key-value lists dicts."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, which)


def _attributes(pairs: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        # The common kinds inline: this runs for every attribute of every span. A non-empty
        # string is a string value: reading it first spares most attributes WhichOneof.
        string = value.string_value
        if string:
            attributes[pair.key] = string
        elif value.WhichOneof("value") == "int_value":
            attributes[pair.key] = value.int_value
        else:
            attributes[pair.key] = _value(value)
    return attributes


def _bad_id(raw: bytes, size: int, path: str) -> _Invalid:
    if len(raw) != size:
        return _Invalid(path, f"must be {size} bytes, got {len(raw)}")
    return _Invalid(path, "is all zeros (an invalid id)")


def _id(raw: bytes, size: int, path: str) -> int:
    number = int.from_bytes(raw, "big")
    if len(raw) != size or not number:
        raise _bad_id(raw, size, path)
    return number


_trace_states: dict[str, TraceState] = {"": _EMPTY_STATE}


def _trace_state(header: str) -> TraceState:
    state = _trace_states.get(header)
    if state is None:
        state = TraceState.from_header([header])
        if len(_trace_states) < 256:
            _trace_states[header] = state
    return state


# Exported spans were recorded: exporters that leave the W3C flags out of the
# span flags (opentelemetry-python's does) still mean a sampled span.
_TRACE_FLAGS = [TraceFlags(flags or TraceFlags.SAMPLED) for flags in range(256)]


def _remote(flags: int) -> bool | None:
    """The flags' word on remoteness, or ``None`` when the exporter did not say."""
    if flags & HAS_IS_REMOTE:
        return bool(flags & IS_REMOTE)
    return None


def _context_factory() -> Callable[[tuple[int, int, bool, TraceFlags, TraceState, bool]], SpanContext]:
    """What builds a ``SpanContext`` from its six fields, the last (``is_valid``) already known.

    ``SpanContext.__new__`` checks both ids' ranges to compute ``is_valid``;
    decoding has checked them already (their size, and not zero), so the tuple
    is built directly: half the cost. Only where the SDK's context is that
    tuple, as it is from 1.24 to 1.45 at least; else through the constructor.
    """
    fields = (1, 2, True, _TRACE_FLAGS[1], _EMPTY_STATE, True)
    direct = partial(tuple.__new__, SpanContext)
    built = SpanContext(*fields[:5])
    if tuple(built) == fields and direct(fields) == built and direct(fields).is_valid:
        return direct
    return lambda fields: SpanContext(*fields[:5])  # pragma: no cover - no SDK version so far


_new_context = _context_factory()
_has_field = ProtoSpan.HasField

# -- spans decoded at their first read (``_received``) ------------------------------------------
#
# The checking loop (``_check_spans``, before the receiver answers) reads and
# checks what routing and checking the request need, and ``Checked.decode``
# (after the answer) builds a ``ReceivedSpan`` from it; the rest is read when
# one of the spans is first read, a scope's spans in one loop
# (``_ScopeSpans.decode``): well over half of the decoding, and of the objects
# built.


class _ScopeSpans:
    """The spans of one scope of a request, as parsed, until they are decoded (``_received.Pending``).

    ``spans`` are the ``ReceivedSpan`` built from ``messages``, in their order
    (set by ``Checked.decode``). ``contexts`` and ``lock`` are the
    request's: the local contexts built so far, by span id (see
    ``_contexts``), and what makes one thread at a time decode its spans.
    ``remote`` holds the spans whose parent the router found remote before
    they were decoded (``defer_remote_parent``), by ``id``.
    """

    __slots__ = ("contexts", "lock", "messages", "remote", "resource", "scope", "spans")

    def __init__(
        self,
        messages: Any,
        resource: Resource,
        scope: SdkScope,
        contexts: dict[int, SpanContext],
        lock: threading.Lock,
    ) -> None:
        self.messages: Any = messages
        self.resource = resource
        self.scope = scope
        self.contexts = contexts
        self.lock = lock
        self.spans: list[ReceivedSpan] | None = None
        self.remote: set[int] = set()

    def decode(self) -> None:
        with self.lock:
            spans, messages = self.spans, self.messages
            if spans is None:  # decoded already
                return
            contexts, resource, scope, remote = self.contexts, self.resource, self.scope, self.remote
            for span, message in zip(spans, messages, strict=True):
                if span._pending is None:  # decoded before an interruption (KeyboardInterrupt, a timeout)
                    continue
                context, parent = _contexts(contexts, message, id(span) in remote)
                attributes = message.attributes
                events = message.events
                span.fill(
                    message.name,
                    context,
                    parent,
                    resource,
                    _attributes(attributes) if attributes else None,
                    tuple(map(_event, events)) if events else (),
                    message.start_time_unix_nano,
                    message.end_time_unix_nano,
                    scope,
                )
            self.spans = self.messages = None  # let go of the parsed request

    def defer_remote_parent(self, span: ReceivedSpan) -> bool:
        with self.lock:
            if self.spans is None or span._pending is None:
                return False
            self.remote.add(id(span))
            return True

    def forget(self) -> None:
        """Let go of the spans: none was taken (they were dropped), so none will be read."""
        with self.lock:
            self.spans = self.messages = None


def _check(request: ExportTraceServiceRequest) -> Checked:
    parts: list[tuple[_ScopeSpans, Origin, list[_CheckedSpan]]] = []
    origins: dict[int, Origin] = {}
    contexts: dict[int, SpanContext] = {}
    lock = threading.Lock()
    count = 0
    for r_index, resource_spans in enumerate(request.resource_spans):
        resource, pid = _resource(resource_spans.resource)
        origin = origins.get(pid)
        if origin is None:
            origin = origins[pid] = Origin(pid, None, None, None)
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            scope = _scope(scope_spans.scope, scope_spans.schema_url)
            messages = scope_spans.spans
            checked: list[_CheckedSpan] = []
            try:
                _check_spans(messages, checked)
            except _Invalid as invalid:
                raise BadRequest(
                    f"resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{invalid.index}].{invalid.path} "
                    f"{invalid.problem}"
                ) from None
            parts.append((_ScopeSpans(messages, resource, scope, contexts, lock), origin, checked))
            count += len(checked)
    return Checked(count, tuple(parts))


def _check_spans(messages: Any, checked: list[_CheckedSpan]) -> None:
    """Check the span messages of one scope, appending what the checks read to ``checked``; ``_Invalid``
    names the bad one.

    This runs for every received span before the receiver answers, and
    reading a field of a parsed message costs more than checking it: the
    fields are read in one call (``_checked_fields``), kept as they are read
    (``Checked.decode`` converts them after the answer), and checked in one
    expression. A span it fails is checked again one field at a time
    (``_check_span``), for the message.
    """
    append = checked.append
    link, trace_zero, span_zero = _link, _ZERO_TRACE_ID, _ZERO_SPAN_ID
    try:
        for fields in map(_checked_fields, messages):
            trace_id, span_id, parent_id, kind, code, links, flags = fields
            if (
                len(trace_id) != 16
                or trace_id == trace_zero
                or len(span_id) != 8
                or span_id == span_zero
                or (parent_id and (len(parent_id) != 8 or parent_id == span_zero))
                or not 0 <= kind <= 5
                or not 0 <= code <= 2
            ):
                _check_span(messages[len(checked)])
            if links:  # checked and built now: the check is most of the work
                links = tuple(link(one, index) for index, one in enumerate(links))
                fields = (trace_id, span_id, parent_id, kind, code, links, flags)
            append(fields)
    except _Invalid as invalid:
        invalid.index = len(checked)  # a span's index in its scope is how many were checked before it
        raise


def _check_span(span: Any) -> None:
    """Every check ``_check_spans`` makes, one at a time, in the order a 400 names the first that fails."""
    _span_ids(span)
    kind = span.kind
    if not 0 <= kind <= 5:
        raise _Invalid("kind", f"is {kind}, not an OTLP span kind (0-5)")
    for index, one in enumerate(span.links):
        _link(one, index)
    if _has_field(span, "status"):
        _status(span)


_CHECKED = ("trace_id", "span_id", "parent_span_id", "kind", "status.code", "links")
if _HAS_FLAGS:
    _checked_fields: Callable[[Any], _CheckedSpan] = attrgetter(*_CHECKED, "flags")
else:  # opentelemetry-proto before 1.25: no span flags
    _fields = attrgetter(*_CHECKED)

    def _checked_fields(span: Any) -> _CheckedSpan:
        return (*_fields(span), 0)


def _span_ids(span: Any) -> tuple[int, int, int]:
    """The trace, span and parent span ids of a span message (0: no parent), checked.

    ``_id`` three times over, inline: this runs for every received span, and a call per id costs more
    than reading it.
    """
    from_bytes = int.from_bytes
    raw = span.trace_id
    trace_id = from_bytes(raw, "big")
    if len(raw) != 16 or not trace_id:
        raise _bad_id(raw, 16, "traceId")
    raw = span.span_id
    span_id = from_bytes(raw, "big")
    if len(raw) != 8 or not span_id:
        raise _bad_id(raw, 8, "spanId")
    raw = span.parent_span_id
    if not raw:
        return trace_id, span_id, 0
    parent_id = from_bytes(raw, "big")
    if len(raw) != 8 or not parent_id:
        raise _bad_id(raw, 8, "parentSpanId")
    return trace_id, span_id, parent_id


def _contexts(
    contexts: dict[int, SpanContext], span: Any, remote_parent: bool
) -> tuple[SpanContext, SpanContext | None]:
    """The context of span message ``span`` and its parent's (its ids were checked when it was received);
    the parent is remote where the exporter says so or the router found it (``remote_parent``).

    ``contexts`` holds the local contexts built so far in the request, by span
    id: siblings share their parent's context, and the parent, sent after
    them, takes it as its own. One object per parent, not one per child, is
    half the contexts a capture keeps, and the garbage collector traverses
    every one of them.
    """
    trace_id, span_id, parent_id = _span_ids(span)
    flags = span.flags if _HAS_FLAGS else 0
    trace_flags = _TRACE_FLAGS[flags & TRACE_FLAGS_MASK]
    state = span.trace_state
    state = _trace_state(state) if state else _EMPTY_STATE
    parent = None
    if parent_id:
        remote = remote_parent or _remote(flags) is True
        parent = _context(contexts, trace_id, parent_id, trace_flags, state, remote, True)
    return _context(contexts, trace_id, span_id, trace_flags, state, False, False), parent


def _context(
    contexts: dict[int, SpanContext],
    trace_id: int,
    span_id: int,
    trace_flags: TraceFlags,
    state: TraceState,
    remote: bool,
    keep: bool,
) -> SpanContext:
    """The context of span ``span_id``: the one built earlier in the request when it is equal, else a
    new one (kept for later spans when ``keep`` and local)."""
    context = None if remote else contexts.get(span_id)
    if context is None or context[0] != trace_id or context[3] is not trace_flags or context[4] is not state:
        context = _new_context((trace_id, span_id, remote, trace_flags, state, True))
        if keep and not remote:
            contexts[span_id] = context
    return context


def _error_status(span: Any) -> Status:
    return Status(StatusCode.ERROR, span.status.message or None)


def _status(span: Any) -> Status:
    """The status of a span message that has one (most have none: asking is cheaper than reading it)."""
    code = span.status.code
    if code == 0:
        return _UNSET
    if code == 1:
        return _OK
    if code == 2:
        return _error_status(span)
    raise _Invalid("status.code", f"is {code}, not an OTLP status code (0-2)")


def _event(event: Any) -> Event:
    attributes = _attributes(event.attributes) if event.attributes else None
    return Event(event.name, attributes, event.time_unix_nano)


def _link(link: Any, index: int) -> Link:
    trace_id = _id(link.trace_id, 16, f"links[{index}].traceId")
    span_id = _id(link.span_id, 8, f"links[{index}].spanId")
    flags = link.flags if _HAS_FLAGS else 0
    state = _trace_state(link.trace_state) if link.trace_state else _EMPTY_STATE
    # A linked context without flags came from elsewhere more often than not: remote.
    remote = _remote(flags)
    trace_flags = _TRACE_FLAGS[flags & TRACE_FLAGS_MASK]
    context = _new_context((trace_id, span_id, True if remote is None else remote, trace_flags, state, True))
    attributes = _attributes(link.attributes) if link.attributes else None
    return Link(context, attributes)


# -- OTLP JSON -----------------------------------------------------------------------------

# OTLP JSON is proto3 JSON with two differences that matter: trace and span ids
# are hex strings (proto3 JSON would have base64), and keys are lowerCamelCase
# (json_format accepts those and the proto field names alike).
_HEX = re.compile(r"[0-9a-fA-F]*")
_ID_KEYS = {
    "traceId": 16,
    "trace_id": 16,
    "spanId": 8,
    "span_id": 8,
    "parentSpanId": 8,
    "parent_span_id": 8,
}


def _parse_json(body: bytes) -> ExportTraceServiceRequest:
    values = _count(body, _NOT_JSON_SEPARATORS) + 1 if len(body) >= MAX_JSON_VALUES else 0
    if values > MAX_JSON_VALUES:
        raise TooLarge(
            f"JSON body holds up to {values} values (counted by its ',', '{{' and '['), over the limit "
            f"of {MAX_JSON_VALUES}; export fewer spans per request"
        )
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8 JSON") from None
    except ValueError as exc:
        raise BadRequest(f"body is not JSON ({exc})") from None
    except RecursionError:
        raise BadRequest("body is JSON nested too deeply to decode") from None
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object (ExportTraceServiceRequest), not {_json_type(data)}")
    for r_index, resource_spans in enumerate(_items(data, "resourceSpans", "resource_spans", "")):
        where = f"resourceSpans[{r_index}]"
        for s_index, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans", where)):
            where_scope = f"{where}.scopeSpans[{s_index}]"
            for index, span in enumerate(_items(scope_spans, "spans", "spans", where_scope)):
                where_span = f"{where_scope}.spans[{index}]"
                _hex_ids_to_base64(span, where_span)
                for l_index, link in enumerate(_items(span, "links", "links", where_span)):
                    _hex_ids_to_base64(link, f"{where_span}.links[{l_index}]")
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise BadRequest(f"body is not an OTLP JSON ExportTraceServiceRequest ({exc})") from None
    except RecursionError:  # where json_format's own depth limit is missing
        raise BadRequest("body is JSON nested too deeply to decode") from None
    return request


def _items(parent: Any, key: str, alias: str, where: str) -> list[Any]:
    if not isinstance(parent, dict):
        raise BadRequest(f"{where or 'body'} must be a JSON object, not {_json_type(parent)}")
    items = parent.get(key, parent.get(alias))
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadRequest(f"{where + '.' if where else ''}{key} must be a JSON array, not {_json_type(items)}")
    return items


def _hex_ids_to_base64(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise BadRequest(f"{where} must be a JSON object, not {_json_type(message)}")
    for key, size in _ID_KEYS.items():
        value = message.get(key)
        if value is None:
            continue
        name = f"{where}.{key}"
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a hex string, not {_json_type(value)}")
        if value == "" and key.startswith("parent"):
            continue
        if len(value) != 2 * size or not _HEX.fullmatch(value):
            raise BadRequest(f"{name} must be {2 * size} hex digits, got {value!r}")
        try:
            message[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
        except (ValueError, binascii.Error):  # pragma: no cover - the pattern rules this out
            raise BadRequest(f"{name} must be {2 * size} hex digits, got {value!r}") from None


def _json_type(value: object) -> str:
    names: dict[type, str] = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
