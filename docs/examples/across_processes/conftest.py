"""A Redis server for the cross-process example, and a stream key per test.

CI (``.ci/run``) starts one ``redis-server`` and exports its URL as
``TRACECHAIN_REDIS_URL``. Without it, the session starts its own server on a
free port and stops it at the end; where no ``redis-server`` binary exists the
tests skip, except under ``CI=true``, where a missing server is an error.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

READY_LINE = "Ready to accept connections"
START_TIMEOUT = 10.0


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1: no persistence, data in a temp dir."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log: list[str] = []
        self._ready = threading.Event()
        listen = ["--port", str(self.port), "--bind", "127.0.0.1"]
        no_persistence = ["--dir", str(directory), "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            [binary, *listen, *no_persistence],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # The reader keeps draining the log after start-up, so that the server never
        # blocks on a full pipe.
        self._reader = threading.Thread(
            target=self._read_log, name="redis-server-log", daemon=True
        )
        self._reader.start()

    def _read_log(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.log.append(line)
            if READY_LINE in line:
                self._ready.set()
        self._ready.set()  # the server exited: stop waiting

    def wait_ready(self) -> bool:
        """Wait for the ready line; False if the server exited or stayed silent."""
        return self._ready.wait(START_TIMEOUT) and self._process.poll() is None

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join()
        assert self._process.stdout is not None
        self._process.stdout.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis server: the one CI started, else one this session starts."""
    url = os.environ.get("TRACECHAIN_REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        reason = (
            "no redis-server binary on PATH: install Debian's redis-server package "
            "(apt-get install redis-server) or set TRACECHAIN_REDIS_URL"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{reason} (CI=true: a missing server is a failure, not a skip)",
                pytrace=False,
            )
        pytest.skip(reason)
    # Another process can take the free port before the server binds it; try a few.
    for _ in range(3):
        server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
        if server.wait_ready():
            break
        server.stop()
    else:
        pytest.fail(
            f"redis-server did not start:\n{''.join(server.log)}", pytrace=False
        )
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.fail(f"Redis at {redis_url} does not answer: {error}", pytrace=False)
    yield client
    client.close()


@pytest.fixture
def stream(redis_client: redis.Redis) -> Iterator[str]:
    """A stream key of this test's own: under pytest-xdist, tests share one server."""
    key = f"user.events.{secrets.token_hex(4)}"
    yield key
    redis_client.delete(key)
