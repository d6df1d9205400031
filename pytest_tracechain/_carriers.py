"""Carriers: the headers a trace context travels in between processes.

``assert_carrier_has_context`` reads a carrier with the globally configured
propagator, as a consumer would, but first parses the headers of the
propagators it knows (W3C trace context, B3) itself, so that a malformed value
fails with the exact defect instead of the silent empty context OpenTelemetry
returns for it.

Three stages: the carrier is read once into ``_Headers``; the diagnoser of the
global propagator (one per propagator kind, chosen by ``_diagnoser_for``) lists
the defects and the missing headers; the extracted context is compared with the
expected span.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NoReturn, Protocol

from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pytest_tracechain._refs import Ref, fail, resolve, running_state
from pytest_tracechain._state import CaptureState

__all__ = ["assert_carrier_has_context"]

_FUNC = "assert_carrier_has_context"
_HEX = frozenset("0123456789abcdefABCDEF")
_SHOWN_CHARS = 80
_SHOWN_NAMES = 20
# How header names are usually spelled, for carriers that can only be asked by exact name.
_SPELLINGS = {"x-b3-traceid": "X-B3-TraceId", "x-b3-spanid": "X-B3-SpanId", "x-b3-sampled": "X-B3-Sampled"}

_INJECT_HOW = (
    "opentelemetry.propagate.inject(carrier) (for a list of pairs, pass a setter that appends (name, value))"
)
_INJECT_HINT = f"write the headers with {_INJECT_HOW} instead of by hand, and do not change them on the way."
_REPEAT_HINT = (
    "the context was injected more than once into the same carrier (a retried send that injects "
    "again into the same header list?); replace the earlier value instead of adding another."
)
_ENCODING_HINT = "header values travel as text: encode them with value.encode() (UTF-8)."
_PROPAGATOR_HINT = (
    "a propagator must not raise on what it cannot read; it should return the context it was given."
)
_TRACESTATE_HINT = (
    "OpenTelemetry drops a malformed tracestate silently, so the vendor entries in it are lost; "
    "build it with opentelemetry.trace.TraceState instead of by hand."
)


@dataclass(frozen=True)
class _Defect:
    """Something wrong with a header value, and what to do about it."""

    text: str
    hint: str = _INJECT_HINT


@dataclass
class _Findings:
    """What a diagnoser found: malformed values (``defects``), and absent headers (``missing``)."""

    defects: list[_Defect] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def assert_carrier_has_context(carrier: object, span: ReadableSpan | SpanContext | str | None = None) -> None:
    """Pass when ``carrier`` holds a valid trace context, and it is ``span``'s context when given.

    The carrier is read with the globally configured propagator
    (``opentelemetry.propagate.get_global_textmap()``): W3C ``traceparent`` and
    ``tracestate`` by default, B3 or a composite propagator when one is set.

    Args:
        carrier: the headers the context travels in: a mapping of names to
            ``str`` or ``bytes`` values (a dict, ``requests``' ``CaseInsensitiveDict``),
            a sequence of ``(name, value)`` pairs (Kafka record headers), or any
            object with ``get`` (``email.message.Message``, ``http.client.HTTPMessage``).
            Names match in any case, as HTTP header names do; ``bytes`` values
            must be UTF-8.
        span: the span whose context the carrier must hold: a ``ReadableSpan``,
            a ``SpanContext``, or the name of a span in the running test's capture.

    Raises:
        TraceAssertionError: the carrier holds no context, a malformed one (the
            message names the header and the defect: a field's length, non-hex
            or upper-case digits, an all-zero id, a forbidden version, a repeated
            header, bytes that are not UTF-8, a tracestate OpenTelemetry would
            drop), or the context of another span.
        TypeError: ``carrier`` is none of the shapes above, reading it raised
            (its ``items()``, ``get()`` or a subclass's method; the message
            names the exception), or ``span`` is not a span, a ``SpanContext``
            or a name. A value that is not text is reported by its type, and
            shown with ``repr`` cut short, never with an exception of its own.
    """
    __tracebackhide__ = True
    propagator = propagate.get_global_textmap()
    diagnoser = _diagnoser_for(propagator)
    headers = _read_carrier(carrier, [*diagnoser.fields, *sorted(propagator.fields)])
    capture = running_state()
    expected = resolve(span, "span", _FUNC, capture) if span is not None else None
    findings = diagnoser.diagnose(headers)
    held = _extract(propagator, headers, findings)
    holder = resolve(held, "carrier", _FUNC, capture) if held.is_valid else None
    report = _Report.of(expected, holder, capture)
    if findings.defects:
        _fail_malformed(report, findings.defects)
    shown = _relevant(headers, diagnoser.fields)
    if holder is None:
        missing = [*findings.missing, *diagnoser.nothing_extracted()]
        if not missing:  # the headers looked valid, yet the propagator returned nothing
            missing.append(f"{_name(propagator)} extracted no valid span context from them")
        _fail_no_context(report, [*missing, *shown, _listing(headers)], expected)
    if expected is not None and not _holds(held, expected):
        _fail_mismatch(report, shown, held, holder, expected)


def _extract(propagator: TextMapPropagator, headers: _Headers, findings: _Findings) -> SpanContext:
    """The span context the propagator reads from the carrier, as a consumer would.

    A propagator that raises reads as no context, and its exception is added to ``findings.defects``.
    """
    try:
        extracted = propagator.extract(headers, Context(), getter=_GETTER)
    except Exception as exc:  # a third-party propagator's bug must read as a failure, not a crash
        findings.defects.append(
            _Defect(
                f"the global propagator {_name(propagator)} raised {_safe_repr(exc)} reading the carrier",
                _PROPAGATOR_HINT,
            )
        )
        extracted = Context()
    return trace.get_current_span(extracted).get_span_context()


# --- the verdict ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Report:
    """What every failure shows: the spans involved (or the captured traces), and their marks."""

    refs: list[Ref]
    marks: dict[int, str]
    capture: CaptureState | None

    @classmethod
    def of(cls, expected: Ref | None, holder: Ref | None, capture: CaptureState | None) -> _Report:
        refs = [ref for ref in (expected, holder) if ref is not None]
        marks = {expected.span_id: "expected in the carrier"} if expected is not None else {}
        if holder is not None:
            marks.setdefault(holder.span_id, "in the carrier")
        return cls(refs or _captured_trace_refs(capture), marks, capture)

    def fail(self, headline: str, details: list[str], hint: str) -> NoReturn:
        __tracebackhide__ = True
        fail(headline, details, self.refs, self.capture, marks=self.marks, hint=hint)


def _fail_malformed(report: _Report, defects: list[_Defect]) -> NoReturn:
    __tracebackhide__ = True
    crashed = all(defect.hint is _PROPAGATOR_HINT for defect in defects)
    report.fail(
        "the propagator could not read the carrier:"
        if crashed
        else "the carrier holds a malformed trace context:",
        [defect.text for defect in defects],
        defects[0].hint,
    )


def _fail_no_context(report: _Report, details: list[str], expected: Ref | None) -> NoReturn:
    __tracebackhide__ = True
    target = f"while {expected.label} is current" if expected is not None else "in the producer span"
    report.fail(
        "the carrier holds no trace context:",
        details,
        f"inject the context {target} with {_INJECT_HOW}; the consumer extracts it from there.",
    )


def _holds(held: SpanContext, expected: Ref) -> bool:
    return held.trace_id == expected.trace_id and held.span_id == expected.span_id


def _fail_mismatch(
    report: _Report, shown: list[str], held: SpanContext, holder: Ref, expected: Ref
) -> NoReturn:
    __tracebackhide__ = True
    report.fail(
        f"the carrier holds the context of {_describe(holder)}, not of {_describe(expected)}",
        [*shown, _trace_relation(held, expected)],
        _mismatch_hint(held, holder, expected, report.capture),
    )


# --- reading the carrier -------------------------------------------------------------------------


@dataclass
class _Headers:
    """A carrier read once, as (name, raw value) pairs; names match in any case, as in HTTP.

    ``listable`` is false for carriers that can only be asked for a name (``get``
    without ``keys``): their pairs are the propagators' headers they answered for.
    """

    pairs: list[tuple[str, object]]
    listable: bool = True

    def find(self, name: str) -> list[tuple[str, object]]:
        wanted = name.lower()
        return [(key, value) for key, value in self.pairs if key.lower() == wanted]

    def names(self) -> list[str] | None:
        if not self.listable:
            return None
        return list(dict.fromkeys(key for key, _ in self.pairs))


class _HeadersGetter(Getter[_Headers]):
    """Hands the propagator the values that decode as text, so it reads the carrier as a consumer would."""

    def get(self, carrier: _Headers, key: str) -> list[str] | None:
        values = [text for _, raw in carrier.find(key) if (text := _decode(raw)[0]) is not None]
        return values or None

    def keys(self, carrier: _Headers) -> list[str]:
        return carrier.names() or []


_GETTER = _HeadersGetter()


def _read_carrier(carrier: object, wanted: Iterable[str]) -> _Headers:
    """The carrier's headers; ``wanted`` are the names to ask for when the carrier cannot list its own.

    The carrier's own code (``items()``, ``get()``, ``__len__``, a subclass's
    methods) runs only here: whatever it raises is a ``TypeError`` that says
    so, and what comes out is plain ``str`` names and plain values.
    """
    __tracebackhide__ = True
    try:
        return _read(carrier, wanted)
    except _NotACarrier as exc:
        raise _carrier_type_error(carrier, exc.detail) from None
    except Exception as exc:  # the carrier's code raised, or its nesting ran past the recursion limit
        raise _carrier_type_error(carrier, f"reading its headers raised {_safe_repr(exc)}") from exc


class _NotACarrier(Exception):
    """Why the carrier is none of the shapes read (``_read_carrier`` makes it the ``TypeError``)."""

    def __init__(self, detail: str | None) -> None:
        super().__init__(detail)
        self.detail = detail


def _read(carrier: object, wanted: Iterable[str]) -> _Headers:
    if isinstance(carrier, Mapping):
        return _Headers(_mapping_pairs(carrier))
    if isinstance(carrier, (str, bytes, bytearray, memoryview)):
        raise _NotACarrier("text is not a carrier; pass the headers it came from")
    get = getattr(carrier, "get", None)
    if callable(get):
        if callable(getattr(carrier, "put", None)):  # get() on a queue would take a message, or block
            raise _NotACarrier("it looks like a queue; pass the message's headers")
        return _headers_from_getter(carrier, get, wanted)
    if isinstance(carrier, Sequence):
        return _Headers(_sequence_pairs(carrier))
    raise _NotACarrier(None)


def _mapping_pairs(carrier: Mapping[object, object]) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = []
    for key, value in carrier.items():  # items() of a multidict yields every value
        if isinstance(key, (str, bytes)):
            pairs += [(_text_name(key), item) for item in _values(value)]
    return pairs


def _sequence_pairs(carrier: Sequence[object]) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = []
    for index, item in enumerate(carrier):
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], (str, bytes)):
            raise _NotACarrier(f"item {index} is {_short_repr(item)}, not a (name, value) pair")
        pairs.append((_text_name(item[0]), _plain(item[1])))
    return pairs


def _carrier_type_error(carrier: object, detail: str | None) -> TypeError:
    message = (
        f"{_FUNC}() argument 'carrier' must be a mapping of header names to str or bytes, a sequence "
        f"of (name, value) pairs, or an object with get(); got {type(carrier).__name__}"
    )
    return TypeError(message + (f": {detail}" if detail else ""))


def _headers_from_getter(carrier: object, get: Callable[..., object], wanted: Iterable[str]) -> _Headers:
    get_all = getattr(carrier, "get_all", None)  # email.message.Message and http.client.HTTPMessage

    def values_of(name: str) -> list[object]:
        found = get_all(name) if callable(get_all) else get(name)
        return [] if found is None else _values(found)

    keys = getattr(carrier, "keys", None)
    if callable(keys):
        return _Headers(_listed_pairs(keys(), values_of))
    return _Headers(_asked_pairs(wanted, values_of), listable=False)


def _listed_pairs(
    keys: Iterable[object], values_of: Callable[[str], list[object]]
) -> list[tuple[str, object]]:
    """Every header of a carrier with ``keys()``, each name asked once (in any case)."""
    pairs: list[tuple[str, object]] = []
    seen: set[str] = set()
    for key in keys:
        if not isinstance(key, (str, bytes)):
            continue
        name = _text_name(key)
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        pairs += [(name, value) for value in values_of(name)]
    return pairs


def _asked_pairs(wanted: Iterable[str], values_of: Callable[[str], list[object]]) -> list[tuple[str, object]]:
    """The wanted headers of a carrier that cannot list its own, in the first spelling it answers."""
    pairs: list[tuple[str, object]] = []
    for name in dict.fromkeys(name.lower() for name in wanted):
        for spelling in dict.fromkeys((name, _SPELLINGS.get(name, name))):
            values = values_of(spelling)
            if values:
                pairs += [(spelling, value) for value in values]
                break
    return pairs


def _values(value: object) -> list[object]:
    """One value, or each of a list of them (``Mapping[str, list[str]]``, as OpenTelemetry reads it),
    each made plain."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return [_plain(value)]


