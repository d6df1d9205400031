"""pytest-tracechain: fail tests when OpenTelemetry trace context is lost.

The public API is resolved lazily (PEP 562) so that a pytest run which never
uses the plugin does not import the OpenTelemetry SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_tracechain._errors import TraceAssertionError, TraceChainWarning

if TYPE_CHECKING:
    from pytest_tracechain._assertions import (
        assert_child_of,
        assert_descendant_of,
        assert_linked_to,
        assert_outlives,
        assert_remote_parent,
        assert_root,
        assert_same_trace,
        assert_span_kind,
    )
    from pytest_tracechain._capture import Origin, Trace, TraceCapture
    from pytest_tracechain._carriers import assert_carrier_has_context
    from pytest_tracechain._chain import assert_chain_intact
    from pytest_tracechain._otlp import OtlpReceiver
    from pytest_tracechain._tree import assert_trace_tree

__all__ = [
    "Origin",
    "OtlpReceiver",
    "Trace",
    "TraceAssertionError",
    "TraceCapture",
    "TraceChainWarning",
    "assert_carrier_has_context",
    "assert_chain_intact",
    "assert_child_of",
    "assert_descendant_of",
    "assert_linked_to",
    "assert_outlives",
    "assert_remote_parent",
    "assert_root",
    "assert_same_trace",
    "assert_span_kind",
    "assert_trace_tree",
]

_LAZY = {
    "Origin": "_capture",
    "OtlpReceiver": "_otlp",
    "Trace": "_capture",
    "TraceCapture": "_capture",
    "assert_carrier_has_context": "_carriers",
    "assert_chain_intact": "_chain",
    "assert_child_of": "_assertions",
    "assert_descendant_of": "_assertions",
    "assert_linked_to": "_assertions",
    "assert_outlives": "_assertions",
    "assert_remote_parent": "_assertions",
    "assert_root": "_assertions",
    "assert_same_trace": "_assertions",
    "assert_span_kind": "_assertions",
    "assert_trace_tree": "_tree",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_tracechain' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_tracechain.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
