"""Spans received from another process, decoded at their first read.

The receiver answers the child once its spans are checked, and captures them
after (reads of a capture wait for that), so what the receiver's thread does
per span before its answer the child waits for, and what it does after, the
test's first read. Routing needs a span's ids, and checking the request its
kind, status and links: ``_otlp_decode`` builds a ``ReceivedSpan`` with those
alone. The rest (the contexts, name,
times, attributes, events, resource, scope) is read from the parsed request
when one of its spans is first read, mostly by the test's own thread after the
child has gone, for all the spans of that part of the request at once.

This module imports no protobuf: the router tells received spans from the
test's own by their class.
"""

from __future__ import annotations

from typing import Any, Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import INVALID_SPAN_CONTEXT, Link, SpanContext, SpanKind, Status
from opentelemetry.util.types import Attributes

__all__ = ["Pending", "ReceivedSpan", "make_parent_remote"]


class Pending(Protocol):
    """The part of a parsed request that received spans read their other fields from."""

    def decode(self) -> None:
        """Give each of its spans all its fields (``ReceivedSpan.fill``); at most once per span, whichever
        threads call it."""

    def defer_remote_parent(self, span: ReceivedSpan) -> bool:
        """Have ``decode`` build ``span``'s parent context as remote; ``False`` if it was decoded already."""


class ReceivedSpan(ReadableSpan):
    """A ``ReadableSpan`` received from another process, built with its kind, status and links only.

    The SDK's properties read the span's private fields: the first that is not
    set yet reaches ``__getattr__``, which has the request decode the rest
    (``Pending.decode``). Copies get a decoded span.
    """

    def __init__(self, kind: SpanKind, status: Status, links: tuple[Link, ...], pending: Pending) -> None:
        # Not ReadableSpan.__init__: ``fill`` sets the other fields. No field is ever deleted and only a
        # copy reads __dict__: either gives the span a dict of its own (see _first_of_its_class below).
        self._kind = kind
        self._status = status
        self._links = links
        self._pending: Pending | None = pending

    def fill(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        resource: Resource,
        attributes: Attributes,
        events: tuple[Event, ...],
        start_time: int,
        end_time: int,
        scope: InstrumentationScope,
    ) -> None:
        """Set the fields ``__init__`` left out (``Pending.decode`` calls it).

        With ``__init__``'s, they are the ones ``ReadableSpan.__init__`` sets,
        as checked at import; where a later SDK has more (``_SDK_ONLY``), it is
        called instead.
        """
        if _SDK_ONLY:  # pragma: no cover - a later SDK's ReadableSpan has fields fill does not know
            ReadableSpan.__init__(
                self,
                name=name,
                context=context,
                parent=parent,
                resource=resource,
                attributes=attributes,
                events=events,
                links=self._links,
                kind=self._kind,
                status=self._status,
                start_time=start_time,
                end_time=end_time,
                instrumentation_scope=scope,
            )
        else:
            self._name = name
            self._context = context
            self._parent = parent
            self._resource = resource
            self._attributes = attributes
            self._events = events
            self._start_time = start_time
            self._end_time = end_time
            self._instrumentation_info = None
            self._instrumentation_scope = scope
        self._pending = None  # last: a reader that sees None finds every field set

    def __getattr__(self, name: str) -> Any:
        if name == "_pending":  # a span made without __init__
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        pending = self._pending
        if pending is not None:
            pending.decode()
        # Also when another thread's decode set the field after this thread's lookup missed it.
        return object.__getattribute__(self, name)

    def __getstate__(self) -> dict[str, Any]:
        if self._pending is not None:
            self._pending.decode()
        return dict(self.__dict__)


def _first_of_its_class() -> ReceivedSpan:
    """One span with every field, made before any other.

    CPython (3.11 and later) keeps an instance's fields inline, in a layout its
    class shares, instead of in a dict of the instance's own: one object fewer
    per span for the garbage collector to track. The layout takes a new field
    only until the code setting fields has adapted to it: were the first
    spans made with ``__init__``'s four fields by the thousand, the fields
    ``fill`` adds later would give each span a dict. Made here, at import, the
    layout holds them all, in ``fill``'s order.
    """
    span = ReceivedSpan(SpanKind.INTERNAL, Status(), (), None)  # type: ignore[arg-type]
    span.fill("", INVALID_SPAN_CONTEXT, None, Resource({}), None, (), 0, 0, InstrumentationScope(""))
    return span


def make_parent_remote(span: ReadableSpan) -> None:
    """Make the parent context of received ``span`` remote (the router found the parent captured in another
    process): at its decoding, if it is still to come."""
    if isinstance(span, ReceivedSpan):
        pending = span._pending
        if pending is not None and pending.defer_remote_parent(span):
            return
    parent = span.parent
    if parent is not None:
        span._parent = SpanContext(
            parent.trace_id, parent.span_id, True, parent.trace_flags, parent.trace_state
        )


def _fields_fill_leaves_out(span: ReceivedSpan) -> set[str]:
    """The fields a ``ReadableSpan`` from the SDK's constructor has that ``span``, filled, has not: none so
    far (SDK 1.24 to 1.45)."""
    made = ReadableSpan("", resource=span.resource)
    return {field for field in vars(made) if not hasattr(span, field)}


# Fields of a later SDK's ReadableSpan that ``fill`` does not know: then it calls ReadableSpan.__init__.
_SDK_ONLY: set[str] = set()
_FIRST = _first_of_its_class()
_SDK_ONLY.update(_fields_fill_leaves_out(_FIRST))
