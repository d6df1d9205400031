"""Stress: many threads at once, and work that leaks across later tests.

Marked ``stress`` (``-m "not stress"`` leaves them out of a quick run); CI runs them.
"""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest

pytestmark = pytest.mark.stress


def test_32_threads_of_2000_spans_are_all_captured_with_parents_and_origins(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        import contextvars, threading
        from opentelemetry import trace

        tracer = trace.get_tracer("stress")
        THREADS, SPANS = 32, 2000

        def work(number, ready):
            ready.wait()
            with tracer.start_as_current_span(f"worker {number}"):
                for _ in range(SPANS - 1):
                    tracer.start_span("step").end()

        def test_threads(tracechain):
            ready = threading.Barrier(THREADS)
            with tracer.start_as_current_span("request"):
                threads = [
                    threading.Thread(target=contextvars.copy_context().run, args=(work, n, ready), name=f"w{n}")
                    for n in range(THREADS)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            spans = tracechain.spans
            assert len(spans) == THREADS * SPANS + 1
            by_id = {span.context.span_id: span for span in spans}
            for span in spans:
                if span.name == "step":
                    parent = by_id[span.parent.span_id]
                    assert parent.name.startswith("worker ")
                    assert tracechain.origin(span).thread_name == f"w{parent.name.split()[1]}"
                elif span.name.startswith("worker "):
                    assert by_id[span.parent.span_id].name == "request"
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(passed=1)


def test_a_thread_that_leaks_across_five_later_tests_stays_with_its_test(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        import contextvars, threading
        import pytest
        from opentelemetry import trace

        tracer = trace.get_tracer("stress")
        stop = threading.Event()
        stopped = threading.Event()
        made = threading.Semaphore(0)

        def poll():
            # Runs on after its test: children of an open span, children of ended ones, and roots.
            with tracer.start_as_current_span("poll loop"):
                while not stop.is_set():
                    with tracer.start_as_current_span("message"):
                        tracer.start_span("store").end()
                    made.release()
            stopped.set()

        def test_starts_a_consumer(tracechain):
            with tracer.start_as_current_span("start consumer"):
                threading.Thread(target=contextvars.copy_context().run, args=(poll,), daemon=True).start()

        @pytest.mark.parametrize("n", range(5))
        def test_later(tracechain, n):
            for _ in range(200):  # the consumer keeps making spans while this test runs
                assert made.acquire(timeout=10)
            with tracer.start_as_current_span("own work"):
                pass
            assert [s.name for s in tracechain.spans] == ["own work"]
            if n == 4:
                stop.set()
                assert stopped.wait(10)
        """
    )
    result = run_pytest("--tracechain-check=fail", "-p", "no:randomly")
    # The consumer's loop is still open after its test: that test errors at teardown (unended);
    # the five later tests see none of its spans.
    result.assert_outcomes(passed=6, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_starts_a_consumer*"])
    text = result.stdout.str()
    assert "orphan" not in text
    assert "lost context" not in text
    # One summary line for the leaking test, however many of its spans ended late.
    leak_lines = [
        line for line in result.stdout.lines if line.startswith("tracechain: ") and "teardown" in line
    ]
    assert len(leak_lines) == 1, leak_lines
    result.stdout.fnmatch_lines(
        [
            "tracechain: * spans of test_a_thread_that_leaks_across_five_later_tests_stays_with_its_test.py"
            "::test_starts_a_consumer ended after its teardown, the last * s later (the first: *; work"
            " that outlived the test)",
        ]
    )
