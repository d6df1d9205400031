"""Exception and warning types; kept free of OpenTelemetry imports."""

from __future__ import annotations


class TraceAssertionError(AssertionError):
    """A trace assertion failed; the message shows what was expected and captured."""


class TraceChainWarning(UserWarning):
    """A test's capture holds a broken trace chain (``--tracechain-check=warn``)."""


class TraceChainUsageError(Exception):
    """The plugin cannot work in this set-up (for example a non-SDK tracer provider)."""


# Users meet these as ``pytest_tracechain.TraceAssertionError``; say so in tracebacks.
for _exported in (TraceAssertionError, TraceChainWarning):
    _exported.__module__ = "pytest_tracechain"
