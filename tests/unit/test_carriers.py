"""assert_carrier_has_context in process: carrier shapes, each propagator's defects, whose context it is."""

from __future__ import annotations

import email.message
import http.client
import io
import queue
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanContext, SpanKind, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import pytest_tracechain._carriers as carriers
from pytest_tracechain import TraceAssertionError, assert_carrier_has_context
from pytest_tracechain._state import CaptureState
from tests.unit.spans import span

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
VALID = f"00-{TRACE}-{SPAN}-01"
TRACE_ID = int(TRACE, 16)
SPAN_ID = int(SPAN, 16)

INJECT_HINT = (
    "hint: write the headers with opentelemetry.propagate.inject(carrier) (for a list of pairs, pass a"
    " setter that appends (name, value)) instead of by hand, and do not change them on the way."
)
NO_CONTEXT_HINT = (
    "hint: inject the context in the producer span with opentelemetry.propagate.inject(carrier) (for a"
    " list of pairs, pass a setter that appends (name, value)); the consumer extracts it from there."
)
ENCODING_HINT = "hint: header values travel as text: encode them with value.encode() (UTF-8)."
REPEAT_HINT = (
    "hint: the context was injected more than once into the same carrier (a retried send that injects"
    " again into the same header list?); replace the earlier value instead of adding another."
)
TRACESTATE_HINT = (
    "hint: OpenTelemetry drops a malformed tracestate silently, so the vendor entries in it are lost;"
    " build it with opentelemetry.trace.TraceState instead of by hand."
)
PROPAGATOR_HINT = (
    "hint: a propagator must not raise on what it cannot read; it should return the context it was given."
)
MALFORMED = "the carrier holds a malformed trace context:"
NO_CONTEXT = "the carrier holds no trace context:"
NO_TRACEPARENT = "  W3C trace context: no 'traceparent' header"
NO_B3 = "  B3: no 'b3' header and no 'X-B3-TraceId'/'X-B3-SpanId' headers"
TYPE_ERROR = (
    "assert_carrier_has_context() argument 'carrier' must be a mapping of header names to str or bytes,"
    " a sequence of (name, value) pairs, or an object with get(); got "
)

SetTextmap = Callable[[TextMapPropagator], None]


@pytest.fixture(autouse=True)
def textmap(monkeypatch: pytest.MonkeyPatch) -> Iterator[SetTextmap]:
    """OpenTelemetry's default propagator (W3C trace context and baggage), restored afterwards; no capture."""
    monkeypatch.setattr(carriers, "running_state", lambda: None)
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    yield propagate.set_global_textmap
    propagate.set_global_textmap(previous)


@pytest.fixture
def b3() -> ModuleType:
    module: ModuleType = pytest.importorskip("opentelemetry.propagators.b3")
    return module


def failure(carrier: object, expected: object = None) -> str:
    with pytest.raises(TraceAssertionError) as raised:
        assert_carrier_has_context(carrier, expected)  # type: ignore[arg-type]
    return str(raised.value)


def head(carrier: object, expected: object = None) -> list[str]:
    """The lines of the failure before the rendered traces: headline, details, hint."""
    lines = failure(carrier, expected).split("\n")
    end = lines.index("traces involved:")
    assert lines[end - 1] == ""
    return lines[: end - 1]


def details(carrier: object, expected: object = None) -> list[str]:
    """The headline and the detail lines of the failure."""
    lines = head(carrier, expected)
    return lines[: lines.index("")] if "" in lines else lines


def type_error(carrier: object) -> str:
    with pytest.raises(TypeError) as raised:
        assert_carrier_has_context(carrier)
    return str(raised.value)


class GetOnly:
    """A carrier that can be asked for a header but cannot list them."""

    def __init__(self, headers: dict[str, object]) -> None:
        self.headers = headers
        self.asked: list[str] = []

    def get(self, name: str, default: object = None) -> object:
        self.asked.append(name)
        return self.headers.get(name, default)


class Listed(GetOnly):
    """get() and keys(), as a header object that knows its names."""

    def __init__(self, headers: dict[str, object], keys: list[object]) -> None:
        super().__init__(headers)
        self._keys = keys

    def keys(self) -> list[object]:
        return self._keys


class Multi(Listed):
    """get_all() as email.message.Message has it: every value of a name, or None."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__({}, list(dict.fromkeys(name for name, _ in pairs)))
        self.pairs = pairs

    def get(self, name: str, default: object = None) -> object:
        raise AssertionError("get_all() must be used when the carrier has it")

    def get_all(self, name: str) -> list[str] | None:
        self.asked.append(name)
        found = [value for key, value in self.pairs if key.lower() == name.lower()]
        return found or None


class Recording(TextMapPropagator):
    """A propagator that records what the getter hands it, and extracts nothing."""

    def __init__(self, fields: set[str]) -> None:
        self._fields = fields
        self.got: dict[str, object] = {}
        self.keys: list[str] | None = None

    def extract(self, carrier, context=None, getter=None):
        assert getter is not None
        self.keys = getter.keys(carrier)
        self.got = {name: getter.get(carrier, name) for name in sorted(self._fields)}
        return context

    def inject(self, carrier, context=None, setter=None):
        pass

    @property
    def fields(self) -> set[str]:
        return self._fields


class Raising(Recording):
    def extract(self, carrier, context=None, getter=None):
        raise ValueError("no context for you")


class Unlisted(CompositePropagator):
    """A composite propagator whose members cannot be seen."""

    def __init__(self) -> None:
        super().__init__([TraceContextTextMapPropagator()])
        self._propagators = None  # type: ignore[assignment]

    def extract(self, carrier, context=None, getter=None):
        return context

    @property
    def fields(self) -> set[str]:
        return {"tracestate", "traceparent"}


class Hidden(Unlisted):
    """A composite propagator that keeps its members under another name."""

    def __init__(self) -> None:  # no super().__init__(): no _propagators at all
        self._members = [TraceContextTextMapPropagator()]


class B3MultiFormat(Recording):
    """Named like OpenTelemetry's B3 propagator, but not it."""


class B3Lookalike(Recording):
    """In OpenTelemetry's B3 package, but not its B3 propagator."""

    __module__ = "opentelemetry.propagators.b3.lookalike"


# --- carrier shapes ------------------------------------------------------------------------------


def http_message(name: str, value: str) -> http.client.HTTPMessage:
    return http.client.parse_headers(io.BytesIO(f"{name}: {value}\r\n\r\n".encode()))