@dataclass(frozen=True, eq=False)
class _Odd:
    """A header value that is neither text nor bytes: its type, and the value for its ``repr`` only."""

    type_name: str
    value: object

    def __repr__(self) -> str:
        return _safe_repr(self.value)


def _plain(value: object) -> object:
    """A header value as exact ``str``, ``bytes`` or ``bytearray`` (no subclass's methods run later),
    or an ``_Odd``: later stages run none of the carrier's code."""
    kind = type(value)
    if kind is str or kind is bytes or kind is bytearray:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytearray):
        return bytearray(memoryview(value))
    if isinstance(value, (bytes, memoryview)):
        return bytes(memoryview(value))
    return _Odd(kind.__name__, value)


def _text_name(name: str | bytes) -> str:
    """A header name as an exact ``str`` (a subclass's ``lower`` or ``__eq__`` is never called)."""
    if isinstance(name, str):
        return str.__str__(name)
    return bytes(memoryview(name)).decode("utf-8", "replace")


def _decode(raw: object) -> tuple[str | None, str | None]:
    """The value (as ``_plain`` made it: exact types, no carrier code runs) as text, or why it is not text."""
    if type(raw) is str:
        return raw, None
    if type(raw) is bytes or type(raw) is bytearray:
        data = bytes(raw)
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            return None, f"is not UTF-8 (byte 0x{data[exc.start]:02x} at position {exc.start})"
    name = raw.type_name if type(raw) is _Odd else type(raw).__name__
    return None, f"is of type {name}, not str or bytes"


