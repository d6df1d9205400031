"""Celery with CeleryInstrumentor, for real: eager mode, a worker thread, a worker process.

A sign-up request sends a welcome mail through a Celery task. The instrumentation's
``apply_async/<task>`` PRODUCER span injects the context into the message headers and the
worker's ``run/<task>`` CONSUMER span extracts it (in eager mode there is no message: the task
runs in the request's context). The broken variants are the ways real projects lose it: the
task handed to a thread pool so the request does not wait, a ``before_task_publish`` handler
that sends only Celery's own headers, and a worker with hand-rolled tracing that starts the
task's span without reading the headers. The workers use the real Redis broker.
"""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest
from tests.integration.stacks.conftest import NO_FINDINGS, assert_no_findings

pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")

USERS = """
import os
from concurrent.futures import ThreadPoolExecutor

from celery import Celery
from opentelemetry import trace
from opentelemetry.trace import SpanKind

app = Celery("users")
app.conf.update(
    broker_url=os.environ.get("TRACECHAIN_REDIS_URL", "memory://"),
    # every key, queue and channel under this test's own prefix
    broker_transport_options={"global_keyprefix": os.environ.get("TRACECHAIN_REDIS_PREFIX", "")},
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
)
tracer = trace.get_tracer("users")
background = ThreadPoolExecutor(thread_name_prefix="mail-queue")


@app.task
def send_welcome(name):
    with tracer.start_as_current_span("mail.Welcome.Send") as span:
        span.set_attribute("user.name", name)


def sign_up(name):
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("service.User.Create"):
            pass
        send_welcome.delay(name)


def sign_up_without_waiting(name):
    \"\"\"Hands the task to a thread, so the request never waits for the broker.\"\"\"
    with tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("service.User.Create"):
            pass
        return background.submit(send_welcome.delay, name)


CELERY_HEADERS = {
    "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
    "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
    "replaced_task_nesting", "stamped_headers", "stamps",
}


def send_only_celery_headers(headers=None, **kwargs):
    \"\"\"before_task_publish: no request metadata leaves the service (traceparent goes too).\"\"\"
    for name in set(headers) - CELERY_HEADERS:
        del headers[name]
"""

# `celery -A users_worker worker`: the worker process, with a tracer provider of its own that
# exports to wherever OTEL_EXPORTER_OTLP_* point (the test's otlp_receiver).
USERS_WORKER = """
import os

from celery import signals
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from users import app

provider = TracerProvider(resource=Resource.create({"service.name": "users-worker"}))
tracer = provider.get_tracer("users-worker")
running = {}


@signals.worker_process_init.connect(weak=False)
def configure_tracing(**kwargs):
    # In the process that runs the tasks, after the pool started, as the instrumentation advises.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if os.environ["USERS_WORKER_TRACING"] == "contrib":
        CeleryInstrumentor().instrument()
    else:
        signals.task_prerun.connect(start_task_span, weak=False)
        signals.task_postrun.connect(end_task_span, weak=False)


def start_task_span(task_id, task, **kwargs):
    # Hand-rolled tracing: the span never looks at the message headers (task.request).
    span = tracer.start_span(f"run/{task.name}", kind=SpanKind.CONSUMER)
    running[task_id] = span, context.attach(trace.set_span_in_context(span))


def end_task_span(task_id, **kwargs):
    span, token = running.pop(task_id)
    context.detach(token)
    span.end()


@signals.worker_shutdown.connect(weak=False)
def flush_spans(**kwargs):
    provider.shutdown()  # the spans still queued are exported before the process exits
"""

CONFTEST = """
import signal
import subprocess
import sys

import pytest
from celery import signals
from celery.contrib.testing.worker import start_worker
from opentelemetry.instrumentation.celery import CeleryInstrumentor

import users


@pytest.fixture(scope="session", autouse=True)
def instrumented():
    CeleryInstrumentor().instrument()
    yield
    CeleryInstrumentor().uninstrument()


@pytest.fixture
def eager():
    users.app.conf.task_always_eager = True
    yield
    users.app.conf.task_always_eager = False


@pytest.fixture
def headers_scrubbed():
    # Connected after the instrumentation's handler: it runs after the context was injected.
    signals.before_task_publish.connect(users.send_only_celery_headers)
    yield
    signals.before_task_publish.disconnect(users.send_only_celery_headers)


@pytest.fixture
def worker_thread():
    with start_worker(users.app, pool="solo", perform_ping_check=False) as worker:
        yield worker


@pytest.fixture
def worker_process(otlp_receiver, tmp_path, request):
    tracing = getattr(request, "param", "contrib")
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "users_worker", "worker", "--pool=solo",
             "--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel=WARNING"],
            env={**otlp_receiver.env, "USERS_WORKER_TRACING": tracing},
            stdout=output, stderr=subprocess.STDOUT,
        )
    yield worker
    worker.send_signal(signal.SIGTERM)  # warm shutdown: worker_shutdown flushes the spans
    assert worker.wait(timeout=30) == 0, log.read_text()
"""