def email_message(*pairs: tuple[str, str]) -> email.message.Message:
    message = email.message.Message()
    for name, value in pairs:
        message[name] = value
    return message


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": VALID},
        {"TraceParent": VALID},
        {"traceparent": VALID.encode(), "x-retry": 3},
        {"traceparent": bytearray(VALID.encode())},
        {"traceparent": memoryview(VALID.encode())},
        {b"traceparent": VALID},
        {b"traceparent": VALID.encode(), 5: "ignored"},
        {"traceparent": [VALID]},
        {"traceparent": (VALID,)},
        [("traceparent", VALID.encode())],
        [("content-type", "text/plain"), ("TRACEPARENT", VALID)],
        [(b"traceparent", VALID.encode())],
        [["traceparent", VALID]],
        (("traceparent", VALID),),
        email_message(("TraceParent", VALID)),
        http_message("TRACEPARENT", VALID),
        GetOnly({"traceparent": VALID}),
        GetOnly({"traceparent": [VALID]}),
        Listed({"traceparent": VALID}, ["traceparent", "TraceParent", b"traceparent", 7]),
        Listed({"traceparent": VALID}, [b"traceparent"]),
        Multi([("TraceParent", VALID), ("tracestate", "a=1"), ("tracestate", "b=2")]),
    ],
    ids=[
        "dict",
        "name_in_any_case",
        "bytes_value",
        "bytearray_value",
        "memoryview_value",
        "bytes_key",
        "bytes_key_and_value",
        "list_of_values",
        "tuple_of_values",
        "pairs",
        "pairs_of_str",
        "pairs_of_bytes",
        "pair_as_list",
        "tuple_of_pairs",
        "email_message",
        "http_message",
        "get_only",
        "get_only_list",
        "keys_in_any_case_asked_once",
        "bytes_keys",
        "get_all",
    ],
)
def test_every_carrier_shape_passes(carrier: object) -> None:
    assert_carrier_has_context(carrier)
    assert_carrier_has_context(carrier, SpanContext(TRACE_ID, SPAN_ID, is_remote=False))
    assert_carrier_has_context(carrier, span("send", SPAN_ID, trace_id=TRACE_ID))


def test_a_carrier_with_keys_is_read_by_its_own_names() -> None:
    carrier = Listed({"traceparent": VALID, "TraceParent": VALID}, ["TraceParent", "traceparent"])
    assert_carrier_has_context(carrier)
    assert carrier.asked == ["TraceParent"]


def test_a_carrier_with_keys_skips_names_that_are_not_text_or_seen() -> None:
    carrier = Listed(
        {"traceparent": VALID, "tracestate": "Bad"}, [3, "traceparent", "TRACEPARENT", "tracestate"]
    )
    assert details(carrier)[1] == "  tracestate 'Bad': member 'Bad' is not key=value; OpenTelemetry drops it"
    assert carrier.asked == ["traceparent", "tracestate"]


def test_names_that_are_not_utf_8() -> None:
    assert details({b"\xffx": "1", "y": "2"})[-1] == "  carrier headers: '\ufffdx', 'y'"
    assert details([(b"a\xfe", "1")])[-1] == "  carrier headers: 'a\ufffd'"
    assert details(Listed({"a\ufffd": "1"}, [b"a\xfe"]))[-1] == "  carrier headers: 'a\ufffd'"


def test_a_carrier_with_get_all_is_read_with_it() -> None:
    carrier = Multi([("traceparent", VALID), ("traceparent", VALID)])
    assert details(carrier) == [
        MALFORMED,
        f"  traceparent is repeated: 2 values ('{VALID}', '{VALID}'); a repeated traceparent is invalid,"
        " and OpenTelemetry reads only the first",
    ]
    assert carrier.asked == ["traceparent"]
    assert details(email_message(("traceparent", VALID), ("Traceparent", VALID)))[1].startswith(
        "  traceparent is repeated: 2 values"
    )


def test_a_get_only_carrier_is_asked_for_the_propagators_headers(textmap: SetTextmap) -> None:
    carrier = GetOnly({"traceparent": VALID})
    assert_carrier_has_context(carrier)
    assert carrier.asked == ["traceparent", "tracestate", "baggage"]
    recording = Recording({"x-b", "x-a"})
    textmap(CompositePropagator([recording, W3CBaggagePropagator()]))
    carrier = GetOnly({})
    failure(carrier)
    assert carrier.asked == ["x-a", "x-b", "baggage"]