def _relevant(headers: _Headers, names: Iterable[str]) -> list[str]:
    """The values of the headers the propagator reads, one line each."""
    lines = []
    for name in names:
        for key, raw in headers.find(name):
            text, _ = _decode(raw)
            lines.append(f"{key}: {_show(text) if text is not None else _short_repr(raw)}")
    return lines


def _listing(headers: _Headers) -> str:
    names = headers.names()
    if names is None:
        return "carrier headers: cannot be listed (the carrier has get() but no keys())"
    if not names:
        return "the carrier is empty"
    shown = ", ".join(repr(name) for name in names[:_SHOWN_NAMES])
    more = f" and {len(names) - _SHOWN_NAMES} more" if len(names) > _SHOWN_NAMES else ""
    return f"carrier headers: {shown}{more}"


def _single_text(headers: _Headers, name: str, defects: list[_Defect]) -> tuple[str, str] | None:
    """The header's name in the carrier and its one value as text; None if absent, undecodable or repeated."""
    found = headers.find(name)
    if not found:
        return None
    key = found[0][0]
    texts = []
    for _, raw in found:
        text, problem = _decode(raw)
        if text is None:
            defects.append(_Defect(f"{key} {_short_repr(raw)} {problem}", _ENCODING_HINT))
            return None
        texts.append(text)
    if len(texts) > 1:
        shown = ", ".join(_show(text) for text in texts[:3])
        defects.append(
            _Defect(
                f"{key} is repeated: {len(texts)} values ({shown}); a repeated {name} is invalid, "
                "and OpenTelemetry reads only the first",
                _REPEAT_HINT,
            )
        )
        return None
    return key, texts[0]


