"""Pytest runs forked from one pre-started pytest, for the pytester tests.

A small ``python -m pytest`` run spends most of its second starting an
interpreter and importing pytest, its plugins and what they import during a
session (hypothesis alone takes half a second). The server pays that once: it
runs a session that collects nothing, then forks one child per run. Each child
is a process of its own (its own global tracer provider, threads and exit) and
starts from a state no test has touched: the server never runs a test, sets no
tracer provider and has no threads, so forking it is safe.

``ForkServer.popen`` stands in for ``Pytester.popen``, so
``Pytester.runpytest_subprocess`` still builds the command line, the output
files, the timeout and the ``RunResult``. A run the server cannot start as a
new interpreter would (another start-up environment, ``--assert``, plugin
autoload off, another command) gets a new interpreter.

Run as a script, this module is the server.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

# Before forking, the server runs a session that collects nothing in its empty
# working directory: it imports what every run imports.
WARM_UP = ("-q", "--collect-only", "-p", "no:cacheprovider", "-p", "no:pytest_opentelemetry")

# The interpreter reads these at start-up; a run whose environment changes one
# needs an interpreter of its own (PYTHONPATH is taken care of).
STARTUP_VARIABLES = ("PYTHON", "LANG", "LC_", "TZ")


def _serve(requests_fd: int, replies_fd: int) -> None:
    if not getattr(sys.flags, "safe_path", False):
        del sys.path[0]  # this script's directory; a child puts its working directory there
    pytest.main([*WARM_UP, os.getcwd()])
    with os.fdopen(requests_fd, "rb", buffering=0) as requests, os.fdopen(replies_fd, "wb", 0) as replies:
        while line := requests.readline():
            # A child would write out what the server left buffered.
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                requests.close()
                replies.close()
                _run(json.loads(line))  # and exit as `python -m pytest` exits
            replies.write(json.dumps({"pid": pid}).encode() + b"\n")
            _, status = os.waitpid(pid, 0)
            replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


def _run(request: dict[str, Any]) -> None:
    """In the child: become `python -m pytest ARGS` started in ``cwd`` with ``env``."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[:0] = [*([] if getattr(sys.flags, "safe_path", False) else [request["cwd"]]), *request["path"]]
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    importlib.invalidate_caches()
    sys.argv = ["-m", *request["args"]]
    runpy.run_module("pytest", run_name="__main__", alter_sys=True)


class ForkedProcess:
    """The part of ``subprocess.Popen`` that ``Pytester.run`` uses."""

    stdin = None

    def __init__(self, server: ForkServer, pid: int, args: Sequence[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self._server = server

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = int(self._server._reply(timeout, self.args)["returncode"])
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


class ForkServer:
    """One pre-started pytest per test process (each xdist worker has its own)."""

    def __init__(self, workdir: Path) -> None:
        self._log = workdir / "server.log"
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        with self._log.open("ab") as log:
            self._server = subprocess.Popen(
                [sys.executable, __file__, str(requests_read), str(replies_write)],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(requests_read, replies_write),
            )
        os.close(requests_read)
        os.close(replies_write)
        self._requests = os.fdopen(requests_write, "wb", buffering=0)
        self._replies = os.fdopen(replies_read, "rb", buffering=0)
        self._startup = startup_settings(os.environ)
        self._pythonpath = os.environ.get("PYTHONPATH", "")
        self._running: ForkedProcess | None = None

    def popen(
        self,
        cmdargs: Sequence[str],
        stdout: IO[str],
        stderr: IO[str],
        stdin: object,
        *,
        fallback: Callable[..., subprocess.Popen[bytes]],
        **kw: Any,
    ) -> ForkedProcess | subprocess.Popen[bytes]:
        """``Pytester.popen``: a forked child for ``python -mpytest``, else ``fallback`` (a new interpreter)."""
        # The environment Pytester.popen gives its process.
        env = os.environ.copy()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH", "")]))
        path = self._path_entries_for(env)
        forkable = (
            tuple(cmdargs[:2]) == (sys.executable, "-mpytest")
            # the server imported the plugin through the assertion-rewriting hook
            and not any(arg.startswith("--assert") for arg in cmdargs)
            and not env.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
            and stdin is pytest.Pytester.CLOSE_STDIN
            # older pytest passes close_fds=True: a child has no other fds
            and kw in ({}, {"close_fds": True})
            and path is not None
        )
        if not forkable:
            return fallback(cmdargs, stdout=stdout, stderr=stderr, stdin=stdin, **kw)
        if self._running is not None:  # a run its test abandoned
            self._running.kill()
            self._running.wait()
        request = {
            "cwd": os.getcwd(),
            "env": env,
            "path": path,
            "args": list(cmdargs[2:]),
            "stdout": stdout.name,
            "stderr": stderr.name,
        }
        try:
            self._requests.write(json.dumps(request).encode() + b"\n")
        except BrokenPipeError:
            self._died()
        process = ForkedProcess(self, int(self._reply(None, cmdargs)["pid"]), cmdargs)
        print(f"   fork: pid {process.pid}, of the pre-started pytest (pid {self._server.pid})")
        self._running = process
        return process

    def close(self) -> None:
        if self._running is not None:
            self._running.kill()
            self._running.wait()
        self._requests.close()  # the server reads its end of input and exits
        try:
            self._server.wait(timeout=30)
        finally:
            self._server.kill()
            self._replies.close()

    def _path_entries_for(self, env: dict[str, str]) -> list[str] | None:
        """The PYTHONPATH entries in front of the server's own; None if the server cannot give ``env``."""
        if startup_settings(env) != self._startup:
            return None
        entries = env["PYTHONPATH"].split(os.pathsep)
        own = self._pythonpath.split(os.pathsep) if self._pythonpath else []
        if own and entries[-len(own) :] != own:
            return None
        return entries[: len(entries) - len(own)]

    def _reply(self, timeout: float | None, args: Sequence[str]) -> dict[str, Any]:
        """The server's next reply; unbuffered, so ``select`` sees all that is not read yet."""
        if not select.select([self._replies], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(list(args), timeout or 0)
        line = self._replies.readline()
        if not line:
            self._died()
        reply: dict[str, Any] = json.loads(line)
        if "returncode" in reply:
            self._running = None
        return reply

    def _died(self) -> None:
        code = self._server.wait()
        log = self._log.read_text(errors="replace")
        raise RuntimeError(f"the pre-started pytest exited with {code}; its log:\n{log[-4000:]}")


def startup_settings(env: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in env.items()
        if name.startswith(STARTUP_VARIABLES) and name != "PYTHONPATH"
    }


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
