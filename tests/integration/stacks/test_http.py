"""Web stacks for real: Flask and FastAPI handlers that hand work over, HTTP clients calling a real server.

Each scenario runs the framework, its OpenTelemetry instrumentation and (for
the clients) a real WSGI server on 127.0.0.1 in a pytest run of its own, and
checks what a user of ``--tracechain-check=fail`` reads.
"""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest
from tests.integration.stacks.conftest import NO_FINDINGS, assert_no_findings

FAIL_MODE_LAST_LINE = "(pytest-tracechain's chain check, fail mode: see --tracechain-check and the marker)"
THREAD_FIX = "  fix: start the thread with contextvars.copy_context().run*"
EXECUTOR_FIX = "  fix: submit the job with contextvars.copy_context().run*"

# --- Flask ------------------------------------------------------------------------------------------

FLASK_APP = """
import contextvars, threading
from concurrent.futures import ThreadPoolExecutor

from flask import Flask
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor

tracer = trace.get_tracer("app")
app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)
jobs = ThreadPoolExecutor(thread_name_prefix="jobs")


def create_user():
    with tracer.start_as_current_span("service.User.Create"):
        pass


def send_welcome_mail():
    with tracer.start_as_current_span("mail.Welcome.Send"):
        pass


@app.post("/users")
def sign_up():
    # Answers at once; the worker thread and the pool job start with contexts of their own.
    threading.Thread(target=send_welcome_mail, name="mailer").start()
    jobs.submit(create_user)
    return "", 202


@app.post("/users/carried")
def sign_up_carried():
    # One copy per hand-off: a context can be entered by one thread at a time.
    threading.Thread(target=contextvars.copy_context().run, args=(send_welcome_mail,), name="mailer").start()
    jobs.submit(contextvars.copy_context().run, create_user)
    return "", 202
"""


