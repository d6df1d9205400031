"""Real stacks: frameworks, brokers and their contrib instrumentations, run for real through pytester.

The tests here need the ``integration`` dependency group (``pip install -e . --group test
--group integration``) and skip without it. Those that need Redis get a real server: the one
CI started and exported as ``TRACECHAIN_REDIS_URL``, else one this session starts on a free
``127.0.0.1`` port; without a ``redis-server`` binary they skip (under ``CI=true`` they fail).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# One import per framework of the integration group (pyproject.toml): the group is all or nothing.
INTEGRATION_MODULES = (
    "celery",
    "flask",
    "fastapi",
    "httpx",
    "requests",
    "anyio",
    "trio",
    "gevent",
    "opentelemetry.instrumentation.celery",
    "opentelemetry.instrumentation.redis",
    "opentelemetry.instrumentation.flask",
    "opentelemetry.instrumentation.fastapi",
    "opentelemetry.instrumentation.requests",
    "opentelemetry.instrumentation.httpx",
)


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:  # a parent package is missing
        return True


MISSING = [name for name in INTEGRATION_MODULES if _missing(name)]

REDIS_START_TIMEOUT = 10.0


def pytest_runtest_setup(item: pytest.Item) -> None:
    if MISSING:
        pytest.skip(
            f"the integration dependency group is not installed (no {', '.join(MISSING)}): "
            "pip install -e . --group test --group integration"
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_redis(binary: str, directory: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    """A redis-server on a free port, answering PING; None if it exited (another process took the port)."""
    import redis

    port = free_port()
    address = ["--port", str(port), "--bind", "127.0.0.1"]
    no_persistence = ["--dir", str(directory), "--save", "", "--appendonly", "no"]
    with (directory / "redis.log").open("ab") as log:
        server = subprocess.Popen(
            [binary, *address, *no_persistence],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            try:
                client.ping()
            except redis.ConnectionError:
                try:
                    server.wait(timeout=0.02)  # returns at once if the server exited
                except subprocess.TimeoutExpired:
                    continue
                return None
            return server, f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
    _stop(server)
    return None


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real Redis server: the one CI started, else one this session starts and stops."""
    url = os.environ.get("TRACECHAIN_REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        reason = (
            "no redis-server binary on PATH and TRACECHAIN_REDIS_URL is not set: install Debian's "
            "redis-server package (apt-get install redis-server) or point TRACECHAIN_REDIS_URL at a server"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: a missing server is a failure, not a skip)", pytrace=False)
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("redis")
    for _ in range(3):  # another process can take the free port before the server binds it
        started = _start_redis(binary, directory)
        if started is not None:
            break
    else:
        log = (directory / "redis.log").read_text(errors="replace")
        pytest.fail(f"redis-server did not start:\n{log}", pytrace=False)
    server, url = started
    try:
        yield url
    finally:
        _stop(server)


@pytest.fixture
def redis_prefix(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A key prefix of this test's own, exported with the server's URL to the runs the test starts.

    The runs read ``TRACECHAIN_REDIS_URL`` and ``TRACECHAIN_REDIS_PREFIX`` and put every key (and
    channel) they use under the prefix, so tests never see each other's data, also under
    pytest-xdist on one server. The keys are deleted after the test.
    """
    import redis

    prefix = f"tracechain-test:{secrets.token_hex(4)}:"
    monkeypatch.setenv("TRACECHAIN_REDIS_URL", redis_url)
    monkeypatch.setenv("TRACECHAIN_REDIS_PREFIX", prefix)
    yield prefix
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


# The arguments for a run of code that carries its context correctly: fail mode, and a
# TraceChainWarning (of a check that only warns) is an error too.
NO_FINDINGS = ("--tracechain-check=fail", "-W", "error::pytest_tracechain.TraceChainWarning")


def assert_no_findings(result: pytest.RunResult, **outcomes: int) -> None:
    """The run had exactly ``outcomes``, and the plugin reported nothing: no finding, warning or summary."""
    __tracebackhide__ = True
    result.assert_outcomes(**outcomes)
    for line in ("*broken trace chain*", "*TraceChainWarning*", "*tracechain: *"):
        result.stdout.no_fnmatch_line(line)
