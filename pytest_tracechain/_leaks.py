"""Spans that outlived their test: one ``Leak`` record per test (no OpenTelemetry import).

The router counts them as they end; each test's report carries the ones
drained at its teardown as plain data (``as_property``), so the terminal
summary adds them up per test, also under pytest-xdist.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Leak"]


@dataclass(slots=True)
class Leak:
    """Spans of a finished test that ended after its teardown: ``count`` of them, the last ``after_ns`` later.

    ``span_name`` is the first one's name. One record per test, counted up as
    its spans end (a leaking thread can end thousands).
    """

    test: str
    span_name: str
    after_ns: int
    count: int = 1

    def describe(self) -> str:
        if self.count == 1:
            return (
                f"span {self.span_name!r} of {self.test} ended {self.after_ns / 1e9:.3f} s after its "
                "test's teardown (work that outlived the test)"
            )
        return (
            f"{self.count} spans of {self.test} ended after its teardown, the last "
            f"{self.after_ns / 1e9:.3f} s later (the first: {self.span_name!r}; work that outlived the test)"
        )

    def as_property(self) -> dict[str, object]:
        """Plain data for a report's user properties (they cross pytest-xdist)."""
        return {"test": self.test, "span": self.span_name, "after_ns": self.after_ns, "count": self.count}

    @classmethod
    def from_property(cls, value: object) -> Leak | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(str(value["test"]), str(value["span"]), int(value["after_ns"]), int(value["count"]))
        except (KeyError, TypeError, ValueError):
            return None

    def merge(self, later: Leak) -> None:
        """Add the spans of ``later`` (the same test, drained later)."""
        self.count += later.count
        self.after_ns = max(self.after_ns, later.after_ns)