def test_a_get_only_carrier_is_asked_in_the_usual_spelling_when_lower_case_is_absent(
    textmap: SetTextmap, b3: ModuleType
) -> None:
    textmap(b3.B3MultiFormat())
    carrier = GetOnly({"X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN, "x-b3-sampled": "1"})
    assert_carrier_has_context(carrier, SpanContext(TRACE_ID, SPAN_ID, is_remote=False))
    assert carrier.asked == [
        "b3",
        "x-b3-traceid",
        "X-B3-TraceId",
        "x-b3-spanid",
        "X-B3-SpanId",
        "x-b3-sampled",
        "x-b3-flags",
    ]


def test_the_getter_hands_the_propagator_the_values_that_are_text(textmap: SetTextmap) -> None:
    recording = Recording({"x-a", "x-b", "x-c"})
    textmap(recording)
    failure([("X-A", b"\xff"), ("x-a", b"one"), ("x-a", "two"), ("x-c", b"\xfe")])
    assert recording.got == {"x-a": ["one", "two"], "x-b": None, "x-c": None}
    assert recording.keys == ["X-A", "x-a", "x-c"]
    failure(GetOnly({"x-a": "one"}))
    assert recording.got == {"x-a": ["one"], "x-b": None, "x-c": None}
    assert recording.keys == []


@pytest.mark.parametrize(
    ("carrier", "expected"),
    [
        (42, "int"),
        (None, "NoneType"),
        (object(), "object"),
        ("traceparent: 00-...", "str: text is not a carrier; pass the headers it came from"),
        (b"traceparent: 00-...", "bytes: text is not a carrier; pass the headers it came from"),
        (bytearray(b"x"), "bytearray: text is not a carrier; pass the headers it came from"),
        (memoryview(b"x"), "memoryview: text is not a carrier; pass the headers it came from"),
        ([("traceparent",)], "list: item 0 is ('traceparent',), not a (name, value) pair"),
        ([("a", "1"), "traceparent"], "list: item 1 is 'traceparent', not a (name, value) pair"),
        ([("a", "1", "2")], "list: item 0 is ('a', '1', '2'), not a (name, value) pair"),
        ([(3, VALID)], f"list: item 0 is (3, '{VALID}'), not a (name, value) pair"),
        ([("a", "x" * 100, "c")], "list: item 0 is ('a', '" + "x" * 73 + "…, not a (name, value) pair"),
        ([("a", "x" * 66, "c")], "list: item 0 is ('a', '" + "x" * 66 + "', 'c'), not a (name, value) pair"),
    ],
    ids=[
        "int",
        "none",
        "object",
        "str",
        "bytes",
        "bytearray",
        "memoryview",
        "short_pair",
        "not_a_pair",
        "long_pair",
        "int_name",
        "long_item",
        "item_of_80_characters",
    ],
)
def test_what_is_not_a_carrier(carrier: object, expected: str) -> None:
    assert type_error(carrier) == TYPE_ERROR + expected


def full_queue() -> queue.Queue[str]:
    """A queue of messages (with an empty one, get() would block: a test that reads it would hang)."""
    messages: queue.Queue[str] = queue.Queue()
    for _ in range(3):
        messages.put(VALID)
    return messages


def test_a_queue_is_not_read() -> None:
    messages = full_queue()
    assert type_error(messages) == TYPE_ERROR + "Queue: it looks like a queue; pass the message's headers"
    assert messages.qsize() == 3


def test_a_get_that_is_not_a_header_lookup() -> None:
    class Settings:  # configparser-like
        def get(self, section: str, option: str) -> None:
            return None

    class BadKeys(GetOnly):
        def keys(self) -> list[str]:
            raise KeyError("nope")

    with pytest.raises(TypeError) as raised:
        assert_carrier_has_context(Settings())
    assert str(raised.value) == (
        TYPE_ERROR
        + 'Settings: reading its headers raised TypeError("'
        + "test_a_get_that_is_not_a_header_lookup"
        ".<locals>.Settings.get() missing 1 required positional argument: 'option'\")"
    )
    assert isinstance(raised.value.__cause__, TypeError)
    assert type_error(BadKeys({})) == TYPE_ERROR + "BadKeys: reading its headers raised KeyError('nope')"


# --- hostile carriers: a clean error, never the carrier's exception -------------------------------


class HostileRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class Unprintable(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("no repr for this one either")


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def test_a_value_nested_past_the_recursion_limit_is_shown_cut() -> None:
    # A RecursionError from repr() came out of the check before.
    assert details({"traceparent": nested(100_000)}) == [
        MALFORMED,
        "  traceparent [[[[...]]]] is of type list, not str or bytes",
    ]
    assert type_error(nested(100_000)) == TYPE_ERROR + "list: item 0 is [[[[...]]]], not a (name, value) pair"


def test_a_value_whose_repr_raises_is_shown_by_its_type() -> None:
    # The ValueError of its __repr__ came out of the check before.
    assert details({"traceparent": HostileRepr()}) == [
        MALFORMED,
        "  traceparent <HostileRepr object: repr() raised ValueError> is of type HostileRepr, not str or bytes",
    ]
    assert details({"traceparent": [HostileRepr()]}) == [
        MALFORMED,
        "  traceparent <HostileRepr object: repr() raised ValueError> is of type HostileRepr, not str or bytes",
    ]
    assert type_error([HostileRepr()]) == (
        TYPE_ERROR
        + "list: item 0 is <HostileRepr object: repr() raised ValueError>, not a (name, value) pair"
    )
    assert type_error([("a", "1"), ("b", "2", HostileRepr())]) == (
        TYPE_ERROR + "list: item 1 is ('b', '2', <HostileRepr object: repr() raised ValueError>), not a "
        "(name, value) pair"
    )


def test_names_and_values_of_str_and_bytes_subclasses_are_read_as_plain_text() -> None:
    class Name(str):
        def lower(self) -> str:
            raise ValueError("not here")

        def __eq__(self, other: object) -> bool:
            raise ValueError("nor here")

        __hash__ = str.__hash__

    class Value(str):
        def strip(self, chars: str | None = None) -> str:
            raise ValueError("not here")

        def split(self, sep: str | None = None, maxsplit: int = -1) -> list[str]:
            raise ValueError("nor here")

    class Raw(bytes):
        def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
            raise ValueError("not here")

    assert_carrier_has_context({Name("traceparent"): Value(VALID)})
    assert_carrier_has_context([(Name("traceparent"), Raw(VALID.encode()))])
    assert_carrier_has_context([(Raw(b"traceparent"), Value(VALID))])
    assert_carrier_has_context(Listed({"traceparent": Value(VALID)}, [Name("traceparent")]))


def test_what_the_carriers_own_code_raises_is_a_type_error_that_says_so() -> None:
    class Items(dict[str, str]):
        def items(self):  # type: ignore[no-untyped-def,override]
            raise ValueError("items are gone")

    class Short(tuple[str, str]):
        def __len__(self) -> int:
            raise ValueError("no length")

    class Unlisted(GetOnly):
        def get(self, name: str, default: object = None) -> object:
            raise Unprintable()

    released = memoryview(VALID.encode())
    released.release()
    # Each came out as its own exception (ValueError, RuntimeError) before.
    assert type_error(Items(traceparent=VALID)) == (
        TYPE_ERROR + "Items: reading its headers raised ValueError('items are gone')"
    )
    assert type_error([Short(("traceparent", VALID))]) == (
        TYPE_ERROR + "list: reading its headers raised ValueError('no length')"
    )
    assert type_error(Unlisted({})) == (
        TYPE_ERROR + "Unlisted: reading its headers raised <Unprintable object: repr() raised RuntimeError>"
    )
    assert type_error({"traceparent": released}) == (
        TYPE_ERROR
        + "dict: reading its headers raised ValueError('operation forbidden on released memoryview "
        "object')"
    )


def test_a_propagator_raising_an_exception_without_a_repr(textmap: SetTextmap) -> None:
    class RaisingUnprintable(Recording):
        def extract(self, carrier, context=None, getter=None):
            raise Unprintable()

    textmap(RaisingUnprintable({"x-context"}))
    assert details({"x-context": "abc"}) == [
        "the propagator could not read the carrier:",
        "  the global propagator RaisingUnprintable raised <Unprintable object: repr() raised RuntimeError> "
        "reading the carrier",
    ]


def test_what_is_not_a_span() -> None:
    with pytest.raises(TypeError) as raised:
        assert_carrier_has_context({"traceparent": VALID}, 42)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "assert_carrier_has_context() argument 'span' must be a span (ReadableSpan), a SpanContext or a"
        " span name, not int"
    )
    with pytest.raises(
        RuntimeError, match=r"^assert_carrier_has_context\(\) got the span name 'send' for 'span', "
    ):
        assert_carrier_has_context({"traceparent": VALID}, "send")


def package_frames(raised: pytest.ExceptionInfo[BaseException]) -> list[str]:
    """The frames of the package a failure's traceback shows (pytest hides those with __tracebackhide__)."""
    shown = raised.traceback.filter(raised)
    assert shown[0].frame.code.name.startswith("test_")
    return [entry.frame.code.name for entry in shown if Path(entry.path).parent.name == "pytest_tracechain"]


def test_failures_end_at_the_callers_line() -> None:
    shapes: tuple[object, ...] = ({}, {"traceparent": "x"}, 42, [("a",)], "x", full_queue(), GetOnly({}))
    for carrier in shapes:
        with pytest.raises((TraceAssertionError, TypeError)) as raised:
            assert_carrier_has_context(carrier)
        assert package_frames(raised) == []
    for expected in (span("publish", 7, trace_id=TRACE_ID), SpanContext(TRACE_ID, 7, False)):
        with pytest.raises(TraceAssertionError) as raised:
            assert_carrier_has_context({"traceparent": VALID}, expected)
        assert package_frames(raised) == []


def test_the_listing_of_the_carrier() -> None:
    assert head({"content-type": "application/json", "X-Request-Id": "42"}) == [
        NO_CONTEXT,
        NO_TRACEPARENT,
        "  carrier headers: 'content-type', 'X-Request-Id'",
        "",
        NO_CONTEXT_HINT,
    ]
    assert details([("a", "1"), ("a", "2"), ("b", "3")])[-1] == "  carrier headers: 'a', 'b'"
    assert details({}) == [NO_CONTEXT, NO_TRACEPARENT, "  the carrier is empty"]
    assert details({5: VALID}) == [NO_CONTEXT, NO_TRACEPARENT, "  the carrier is empty"]
    assert details(GetOnly({})) == [
        NO_CONTEXT,
        NO_TRACEPARENT,
        "  carrier headers: cannot be listed (the carrier has get() but no keys())",
    ]
    twenty = {f"h{i}": "v" for i in range(20)}
    assert details(twenty)[-1] == "  carrier headers: " + ", ".join(f"'h{i}'" for i in range(20))
    assert details({**twenty, "h20": "v", "h21": "v"})[-1] == (
        "  carrier headers: " + ", ".join(f"'h{i}'" for i in range(20)) + " and 2 more"
    )


# --- W3C trace context ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        VALID,
        f"00-{TRACE}-{SPAN}-00",
        f"00-{TRACE}-{SPAN}-ff",
        f"01-{TRACE}-{SPAN}-01",
        f"01-{TRACE}-{SPAN}-01-anything-else",
        f"fe-{TRACE}-{SPAN}-01-",
        f" \t{VALID} ",
    ],
)
def test_valid_traceparents_pass(value: str) -> None:
    assert_carrier_has_context({"traceparent": value}, SpanContext(TRACE_ID, SPAN_ID, is_remote=True))