# --- one diagnoser per propagator kind -----------------------------------------------------------


class _Diagnoser(Protocol):
    """What this module knows about one kind of propagator."""

    @property
    def fields(self) -> tuple[str, ...]:
        """The headers it reads (lower case), in the order failures show them."""
        ...

    def diagnose(self, headers: _Headers) -> _Findings:
        """The defects of its headers in the carrier, and the ones that are absent."""
        ...

    def nothing_extracted(self) -> list[str]:
        """What to add when the propagator extracted no context and ``diagnose`` had no word for it."""
        ...


def _diagnoser_for(propagator: TextMapPropagator) -> _Diagnoser:
    """The diagnoser of a propagator, by its class; a composite one runs its members' diagnosers."""
    if isinstance(propagator, CompositePropagator):
        inner = getattr(propagator, "_propagators", None)
        if isinstance(inner, Sequence):
            return _CompositeDiagnoser(tuple(_diagnoser_for(member) for member in inner))
    if isinstance(propagator, TraceContextTextMapPropagator):
        return _W3CDiagnoser(propagator)
    if isinstance(propagator, W3CBaggagePropagator):
        return _BaggageDiagnoser()
    if _is_b3(propagator):
        return _B3Diagnoser()
    return _OpaqueDiagnoser(propagator)


