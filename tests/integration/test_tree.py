"""assert_trace_tree: matching, each kind of mismatch with the text users read, and its arguments."""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest

APP = """
import contextvars
import threading
from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind

tracer = trace.get_tracer("app")


def in_thread(fn, *, name="worker"):
    thread = threading.Thread(target=fn, name=name)
    thread.start()
    thread.join()


def handle(*, carry=True, consumer_reads_headers=True, link_instead=False, extra=False):
    '''GET /hello -> create user (a thread), publish, consume.'''
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER):
        ctx = contextvars.copy_context()
        create = lambda: tracer.start_span("service.User.Create").end()
        in_thread((lambda: ctx.run(create)) if carry else create, name="users")
        with tracer.start_as_current_span("user.events send", kind=SpanKind.PRODUCER) as send:
            headers = {}
            propagate.inject(headers)
        if extra:
            tracer.start_span("cache.get", kind=SpanKind.CLIENT).end()
    if link_instead:
        consumer = tracer.start_span("user.events process", kind=SpanKind.CONSUMER, context=context.Context(),
                                     links=[Link(send.get_span_context())])
    elif consumer_reads_headers:
        consumer = tracer.start_span("user.events process", kind=SpanKind.CONSUMER,
                                     context=propagate.extract(headers))
    else:
        consumer = tracer.start_span("user.events process", kind=SpanKind.CONSUMER)
    consumer.end()
"""

TREE = '''"""
    GET /hello [server]
      service.User.Create
      user.events send [producer]
        user.events process [consumer]
"""'''


def esc(*lines: str) -> list[str]:
    """fnmatch patterns for output lines: ``[`` is literal, ``*`` still a wildcard."""
    return [line.replace("[", "[[]") for line in lines]


