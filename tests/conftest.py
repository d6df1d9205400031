from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator

import pytest

from tests._forkserver import ForkServer

pytest_plugins = ["pytester"]

RunPytest = Callable[..., pytest.RunResult]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-fork-server",
        action="store_true",
        help="give every run_pytest run a new interpreter instead of a child forked from a pre-started "
        "pytest (slower; rules the fork server out)",
    )


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    server = ForkServer(tmp_path_factory.mktemp("fork-server"))
    yield server
    server.close()


@pytest.fixture
def run_pytest(pytester: pytest.Pytester, request: pytest.FixtureRequest) -> RunPytest:
    """Run pytest in a process of its own, as a user would, without test-run tracing plugins.

    The global tracer provider can be set once per process, so every run that
    captures spans gets a process of its own: a child forked from a pytest
    started once (tests/_forkserver.py), which is much faster than a new
    interpreter. Runs with ``harness=True`` get a new interpreter, which loads
    pytest-opentelemetry at start-up.
    """
    fork = hasattr(os, "fork") and not request.config.getoption("--no-fork-server")
    server: ForkServer | None = request.getfixturevalue("fork_server") if fork else None

    def run(*args: str, harness: bool = False) -> pytest.RunResult:
        base = ["-p", "no:cacheprovider"]
        if not harness:
            base += ["-p", "no:pytest_opentelemetry"]
        if harness or server is None:
            return pytester.runpytest_subprocess(*base, *args)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pytester, "popen", functools.partial(server.popen, fallback=pytester.popen))
            return pytester.runpytest_subprocess(*base, *args)

    return run


def before_short_summary(result: pytest.RunResult) -> list[str]:
    """The output lines before pytest's short test summary (under CI=true it repeats each message whole)."""
    lines = result.stdout.lines
    end = next((n for n, line in enumerate(lines) if "short test summary info" in line), len(lines))
    return lines[:end]
