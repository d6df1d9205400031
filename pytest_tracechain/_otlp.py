"""The OTLP/HTTP receiver of the ``otlp_receiver`` fixture (work in progress)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class OtlpReceiver:
    """A local OTLP/HTTP receiver: ``endpoint`` and ``env`` for the processes that export to it."""

    endpoint: str
    env: dict[str, str]


@contextmanager
def serve() -> Iterator[OtlpReceiver]:
    raise NotImplementedError
    yield