W3C_DEFECTS = [
    ("", "the value is empty"),
    (" \t ", "the value is empty"),
    (f"00-{TRACE}-{SPAN}", "3 fields separated by '-', expected 4: version-traceid-spanid-flags"),
    ("garbage", "1 field separated by '-', expected 4: version-traceid-spanid-flags"),
    (f"0-{TRACE}-{SPAN}-01", "version '0' has 1 character, expected 2 hex digits"),
    (f"000-{TRACE}-{SPAN}-01", "version '000' has 3 characters, expected 2 hex digits"),
    (f"0g-{TRACE}-{SPAN}-01", "version '0g' is not hex ('g' at position 1)"),
    (f"g0-{TRACE}-{SPAN}-01", "version 'g0' is not hex ('g' at position 0)"),
    (f"0A-{TRACE}-{SPAN}-01", "version '0A' has upper-case hex digits; W3C requires lower case"),
    (f"ff-{TRACE}-{SPAN}-01", "version ff is forbidden"),
    (f"{VALID}-extra", "5 fields; version 00 has exactly 4: version-traceid-spanid-flags"),
    (f"{VALID}-", "5 fields; version 00 has exactly 4: version-traceid-spanid-flags"),
    (f"00-{TRACE[1:]}-{SPAN}-01", f"trace id '{TRACE[1:]}' has 31 characters, expected 32 hex digits"),
    (f"00-{TRACE}0-{SPAN}-01", f"trace id '{TRACE}0' has 33 characters, expected 32 hex digits"),
    (f"00-{'0' * 32}-{SPAN}-01", "trace id is all zeros, which W3C forbids"),
    (
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"trace id '{TRACE.upper()}' has upper-case hex digits; W3C requires lower case",
    ),
    (f"00-{TRACE}-{SPAN[:-1]}z-01", f"span id '{SPAN[:-1]}z' is not hex ('z' at position 15)"),
    (f"00-{TRACE}-{SPAN[:-1]}-01", f"span id '{SPAN[:-1]}' has 15 characters, expected 16 hex digits"),
    (f"00-{TRACE}-{'0' * 16}-01", "span id is all zeros, which W3C forbids"),
    (f"00-{TRACE}-{SPAN}-001", "flags '001' has 3 characters, expected 2 hex digits"),
    (f"00-{TRACE}-{SPAN}-0x", "flags '0x' is not hex ('x' at position 1)"),
    (f"00-{TRACE}-{SPAN}-0A", "flags '0A' has upper-case hex digits; W3C requires lower case"),
    (f"00-{TRACE}-{SPAN}-0X", "flags '0X' is not hex ('X' at position 1)"),
    (f"{VALID}\n", "flags '01\\n' has 3 characters, expected 2 hex digits"),
    (f"\u00a0{VALID}", "version '\\xa000' has 3 characters, expected 2 hex digits"),
]


@pytest.mark.parametrize(("value", "defect"), W3C_DEFECTS)
def test_each_traceparent_defect(value: str, defect: str) -> None:
    assert head({"traceparent": value}) == [MALFORMED, f"  traceparent {value!r}: {defect}", "", INJECT_HINT]


def test_several_defects_get_a_line_each() -> None:
    value = f"00-{TRACE.upper()}-{'0' * 16}-1"
    assert head({"Traceparent": value}) == [
        MALFORMED,
        f"  Traceparent {value!r}:",
        f"    trace id '{TRACE.upper()}' has upper-case hex digits; W3C requires lower case",
        "    span id is all zeros, which W3C forbids",
        "    flags '1' has 1 character, expected 2 hex digits",
        "",
        INJECT_HINT,
    ]
    value = f"FF-{TRACE}-{SPAN}-01"
    assert details({"traceparent": value}) == [
        MALFORMED,
        f"  traceparent {value!r}:",
        "    version 'FF' has upper-case hex digits; W3C requires lower case",
        "    version ff is forbidden",
    ]


def test_long_values_are_cut() -> None:
    value = f"00-{'a' * 100}-{SPAN}-01"
    assert details({"traceparent": value})[1] == (
        f"  traceparent '00-{'a' * 77}'… (123 characters): trace id '{'a' * 40}'… has 100 characters,"
        " expected 32 hex digits"
    )
    value = f"00-{TRACE}-{'g' * 80}-01"
    assert details({"traceparent": value})[1] == (
        f"  traceparent '00-{TRACE}-{'g' * 44}'… (119 characters): span id '{'g' * 40}'… has 80"
        " characters, expected 16 hex digits"
    )
    value = f"00-{TRACE}-{SPAN}-{'0' * 39}x"
    assert details({"traceparent": value})[1].endswith(
        f"flags '{'0' * 39}x' has 40 characters, expected 2 hex digits"
    )


def test_undecodable_and_foreign_values() -> None:
    assert head([("traceparent", b"00-\xff")]) == [
        MALFORMED,
        "  traceparent b'00-\\xff' is not UTF-8 (byte 0xff at position 3)",
        "",
        ENCODING_HINT,
    ]
    assert details([("traceparent", bytearray(b"\xc3"))]) == [
        MALFORMED,
        "  traceparent bytearray(b'\\xc3') is not UTF-8 (byte 0xc3 at position 0)",
    ]
    assert details({"traceparent": 42}) == [MALFORMED, "  traceparent 42 is of type int, not str or bytes"]
    assert details({"traceparent": b"\xff" * 100}) == [
        MALFORMED,
        "  traceparent " + repr(b"\xff" * 100)[:80] + "… is not UTF-8 (byte 0xff at position 0)",
    ]
    assert details([("traceparent", VALID), ("traceparent", b"\xff")]) == [
        MALFORMED,
        "  traceparent b'\\xff' is not UTF-8 (byte 0xff at position 0)",
    ]


def test_repeated_traceparents() -> None:
    other = f"{VALID[:-1]}0"
    assert head([("traceparent", VALID.encode()), ("Traceparent", other.encode())]) == [
        MALFORMED,
        f"  traceparent is repeated: 2 values ('{VALID}', '{other}'); a repeated traceparent is invalid,"
        " and OpenTelemetry reads only the first",
        "",
        REPEAT_HINT,
    ]
    assert details({"traceparent": ["a", "b", "c", "d"]})[1] == (
        "  traceparent is repeated: 4 values ('a', 'b', 'c'); a repeated traceparent is invalid, and"
        " OpenTelemetry reads only the first"
    )