def _is_b3(propagator: TextMapPropagator) -> bool:
    # B3 is an optional package: recognise it by class, never import it.
    return any(
        cls.__module__.startswith("opentelemetry.propagators.b3") and cls.__name__ == "B3MultiFormat"
        for cls in type(propagator).__mro__
    )


def _name(propagator: TextMapPropagator) -> str:
    return type(propagator).__name__


@dataclass(frozen=True)
class _CompositeDiagnoser:
    members: tuple[_Diagnoser, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for member in self.members for name in member.fields))

    def diagnose(self, headers: _Headers) -> _Findings:
        found = _Findings()
        for member in self.members:
            findings = member.diagnose(headers)
            found.defects += findings.defects
            found.missing += findings.missing
        return found

    def nothing_extracted(self) -> list[str]:
        return [line for member in self.members for line in member.nothing_extracted()]


@dataclass(frozen=True)
class _OpaqueDiagnoser:
    """A propagator this module cannot parse for: only what it reads, and that it read nothing."""

    propagator: TextMapPropagator

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(sorted(self.propagator.fields))

    def diagnose(self, headers: _Headers) -> _Findings:
        return _Findings()

    def nothing_extracted(self) -> list[str]:
        fields = ", ".join(repr(name) for name in self.fields) or "none"
        return [f"{_name(self.propagator)} extracted no valid span context (it reads: {fields})"]


class _BaggageDiagnoser:
    """Baggage carries no trace context: nothing to read, nothing missing."""

    fields: ClassVar[tuple[str, ...]] = ()

    def diagnose(self, headers: _Headers) -> _Findings:
        return _Findings()

    def nothing_extracted(self) -> list[str]:
        return []