@pytest.fixture
def users(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(users=USERS, users_worker=USERS_WORKER)
    pytester.makeconftest(CONFTEST)
    return pytester


@pytest.fixture
def users_on_redis(users: pytest.Pytester, redis_prefix: str) -> pytest.Pytester:
    """The app on the real Redis broker, under this test's key prefix (the run reads both from the env)."""
    return users


def dropped_carrier(test: str) -> list[str]:
    """The report of a ``run/users.send_welcome`` span that did not continue the task's message."""
    return [
        f"*_ {test} _*",
        "1 broken trace chain:",
        "[[]dropped carrier] 'run/users.send_welcome' is a consumer root span with neither a parent nor a"
        " link, although 'apply_async/users.send_welcome' (producer) *: the consumer did not extract what"
        " was injected",
        "  fix: extract the context from the incoming headers and start the span with"
        " context=opentelemetry.propagate.extract(headers) (or links=[[]Link(...)] for a batch)",
        "",
        "captured in this test:",
    ]


# -- eager mode (task_always_eager): no message, the task runs in the caller's context ---------


def test_eager_task_runs_in_the_request_trace(users: pytest.Pytester, run_pytest: RunPytest) -> None:
    users.makepyfile(
        """
        import users
        from pytest_tracechain import assert_child_of, assert_trace_tree

        def test_sign_up(tracechain, eager):
            users.sign_up("ada")
            assert_child_of("run/users.send_welcome", "POST /users")
            assert_trace_tree('''
                POST /users [server]
                  service.User.Create
                  run/users.send_welcome [consumer]
                    mail.Welcome.Send
            ''')
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=1)


def test_eager_requests_one_after_another(users: pytest.Pytester, run_pytest: RunPytest) -> None:
    # Eager apply_async takes a producer from kombu's pool (a LifoQueue) and puts it back while
    # 'POST /users' is current; the next request takes it in the same thread: no hand-off.
    users.makepyfile(
        """
        import users

        def test_sign_up_twice(tracechain, eager):
            users.sign_up("ada")
            users.sign_up("grace")
            assert len(tracechain.traces()) == 2

        def test_sign_up_again(tracechain, eager):
            users.sign_up("ada")
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=2)


def test_eager_task_handed_to_a_thread_pool(users: pytest.Pytester, run_pytest: RunPytest) -> None:
    users.makepyfile(
        """
        import users

        def test_sign_up(tracechain, eager):
            users.sign_up_without_waiting("ada").result(timeout=10)
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_sign_up _*",
            "1 broken trace chain:",
            "[[]lost context] 'run/users.send_welcome' started a new trace in thread 'mail-queue_0', but the"
            " work was handed over through an executor job* from thread 'MainThread' while 'POST /users'"
            " was current: the context did not cross the boundary",
            "  fix: submit the job with contextvars.copy_context().run (executor.submit(ctx.run, fn)), or use"
            " the OpenTelemetry threading instrumentation",
            "",
            "captured in this test:",
            "trace * · 2 spans",
            "└─ POST /users [[]server] · * · thread 'MainThread'",
            "   └─ service.User.Create · * · thread 'MainThread'",
            "trace * · 2 spans",
            "└─ run/users.send_welcome [[]consumer] · * · thread 'mail-queue_0'  ← lost context",
            "   └─ mail.Welcome.Send · * · thread 'mail-queue_0'",
        ],
        consecutive=True,
    )


# -- a worker thread (celery.contrib.testing.worker.start_worker) on the Redis broker ----------


def test_worker_thread_continues_the_trace(users_on_redis: pytest.Pytester, run_pytest: RunPytest) -> None:
    users_on_redis.makepyfile(
        """
        import users
        from pytest_tracechain import assert_child_of, assert_remote_parent, assert_trace_tree

        def test_sign_up(tracechain, worker_thread):
            users.sign_up("ada")
            [run] = tracechain.wait_for("run/users.send_welcome", timeout=10)
            assert_child_of(run, "apply_async/users.send_welcome")
            assert_remote_parent(run)  # extracted from the message headers
            assert tracechain.origin(run).thread_name != "MainThread"
            assert_trace_tree('''
                POST /users [server]
                  service.User.Create
                  apply_async/users.send_welcome [producer]
                    run/users.send_welcome [consumer]
                      mail.Welcome.Send
            ''')
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=1)


def test_worker_thread_gets_scrubbed_headers(users_on_redis: pytest.Pytester, run_pytest: RunPytest) -> None:
    users_on_redis.makepyfile(
        """
        import users

        def test_sign_up(tracechain, headers_scrubbed, worker_thread):
            users.sign_up("ada")
            tracechain.wait_for("run/users.send_welcome", timeout=10)
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(dropped_carrier("test_sign_up"), consecutive=True)
    result.stdout.fnmatch_lines(
        [
            "trace * · 3 spans",
            "└─ POST /users [[]server] · * · thread 'MainThread'",
            "   ├─ service.User.Create · * · thread 'MainThread'",
            "   └─ apply_async/users.send_welcome [[]producer] · * · thread 'MainThread'",
            "trace * · 2 spans",
            "└─ run/users.send_welcome [[]consumer] · * · thread *  ← dropped carrier",
            "   └─ mail.Welcome.Send · * · thread *",
        ],
        consecutive=True,
    )


def test_worker_thread_task_that_ends_in_teardown(
    users_on_redis: pytest.Pytester, run_pytest: RunPytest
) -> None:
    # The test returns while the task still runs: it ends in start_worker's teardown, which
    # waits for the worker thread. Spans that end during teardown are analysed then (issue 10).
    users_on_redis.makepyfile(
        """
        import threading

        import pytest
        from opentelemetry.trace import SpanKind

        import users

        picked_up, release = threading.Event(), threading.Event()

        @users.app.task(name="users.slow_welcome")
        def slow_welcome(name):
            picked_up.set()
            release.wait(10)
            users.send_welcome(name)

        @pytest.fixture
        def released_at_teardown(worker_thread):
            yield
            release.set()  # before start_worker's teardown joins the worker thread

        def test_sign_up(tracechain, headers_scrubbed, released_at_teardown):
            with users.tracer.start_as_current_span("POST /users", kind=SpanKind.SERVER):
                slow_welcome.delay("ada")
            assert picked_up.wait(10)
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_sign_up _*",
            "1 broken trace chain:",
            "[[]dropped carrier] 'run/users.slow_welcome' is a consumer root span with neither a parent nor"
            " a link, although 'apply_async/users.slow_welcome' (producer) *: the consumer did not extract"
            " what was injected",
            "  fix: extract the context from the incoming headers*",
            "",
            "captured in this test:",
            "trace * · 2 spans",
            "└─ POST /users [[]server] · * · thread 'MainThread'",
            "   └─ apply_async/users.slow_welcome [[]producer] · * · thread 'MainThread'",
            "trace * · 2 spans",
            "└─ run/users.slow_welcome [[]consumer] · * · thread *  ← dropped carrier",
            "   └─ mail.Welcome.Send · * · thread *",
        ],
        consecutive=True,
    )