# --- tracestate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tracestate",
    [
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        "congo=t61rcWkgMzE",
        pytest.param(
            " congo=t61rcWkgMzE , rojo=1 ",
            marks=pytest.mark.skipif(
                not TraceState.from_header([" congo=t61rcWkgMzE , rojo=1 "]),
                reason="this OpenTelemetry drops a tracestate with spaces around its members",
            ),
        ),
        "tenant@vendor=1",
        "a=1,,b=2",
        ",".join(f"k{i}=v" for i in range(32)),
        ["a=1", "b=2"],
        "",
        " , ",
    ],
)
def test_a_tracestate_opentelemetry_keeps_passes(tracestate: object) -> None:
    assert_carrier_has_context({"traceparent": VALID, "tracestate": tracestate})
    assert_carrier_has_context(
        {"traceparent": VALID, "tracestate": tracestate}, SpanContext(TRACE_ID, SPAN_ID, is_remote=True)
    )


TRACESTATE_DEFECTS = [
    (
        "congo=t61rcWkgMzE,Rojo=00f067aa0ba902b7",
        "key 'Rojo' is not a tracestate key (lower-case letters, digits, '_-*/', at most 256 characters,"
        " one optional '@')",
    ),
    ("congo", "member 'congo' is not key=value"),
    ("a=1, b", "member 'b' is not key=value"),
    ("a=1,b=x,X", "member 'X' is not key=value"),
    ("a=1,\n", "member '\\n' is not key=value"),
    (
        "X-Vendor=1",
        "key 'X-Vendor' is not a tracestate key (lower-case letters, digits, '_-*/', at most 256 characters,"
        " one optional '@')",
    ),
    (
        "a=1\n",
        "the value of 'a', '1\\n', is not 1 to 256 printable ASCII characters without ',' or '=' (and no"
        " trailing space)",
    ),
    (
        "a=b=c",
        "the value of 'a', 'b=c', is not 1 to 256 printable ASCII characters without ',' or '=' (and no"
        " trailing space)",
    ),
    (
        "a=",
        "the value of 'a', '', is not 1 to 256 printable ASCII characters without ',' or '=' (and no"
        " trailing space)",
    ),
    ("a=1,a=2", "key 'a' appears twice"),
    (",".join(f"k{i}=v" for i in range(33)), "33 members, at most 32 are allowed"),
]


@pytest.mark.parametrize(("tracestate", "problem"), TRACESTATE_DEFECTS)
def test_a_tracestate_opentelemetry_drops_fails(tracestate: str, problem: str) -> None:
    shown = (
        repr(tracestate) if len(tracestate) <= 80 else f"{tracestate[:80]!r}… ({len(tracestate)} characters)"
    )
    assert head({"traceparent": VALID, "TraceState": tracestate}) == [
        MALFORMED,
        f"  TraceState {shown}: {problem}; OpenTelemetry drops it",
        "",
        TRACESTATE_HINT,
    ]


def test_repeated_tracestates_are_one_list() -> None:
    assert details([("traceparent", VALID), ("tracestate", "a=1"), ("tracestate", "a=2")]) == [
        MALFORMED,
        "  tracestate 'a=1,a=2': key 'a' appears twice; OpenTelemetry drops it",
    ]


def test_a_tracestate_too_long_for_opentelemetry() -> None:
    tracestate = ",".join(f"k{index:02}={'x' * 256}" for index in range(32))
    carrier = {"traceparent": VALID, "tracestate": tracestate}
    kept = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier)).get_span_context()
    if kept.trace_state:
        pytest.skip("this OpenTelemetry keeps a tracestate of more than 8192 characters")
    assert details(carrier) == [
        MALFORMED,
        f"  tracestate {tracestate[:80]!r}… (8351 characters): OpenTelemetry could not parse it;"
        " OpenTelemetry drops it",
    ]


def test_an_undecodable_tracestate() -> None:
    assert head([("traceparent", VALID), ("tracestate", "a=1"), ("Tracestate", b"b=\xff")]) == [
        MALFORMED,
        "  tracestate b'b=\\xff' is not UTF-8 (byte 0xff at position 2)",
        "",
        ENCODING_HINT,
    ]
    assert details({"traceparent": VALID, "tracestate": 7}) == [
        MALFORMED,
        "  tracestate 7 is of type int, not str or bytes",
    ]


def test_the_tracestate_is_not_judged_beside_a_malformed_traceparent() -> None:
    value = f"00-{TRACE}-{SPAN}-1"
    assert details({"traceparent": value, "tracestate": "Bad"}) == [
        MALFORMED,
        f"  traceparent {value!r}: flags '1' has 1 character, expected 2 hex digits",
    ]
    assert details([("traceparent", VALID), ("traceparent", VALID), ("tracestate", "Bad")])[1].startswith(
        "  traceparent is repeated"
    )


