"""TraceCapture: what the `tracechain` fixture holds and how spans are attributed."""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest


def test_spans_open_spans_and_clear(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_it(tracechain):
            with tracer.start_as_current_span("outer"):
                with tracer.start_as_current_span("inner"):
                    pending = tracer.start_span("pending")
                    assert [s.name for s in tracechain.open_spans] == ["outer", "inner", "pending"]
            assert [s.name for s in tracechain.spans] == ["inner", "outer"]
            assert [s.name for s in tracechain.open_spans] == ["pending"]
            copy = tracechain.spans
            copy.clear()
            assert len(tracechain.spans) == 2
            tracechain.clear()
            assert tracechain.spans == []
            pending.end()
            assert [s.name for s in tracechain.spans] == ["pending"]
            assert tracechain.open_spans == []
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_find_filters(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import re
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        tracer = trace.get_tracer("app")

        def test_it(tracechain):
            with tracer.start_as_current_span("GET /items/42", kind=SpanKind.SERVER,
                                              attributes={"http.route": "/items/{id}", "ids": [1, 2]}) as s:
                tracer.start_span("db.query", kind=SpanKind.CLIENT, attributes={"db.system": "sqlite"}).end()
            tracer.start_span("other").end()
            trace_id = s.get_span_context().trace_id

            assert [x.name for x in tracechain.find("db.query")] == ["db.query"]
            assert tracechain.find("db") == []
            assert [x.name for x in tracechain.find(re.compile(r"^GET /items/\\d+$"))] == ["GET /items/42"]
            assert [x.name for x in tracechain.find(kind="client")] == ["db.query"]
            assert [x.name for x in tracechain.find(kind="SERVER")] == ["GET /items/42"]
            assert [x.name for x in tracechain.find(kind=SpanKind.SERVER)] == ["GET /items/42"]
            assert {x.name for x in tracechain.find(trace_id=trace_id)} == {"db.query", "GET /items/42"}
            assert len(tracechain.find(trace_id=format(trace_id, "032x"))) == 2
            assert [x.name for x in tracechain.find(attributes={"db.system": "sqlite"})] == ["db.query"]
            assert [x.name for x in tracechain.find(attributes={"ids": [1, 2]})] == ["GET /items/42"]
            assert tracechain.find(attributes={"db.system": "postgresql"}) == []
            assert tracechain.find("db.query", kind="server") == []
            assert len(tracechain.find()) == 3
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_filter_arguments_are_checked(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_name(tracechain):
            with pytest.raises(TypeError, match=r"^TraceCapture\\.find\\(\\) argument 'name' must be a str or a compiled regex, not int$"):
                tracechain.find(42)

        def test_kind(tracechain):
            with pytest.raises(ValueError, match="kind='serve' is not a span kind; use a SpanKind or one of: internal, server, client, producer, consumer"):
                tracechain.find(kind="serve")
            with pytest.raises(TypeError, match=r"^TraceCapture\\.one\\(\\) argument 'kind' must be a SpanKind or its name, not int$"):
                tracechain.one(kind=1)

        def test_trace_id(tracechain):
            with pytest.raises(ValueError, match="trace_id='abc' is not a 32-digit hex trace id"):
                tracechain.find(trace_id="abc")
            with pytest.raises(TypeError, match=r"^TraceCapture\\.find\\(\\) argument 'trace_id' must be an int or a 32-digit hex string, not float$"):
                tracechain.find(trace_id=1.0)

        def test_attributes(tracechain):
            with pytest.raises(TypeError, match=r"^TraceCapture\\.find\\(\\) argument 'attributes' must be a mapping, not list$"):
                tracechain.find(attributes=[("a", 1)])

        def test_wait_for(tracechain):
            with pytest.raises(TypeError, match=r"^TraceCapture\\.wait_for\\(\\) argument 'count' must be an int, not str$"):
                tracechain.wait_for("x", count="2")
            with pytest.raises(ValueError, match=r"^TraceCapture\\.wait_for\\(\\) argument 'count' must be at least 1, not 0$"):
                tracechain.wait_for("x", count=0)
            with pytest.raises(TypeError, match=r"^TraceCapture\\.wait_for\\(\\) argument 'timeout' must be a number of seconds, not str$"):
                tracechain.wait_for("x", timeout="5")

        def test_origin(tracechain):
            with pytest.raises(TypeError, match=r"^TraceCapture\\.origin\\(\\) argument 'span' must be a span \\(ReadableSpan\\), a SpanContext or a span name, not int$"):
                tracechain.origin(1)
        """
    )
    run_pytest().assert_outcomes(passed=6)


def test_one_reports_what_was_captured(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_none(tracechain):
            with tracer.start_as_current_span("request"):
                tracer.start_span("db.query").end()
            tracechain.one("job")

        def test_two(tracechain):
            tracer.start_span("job").end()
            tracer.start_span("job").end()
            tracechain.one("job", kind="internal")

        def test_found(tracechain):
            tracer.start_span("job").end()
            assert tracechain.one("job").name == "job"
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: expected exactly one span named 'job', found none",
            "E   ",
            "E   captured in this test:",
            "E   trace * · 2 spans",
            "E   └─ request · * · thread 'MainThread'",
            "E      └─ db.query · * · thread 'MainThread'",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: expected exactly one span named 'job' with kind=internal, found 2",
            "*",
            "*",
            "E   trace * · 1 span",
            "E   └─ job · * · thread 'MainThread'  ← match",
            "E   trace * · 1 span",
            "E   └─ job · * · thread 'MainThread'  ← match",
        ],
        consecutive=True,
    )
    # The traceback ends at the user's line, not inside the plugin.
    result.stdout.fnmatch_lines(
        ["test_one_reports_what_was_captured.py:8: in test_none", '    tracechain.one("job")']
    )
    result.stdout.no_fnmatch_line("*_capture.py*")


def test_wait_for_wakes_on_span_end(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    """Each span ends only once wait_for is blocked; each wait must end by a notification, not a timeout."""
    pytester.makepyfile(
        """
        import queue, threading, time
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_it(tracechain, monkeypatch):
            main = threading.get_ident()
            blocked = queue.Queue()  # a token each time the main thread starts waiting on a condition
            woken_by = []  # what each of those waits returned: True if notified, False if it timed out
            original_wait = threading.Condition.wait

            def wait(self, timeout=None):
                if threading.get_ident() != main:
                    return original_wait(self, timeout)
                blocked.put(timeout)  # the waiter holds the lock until it waits: no notification is lost
                notified = original_wait(self, timeout)
                woken_by.append(notified)
                return notified

            jobs = [tracer.start_span("job") for _ in range(3)]
            ended_while_blocked = []

            def end_each_once_the_waiter_is_blocked():
                for job in jobs:
                    try:
                        blocked.get(timeout=10)
                        ended_while_blocked.append(True)
                    except queue.Empty:
                        ended_while_blocked.append(False)
                    job.end()

            thread = threading.Thread(target=end_each_once_the_waiter_is_blocked)
            thread.start()
            monkeypatch.setattr(threading.Condition, "wait", wait)  # after start(), which waits for the thread
            started = time.monotonic()
            found = tracechain.wait_for("job", count=3, timeout=60)
            elapsed = time.monotonic() - started
            monkeypatch.undo()
            thread.join()
            assert [s.name for s in found] == ["job", "job", "job"]
            assert ended_while_blocked == [True, True, True]  # wait_for waited on a condition each time
            assert woken_by == [True, True, True]  # each span end woke it: no polling, no deadline check
            assert elapsed < 30
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_wait_for_timeout_shows_open_spans(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_it(tracechain):
            tracer.start_span("done").end()
            pending = tracer.start_span("job")
            try:
                tracechain.wait_for("job", count=2, timeout=0.05)
            finally:
                pending.end()
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   pytest_tracechain.TraceAssertionError: timed out after 0.05 s waiting for 2 finished spans named 'job';"
            " 0 finished, 1 matching still open",
            "E   ",
            "E   captured in this test:",
            "E   trace * · 1 span",
            "E   └─ done · * · thread 'MainThread'",
            "E   trace * · 1 span",
            "E   └─ job · open · thread 'MainThread'  ← match, still open",
        ],
        consecutive=True,
    )


def test_traces_and_roots(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_it(tracechain):
            with tracer.start_as_current_span("first") as first:
                tracer.start_span("first.child").end()
            with tracer.start_as_current_span("second"):
                tracer.start_span("second.child").end()
            traces = tracechain.traces()
            assert len(traces) == 2
            assert [s.name for s in traces[0].spans] == ["first", "first.child"]
            assert [s.name for s in traces[0].roots] == ["first"]
            assert traces[0].trace_id == first.get_span_context().trace_id
            assert traces[0].trace_id_hex == format(first.get_span_context().trace_id, "032x")
            assert [s.name for s in traces[1].roots] == ["second"]
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_origin_records_thread_task_and_process(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import asyncio, os, threading
        from concurrent.futures import ThreadPoolExecutor
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext
        import pytest
        from pytest_tracechain import TraceAssertionError

        tracer = trace.get_tracer("app")

        def test_it(tracechain):
            tracer.start_span("main").end()
            thread = threading.Thread(target=lambda: tracer.start_span("in-thread").end(), name="worker-1")
            thread.start()
            thread.join()
            with ThreadPoolExecutor(thread_name_prefix="pool") as pool:
                pool.submit(lambda: tracer.start_span("in-pool").end()).result()

            async def job():
                tracer.start_span("in-task").end()

            async def main():
                tracer.start_span("in-main-task").end()
                await asyncio.create_task(job(), name="background-job")

            asyncio.run(main())

            main_origin = tracechain.origin(tracechain.one("main"))
            assert (main_origin.pid, main_origin.thread_name, main_origin.task_name) == (
                os.getpid(), "MainThread", None)
            assert main_origin.thread_id == threading.main_thread().ident
            assert tracechain.origin(tracechain.one("in-thread")).thread_name == "worker-1"
            assert tracechain.origin(tracechain.one("in-pool")).thread_name.startswith("pool_")
            task_origin = tracechain.origin(tracechain.one("in-task"))
            assert (task_origin.thread_name, task_origin.task_name) == ("MainThread", "background-job")
            assert tracechain.origin(tracechain.one("in-main-task")).task_name != "background-job"
            # A SpanContext or a name works too.
            assert tracechain.origin(tracechain.one("main").context) is main_origin
            assert tracechain.origin("main") is main_origin
            # Origins are shared records, not one object per span.
            tracer.start_span("main-again").end()
            assert tracechain.origin(tracechain.one("main-again")) is main_origin

            # A renamed thread is seen under its new name from then on.
            def renamed():
                tracer.start_span("before rename").end()
                threading.current_thread().name = "renamed-worker"
                tracer.start_span("after rename").end()

            thread = threading.Thread(target=renamed, name="original-name")
            thread.start()
            thread.join()
            assert tracechain.origin("before rename").thread_name == "original-name"
            assert tracechain.origin("after rename").thread_name == "renamed-worker"

            foreign = SpanContext(trace_id=1, span_id=2, is_remote=False)
            with pytest.raises(TraceAssertionError, match="span 0000000000000002 was not captured in this test"):
                tracechain.origin(foreign)
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_render_shows_the_tree(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import threading
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        tracer = trace.get_tracer("app")

        def test_it(tracechain):
            with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
                with tracer.start_as_current_span("service.User.Create") as span:
                    span.set_status(Status(StatusCode.ERROR, "duplicate user"))
                with tracer.start_as_current_span("user.events send", kind=SpanKind.PRODUCER):
                    pass
                tracer.start_span("still running")
            thread = threading.Thread(target=lambda: tracer.start_span("lost").end(), name="worker")
            thread.start()
            thread.join()
            print()
            print(tracechain.render())
        """
    )
    result = run_pytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "trace * · 4 spans",
            "└─ GET /hello [[]server] · * · thread 'MainThread'",
            "   ├─ service.User.Create · * · thread 'MainThread' · ERROR: duplicate user",
            "   ├─ user.events send [[]producer] · * · thread 'MainThread'",
            "   └─ still running · open · thread 'MainThread'",
            "trace * · 1 span",
            "└─ lost · * · thread 'worker'",
        ],
        consecutive=True,
    )


def test_two_tests_never_see_each_others_spans(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import threading
        from opentelemetry import trace

        tracer = trace.get_tracer("app")
        first_test_done = threading.Event()
        late_child_started = threading.Event()
        spans_of_first = {}

        def background(parent_span):
            first_test_done.wait()
            # The second test is running now: this child of the first test's span
            # and the end of its still-open span belong to the first test.
            ctx = trace.set_span_in_context(parent_span)
            tracer.start_span("late child", context=ctx).end()
            parent_span.end()
            late_child_started.set()

        def test_first(tracechain):
            parent = tracer.start_span("outlives its test")
            spans_of_first["capture"] = tracechain
            threading.Thread(target=background, args=(parent,), daemon=True).start()
            with tracer.start_as_current_span("first"):
                pass

        def test_second(tracechain):
            first_test_done.set()
            assert late_child_started.wait(10)
            with tracer.start_as_current_span("second"):
                pass
            assert [s.name for s in tracechain.spans] == ["second"]
            assert tracechain.open_spans == []
            names = [s.name for s in spans_of_first["capture"].spans]
            assert names == ["first", "late child", "outlives its test"]

        def test_third(tracechain):
            assert tracechain.spans == []
        """
    )
    run_pytest().assert_outcomes(passed=3)


def test_capture_is_thread_safe(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import threading
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_many_threads(tracechain):
            barrier = threading.Barrier(32)

            def worker(n):
                barrier.wait()
                for i in range(200):
                    with tracer.start_as_current_span(f"root-{n}"):
                        with tracer.start_as_current_span(f"child-{n}"):
                            pass

            threads = [threading.Thread(target=worker, args=(n,), name=f"w{n}") for n in range(32)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            spans = tracechain.spans
            assert len(spans) == 32 * 200 * 2
            assert tracechain.open_spans == []
            for span in spans:
                n = span.name.split("-")[1]
                assert tracechain.origin(span).thread_name == f"w{n}"
            assert len(tracechain.traces()) == 32 * 200
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_fixture_requested_dynamically(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        def test_it(request):
            capture = request.getfixturevalue("tracechain")
            trace.get_tracer("app").start_span("late start").end()
            assert [s.name for s in capture.spans] == ["late start"]
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_spans_of_fixtures_are_captured(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        @pytest.fixture
        def server():
            with tracer.start_as_current_span("server start"):
                pass
            yield
            tracer.start_span("server stop").end()

        def test_it(server, tracechain):
            tracer.start_span("call").end()
            assert [s.name for s in tracechain.spans] == ["server start", "call"]
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_a_fixture_span_current_during_the_test_stays_captured(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_tracechain import assert_child_of, assert_root

        tracer = trace.get_tracer("app")

        @pytest.fixture
        def session_span():
            with tracer.start_as_current_span("user session"):
                yield

        def test_it(session_span, tracechain):
            tracer.start_span("request").end()
            assert_child_of("request", "user session")
            assert_root("user session")
            assert [s.name for s in tracechain.open_spans] == ["user session"]
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_a_fault_in_the_capture_never_reaches_the_code_under_test(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from pytest_tracechain._capture import Router

        def test_it(tracechain, monkeypatch, caplog):
            def broken(self):
                raise RuntimeError("boom")

            monkeypatch.setattr(Router, "_origin", broken)
            with trace.get_tracer("app").start_as_current_span("work") as span:
                assert span.is_recording()
            assert "internal error in the span processor's on_start" in caplog.text
            assert "RuntimeError: boom" in caplog.text
            assert tracechain.find("work") == []
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_marker_alone_captures(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        @pytest.mark.tracechain
        def test_it():
            with trace.get_tracer("app").start_as_current_span("x") as span:
                assert span.is_recording()
        """
    )
    run_pytest().assert_outcomes(passed=1)