# --- header values, as the diagnosers judge them ------------------------------------------------


def _value_defects(key: str, value: str, problems: Iterable[str | None]) -> list[_Defect]:
    """One line for one problem; a line naming the header and one line per problem for more."""
    found = [problem for problem in problems if problem is not None]
    if not found:
        return []
    if len(found) == 1:
        return [_Defect(f"{key} {_show(value)}: {found[0]}")]
    return [_Defect(f"{key} {_show(value)}:"), *(_Defect(f"  {problem}") for problem in found)]


def _hex_problem(what: str, text: str, widths: tuple[int, ...], spec: str, *, nonzero: bool) -> str | None:
    if len(text) not in widths:
        expected = " or ".join(str(width) for width in widths)
        shown = _show(text, limit=40, count=False)
        return f"{what} {shown} has {_count(len(text), 'character')}, expected {expected} hex digits"
    bad = next((index for index, char in enumerate(text) if char not in _HEX), None)
    if bad is not None:
        return f"{what} {_show(text)} is not hex ({text[bad]!r} at position {bad})"
    if text != text.lower():
        return f"{what} {_show(text)} has upper-case hex digits; {spec} requires lower case"
    if nonzero and not text.strip("0"):
        return f"{what} is all zeros, which {spec} forbids"
    return None


# --- W3C trace context ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _W3CDiagnoser:
    propagator: TextMapPropagator  # reads the tracestate, to tell whether OpenTelemetry keeps it
    fields: ClassVar[tuple[str, ...]] = ("traceparent", "tracestate")

    def diagnose(self, headers: _Headers) -> _Findings:
        if not headers.find("traceparent"):
            return _Findings(missing=["W3C trace context: no 'traceparent' header"])
        defects: list[_Defect] = []
        found = _single_text(headers, "traceparent", defects)
        if found is None:
            return _Findings(defects)
        key, value = found
        problems = _traceparent_problems(value)
        if problems:
            return _Findings(_value_defects(key, value, problems))
        return _Findings(_tracestate_defects(self.propagator, headers))

    def nothing_extracted(self) -> list[str]:
        return []


def _traceparent_problems(value: str) -> list[str]:
    text = value.strip(" \t")  # optional whitespace around a header value (RFC 9110)
    if not text:
        return ["the value is empty"]
    fields = text.split("-")
    if len(fields) < 4:
        return [f"{_count(len(fields), 'field')} separated by '-', expected 4: version-traceid-spanid-flags"]
    version, trace_id, span_id, flags = fields[:4]
    problems = [
        _hex_problem("version", version, (2,), "W3C", nonzero=False),
        "version ff is forbidden" if version.lower() == "ff" else None,
        f"{len(fields)} fields; version 00 has exactly 4: version-traceid-spanid-flags"
        if version == "00" and len(fields) > 4
        else None,
        _hex_problem("trace id", trace_id, (32,), "W3C", nonzero=True),
        _hex_problem("span id", span_id, (16,), "W3C", nonzero=True),
        _hex_problem("flags", flags, (2,), "W3C", nonzero=False),
    ]
    return [problem for problem in problems if problem is not None]


_TRACESTATE_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"
)
_TRACESTATE_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


def _tracestate_defects(propagator: TextMapPropagator, headers: _Headers) -> list[_Defect]:
    """A tracestate that OpenTelemetry drops (it does so without a word)."""
    found = headers.find("tracestate")
    if not found:
        return []
    key = found[0][0]
    texts = []
    for _, raw in found:
        text, problem = _decode(raw)
        if text is None:
            return [_Defect(f"{key} {_short_repr(raw)} {problem}", _ENCODING_HINT)]
        texts.append(text)
    members = [m.strip(" \t") for text in texts for m in text.split(",") if m.strip(" \t")]
    if not members or _keeps_tracestate(propagator, headers):
        return []
    shown = _show(",".join(texts))
    return [
        _Defect(f"{key} {shown}: {_tracestate_problem(members)}; OpenTelemetry drops it", _TRACESTATE_HINT)
    ]


