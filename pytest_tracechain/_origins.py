"""Where spans started: ``Origin`` records, interned in a table shared by captures.

A capture maps span ids to indexes in its table, so its dict holds only
ints, which the garbage collector does not scan (a dict of span id ->
``Origin`` would be walked by every full collection). A table that has grown
past a limit is replaced at the next test, so a long session stays flat.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "Origin",
    "OriginTable",
    "OriginsView",
    "current_table",
    "intern_origin",
    "origin_at",
    "renew_if_full",
]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a span started.

    ``task_name`` is the asyncio task's name, or ``None`` outside a task.
    ``thread_name`` and ``thread_id`` are ``None`` for spans received from
    another process, where they are unknown.
    """

    pid: int
    thread_name: str | None
    thread_id: int | None
    task_name: str | None = None

    def describe(self, *, this_pid: int | None = None) -> str:
        """A short label such as ``thread 'MainThread', task 'Task-2'``."""
        __tracebackhide__ = True
        if this_pid is not None and (isinstance(this_pid, bool) or not isinstance(this_pid, int)):
            raise TypeError(
                f"Origin.describe() argument 'this_pid' must be an int or None, not {type(this_pid).__name__}"
            )
        parts = []
        if self.pid != (os.getpid() if this_pid is None else this_pid):
            parts.append(f"pid {self.pid}")
        if self.thread_name is not None:
            parts.append(f"thread {self.thread_name!r}")
        if self.task_name is not None:
            parts.append(f"task {self.task_name!r}")
        return ", ".join(parts) or f"pid {self.pid}"


class OriginTable:
    """Interned origins: each added once, found by its index.

    A table serves the captures opened while it is current; when it has grown
    past ``GENERATION_LIMIT`` entries (a session making ever new threads or
    tasks), the next capture starts a new one and the old goes with its
    captures.
    """

    __slots__ = ("entries", "indexes", "lock")

    def __init__(self) -> None:
        self.entries: list[Origin] = []
        self.indexes: dict[Origin, int] = {}
        self.lock = threading.Lock()

    def intern(self, origin: Origin) -> int:
        """The index of ``origin`` (added once)."""
        index = self.indexes.get(origin)
        if index is None:
            with self.lock:
                index = self.indexes.get(origin)
                if index is None:
                    index = len(self.entries)
                    self.entries.append(origin)
                    self.indexes[origin] = index
        return index

    def at(self, index: int) -> Origin:
        return self.entries[index]

    def __len__(self) -> int:
        return len(self.entries)


# Entries of one table before a new capture starts a new one.
GENERATION_LIMIT = 4096
_table = OriginTable()


def current_table() -> OriginTable:
    return _table


def renew_if_full(limit: int | None = None) -> bool:
    """Start a new table if the current one is past ``limit`` entries; whether it did."""
    global _table
    if len(_table) <= (GENERATION_LIMIT if limit is None else limit):
        return False
    _table = OriginTable()
    return True


def intern_origin(origin: Origin) -> int:
    """The index of ``origin`` in the current table (added once)."""
    return _table.intern(origin)


def origin_at(index: int) -> Origin:
    """The origin interned at ``index`` in the current table."""
    return _table.at(index)


class OriginsView(Mapping[int, Origin]):
    """Span id -> ``Origin``, read through a capture's index dict and its table."""

    __slots__ = ("_indexes", "_table")

    def __init__(self, indexes: dict[int, int], table: OriginTable | None = None) -> None:
        self._indexes = indexes
        self._table = table if table is not None else _table

    def __getitem__(self, span_id: int) -> Origin:
        return self._table.at(self._indexes[span_id])

    def __iter__(self) -> Iterator[int]:
        return iter(self._indexes)

    def __len__(self) -> int:
        return len(self._indexes)

    def __contains__(self, span_id: object) -> bool:
        return span_id in self._indexes
