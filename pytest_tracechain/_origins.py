"""Where spans started: ``Origin`` records, interned in one table for the session.

A capture maps span ids to indexes in this table, so its dict holds only
ints, which the garbage collector does not scan (a dict of span id ->
``Origin`` would be walked by every full collection).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["Origin", "OriginsView", "intern_origin", "origin_at"]


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
        parts = []
        if self.pid != (os.getpid() if this_pid is None else this_pid):
            parts.append(f"pid {self.pid}")
        if self.thread_name is not None:
            parts.append(f"thread {self.thread_name!r}")
        if self.task_name is not None:
            parts.append(f"task {self.task_name!r}")
        return ", ".join(parts) or f"pid {self.pid}"


_origin_table: list[Origin] = []
_origin_indexes: dict[Origin, int] = {}
_intern_lock = threading.Lock()


def intern_origin(origin: Origin) -> int:
    """The index of ``origin`` in the shared table (added once)."""
    index = _origin_indexes.get(origin)
    if index is None:
        with _intern_lock:
            index = _origin_indexes.get(origin)
            if index is None:
                index = len(_origin_table)
                _origin_table.append(origin)
                _origin_indexes[origin] = index
    return index


def origin_at(index: int) -> Origin:
    """The origin interned at ``index``."""
    return _origin_table[index]


class OriginsView(Mapping[int, Origin]):
    """Span id -> ``Origin``, read through a capture's index dict."""

    __slots__ = ("_indexes",)

    def __init__(self, indexes: dict[int, int]) -> None:
        self._indexes = indexes

    def __getitem__(self, span_id: int) -> Origin:
        return _origin_table[self._indexes[span_id]]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indexes)

    def __len__(self) -> int:
        return len(self._indexes)

    def __contains__(self, span_id: object) -> bool:
        return span_id in self._indexes