def run_inner(pytester: pytest.Pytester, run_pytest: RunPytest, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(app=APP)
    pytester.makepyfile(
        "import re\n"
        "import textwrap\n"
        "import threading\n"
        "from opentelemetry.trace import SpanKind\n"
        "from pytest_tracechain import assert_trace_tree\n"
        "from app import handle, tracer, in_thread\n"
        f"TREE = {TREE}\n\n" + body
    )
    return run_pytest("--tb=short", "-p", "no:randomly", *args)


def test_matching_ignores_sibling_order_and_accepts_every_form(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    result = run_inner(
        pytester,
        run_pytest,
        '''
def test_text(tracechain):
    handle()
    assert_trace_tree(TREE)
    # siblings in another order, kinds left out, a kind in upper case
    assert_trace_tree("""
        GET /hello [SERVER]
          user.events send
            user.events process
          service.User.Create
    """)

def test_regex_names(tracechain):
    handle()
    assert_trace_tree("""
        ~GET /\\\\w+ [server]
          ~service\\\\.User\\\\..*
          ~user\\\\.events (send|publish) [producer]
            ~.* process [consumer]
    """)

def test_brackets_stay_in_names(tracechain):
    with tracer.start_as_current_span("GET /items/[id]", kind=SpanKind.SERVER):
        tracer.start_span("lookup [cached]").end()
    assert_trace_tree("""
        GET /items/[id] [server]
          lookup [cached]
    """)
    # with the kind given apart, the name is taken whole, even one that ends like a kind
    with tracer.start_as_current_span("odd [server]"):
        pass
    assert_trace_tree([
        ("GET /items/[id]", SpanKind.SERVER, [("lookup [cached]", "internal", None)]),
        ("odd [server]", "internal", []),
    ])

def test_nested_tuples_and_dicts(tracechain):
    handle()
    assert_trace_tree(
        ("GET /hello", "server", [
            "service.User.Create",
            ("user.events send [producer]", [("user.events process", SpanKind.CONSUMER, [])]),
        ])
    )
    assert_trace_tree({
        "GET /hello [server]": {
            "service.User.Create": None,
            re.compile(r"user\\.events send"): {"user.events process [consumer]": []},
        }
    })

def test_several_traces(tracechain):
    handle()
    tracer.start_span("nightly.cleanup").end()
    assert_trace_tree(textwrap.dedent(TREE) + "nightly.cleanup\\n")
    assert_trace_tree(["nightly.cleanup", TREE])

def test_identical_siblings_are_counted(tracechain):
    with tracer.start_as_current_span("batch"):
        for _ in range(3):
            with tracer.start_as_current_span("item"):
                tracer.start_span("db.query", kind=SpanKind.CLIENT).end()
    assert_trace_tree("""
        batch
          item
            db.query [client]
          item
            ~db\\\\..*
          item
            db.query
    """)

def test_explicit_spans(tracechain):
    handle()
    spans = [s for s in tracechain.spans if s.name.startswith("user.events")]
    assert_trace_tree("user.events send\\n  user.events process", spans)
    assert_trace_tree(TREE, tracechain)
''',
    )
    result.assert_outcomes(passed=7)


def test_misplaced_span_in_another_trace_is_the_typical_broken_chain(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    result = run_inner(
        pytester,
        run_pytest,
        """
def test_lost(tracechain):
    handle(carry=False)
    assert_trace_tree(TREE)
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        esc(
            "E   pytest_tracechain.TraceAssertionError: the captured spans do not have the expected shape: "
            "1 misplaced (1 expected trace, 2 captured)",
            "E   ",
            "E                 expected                            actual",
            "E     matched     GET /hello [server]                 GET /hello [server]",
            "E     misplaced     service.User.Create                 service.User.Create  (found the root of "
            "another trace; expected under 'GET /hello [server]')",
            "E     matched       user.events send [producer]         user.events send [producer]",
            "E     matched         user.events process [consumer]      user.events process [consumer]",
            "E   ",
            "E   hint: 'service.User.Create' was handed over through a thread at app.py:11 from thread 'MainThread' without"
            " the context of 'GET /hello': *",
            "E   ",
            "E   traces involved:",
            "E   trace * · 3 spans",
            "E   └─ GET /hello [server] · * · thread 'MainThread'  ← expected parent of 'service.User.Create'",
            "E   trace * · 1 span",
            "E   └─ service.User.Create · * · thread 'users'  ← misplaced",
        )
    )


def test_missing_extra_and_wrong_kind(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    result = run_inner(
        pytester,
        run_pytest,
        '''
def test_differs(tracechain):
    handle(extra=True)
    assert_trace_tree("""
        GET /hello [server]
          service.User.Create [client]
          user.events send [producer]
            user.events process [consumer]
            audit.write
    """)
''',
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        esc(
            "E   * do not have the expected shape: 1 missing, 1 wrong kind, 1 extra (1 expected trace, 1 captured)",
            "E   ",
            "E                 expected                            actual",
            "E     matched     GET /hello [server]                 GET /hello [server]",
            "E     wrong kind    service.User.Create [client]        service.User.Create  "
            "(expected kind client, found internal)",
            "E     matched       user.events send [producer]         user.events send [producer]",
            "E     matched         user.events process [consumer]      user.events process [consumer]",
            "E     missing         audit.write                         —",
            "E     extra                                             cache.get [client]",
        )
    )


def test_link_instead_of_parent_and_the_reverse(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    result = run_inner(
        pytester,
        run_pytest,
        '''
def test_linked(tracechain):
    handle(link_instead=True)
    assert_trace_tree(TREE)

def test_reverse(tracechain):
    from opentelemetry import context
    from opentelemetry.trace import Link
    job = tracer.start_span("job", context=context.Context())
    job.end()
    tracer.start_span("scheduler", links=[Link(job.get_span_context())]).end()
    assert_trace_tree("""
        scheduler
          job
    """)
''',
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        esc(
            "E     misplaced       user.events process [consumer]      user.events process [consumer]  "
            "(found the root of another trace; expected under 'user.events send [producer]' — it is linked "
            "to 'user.events send' instead of being its child)",
        )
    )
    result.stdout.fnmatch_lines(
        esc(
            "E     misplaced     job        job  (found the root of another trace; "
            "expected under 'scheduler' — 'scheduler' links to it instead of being its parent)",
        )
    )


def test_misplaced_under_another_parent(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    result = run_inner(
        pytester,
        run_pytest,
        '''
def test_wrong_parent(tracechain):
    with tracer.start_as_current_span("request"):
        with tracer.start_as_current_span("auth"):
            tracer.start_span("db.query").end()
        tracer.start_span("render").end()
    assert_trace_tree("""
        request
          auth
          render
            db.query
    """)
''',
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        esc(
            "E   * 1 misplaced (1 expected trace, 1 captured)",
            "E     misplaced       db.query      db.query  (found under 'auth'; expected under 'render')",
            "E   ",
            "E   traces involved:",
            "E   trace * · 4 spans",
            "E   └─ request · * · thread 'MainThread'",
            "E      ├─ auth · * · thread 'MainThread'",
            "E      │  └─ db.query · * · thread 'MainThread'  ← misplaced",
            "E      └─ render · * · thread 'MainThread'  ← expected parent of 'db.query'",
        )
    )


def test_timeout_waits_for_spans_that_end_late(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    result = run_inner(
        pytester,
        run_pytest,
        """
def test_late_but_in_time(tracechain, monkeypatch):
    import queue, time
    main = threading.get_ident()
    blocked = queue.Queue()  # a token each time the main thread starts waiting on a condition
    original_wait = threading.Condition.wait
    def wait(self, timeout=None):
        if threading.get_ident() == main:
            blocked.put(timeout)  # the waiter holds the lock until it waits: no notification is lost
        return original_wait(self, timeout)
    ended_while_waiting = []
    def job():
        with tracer.start_as_current_span("late.job"):
            try:
                blocked.get(timeout=10)
                ended_while_waiting.append(True)
            except queue.Empty:
                ended_while_waiting.append(False)
    with tracer.start_as_current_span("request"):
        ctx = __import__("contextvars").copy_context()
        worker = threading.Thread(target=ctx.run, args=(job,))
        worker.start()
    monkeypatch.setattr(threading.Condition, "wait", wait)  # after start(), which waits for the thread
    # late.job ends only once the assertion waits: it passes only if it waited for the end
    started = time.monotonic()
    assert_trace_tree("request\\n  late.job", timeout=60)
    elapsed = time.monotonic() - started
    monkeypatch.undo()
    worker.join()
    assert ended_while_waiting == [True]
    assert elapsed < 30  # woken by the span's end, not at the deadline

def test_never_arrives(tracechain):
    release = threading.Event()
    with tracer.start_as_current_span("request"):
        span = tracer.start_span("stuck")
    try:
        assert_trace_tree("request\\n  stuck", timeout=0.1)
    finally:
        span.end()
""",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        esc(
            "E   * do not have the expected shape: 1 missing (1 expected trace, 1 captured, after waiting 0.1 s)",
            "E     matched     request   request",
            "E     missing       stuck     —  (a span of that name is still open)",
        )
    )


def test_large_failures_stay_readable(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    result = run_inner(
        pytester,
        run_pytest,
        """
def test_big(tracechain):
    with tracer.start_as_current_span("root"):
        for i in range(300):
            with tracer.start_as_current_span("group"):
                for j in range(21 if i == 150 else 20):
                    tracer.start_span("leaf").end()
    expected = ("root", [("group", ["leaf"] * 20)] * 300)
    assert_trace_tree(expected)

def test_collapsed(tracechain):
    with tracer.start_as_current_span("root"):
        for i in range(20):
            tracer.start_span("leaf").end()
    tracer.start_span("stray").end()
    assert_trace_tree(("root", ["leaf"] * 20))
""",
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        esc(
            "E   * do not have the expected shape: 1 extra (1 expected trace, 2 captured)",
            "E   ",
            "E                 expected  actual",
            "E     matched     root      root  (and its 20 descendants, all matched)",
            "E     extra                 stray  (a root: a trace that was not expected)",
        )
    )
    result.stdout.fnmatch_lines(
        esc(
            "E   * do not have the expected shape: 1 extra (1 expected trace, 1 captured)",
            "E   ",
            "E                 expected  actual",
            "E     matched     root      root",
            "E                   ...         (299 matched rows not shown)",
            "E     matched       group     group",
            "E                     ...         (20 matched rows not shown)",
            "E     extra                     leaf",
            "E   ",
            "E   traces involved:",
            "E   trace * · 6302 spans",
            "E   └─ root · * · thread 'MainThread'",
            "E      ├─ group · * · thread 'MainThread'",
            "E      │  ├─ leaf · * · thread 'MainThread'  ← extra",
            "E      │  └─ ... 20 more spans",
            "E      └─ ... 6279 more spans",
            "E   ",
        )
    )


def test_bad_arguments(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    result = run_inner(
        pytester,
        run_pytest,
        """
import pytest

@pytest.mark.parametrize(("expected", "error", "message"), [
    (42, TypeError, "assert_trace_tree() argument 'expected' must be an indented text tree (str), nested "
                    "(name, children) tuples, or a dict of name -> children, not int"),
    ("", ValueError, "assert_trace_tree(): the expected tree is empty"),
    ("a\\n   b", ValueError, "assert_trace_tree(): line 2: 'b' is indented by 3 spaces; use two spaces per level"),
    ("a\\n    b", ValueError, "assert_trace_tree(): line 2: 'b' is indented by 4 spaces, deeper than a child of "
                           "the line above (2 at most); a child is indented one level (two spaces)"),
    ("a\\n\\tb", ValueError, "assert_trace_tree(): line 2: indent with spaces (two a level), not tabs"),
    ("~(unclosed", ValueError, "assert_trace_tree(): line 1: '(unclosed' is not a valid regular expression: *"),
    ("[server]", ValueError, "assert_trace_tree(): line 1: a span name is missing before '[server]'"),
    (("a", 3, []), TypeError, "*"),
    ({"a": 5}, TypeError, "assert_trace_tree() argument 'expected': the children at expected['a'] must be a "
                          "list, tuple or dict, not int"),
    ([("a", [1])], TypeError, "assert_trace_tree() argument 'expected' must be an indented text tree, nested "
                              "(name, children) tuples, or a dict of name -> children; expected[0]['a'][0] is int"),
])
def test_expected(tracechain, expected, error, message):
    with pytest.raises(error) as info:
        assert_trace_tree(expected)
    if message.endswith("*"):
        assert str(info.value).startswith(message[:-1]), str(info.value)
    else:
        assert str(info.value) == message

def test_spans_and_timeout(tracechain):
    with pytest.raises(TypeError, match="argument 'spans' must be a TraceCapture or an iterable of spans, not int"):
        assert_trace_tree("a", 3)
    with pytest.raises(TypeError, match="argument 'timeout' must be a number of seconds, not str"):
        assert_trace_tree("a", timeout="1")
    with pytest.raises(TypeError, match="argument 'timeout' needs a capture to wait on"):
        assert_trace_tree("a", [], timeout=1)

def test_no_capture():
    with pytest.raises(RuntimeError, match="no capture is running"):
        assert_trace_tree("a")
""",
    )
    result.assert_outcomes(passed=12)
