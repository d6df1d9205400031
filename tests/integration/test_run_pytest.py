"""The run_pytest fixture: a run forked from the pre-started pytest sees what a new interpreter sees."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

from tests.conftest import RunPytest

PROBE = """
import json, os, sys, threading
from opentelemetry import trace

def test_probe():
    facts = {
        "pid": os.getpid(),
        "argv0": os.path.basename(sys.argv[0]),
        "main": sys.modules["__main__"].__spec__.name,
        "path": sys.path[:2] == [os.getcwd(), os.getcwd()],
        "setting": os.environ.get("TRACECHAIN_PROBE"),
        "utf8": sys.flags.utf8_mode,
        "stdin": sys.stdin.read(),
        "threads": threading.active_count(),
        "provider": type(trace.get_tracer_provider()).__name__,
        "sdk imported": "opentelemetry.sdk" in sys.modules,
    }
    print("\\nprobe", json.dumps(facts))
    print("to stderr", file=sys.stderr)
"""


def probe(result: pytest.RunResult) -> dict[str, Any]:
    result.assert_outcomes(passed=1)
    assert result.errlines == ["to stderr"]
    [facts] = [json.loads(line[len("probe ") :]) for line in result.outlines if line.startswith("probe ")]
    return facts  # type: ignore[no-any-return]


def test_a_forked_run_is_a_new_process_as_a_subprocess_is(
    pytester: pytest.Pytester,
    run_pytest: RunPytest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(PROBE)
    monkeypatch.setenv("TRACECHAIN_PROBE", "seen")
    forked = [probe(run_pytest("-s")) for _ in range(2)]
    assert capsys.readouterr().out.count("fork: pid") == 2  # else this compares new interpreters
    new_interpreter = probe(
        pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:pytest_opentelemetry", "-s")
    )
    assert len({os.getpid(), forked[0].pop("pid"), forked[1].pop("pid"), new_interpreter.pop("pid")}) == 4
    assert forked[0] == forked[1] == new_interpreter
    assert new_interpreter == {
        "argv0": "__main__.py",
        "main": "pytest.__main__",
        "path": True,
        "setting": "seen",
        "utf8": sys.flags.utf8_mode,
        "stdin": "",
        "threads": 1,
        "provider": "ProxyTracerProvider",
        "sdk imported": False,
    }


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--assert=plain"], {}), ([], {"PYTHONUTF8": "0" if sys.flags.utf8_mode else "1"})],
    ids=["assert-plain", "startup-environment"],
)
def test_what_a_fork_cannot_give_gets_a_new_interpreter(
    pytester: pytest.Pytester,
    run_pytest: RunPytest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
) -> None:
    pytester.makepyfile(PROBE)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    facts = probe(run_pytest("-s", *args))
    assert "fork: pid" not in capsys.readouterr().out
    if env:
        assert facts["utf8"] == int(env["PYTHONUTF8"])
