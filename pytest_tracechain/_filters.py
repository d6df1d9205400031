"""Span filters shared by ``find``, ``one``, ``wait_for`` and the assertions."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

__all__ = ["SpanFilter", "check_seconds", "describe_filters", "parse_kind", "parse_trace_id", "span_filter"]


SpanFilter = Callable[[ReadableSpan], bool]
_KIND_NAMES = ", ".join(k.name.lower() for k in SpanKind)


def parse_kind(kind: object, argname: str = "kind") -> SpanKind:
    """A ``SpanKind`` from a ``SpanKind`` or its name in any case."""
    if isinstance(kind, SpanKind):
        return kind
    if isinstance(kind, str):
        try:
            return SpanKind[kind.strip().upper()]
        except KeyError:
            raise ValueError(
                f"{argname}={kind!r} is not a span kind; use a SpanKind or one of: {_KIND_NAMES}"
            ) from None
    raise TypeError(f"{argname} must be a SpanKind or its name, not {type(kind).__name__}")


def parse_trace_id(trace_id: object) -> int:
    if isinstance(trace_id, bool) or not isinstance(trace_id, (int, str)):
        raise TypeError(f"trace_id must be an int or a 32-digit hex string, not {type(trace_id).__name__}")
    if isinstance(trace_id, str):
        if not re.fullmatch(r"[0-9a-fA-F]{32}", trace_id):
            raise ValueError(f"trace_id={trace_id!r} is not a 32-digit hex trace id")
        return int(trace_id, 16)
    return trace_id


def span_filter(
    name: str | re.Pattern[str] | None = None,
    *,
    kind: SpanKind | str | None = None,
    trace_id: int | str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> SpanFilter:
    """One predicate for the ``find``/``one``/``wait_for`` filters, arguments checked."""
    checks: list[SpanFilter] = []
    if isinstance(name, str):
        checks.append(lambda s: s.name == name)
    elif isinstance(name, re.Pattern):
        pattern = name
        checks.append(lambda s: pattern.search(s.name) is not None)
    elif name is not None:
        raise TypeError(f"name must be a str or a compiled regex, not {type(name).__name__}")
    if kind is not None:
        wanted_kind = parse_kind(kind)
        checks.append(lambda s: s.kind is wanted_kind)
    if trace_id is not None:
        wanted_trace = parse_trace_id(trace_id)
        checks.append(lambda s: s.context.trace_id == wanted_trace)
    if attributes is not None:
        if not isinstance(attributes, Mapping):
            raise TypeError(f"attributes must be a mapping, not {type(attributes).__name__}")
        wanted = dict(attributes)

        def has_attributes(s: ReadableSpan) -> bool:
            have = s.attributes or {}
            return all(k in have and _attr_equal(have[k], v) for k, v in wanted.items())

        checks.append(has_attributes)
    if not checks:
        return lambda s: True
    if len(checks) == 1:
        return checks[0]
    return lambda s: all(check(s) for check in checks)


def _attr_equal(have: object, want: object) -> bool:
    # Sequence attributes are stored as tuples; let users write lists.
    if isinstance(have, tuple) and isinstance(want, list):
        return have == tuple(want)
    return have == want


def describe_filters(name: object = None, **filters: object) -> str:
    """``span named 'x' with kind=server`` for failure messages."""
    if isinstance(name, re.Pattern):
        text = f"span with a name matching {name.pattern!r}"
    elif name is not None:
        text = f"span named {name!r}"
    else:
        text = "span"
    extra = [
        f"{key}={parse_kind(value).name.lower() if key == 'kind' else repr(value)}"
        for key, value in filters.items()
        if value is not None
    ]
    return text + (" with " + ", ".join(extra) if extra else "")


def check_seconds(timeout: object, name: str) -> float:
    """``timeout`` as a number of seconds to wait: from 0 to ``threading.TIMEOUT_MAX``.

    ``name`` starts the error message (``timeout``, or ``f() argument 'timeout'``).
    Infinity and huge values would overflow the wait, and NaN would wait for ever.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(timeout).__name__}")
    if not 0 <= timeout <= threading.TIMEOUT_MAX:  # NaN fails both comparisons
        raise ValueError(
            f"{name} must be a number of seconds from 0 to {threading.TIMEOUT_MAX:.0f}, not {timeout!r}"
        )
    return float(timeout)