# -- a worker process (`celery -A users_worker worker`) on the Redis broker, exporting over OTLP --


def test_worker_process_continues_the_trace(users_on_redis: pytest.Pytester, run_pytest: RunPytest) -> None:
    users_on_redis.makepyfile(
        """
        import users
        from pytest_tracechain import assert_child_of, assert_remote_parent, assert_trace_tree

        def test_sign_up(tracechain, worker_process):
            users.sign_up("ada")
            [run] = tracechain.wait_for("run/users.send_welcome", timeout=20)
            tracechain.wait_for("mail.Welcome.Send", timeout=10)
            assert_child_of(run, "apply_async/users.send_welcome")
            assert_remote_parent(run)
            assert tracechain.origin(run).pid == worker_process.pid
            assert_trace_tree('''
                POST /users [server]
                  service.User.Create
                  apply_async/users.send_welcome [producer]
                    run/users.send_welcome [consumer]
                      mail.Welcome.Send
            ''')
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=1)


def test_worker_process_gets_scrubbed_headers(users_on_redis: pytest.Pytester, run_pytest: RunPytest) -> None:
    users_on_redis.makepyfile(
        """
        import users

        def test_sign_up(tracechain, headers_scrubbed, worker_process):
            users.sign_up("ada")
            tracechain.wait_for("mail.Welcome.Send", timeout=20)
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(dropped_carrier("test_sign_up"), consecutive=True)
    result.stdout.fnmatch_lines(
        [
            "└─ run/users.send_welcome [[]consumer] · * · pid *  ← dropped carrier",
            "   └─ mail.Welcome.Send · * · pid *",
        ],
        consecutive=True,
    )


def test_worker_process_with_hand_rolled_tracing(
    users_on_redis: pytest.Pytester, run_pytest: RunPytest
) -> None:
    users_on_redis.makepyfile(
        """
        import pytest
        import users

        @pytest.mark.parametrize("worker_process", ["hand-rolled"], indirect=True)
        def test_sign_up(tracechain, worker_process):
            users.sign_up("ada")
            tracechain.wait_for("mail.Welcome.Send", timeout=20)
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(dropped_carrier("test_sign_up?hand-rolled?"), consecutive=True)
    result.stdout.fnmatch_lines(
        [
            "└─ run/users.send_welcome [[]consumer] · * · pid *  ← dropped carrier",
            "   └─ mail.Welcome.Send · * · pid *",
        ],
        consecutive=True,
    )
