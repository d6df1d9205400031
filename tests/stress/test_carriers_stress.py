"""Stress: 10,000 generated carriers, hostile ones among them, through the carrier checks.

Whatever the carrier is (dicts, lists of pairs, nested values, bytes, odd types,
objects whose ``__repr__``, ``__str__``, ``__eq__`` or ``__len__`` raise, huge
strings), ``assert_carrier_has_context`` raises ``TraceAssertionError`` or
``TypeError`` and nothing else: never the carrier's own exception, never a
``RecursionError``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import pytest_tracechain._carriers as carriers
from pytest_tracechain import TraceAssertionError, assert_carrier_has_context

pytestmark = pytest.mark.stress

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


class Boom(Exception):
    """What the hostile objects raise (an exception that is neither of the two allowed)."""


class HostileRepr:
    def __repr__(self) -> str:
        raise Boom("repr")

    def __str__(self) -> str:
        raise Boom("str")


class HostileEq:
    def __eq__(self, other: object) -> bool:
        raise Boom("eq")

    def __hash__(self) -> int:
        raise Boom("hash")

    def __repr__(self) -> str:
        raise Boom("repr")


class UnprintableError(Exception):
    def __repr__(self) -> str:
        raise Boom("repr of an exception")


class HostileKey(str):
    """A header name whose str methods raise, but not ``__eq__``: it can be a dict key."""

    def lower(self) -> str:
        raise Boom("lower")

    def strip(self, chars: str | None = None) -> str:
        raise Boom("strip")

    def __repr__(self) -> str:
        raise Boom("repr")


class HostileName(HostileKey):
    """A header name whose ``__eq__`` raises too (only in lists of pairs)."""

    def __eq__(self, other: object) -> bool:
        raise Boom("eq")

    __hash__ = str.__hash__


class HostileText(str):
    def strip(self, chars: str | None = None) -> str:
        raise Boom("strip")

    def split(self, sep: str | None = None, maxsplit: int = -1) -> list[str]:
        raise Boom("split")

    def __len__(self) -> int:
        raise Boom("len")


class HostileBytes(bytes):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise Boom("decode")

    def __repr__(self) -> str:
        raise Boom("repr")


class HostileList(list[Any]):
    def __iter__(self) -> Iterator[Any]:
        raise Boom("iter")

    def __len__(self) -> int:
        raise Boom("len")


class HostileMapping(Mapping[str, object]):
    def __init__(self, items: dict[str, object], fail: str) -> None:
        self._items, self._fail = items, fail

    def __getitem__(self, key: str) -> object:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        if self._fail == "iter":
            raise Boom("iter")
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> Any:
        if self._fail == "items":
            raise UnprintableError()
        return super().items()


class Getter:
    """A carrier with get() (and keys() when listable); get() may raise an unprintable error."""

    def __init__(self, items: dict[str, object], raising: bool) -> None:
        self._items, self._raising = items, raising

    def get(self, name: str, default: object = None) -> object:
        if self._raising:
            raise UnprintableError()
        return self._items.get(name, default)


class ListedGetter(Getter):
    def keys(self) -> list[object]:
        return [*self._items, 7, None]


def nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


def released() -> memoryview:
    view = memoryview(b"00-")
    view.release()
    return view


# Values are drawn from pools made once (drawing an index is cheap, building
# values with strategies is what would make 10,000 examples slow), mixed with
# Hypothesis's own text and bytes.
HEADER_NAMES = [
    "traceparent",
    "TraceParent",
    "tracestate",
    "b3",
    "X-B3-TraceId",
    "x-b3-spanid",
    "x-b3-sampled",
]
NAME_POOL: list[object] = [
    *HEADER_NAMES,
    "x-b3-flags",
    "content-type",
    "",
    b"traceparent",
    b"\xfftracestate",
    HostileKey("traceparent"),
    HostileKey("b3"),
    HostileName("traceparent"),
    HostileName("tracestate"),
    7,
    None,
    HostileEq(),
]
TEXT_POOL = [
    f"00-{TRACE}-{SPAN}-01",
    f" 00-{TRACE}-{SPAN}-01\t",
    f"00-{TRACE}-{SPAN}-01-extra",
    f"01-{TRACE}-{SPAN}-01-extra",
    f"ff-{TRACE}-{SPAN}-01",
    f"00-{TRACE.upper()}-{SPAN}-01",
    f"00-{'0' * 32}-{SPAN}-01",
    f"00-{TRACE}-{'0' * 16}-01",
    f"00-{TRACE[:-1]}-{SPAN}-01",
    f"{TRACE}-{SPAN}-1",
    f"{TRACE}-{SPAN}-1-{SPAN}",
    f"{TRACE[16:]}-{SPAN}",
    f"{TRACE}-{SPAN}-x-{SPAN}-y",
    TRACE,
    SPAN,
    "a=1,b=2",
    "A=1,a=2,a=3",
    "a=1," * 40,
    "1",
    "0",
    "d",
    "true",
    "",
    " \t",
    "é" * 3,
    "\ud800",
    "a" * 100_000,
    "-" * 50_000,
    "," * 20_000,
    "=" * 9_000,
    " " * 10_000 + "x",
    f"00-{TRACE}-{SPAN}-01" + "-" * 30_000,
    "\ud800" * 5_000,
]
VALUE_POOL: list[object] = [
    *TEXT_POOL,
    *(text.encode("utf-8", "surrogatepass") for text in TEXT_POOL[:12]),
    b"\xff" * 100,
    b"\xc3",
    bytearray(TEXT_POOL[0].encode()),
    bytearray(b"\xfe"),
    memoryview(TEXT_POOL[0].encode()),
    memoryview(b"\xfe\xff"),
    HostileText(TEXT_POOL[0]),
    HostileText("garbage"),
    HostileBytes(TEXT_POOL[0].encode()),
    HostileBytes(b"\xff"),
    None,
    0,
    -(10**40),
    1.5,
    float("nan"),
    object(),
    HostileRepr(),
    HostileEq(),
    UnprintableError(),
    nested(1),
    nested(5),
    nested(500),
    nested(5_000),
    released(),
    {"traceparent": TEXT_POOL[0]},
]


DEEP = nested(5_000)
WRAPS = [None, list, tuple, HostileList]  # a value alone, or in a list, a tuple, a list that cannot be read
DRAWN_TEXT, DRAWN_BYTES = object(), object()  # stand for the text and bytes Hypothesis drew
NAMES = [*NAME_POOL, DRAWN_TEXT, DRAWN_BYTES]
VALUES = [*VALUE_POOL, DRAWN_TEXT, DRAWN_BYTES]
SHAPES = [
    "dict",
    "pairs",
    "pairs_as_lists",
    "pairs_in_a_tuple",
    "pairs_with_junk",
    "hostile_list",
    "hostile_mapping",
    "raising_mapping",
    "getter",
    "raising_getter",
    "listed_getter",
    "scalar",
    "deep",
]


def carrier_of(plan: bytes, text: str) -> object:
    """A carrier built from ``plan``: its shape (first byte), then three bytes a header (name,
    value, wrapping), then a stray value; ``text`` and ``plan`` itself are among the values.

    Two draws an example (a strategy tree per value would make 10,000 examples slow).
    """

    def drawn(item: object) -> object:
        return text if item is DRAWN_TEXT else plan if item is DRAWN_BYTES else item

    def header(code: int) -> tuple[object, object]:
        name = drawn(NAMES[code % len(NAMES)])
        code //= len(NAMES)
        value = drawn(VALUES[code % len(VALUES)])
        wrap = WRAPS[code // len(VALUES) % len(WRAPS)]
        other = drawn(VALUES[code // (len(VALUES) * len(WRAPS)) % len(VALUES)])
        return name, value if wrap is None else wrap([value, other])

    pairs = [header(int.from_bytes(plan[i : i + 3], "big")) for i in range(1, len(plan) - 1, 3)]
    stray = drawn(VALUES[plan[-1] % len(VALUES)])
    return _shaped(SHAPES[plan[0] % len(SHAPES)], pairs, stray)


def _shaped(shape: str, pairs: list[tuple[object, object]], stray: object) -> object:
    if shape == "dict":
        # A dict cannot hold keys whose __eq__ or __hash__ raise: those go as plain str, or not at all.
        return {str.__str__(k) if isinstance(k, HostileName) else k: v for k, v in pairs if _hashable(k)}
    if shape == "pairs":
        return pairs
    if shape == "pairs_as_lists":
        return [[k, v] for k, v in pairs]
    if shape == "pairs_in_a_tuple":
        return tuple(pairs)
    if shape == "pairs_with_junk":
        return [*pairs, stray, (stray,), ("traceparent", stray, stray)]
    if shape == "hostile_list":
        return HostileList(pairs)
    text_keyed = {k: v for k, v in pairs if type(k) is str}
    if shape in ("hostile_mapping", "raising_mapping"):
        return HostileMapping(text_keyed, "items" if shape == "raising_mapping" else "iter")
    if shape in ("getter", "raising_getter"):
        return Getter(text_keyed, raising=shape == "raising_getter")
    if shape == "listed_getter":
        return ListedGetter(text_keyed, raising=False)
    if shape == "deep":
        return DEEP
    return stray


def _hashable(key: object) -> bool:
    try:
        hash(key)
    except Boom:
        return False
    return True


CARRIERS = st.builds(carrier_of, st.binary(min_size=1, max_size=17), st.text(max_size=60))


def propagators() -> list[Callable[[], TextMapPropagator]]:
    made: list[Callable[[], TextMapPropagator]] = [
        lambda: CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]),
        TraceContextTextMapPropagator,
    ]
    if importlib.util.find_spec("opentelemetry.propagators.b3") is not None:
        from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat

        made += [
            B3MultiFormat,
            B3SingleFormat,
            lambda: CompositePropagator([TraceContextTextMapPropagator(), B3MultiFormat()]),
        ]
    return made


PROPAGATORS = [make() for make in propagators()]
EXPECTED = st.one_of(st.none(), st.just(SpanContext(int(TRACE, 16), int(SPAN, 16), is_remote=True)))


@settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(CARRIERS, st.sampled_from(PROPAGATORS), EXPECTED)
def check_carrier(carrier: object, propagator: TextMapPropagator, expected: SpanContext | None) -> None:
    propagate.set_global_textmap(propagator)
    try:
        assert_carrier_has_context(carrier, expected)
    except (TraceAssertionError, TypeError) as error:
        str(error)  # the message is built already; reading it must not raise either


# A failing example holds huge strings: let Hypothesis show it anyway.
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_generated_and_hostile_carriers_give_only_trace_assertion_or_type_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="opentelemetry")  # its warnings about malformed tracestates
    previous = propagate.get_global_textmap()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(carriers, "running_state", lambda: None)
        try:
            check_carrier()
        finally:
            propagate.set_global_textmap(previous)