def _keeps_tracestate(propagator: TextMapPropagator, headers: _Headers) -> bool:
    try:
        extracted = propagator.extract(headers, Context(), getter=_GETTER)
    except Exception:  # a subclass's bug; _extract reports it as the defect
        return True
    return bool(trace.get_current_span(extracted).get_span_context().trace_state)


def _tracestate_problem(members: list[str]) -> str:
    seen: set[str] = set()
    for member in members:
        name, sep, value = member.partition("=")
        if not sep:
            return f"member {_show(member)} is not key=value"
        if not _TRACESTATE_KEY.fullmatch(name):
            return (
                f"key {_show(name)} is not a tracestate key (lower-case letters, digits, '_-*/', "
                "at most 256 characters, one optional '@')"
            )
        if not _TRACESTATE_VALUE.fullmatch(value):
            return (
                f"the value of {name!r}, {_show(value)}, is not 1 to 256 printable ASCII characters "
                "without ',' or '=' (and no trailing space)"
            )
        if name in seen:
            return f"key {name!r} appears twice"
        seen.add(name)
    if len(members) > 32:
        return f"{len(members)} members, at most 32 are allowed"
    return "OpenTelemetry could not parse it"


# --- B3 ------------------------------------------------------------------------------------------


_B3_IDS = (("x-b3-traceid", (16, 32), "trace id"), ("x-b3-spanid", (16,), "span id"))


class _B3Diagnoser:
    fields: ClassVar[tuple[str, ...]] = ("b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags")

    def diagnose(self, headers: _Headers) -> _Findings:
        # OpenTelemetry's B3 propagators read the single 'b3' header when present, else the multi headers.
        if not headers.find("b3"):
            return _b3_multi_findings(headers)
        defects: list[_Defect] = []
        found = _single_text(headers, "b3", defects)
        return _Findings(defects) if found is None else _b3_single_findings(*found)

    def nothing_extracted(self) -> list[str]:
        return []


def _b3_single_findings(key: str, value: str) -> _Findings:
    fields = value.split("-")
    if len(fields) == 1 and value in ("0", "1", "d"):
        return _Findings(
            missing=[f"B3: {key} {value!r} is a sampling decision only; it carries no trace context"]
        )
    if len(fields) == 1:
        return _Findings([_Defect(f"{key} {_show(value)}: expected traceid-spanid[-sampled[-parentspanid]]")])
    if len(fields) > 4:
        return _Findings(
            [
                _Defect(
                    f"{key} {_show(value)}: {len(fields)} fields separated by '-', expected 2 to 4: "
                    "traceid-spanid[-sampled[-parentspanid]]"
                )
            ]
        )
    problems = [
        _hex_problem("trace id", fields[0], (16, 32), "B3", nonzero=True),
        _hex_problem("span id", fields[1], (16,), "B3", nonzero=True),
    ]
    if len(fields) >= 3 and fields[2] not in ("0", "1", "d"):
        problems.append(f"sampling state {_show(fields[2])} is not '0', '1' or 'd'")
    if len(fields) == 4:
        problems.append(_hex_problem("parent span id", fields[3], (16,), "B3", nonzero=True))
    return _Findings(_value_defects(key, value, problems))