# --- B3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("single", [False, True])
def test_b3_passes(textmap: SetTextmap, b3: ModuleType, single: bool) -> None:
    textmap(b3.B3SingleFormat() if single else b3.B3MultiFormat())
    expected = SpanContext(TRACE_ID, SPAN_ID, is_remote=True)
    for carrier in (
        {"b3": f"{TRACE}-{SPAN}"},
        {"B3": f"{TRACE}-{SPAN}-1"},
        {"b3": f"{TRACE}-{SPAN}-d-{SPAN}"},
        {"b3": f"{TRACE}-{SPAN}-0-{SPAN}"},
        {"X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN},
        {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "0"},
        {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "1"},
        {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "true"},
        {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "false", "x-b3-flags": "1"},
    ):
        assert_carrier_has_context(carrier, expected)
    short = SpanContext(int(TRACE[16:], 16), SPAN_ID, is_remote=True)
    assert_carrier_has_context({"b3": f"{TRACE[16:]}-{SPAN}"}, short)
    assert_carrier_has_context({"x-b3-traceid": TRACE[16:], "x-b3-spanid": SPAN}, short)


B3_SINGLE_DEFECTS = [
    (
        f"{TRACE}-{SPAN}-x",
        "sampling state 'x' is not '0', '1' or 'd'",
    ),
    (
        f"{TRACE[:20]}-{SPAN}",
        f"trace id '{TRACE[:20]}' has 20 characters, expected 16 or 32 hex digits",
    ),
    (
        f"{TRACE.upper()}-{SPAN}",
        f"trace id '{TRACE.upper()}' has upper-case hex digits; B3 requires lower case",
    ),
    (f"{'0' * 32}-{SPAN}", "trace id is all zeros, which B3 forbids"),
    (f"{TRACE}-{SPAN}0", f"span id '{SPAN}0' has 17 characters, expected 16 hex digits"),
    (f"{TRACE}-{'0' * 16}-1", "span id is all zeros, which B3 forbids"),
    (
        "a-b-c-d-e",
        "5 fields separated by '-', expected 2 to 4: traceid-spanid[-sampled[-parentspanid]]",
    ),
    (f"{TRACE}-{SPAN}-1-{'0' * 16}", "parent span id is all zeros, which B3 forbids"),
    (f"{TRACE}-{SPAN}-1-{SPAN[:4]}", f"parent span id '{SPAN[:4]}' has 4 characters, expected 16 hex digits"),
    ("garbage", "expected traceid-spanid[-sampled[-parentspanid]]"),
    ("", "expected traceid-spanid[-sampled[-parentspanid]]"),
]


@pytest.mark.parametrize(("value", "defect"), B3_SINGLE_DEFECTS)
def test_each_b3_single_defect(textmap: SetTextmap, b3: ModuleType, value: str, defect: str) -> None:
    textmap(b3.B3SingleFormat())
    assert head({"b3": value}) == [MALFORMED, f"  b3 {value!r}: {defect}", "", INJECT_HINT]


def test_b3_single_defects_together(textmap: SetTextmap, b3: ModuleType) -> None:
    textmap(b3.B3MultiFormat())
    value = f"{TRACE[:20]}-{'0' * 16}-y-{SPAN.upper()}"
    assert details({"b3": value}) == [
        MALFORMED,
        f"  b3 {value!r}:",
        f"    trace id '{TRACE[:20]}' has 20 characters, expected 16 or 32 hex digits",
        "    span id is all zeros, which B3 forbids",
        "    sampling state 'y' is not '0', '1' or 'd'",
        f"    parent span id '{SPAN.upper()}' has upper-case hex digits; B3 requires lower case",
    ]


@pytest.mark.parametrize("decision", ["0", "1", "d"])
def test_a_b3_sampling_decision_carries_no_context(
    textmap: SetTextmap, b3: ModuleType, decision: str
) -> None:
    textmap(b3.B3MultiFormat())
    assert head({"B3": decision}) == [
        NO_CONTEXT,
        f"  B3: B3 {decision!r} is a sampling decision only; it carries no trace context",
        f"  B3: {decision!r}",
        "  carrier headers: 'B3'",
        "",
        NO_CONTEXT_HINT,
    ]


def test_the_single_b3_header_is_read_before_the_multi_headers(textmap: SetTextmap, b3: ModuleType) -> None:
    textmap(b3.B3MultiFormat())
    carrier = {"b3": "garbage", "X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN}
    assert details(carrier) == [MALFORMED, "  b3 'garbage': expected traceid-spanid[-sampled[-parentspanid]]"]
    assert details([("b3", f"{TRACE}-{SPAN}"), ("b3", "1"), ("X-B3-TraceId", TRACE)]) == [
        MALFORMED,
        f"  b3 is repeated: 2 values ('{TRACE}-{SPAN}', '1'); a repeated b3 is invalid, and OpenTelemetry"
        " reads only the first",
    ]
    assert details([("b3", b"\xff"), ("X-B3-TraceId", TRACE), ("X-B3-SpanId", SPAN)]) == [
        MALFORMED,
        "  b3 b'\\xff' is not UTF-8 (byte 0xff at position 0)",
    ]


B3_MULTI_DEFECTS = [
    (
        {"X-B3-TraceId": TRACE},
        ["  X-B3-SpanId is missing (X-B3-TraceId is present); B3 needs both"],
    ),
    (
        {"x-b3-spanid": SPAN},
        ["  X-B3-TraceId is missing (x-b3-spanid is present); B3 needs both"],
    ),
    (
        {"x-b3-spanid": "0" * 16},
        [
            "  X-B3-TraceId is missing (x-b3-spanid is present); B3 needs both",
            f"  x-b3-spanid '{'0' * 16}': span id is all zeros, which B3 forbids",
        ],
    ),
    (
        {"X-B3-TraceId": TRACE.upper(), "X-B3-SpanId": SPAN},
        [
            f"  X-B3-TraceId '{TRACE.upper()}': trace id '{TRACE.upper()}' has upper-case hex digits; B3 requires lower case"
        ],
    ),
    (
        {"X-B3-TraceId": TRACE[:20], "X-B3-SpanId": SPAN},
        [
            f"  X-B3-TraceId '{TRACE[:20]}': trace id '{TRACE[:20]}' has 20 characters, expected 16 or 32 hex digits"
        ],
    ),
    (
        {"X-B3-TraceId": "0" * 16, "X-B3-SpanId": SPAN},
        [f"  X-B3-TraceId '{'0' * 16}': trace id is all zeros, which B3 forbids"],
    ),
    (
        {"X-B3-TraceId": TRACE, "X-B3-SpanId": TRACE},
        [f"  X-B3-SpanId '{TRACE}': span id '{TRACE}' has 32 characters, expected 16 hex digits"],
    ),
    (
        {"X-B3-TraceId": TRACE, "X-B3-SpanId": "0" * 16},
        [f"  X-B3-SpanId '{'0' * 16}': span id is all zeros, which B3 forbids"],
    ),
    (
        {"X-B3-TraceId": f"{TRACE[:-1]}?", "X-B3-SpanId": SPAN[:8]},
        [
            f"  X-B3-TraceId '{TRACE[:-1]}?': trace id '{TRACE[:-1]}?' is not hex ('?' at position 31)",
            f"  X-B3-SpanId '{SPAN[:8]}': span id '{SPAN[:8]}' has 8 characters, expected 16 hex digits",
        ],
    ),
    (
        {"X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN, "X-B3-Sampled": "yes"},
        ["  X-B3-Sampled 'yes': expected '1' or '0'"],
    ),
    (
        {"X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN, "X-B3-Sampled": "d"},
        ["  X-B3-Sampled 'd': expected '1' or '0'"],
    ),
    (
        [("X-B3-TraceId", TRACE), ("X-B3-SpanId", SPAN), ("x-b3-spanid", SPAN)],
        [
            f"  X-B3-SpanId is repeated: 2 values ('{SPAN}', '{SPAN}'); a repeated x-b3-spanid is invalid,"
            " and OpenTelemetry reads only the first"
        ],
    ),
    (
        [("X-B3-TraceId", b"\xff"), ("X-B3-SpanId", SPAN), ("x-b3-sampled", b"\xfe")],
        [
            "  X-B3-TraceId b'\\xff' is not UTF-8 (byte 0xff at position 0)",
            "  x-b3-sampled b'\\xfe' is not UTF-8 (byte 0xfe at position 0)",
        ],
    ),
]


@pytest.mark.parametrize(("carrier", "lines"), B3_MULTI_DEFECTS)
def test_each_b3_multi_defect(textmap: SetTextmap, b3: ModuleType, carrier: object, lines: list[str]) -> None:
    textmap(b3.B3MultiFormat())
    assert details(carrier) == [MALFORMED, *lines]


def test_a_repeated_b3_sampled_header(textmap: SetTextmap, b3: ModuleType) -> None:
    textmap(b3.B3MultiFormat())
    assert details({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": ["1", "0"]}) == [
        MALFORMED,
        "  x-b3-sampled is repeated: 2 values ('1', '0'); a repeated x-b3-sampled is invalid, and"
        " OpenTelemetry reads only the first",
    ]


def test_b3_is_recognised_by_its_package_and_name(textmap: SetTextmap) -> None:
    textmap(B3MultiFormat({"b3"}))
    assert details({}) == [
        NO_CONTEXT,
        "  B3MultiFormat extracted no valid span context (it reads: 'b3')",
        "  the carrier is empty",
    ]
    textmap(B3Lookalike({"b3"}))
    assert details({}) == [
        NO_CONTEXT,
        "  B3Lookalike extracted no valid span context (it reads: 'b3')",
        "  the carrier is empty",
    ]


def test_b3_without_headers(textmap: SetTextmap, b3: ModuleType) -> None:
    textmap(b3.B3MultiFormat())
    assert head({"content-type": "text/plain", "x-b3-sampled": "1", "X-B3-Flags": "1"}) == [
        NO_CONTEXT,
        NO_B3,
        "  x-b3-sampled: '1'",
        "  X-B3-Flags: '1'",
        "  carrier headers: 'content-type', 'x-b3-sampled', 'X-B3-Flags'",
        "",
        NO_CONTEXT_HINT,
    ]


# --- composite and other propagators -------------------------------------------------------------


def test_a_composite_propagator_runs_every_members_diagnoser(textmap: SetTextmap, b3: ModuleType) -> None:
    textmap(CompositePropagator([TraceContextTextMapPropagator(), b3.B3MultiFormat()]))
    expected = SpanContext(TRACE_ID, SPAN_ID, is_remote=True)
    assert_carrier_has_context(
        {"traceparent": VALID, "x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "1"}, expected
    )
    assert_carrier_has_context({"traceparent": VALID}, expected)
    assert_carrier_has_context({"X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN}, expected)
    assert details({}) == [NO_CONTEXT, NO_TRACEPARENT, NO_B3, "  the carrier is empty"]
    assert details({"traceparent": VALID, "X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN[:8]}) == [
        MALFORMED,
        f"  X-B3-SpanId '{SPAN[:8]}': span id '{SPAN[:8]}' has 8 characters, expected 16 hex digits",
    ]
    assert details({"traceparent": "x", "X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN}) == [
        MALFORMED,
        "  traceparent 'x': 1 field separated by '-', expected 4: version-traceid-spanid-flags",
    ]
    assert details({"traceparent": "x", "b3": "y"}) == [
        MALFORMED,
        "  traceparent 'x': 1 field separated by '-', expected 4: version-traceid-spanid-flags",
        "  b3 'y': expected traceid-spanid[-sampled[-parentspanid]]",
    ]


def test_nested_composites_and_unknown_propagators(textmap: SetTextmap, b3: ModuleType) -> None:
    custom = Recording({"x-context"})
    textmap(
        CompositePropagator(
            [custom, CompositePropagator([TraceContextTextMapPropagator(), b3.B3SingleFormat()])]
        )
    )
    assert head({"x-context": "abc", "B3": "1", "tracestate": "a=1", "other": "z"}) == [
        NO_CONTEXT,
        NO_TRACEPARENT,
        "  B3: B3 '1' is a sampling decision only; it carries no trace context",
        "  Recording extracted no valid span context (it reads: 'x-context')",
        "  x-context: 'abc'",
        "  tracestate: 'a=1'",
        "  B3: '1'",
        "  carrier headers: 'x-context', 'B3', 'tracestate', 'other'",
        "",
        NO_CONTEXT_HINT,
    ]


def test_an_unknown_propagator_says_what_it_reads(textmap: SetTextmap) -> None:
    textmap(Recording({"x-context", "a-context"}))
    assert details({"x-context": "abc", "traceparent": VALID, "a-context": b"\xff"}) == [
        NO_CONTEXT,
        "  Recording extracted no valid span context (it reads: 'a-context', 'x-context')",
        "  a-context: b'\\xff'",
        "  x-context: 'abc'",
        "  carrier headers: 'x-context', 'traceparent', 'a-context'",
    ]
    textmap(Recording(set()))
    assert details({}) == [
        NO_CONTEXT,
        "  Recording extracted no valid span context (it reads: none)",
        "  the carrier is empty",
    ]
    for unseen in (Unlisted(), Hidden()):
        textmap(unseen)
        assert details({"traceparent": VALID.encode()}) == [
            NO_CONTEXT,
            f"  {type(unseen).__name__} extracted no valid span context (it reads: 'traceparent', 'tracestate')",
            f"  traceparent: '{VALID}'",
            "  carrier headers: 'traceparent'",
        ]


def test_the_current_span_is_not_the_carriers_context(textmap: SetTextmap) -> None:
    textmap(Recording({"x-context"}))  # returns the context it was given
    with trace.use_span(trace.NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False))):
        assert details({"traceparent": VALID}) == [
            NO_CONTEXT,
            "  Recording extracted no valid span context (it reads: 'x-context')",
            "  carrier headers: 'traceparent'",
        ]


def test_a_propagator_that_reads_no_trace_context(textmap: SetTextmap) -> None:
    textmap(CompositePropagator([W3CBaggagePropagator()]))
    assert details({"baggage": "a=1", "traceparent": VALID}) == [
        NO_CONTEXT,
        "  CompositePropagator extracted no valid span context from them",
        "  carrier headers: 'baggage', 'traceparent'",
    ]
    textmap(W3CBaggagePropagator())
    assert details({}) == [
        NO_CONTEXT,
        "  W3CBaggagePropagator extracted no valid span context from them",
        "  the carrier is empty",
    ]


def test_a_propagator_that_raises(textmap: SetTextmap) -> None:
    textmap(Raising({"x-context"}))
    assert head({"x-context": "abc"}) == [
        "the propagator could not read the carrier:",
        "  the global propagator Raising raised ValueError('no context for you') reading the carrier",
        "",
        PROPAGATOR_HINT,
    ]
    textmap(CompositePropagator([TraceContextTextMapPropagator(), Raising({"x-context"})]))
    assert head({"traceparent": "x"}) == [
        MALFORMED,
        "  traceparent 'x': 1 field separated by '-', expected 4: version-traceid-spanid-flags",
        "  the global propagator CompositePropagator raised ValueError('no context for you') reading the"
        " carrier",
        "",
        INJECT_HINT,
    ]


# --- whose context -------------------------------------------------------------------------------


def test_the_context_of_another_span() -> None:
    publish = span("publish", 7, trace_id=TRACE_ID, kind=SpanKind.PRODUCER)
    lines = failure({"traceparent": VALID, "content-type": "text/plain"}, publish).split("\n")
    assert lines == [
        f"the carrier holds the context of a span not captured in this test (span {SPAN}), not of 'publish'"
        " (span 0000000000000007)",
        f"  traceparent: '{VALID}'",
        f"  same trace {TRACE}, another span",
        "",
        "hint: the carrier holds a context from elsewhere: a header list reused from an earlier message, or"
        " a context passed to inject() explicitly. Inject while 'publish' is current (inside its `with` block).",
        "",
        "traces involved:",
        f"trace {TRACE} · 1 span",
        "└─ publish [producer] · 0 µs  ← expected in the carrier",
    ]


def test_the_context_of_another_trace() -> None:
    expected = SpanContext(5, 7, is_remote=False)
    assert head({"traceparent": VALID, "tracestate": "a=1"}, expected) == [
        f"the carrier holds the context of a span not captured in this test (span {SPAN}), not of a span"
        " not captured in this test (span 0000000000000007)",
        f"  traceparent: '{VALID}'",
        "  tracestate: 'a=1'",
        f"  another trace: the carrier's trace is {TRACE}, span 0000000000000007 is in trace"
        " 00000000000000000000000000000005",
        "",
        "hint: the carrier holds a context from elsewhere: a header list reused from an earlier message, or"
        " a context passed to inject() explicitly. Inject while span 0000000000000007 is current (inside"
        " its `with` block).",
    ]


def test_the_same_span_in_another_trace_is_another_context() -> None:
    expected = SpanContext(TRACE_ID + 1, SPAN_ID, is_remote=False)
    assert head({"traceparent": VALID}, expected)[2] == (
        f"  another trace: the carrier's trace is {TRACE}, span {SPAN} is in trace {TRACE_ID + 1:032x}"
    )
    assert head({"traceparent": VALID}, expected)[-1].startswith(
        "hint: the carrier holds a context from elsewhere"
    )


def test_a_64_bit_trace_id() -> None:
    short = f"00-{'0' * 16}{TRACE[16:]}-{SPAN}-01"
    expected = span("send", SPAN_ID, trace_id=TRACE_ID)
    assert head({"traceparent": short}, expected)[-1] == (
        "hint: the carrier's trace id is 64 bits (16 hex digits, old B3 style): it holds only the lower half"
        " of the span's 128-bit trace id. Inject 32-digit trace ids."
    )
    assert head({"traceparent": short}, expected)[0] == (
        f"the carrier holds the context of a span not captured in this test (span {SPAN}), not of 'send'"
        f" (span {SPAN})"
    )
    # the lower half of the trace id, but another span: not the 64-bit mistake
    assert head({"traceparent": short}, SpanContext(TRACE_ID, 7, False))[-1].startswith(
        "hint: the carrier holds a context from elsewhere"
    )


def test_a_64_bit_b3_trace_id(textmap: SetTextmap, b3: ModuleType) -> None:
    textmap(b3.B3MultiFormat())
    lines = head({"X-B3-TraceId": TRACE[16:], "X-B3-SpanId": SPAN}, SpanContext(TRACE_ID, SPAN_ID, False))
    assert lines[1:4] == [
        f"  X-B3-TraceId: '{TRACE[16:]}'",
        f"  X-B3-SpanId: '{SPAN}'",
        f"  another trace: the carrier's trace is {'0' * 16}{TRACE[16:]}, span {SPAN} is in trace {TRACE}",
    ]
    assert lines[-1].startswith("hint: the carrier's trace id is 64 bits")


@pytest.fixture
def capture(monkeypatch: pytest.MonkeyPatch) -> CaptureState:
    """A running capture holding handle (server) → publish (producer), and an unrelated trace."""
    state = CaptureState("test")
    handle = span("handle", SPAN_ID, trace_id=TRACE_ID, kind=SpanKind.SERVER, start=10, end=50)
    publish = span("publish", 9, SPAN_ID, trace_id=TRACE_ID, kind=SpanKind.PRODUCER, start=20, end=30)
    other = span("other", 3, trace_id=5, start=60, end=70)
    for index, finished in enumerate((handle, publish, other)):
        state.record_end(index, finished)
    monkeypatch.setattr(carriers, "running_state", lambda: state)
    return state


def test_injected_before_the_expected_span_started(capture: CaptureState) -> None:
    assert failure({"traceparent": VALID}, "publish").split("\n") == [
        f"the carrier holds the context of 'handle' (span {SPAN}), not of 'publish' (span 0000000000000009)",
        f"  traceparent: '{VALID}'",
        f"  same trace {TRACE}, another span",
        "",
        "hint: the carrier was filled while 'handle' was current, before 'publish' started: inject while"
        " 'publish' is current (inside its `with` block).",
        "",
        "traces involved:",
        f"trace {TRACE} · 2 spans",
        "└─ handle [server] · 0 µs  ← in the carrier",
        "   └─ publish [producer] · 0 µs  ← expected in the carrier",
    ]
    assert_carrier_has_context({"traceparent": f"00-{TRACE}-{9:016x}-01"}, "publish")
    assert_carrier_has_context({"traceparent": VALID}, "handle")


def test_filled_from_a_span_that_is_not_an_ancestor(capture: CaptureState) -> None:
    carrier = {"traceparent": f"00-{TRACE}-{9:016x}-01"}
    assert head(carrier, "handle")[-1] == (
        "hint: the carrier was filled from 'publish''s context: inject while 'handle' is current (inside its"
        " `with` block)."
    )
    not_captured = SpanContext(TRACE_ID, 4, False)
    assert head(carrier, not_captured)[-1] == (
        "hint: the carrier was filled from 'publish''s context: inject while span 0000000000000004 is"
        " current (inside its `with` block)."
    )
    assert head(carrier, SpanContext(TRACE_ID, SPAN_ID, False))[0] == (
        f"the carrier holds the context of 'publish' (span 0000000000000009), not of 'handle' (span {SPAN})"
    )


def test_without_spans_to_name_the_failure_shows_the_captured_traces(capture: CaptureState) -> None:
    lines = failure({})
    assert lines.split("\n")[-6:] == [
        "traces involved:",
        f"trace {TRACE} · 2 spans",
        "└─ handle [server] · 0 µs",
        "   └─ publish [producer] · 0 µs",
        "trace 00000000000000000000000000000005 · 1 span",
        "└─ other · 0 µs",
    ]
    assert failure({}, "other").split("\n")[-3:] == [
        "traces involved:",
        "trace 00000000000000000000000000000005 · 1 span",
        "└─ other · 0 µs  ← expected in the carrier",
    ]
    assert head({}, "other")[-1] == (
        "hint: inject the context while 'other' is current with opentelemetry.propagate.inject(carrier)"
        " (for a list of pairs, pass a setter that appends (name, value)); the consumer extracts it from"
        " there."
    )


def test_a_propagator_that_raises_while_a_captured_span_is_current(
    textmap: SetTextmap, capture: CaptureState
) -> None:
    textmap(Raising({"x-context"}))
    with trace.use_span(trace.NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False))):
        lines = failure({"x-context": "abc"}).split("\n")
    assert lines[-5:] == [
        f"trace {TRACE} · 2 spans",
        "└─ handle [server] · 0 µs",
        "   └─ publish [producer] · 0 µs",
        "trace 00000000000000000000000000000005 · 1 span",
        "└─ other · 0 µs",
    ]


def test_without_a_capture_no_traces_are_shown() -> None:
    assert failure({}).split("\n")[-2:] == ["traces involved:", "  (no spans captured)"]


# --- properties ----------------------------------------------------------------------------------


@st.composite
def traceparents(draw: st.DrawFn) -> str:
    """Near-valid traceparents: each field valid, or one character off."""
    fields = [
        draw(st.sampled_from(["00", "01", "fe", "ff", "0", "0A", "0g"])),
        draw(st.sampled_from([TRACE, "0" * 32, TRACE[1:], TRACE.upper(), TRACE[:-1] + "z"])),
        draw(st.sampled_from([SPAN, "0" * 16, SPAN + "0", SPAN[:-1] + "-"])),
        draw(st.sampled_from(["01", "00", "1", "0F", "0x"])),
    ]
    extra = draw(st.lists(st.sampled_from(["", "x", "00"]), max_size=2))
    return "-".join(fields + extra)


def otel_extracts(value: str) -> bool:
    context = TraceContextTextMapPropagator().extract({"traceparent": value})
    return trace.get_current_span(context).get_span_context().is_valid


@settings(max_examples=150, deadline=None)
@given(traceparents())
def test_a_traceparent_passes_exactly_when_it_is_valid(value: str) -> None:
    strict = re.fullmatch(
        r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-.*)?", value
    )
    valid = strict is not None and not (value.startswith("00-") and value.count("-") > 3)
    if valid:
        assert_carrier_has_context({"traceparent": value})
        assert otel_extracts(value)
    else:
        assert failure({"traceparent": value}).startswith(f"{MALFORMED}\n  traceparent {value!r}:")
