"""The quick proof that a capture's chains are intact, run at the end of every checked test.

Most tests break no chain: one pass over a capture's roots proves it, so the
rules of ``_chain``, their findings and reports are imported only for a test
this proof cannot pass. ``Facts`` is what the proof and the rules read of a
capture, besides the span graph.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_tracechain._graph import has_links

if TYPE_CHECKING:
    from pytest_tracechain._origins import Origin
    from pytest_tracechain._settings import Rules
    from pytest_tracechain._spawn import Injection, Spawn

__all__ = ["RECEIVERS", "SENDERS", "SENDER_OF", "Facts", "is_trivially_intact"]

# The kind that sends what each receiving kind takes: a message, a request.
SENDER_OF = {SpanKind.CONSUMER: SpanKind.PRODUCER, SpanKind.SERVER: SpanKind.CLIENT}
SENDERS = frozenset(SENDER_OF.values())
RECEIVERS = frozenset(SENDER_OF)
# For the proof's loop: ``in`` a tuple compares by identity first, where a frozenset hashes each kind
# (``Enum.__hash__``, a Python call).
_RECEIVER_KINDS = tuple(RECEIVERS)


class Facts(Protocol):
    """What the rules read of a capture, besides the span graph."""

    @property
    def spans(self) -> list[ReadableSpan]:
        """The finished spans to analyse."""
        ...

    @property
    def ambient(self) -> Collection[int]: ...

    @property
    def known_ids(self) -> Collection[int]:
        """Span ids known as parents (a span cleared from the capture is still known)."""
        ...

    @property
    def rules(self) -> Rules: ...

    @property
    def injections(self) -> Mapping[int, Injection]:
        """The contexts injected into carriers while the test ran, by span id."""
        ...

    @property
    def received(self) -> bool:
        """Whether spans came from other processes (only those can form a parent cycle)."""
        ...

    def origin_of(self, span_id: int) -> Origin | None: ...

    def spawn_of(self, span_id: int) -> Spawn | None: ...

    @property
    def spawns(self) -> Mapping[int, Spawn]:
        """The hand-off records of roots started in work handed to another thread, by span id."""
        ...

    def spans_to_prove(self) -> Iterable[ReadableSpan]:
        """Those of ``spans`` whose parents ``is_trivially_intact`` reads (more may be given, never fewer
        than the spans not known to be children of a local span of ``known_ids``)."""
        ...


def is_trivially_intact(facts: Facts) -> bool:
    """One pass that proves the common case clean, so most tests skip the full analysis.

    Clean: every parent is known or ambient (a remote parent is checked in
    full), no root has a spawn record, no receiver root could pair with a
    sender, and the marker does not ask for one trace. It runs at the end of
    every checked test: it reads only the spans ``spans_to_prove`` gives (a
    capture's roots, its children were checked as they started), and the kinds
    of every span only once a receiver root was found.
    """
    if facts.rules.single_trace or facts.received:
        return False
    known, ambient, spawns = facts.known_ids, facts.ambient, facts.spawns
    receivers = False
    for span in facts.spans_to_prove():  # a capture's roots: as many as its spans, in some suites
        parent = span.parent
        if parent is not None:
            parent_id = parent.span_id
            if parent_id not in ambient:
                if parent.is_remote or parent_id not in known:
                    return False
                continue
        # a root, relative to the test
        if has_links(span):
            continue
        if spawns and span.context.span_id in spawns:
            return False
        if not receivers and span.kind in _RECEIVER_KINDS:
            receivers = True
    return not (receivers and _has_senders(facts))


def _has_senders(facts: Facts) -> bool:
    """Whether a receiver root could pair with a sender: a context was injected, or a sender was captured."""
    return bool(facts.injections) or any(span.kind in SENDERS for span in facts.spans)
