from __future__ import annotations

from collections.abc import Callable

import pytest

pytest_plugins = ["pytester"]

RunPytest = Callable[..., pytest.RunResult]


@pytest.fixture
def run_pytest(pytester: pytest.Pytester) -> RunPytest:
    """Run pytest in a subprocess, as a user would, without test-run tracing plugins.

    The global tracer provider can be set once per process, so every run that
    captures spans gets a process of its own.
    """

    def run(*args: str, harness: bool = False) -> pytest.RunResult:
        base = ["-p", "no:cacheprovider"]
        if not harness:
            base += ["-p", "no:pytest_opentelemetry"]
        return pytester.runpytest_subprocess(*base, *args)

    return run
