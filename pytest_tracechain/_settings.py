"""Typed settings of a captured test: the check mode and the marker's rules.

Imported by ``plugin.py`` at start-up, so it imports nothing heavy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["CheckMode", "Rules", "Words"]


class Words(str, enum.Enum):
    """An enum whose members read as their values, in f-strings too, on every Python."""

    def __str__(self) -> str:
        return str(self.value)


class CheckMode(Words):
    """What ``--tracechain-check`` does with a test whose chains are broken."""

    OFF = "off"
    WARN = "warn"
    FAIL = "fail"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(mode.value for mode in cls)


@dataclass(frozen=True, slots=True)
class Rules:
    """The chain rules a test asked for (``@pytest.mark.tracechain``)."""

    lost_context: bool = True
    single_trace: bool = False