def test_flask_background_work_in_the_request_trace(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=FLASK_APP)
    pytester.makepyfile(
        """
        from pytest_tracechain import assert_trace_tree
        from app import app

        def test_sign_up(tracechain):
            assert app.test_client().post("/users/carried").status_code == 202
            assert_trace_tree(
                '''
                POST /users/carried [server]
                  mail.Welcome.Send
                  service.User.Create
                ''',
                timeout=5,
            )
            assert tracechain.origin("mail.Welcome.Send").thread_name == "mailer"
            assert tracechain.origin("service.User.Create").thread_name.startswith("jobs_")
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=1)


def test_flask_background_work_losing_the_context(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(app=FLASK_APP)
    pytester.makepyfile(
        """
        from app import app

        def test_sign_up(tracechain):
            assert app.test_client().post("/users").status_code == 202
            tracechain.wait_for("mail.Welcome.Send")
            tracechain.wait_for("service.User.Create")
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*_ test_sign_up _*", "2 broken trace chains:"], consecutive=True)
    # The two jobs run at the same time: their findings come in either order.
    result.stdout.fnmatch_lines(
        [
            "[[]lost context] 'mail.Welcome.Send' started a new trace in thread 'mailer', but the work was"
            " handed over through a thread* from thread 'MainThread' while 'POST /users' was current*",
            THREAD_FIX,
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "[[]lost context] 'service.User.Create' started a new trace in thread 'jobs_*', but the work was"
            " handed over through an executor job* from thread 'MainThread' while 'POST /users' was current*",
            EXECUTOR_FIX,
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        ["captured in this test:", "trace * · 1 span", "└─ POST /users [[]server] · *"]
    )
    result.stdout.fnmatch_lines(["└─ mail.Welcome.Send · * · thread 'mailer'  ← lost context"])
    result.stdout.fnmatch_lines(["└─ service.User.Create · * · thread 'jobs_*'  ← lost context"])
    result.stdout.fnmatch_lines([FAIL_MODE_LAST_LINE])


# --- FastAPI ----------------------------------------------------------------------------------------

FASTAPI_APP = """
import asyncio, contextvars
from concurrent.futures import ThreadPoolExecutor

from fastapi import BackgroundTasks, FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.concurrency import run_in_threadpool

tracer = trace.get_tracer("app")
app = FastAPI()
jobs = ThreadPoolExecutor(thread_name_prefix="jobs")


def create_user():
    with tracer.start_as_current_span("service.User.Create"):
        pass


async def create_user_async():
    create_user()


def ping_database():
    with tracer.start_as_current_span("db.ping"):
        pass


# Carried by the framework or by asyncio itself.

@app.post("/background-task")
async def background_task(tasks: BackgroundTasks):
    tasks.add_task(create_user)
    return {}


@app.post("/task")
async def task():
    await asyncio.create_task(create_user_async())
    return {}


@app.post("/threadpool")
async def threadpool():
    await run_in_threadpool(create_user)
    return {}


# Lost.

@app.post("/task/own-context")
async def task_own_context():
    # An explicit empty context keeps request state away from the job, and the trace with it.
    await asyncio.get_running_loop().create_task(create_user_async(), context=contextvars.Context())
    return {}


@app.post("/run-in-executor")
async def run_in_executor():
    await asyncio.get_running_loop().run_in_executor(None, create_user)
    return {}


@app.post("/submit")
async def submit():
    await asyncio.wrap_future(jobs.submit(create_user))
    return {}


# Not traced at all (excluded below): whatever it starts is a trace of its own, rightly.

@app.get("/health")
async def health():
    await run_in_threadpool(ping_database)
    return {}


FastAPIInstrumentor.instrument_app(app, excluded_urls="health")
"""


@pytest.fixture
def fastapi_app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(app=FASTAPI_APP)


@pytest.mark.usefixtures("fastapi_app")
def test_fastapi_hand_offs_that_carry_the_context(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_tracechain import assert_child_of
        from starlette.testclient import TestClient
        from app import app

        @pytest.mark.parametrize("path", ["/background-task", "/task", "/threadpool"])
        def test_handler(tracechain, path):
            with TestClient(app) as client:
                assert client.post(path).status_code == 200
            [job] = tracechain.wait_for("service.User.Create")
            assert_child_of(job, "BackgroundTask create_user" if path == "/background-task" else f"POST {path}")
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=3)


@pytest.mark.usefixtures("fastapi_app")
def test_fastapi_hand_offs_that_lose_the_context(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(
        """
        from starlette.testclient import TestClient
        from app import app

        def post(path):
            with TestClient(app) as client:
                assert client.post(path).status_code == 200

        def test_task_with_its_own_context(tracechain):
            post("/task/own-context")

        def test_run_in_executor(tracechain):
            post("/run-in-executor")

        def test_executor_submit(tracechain):
            post("/submit")
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=3)
    # TestClient runs the app on an event loop in a portal thread of its own.
    handler = "from thread 'asyncio-portal-*', task '*' while 'POST {}' was current: the context did not cross the boundary"
    result.stdout.fnmatch_lines(
        [
            "*_ test_task_with_its_own_context _*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace in thread 'asyncio-portal-*', task"
            " 'Task-*', but the work was handed over through an asyncio task* "
            + handler.format("/task/own-context"),
            "  fix: create the task while the span is current and without an explicit context= (tasks copy"
            " the current context), or start the task's span with context= the request's context",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_run_in_executor _*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace in thread 'asyncio_0', but the work"
            " was handed over through loop.run_in_executor* " + handler.format("/run-in-executor"),
            "  fix: use asyncio.to_thread (it copies the context), or"
            " loop.run_in_executor(None, contextvars.copy_context().run, fn)",
            "",
            "captured in this test:",
            "trace * · 3 spans",
            "└─ POST /run-in-executor [[]server] · *",
            "   ├─ POST /run-in-executor http send · *",
            "   └─ POST /run-in-executor http send · *",
            "trace * · 1 span",
            "└─ service.User.Create · * · thread 'asyncio_0'  ← lost context",
            "",
            FAIL_MODE_LAST_LINE,
        ],
        consecutive=True,
    )
    # Submitted in a coroutine, but not through run_in_executor: named, and fixed, as an executor job.
    result.stdout.fnmatch_lines(
        [
            "*_ test_executor_submit _*",
            "1 broken trace chain:",
            "[[]lost context] 'service.User.Create' started a new trace in thread 'jobs_0', but the work was"
            " handed over through an executor job* " + handler.format("/submit"),
            EXECUTOR_FIX,
        ],
        consecutive=True,
    )


@pytest.mark.usefixtures("fastapi_app")
def test_fastapi_untraced_request_reusing_a_worker_thread(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        from pytest_tracechain import assert_child_of, assert_root
        from starlette.testclient import TestClient
        from app import app

        def test_traced_then_untraced(tracechain):
            with TestClient(app) as client:
                # AnyIO starts its worker thread here, while 'POST /threadpool' is current ...
                assert client.post("/threadpool").status_code == 200
                # ... and runs the health check's job in it, in a copy of a context with no span.
                assert client.get("/health").status_code == 200
            assert tracechain.origin("db.ping").thread_name == tracechain.origin("service.User.Create").thread_name
            assert_child_of("service.User.Create", "POST /threadpool")
            assert_root("db.ping")
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=1)


# --- HTTP clients and a real WSGI server -----------------------------------------------------------

WSGI_APP = """
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from opentelemetry import trace

tracer = trace.get_tracer("app")


def users(environ, start_response):
    with tracer.start_as_current_span("service.User.Create"):
        pass
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"created"]


def forwarding_known_headers_only(app):
    # A proxy in front of the app that forwards the headers it knows, and not the trace context.
    def forward(environ, start_response):
        environ.pop("HTTP_TRACEPARENT", None)
        environ.pop("HTTP_TRACESTATE", None)
        return app(environ, start_response)
    return forward


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class Server:
    # A real WSGI server on a free 127.0.0.1 port, serving from a thread of its own until the block ends.
    def __init__(self, app):
        self._httpd = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="wsgi-server")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._thread.join()
        self._httpd.server_close()
"""

WSGI_CONFTEST = """
import httpx, pytest, requests
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from app import Server, forwarding_known_headers_only, users


@pytest.fixture(scope="session", autouse=True)
def instrumented_clients():
    RequestsInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    yield
    HTTPXClientInstrumentor().uninstrument()
    RequestsInstrumentor().uninstrument()


@pytest.fixture(scope="session")
def server():
    with Server(OpenTelemetryMiddleware(users)) as running:
        yield running


@pytest.fixture(scope="session")
def server_behind_proxy():
    with Server(forwarding_known_headers_only(OpenTelemetryMiddleware(users))) as running:
        yield running


def post_with_requests(url):
    return requests.post(url).status_code


def post_with_httpx(url):
    with httpx.Client() as client:
        return client.post(url).status_code


@pytest.fixture(params=[post_with_requests, post_with_httpx], ids=["requests", "httpx"])
def post(request):
    return request.param
"""


@pytest.fixture
def wsgi_app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(app=WSGI_APP)
    pytester.makeconftest(WSGI_CONFTEST)


@pytest.mark.usefixtures("wsgi_app")
def test_clients_calling_a_server_that_continues_the_trace(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        from pytest_tracechain import assert_remote_parent, assert_trace_tree

        def test_post(tracechain, server, post):
            assert post(server.url + "/users") == 201
            assert_trace_tree(
                '''
                POST [client]
                  POST /users [server]
                    service.User.Create
                ''',
                timeout=5,
            )
            assert_remote_parent("POST /users")
            assert tracechain.origin("POST /users").thread_name == "wsgi-server"
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=2)


@pytest.mark.usefixtures("wsgi_app")
def test_server_behind_a_proxy_that_drops_the_trace_headers(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        def test_post(tracechain, server_behind_proxy, post):
            assert post(server_behind_proxy.url + "/users") == 201
            tracechain.wait_for("POST /users", kind="server")
        """
    )
    result = run_pytest("--tracechain-check=fail")
    result.assert_outcomes(failed=2)
    for client in ("requests", "httpx"):
        result.stdout.fnmatch_lines(
            [
                f"*_ test_post[[]{client}] _*",
                "1 broken trace chain:",
                "[[]dropped carrier] 'POST /users' is a server root span with neither a parent nor a link,"
                " although 'POST' (client) * before it* and nothing continues its trace: the server did not"
                " extract what was injected",
                "  fix: extract the context from the incoming headers and start the span with"
                " context=opentelemetry.propagate.extract(headers) (or links=[[]Link(...)] for a batch)",
                "",
                "captured in this test:",
                "trace * · 1 span",
                "└─ POST [[]client] · * · thread 'MainThread'",
                "trace * · 2 spans",
                "└─ POST /users [[]server] · * · thread 'wsgi-server'  ← dropped carrier",
                "   └─ service.User.Create · * · thread 'wsgi-server'",
                "",
                FAIL_MODE_LAST_LINE,
            ],
            consecutive=True,
        )


@pytest.mark.usefixtures("wsgi_app")
def test_outside_caller_while_a_database_call_is_open(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        import threading, urllib.request
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind
        from pytest_tracechain import assert_root

        tracer = trace.get_tracer("cache")

        def test_post(tracechain, server):
            opened, release = threading.Event(), threading.Event()

            def read_session():
                # what the redis instrumentation records for a GET, held open across the request
                with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"db.system": "redis"}):
                    opened.set()
                    release.wait(5)

            cache = threading.Thread(target=read_session, name="cache")
            cache.start()
            assert opened.wait(5)
            try:
                # urllib is not instrumented: an outside caller, whose request rightly starts a new trace
                with urllib.request.urlopen(urllib.request.Request(server.url + "/users", method="POST")) as answer:
                    assert answer.status == 201
            finally:
                release.set()
                cache.join()
            [handled] = tracechain.wait_for("POST /users", kind="server")
            assert_root(handled)
        """
    )
    assert_no_findings(run_pytest(*NO_FINDINGS), passed=1)