def _b3_multi_findings(headers: _Headers) -> _Findings:
    findings = _Findings()
    trace_found = headers.find("x-b3-traceid")
    span_found = headers.find("x-b3-spanid")
    if not trace_found and not span_found:
        findings.missing.append("B3: no 'b3' header and no 'X-B3-TraceId'/'X-B3-SpanId' headers")
        return findings
    if not trace_found or not span_found:
        absent, present = ("X-B3-TraceId", span_found) if not trace_found else ("X-B3-SpanId", trace_found)
        findings.defects.append(_Defect(f"{absent} is missing ({present[0][0]} is present); B3 needs both"))
    for name, widths, what in _B3_IDS:
        found = _single_text(headers, name, findings.defects)
        if found is not None:
            key, value = found
            findings.defects += _value_defects(
                key, value, [_hex_problem(what, value, widths, "B3", nonzero=True)]
            )
    sampled = _single_text(headers, "x-b3-sampled", findings.defects)
    if sampled is not None and sampled[1] not in ("0", "1", "true", "false"):
        key, value = sampled
        findings.defects.append(_Defect(f"{key} {_show(value)}: expected '1' or '0'"))
    return findings


# --- whose context -------------------------------------------------------------------------------


def _describe(ref: Ref | None) -> str:
    assert ref is not None
    if ref.span is None:
        return f"a span not captured in this test (span {ref.span_id:016x})"
    return f"{ref.label} (span {ref.span_id:016x})"


def _trace_relation(held: SpanContext, expected: Ref) -> str:
    if held.trace_id == expected.trace_id:
        return f"same trace {held.trace_id:032x}, another span"
    return (
        f"another trace: the carrier's trace is {held.trace_id:032x}, "
        f"{expected.label} is in trace {expected.trace_id:032x}"
    )


def _mismatch_hint(held: SpanContext, holder: Ref | None, expected: Ref, capture: CaptureState | None) -> str:
    if held.span_id == expected.span_id and held.trace_id == expected.trace_id & 0xFFFFFFFFFFFFFFFF:
        return (
            "the carrier's trace id is 64 bits (16 hex digits, old B3 style): it holds only the lower "
            "half of the span's 128-bit trace id. Inject 32-digit trace ids."
        )
    inject_here = f"inject while {expected.label} is current (inside its `with` block)"
    if holder is not None and holder.span is not None:
        if (
            expected.span is not None
            and capture is not None
            and capture.graph().has_ancestor(expected.span, holder.span_id)
        ):
            return (
                f"the carrier was filled while {holder.label} was current, before {expected.label} "
                f"started: {inject_here}."
            )
        return f"the carrier was filled from {holder.label}'s context: {inject_here}."
    return (
        "the carrier holds a context from elsewhere: a header list reused from an earlier message, or "
        f"a context passed to inject() explicitly. {inject_here[0].upper()}{inject_here[1:]}."
    )


def _captured_trace_refs(capture: CaptureState | None) -> list[Ref]:
    """One reference per captured trace, so a failure without spans to name still shows the capture."""
    if capture is None:
        return []
    firsts: dict[int, ReadableSpan] = {}
    for span in capture.all_spans():
        firsts.setdefault(span.context.trace_id, span)
    return [Ref(span.context, span, repr(span.name)) for span in firsts.values()]


# --- text ----------------------------------------------------------------------------------------


def _show(text: str, *, limit: int = _SHOWN_CHARS, count: bool = True) -> str:
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}…" + (f" ({len(text)} characters)" if count else "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _short_repr(value: object) -> str:
    text = _safe_repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


class _BoundedRepr(reprlib.Repr):
    """reprlib's repr of built-in containers, cut at three levels; what they hold, as ``_short_repr``."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = _SHOWN_CHARS

    def repr_instance(self, x: object, level: int) -> str:
        return _short_repr(x)


_BOUNDED_REPR = _BoundedRepr()


def _safe_repr(value: object) -> str:
    """``repr(value)``, or where that raises (a hostile ``__repr__``, nesting past the recursion
    limit) a repr cut at three levels for a built-in container, else the type: never the exception."""
    try:
        return str.__str__(repr(value))
    except Exception as exc:
        failure = exc
    if type(value) in (list, tuple, dict, set, frozenset):
        try:
            return str.__str__(_BOUNDED_REPR.repr(value))
        except Exception as exc:
            failure = exc
    return f"<{type(value).__name__} object: repr() raised {type(failure).__name__}>"
