"""gevent: the plugin under ``python -m gevent.monkey --module pytest``, where threads are greenlets.

Monkey-patched, ``threading.Thread`` is gevent's subclass and greenlets start
with an empty context. Correct code (``gevent.spawn(ctx.run, fn)``, a thread
started with ``copy_context().run``) is never flagged; ``gevent.spawn(fn)`` and
a plain thread are caught, naming the hand-off.
"""

from __future__ import annotations

import sys

import pytest

TESTS = """
import contextvars
import gevent
import threading
from opentelemetry import trace

tracer = trace.get_tracer("app")


def create_user():
    with tracer.start_as_current_span("service.User.Create"):
        pass


def test_spawn_broken(tracechain):
    with tracer.start_as_current_span("GET /hello"):
        gevent.spawn(create_user).join()


def test_spawn_correct(tracechain):
    with tracer.start_as_current_span("GET /hello"):
        gevent.spawn(contextvars.copy_context().run, create_user).join()
    assert tracechain.one("service.User.Create").parent.span_id == tracechain.one("GET /hello").context.span_id


def test_thread_broken(tracechain):
    with tracer.start_as_current_span("GET /hello"):
        worker = threading.Thread(target=create_user, name="user-worker")
        worker.start()
        worker.join()


def test_thread_correct(tracechain):
    with tracer.start_as_current_span("GET /hello"):
        worker = threading.Thread(target=contextvars.copy_context().run, args=(create_user,))
        worker.start()
        worker.join()
"""


def line(code: str) -> int:
    """The line of the test module (TESTS, as pytester writes it) where ``code`` first appears."""
    return next(n for n, text in enumerate(TESTS.lstrip("\n").splitlines(), 1) if code in text)


def test_gevent_monkey_patched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_greenlets=TESTS)
    result = pytester.run(
        sys.executable, "-m", "gevent.monkey", "--module", "pytest", "--tracechain-check=fail",
        "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:pytest_opentelemetry",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_spawn_broken _*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace in thread 'Dummy-*', but the work was"
            f" handed over through a greenlet (gevent.spawn) at test_greenlets.py:{line('gevent.spawn(create_user)')} from thread 'MainThread'"
            " while 'GET /hello' was current: the context did not cross the boundary",
            "  fix: greenlets start with an empty context: spawn with"
            " gevent.spawn(contextvars.copy_context().run, fn)",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_thread_broken _*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace in thread 'user-worker', but the work was"
            f" handed over through a thread at test_greenlets.py:{line('worker.start()')} from thread 'MainThread' while 'GET /hello'"
            " was current: the context did not cross the boundary",
        ],
        consecutive=True,
    )
    assert "KeyError" not in result.stdout.str()
