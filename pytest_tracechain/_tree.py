"""``assert_trace_tree``: the whole expected shape of a capture (work in progress)."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.sdk.trace import ReadableSpan


def assert_trace_tree(
    expected: object, spans: Iterable[ReadableSpan] | None = None, *, timeout: float | None = None
) -> None:
    """The captured traces have exactly the shape in ``expected``."""
    raise NotImplementedError
