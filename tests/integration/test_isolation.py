"""A test never sees another test's spans: work that runs on after its test stays with it."""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest

SUITE = """
import contextvars, threading
from concurrent.futures import ThreadPoolExecutor
import pytest
from opentelemetry import trace

tracer = trace.get_tracer("app")
go = threading.Event()
done = threading.Event()
pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs")


def late_work():
    go.wait(10)
    with tracer.start_as_current_span("late child"):  # its parent, 'request', has ended
        pass
    done.set()


def late_root():
    go.wait(10)
    tracer.start_span("late root").end()  # no context: a root, in work the first test handed over
    done.set()


# Module-scoped: pytest runs both tests for one way before the next way.
@pytest.fixture(scope="module", params=["thread", "executor", "root in a thread", "root in a job"])
def how(request):
    return request.param


def test_hands_work_over(tracechain, how):
    go.clear()
    done.clear()
    with tracer.start_as_current_span("request"):
        if how == "thread":
            threading.Thread(target=contextvars.copy_context().run, args=(late_work,)).start()
        elif how == "executor":
            pool.submit(contextvars.copy_context().run, late_work)
        elif how == "root in a thread":
            threading.Thread(target=late_root).start()
        else:
            pool.submit(late_root)


def test_next(tracechain, how):
    go.set()  # the first test's work runs on now, while this test runs
    assert done.wait(10)
    with tracer.start_as_current_span("own"):
        pass
    assert [span.name for span in tracechain.spans] == ["own"]
"""


def test_work_that_runs_on_after_its_test_stays_with_it(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = run_pytest("--tracechain-check=fail", "-p", "no:randomly", "-p", "no:xdist")
    result.assert_outcomes(passed=8)
    result.stdout.no_fnmatch_line("*orphan*")
    result.stdout.no_fnmatch_line("*lost context*")
    result.stdout.fnmatch_lines(
        [
            "tracechain: span 'late child' of test_suite.py::test_hands_work_over[[]thread] ended * s after its"
            " test's teardown (work that outlived the test)",
        ]
    )


MEMORY_SUITE = """
import weakref
from opentelemetry import trace

tracer = trace.get_tracer("app")
made = {}
kept = []


def test_makes_spans(tracechain):
    tracer.start_span("request").end()
    made["span"] = weakref.ref(tracechain.spans[0])  # the span as captured


def test_keeps_its_capture(tracechain):
    tracer.start_span("kept").end()
    kept.append(tracechain)  # the user holds on to it: its spans stay readable


def test_later(tracechain):
    assert made["span"]() is None, "the first test's spans are still held"  # freed by reference counting
    assert [span.name for span in kept[0].spans] == ["kept"]
"""


def test_a_finished_tests_spans_are_freed_by_the_next_captured_test(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(test_suite=MEMORY_SUITE)
    result = run_pytest("--tracechain-check=fail", "-p", "no:randomly", "-p", "no:xdist", "-q")
    result.assert_outcomes(passed=3)
