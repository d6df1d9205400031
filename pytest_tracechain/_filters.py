"""Span filters shared by ``find``, ``one``, ``wait_for`` and the assertions."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

__all__ = [
    "SpanFilter",
    "argument",
    "check_count",
    "check_seconds",
    "describe_filters",
    "parse_kind",
    "parse_trace_id",
    "span_filter",
]


SpanFilter = Callable[[ReadableSpan], bool]
_KIND_NAMES = ", ".join(k.name.lower() for k in SpanKind)


def argument(func: str | None, name: str) -> str:
    """How an error names an argument: ``f() argument 'x'``, or ``x`` alone (for internal callers)."""
    return f"{func}() argument {name!r}" if func else name


def _assigned(func: str | None, name: str, value: object) -> str:
    """``f() argument x='y'`` (or ``x='y'``), for a value of the right type that is not allowed."""
    return f"{func + '() argument ' if func else ''}{name}={value!r}"


def parse_kind(kind: object, argname: str = "kind", func: str | None = None) -> SpanKind:
    """A ``SpanKind`` from a ``SpanKind`` or its name in any case; ``func`` names the caller in errors."""
    __tracebackhide__ = True
    if isinstance(kind, SpanKind):
        return kind
    if isinstance(kind, str):
        try:
            return SpanKind[kind.strip().upper()]
        except KeyError:
            raise ValueError(
                f"{_assigned(func, argname, kind)} is not a span kind; "
                f"use a SpanKind or one of: {_KIND_NAMES}"
            ) from None
    raise TypeError(f"{argument(func, argname)} must be a SpanKind or its name, not {type(kind).__name__}")


def parse_trace_id(trace_id: object, func: str | None = None, argname: str = "trace_id") -> int:
    __tracebackhide__ = True
    if isinstance(trace_id, bool) or not isinstance(trace_id, (int, str)):
        raise TypeError(
            f"{argument(func, argname)} must be an int or a 32-digit hex string, "
            f"not {type(trace_id).__name__}"
        )
    if isinstance(trace_id, str):
        if not re.fullmatch(r"[0-9a-fA-F]{32}", trace_id):
            raise ValueError(f"{_assigned(func, argname, trace_id)} is not a 32-digit hex trace id")
        return int(trace_id, 16)
    return trace_id


def _check_name(name: object, func: str | None) -> None:
    __tracebackhide__ = True
    if name is not None and not isinstance(name, (str, re.Pattern)):
        raise TypeError(
            f"{argument(func, 'name')} must be a str or a compiled regex, not {type(name).__name__}"
        )


def _check_attributes(attributes: object, func: str | None) -> dict[str, Any]:
    __tracebackhide__ = True
    if not isinstance(attributes, Mapping):
        raise TypeError(f"{argument(func, 'attributes')} must be a mapping, not {type(attributes).__name__}")
    wanted = dict(attributes)
    for key in wanted:
        if not isinstance(key, str):
            raise TypeError(
                f"{argument(func, 'attributes')} must map attribute names (str) to values, "
                f"not {type(key).__name__} keys"
            )
    return wanted


def span_filter(
    name: str | re.Pattern[str] | None = None,
    *,
    kind: SpanKind | str | None = None,
    trace_id: int | str | None = None,
    attributes: Mapping[str, Any] | None = None,
    func: str | None = None,
) -> SpanFilter:
    """One predicate for the ``find``/``one``/``wait_for`` filters, arguments checked (``func`` in errors)."""
    __tracebackhide__ = True
    _check_name(name, func)
    checks: list[SpanFilter] = []
    if isinstance(name, str):
        checks.append(lambda s: s.name == name)
    elif isinstance(name, re.Pattern):
        pattern = name
        checks.append(lambda s: pattern.search(s.name) is not None)
    if kind is not None:
        wanted_kind = parse_kind(kind, "kind", func)
        checks.append(lambda s: s.kind is wanted_kind)
    if trace_id is not None:
        wanted_trace = parse_trace_id(trace_id, func)
        checks.append(lambda s: s.context.trace_id == wanted_trace)
    if attributes is not None:
        wanted = _check_attributes(attributes, func)

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


def check_count(count: object, func: str | None = None) -> int:
    """``count`` of ``wait_for``: an int from 1."""
    __tracebackhide__ = True
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"{argument(func, 'count')} must be an int, not {type(count).__name__}")
    if count < 1:
        raise ValueError(f"{argument(func, 'count')} must be at least 1, not {count}")
    return count


def check_seconds(timeout: object, name: str) -> float:
    """``timeout`` as a number of seconds to wait: from 0 to ``threading.TIMEOUT_MAX``.

    ``name`` starts the error message (``timeout``, or ``f() argument 'timeout'``).
    Infinity and huge values would overflow the wait, and NaN would wait for ever.
    """
    __tracebackhide__ = True
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(timeout).__name__}")
    if not 0 <= timeout <= threading.TIMEOUT_MAX:  # NaN fails both comparisons
        raise ValueError(
            f"{name} must be a number of seconds from 0 to {threading.TIMEOUT_MAX:.0f}, not {timeout!r}"
        )
    return float(timeout)
