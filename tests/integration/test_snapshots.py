"""TraceCapture.tree() with the snapshot libraries, driven as users run them.

inline-snapshot's create and fix flows, syrupy's ``--snapshot-update``, and
the failure each shows when a span moves to a trace of its own, disappears,
or changes kind. inline-snapshot runs with ``--inline-snapshot=disable`` by
default when ``CI`` is set, and both libraries act as xdist workers when they
see xdist's worker variables; the runs here set or clear those themselves, so
they read the same on a laptop, in CI and under ``-n 2``.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import RunPytest

pytest.importorskip("inline_snapshot", reason="needs the test group (inline-snapshot)")
pytest.importorskip("syrupy", reason="needs the test group (syrupy)")

# The service under test. variant.txt picks a breakage: "moved" starts the
# worker thread without the request's context, "gone" skips the insert,
# "kind" publishes with an INTERNAL span.
APP = """
import contextvars
import pathlib
import threading
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer("shop")


def variant():
    return (pathlib.Path(__file__).parent / "variant.txt").read_text().strip()


def place_order(order_id):
    broken = variant()
    with tracer.start_as_current_span(f"POST /orders/{order_id}", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.route", "/orders/{order_id}")
        ctx = contextvars.copy_context()
        worker = threading.Thread(target=save if broken == "moved" else lambda: ctx.run(save))
        worker.start()
        worker.join()
        headers = {}
        kind = SpanKind.INTERNAL if broken == "kind" else SpanKind.PRODUCER
        with tracer.start_as_current_span("orders publish", kind=kind):
            propagate.inject(headers)
    with tracer.start_as_current_span("orders process", kind=SpanKind.CONSUMER,
                                      context=propagate.extract(headers)):
        pass


def save():
    with tracer.start_as_current_span("orders.save"):
        if variant() != "gone":
            with tracer.start_as_current_span("INSERT orders", kind=SpanKind.CLIENT):
                pass
"""

TREE = """\
POST /orders/<n> [server] {http.route="/orders/{order_id}"}
  orders publish [producer]
    orders process [consumer] {remote}
  orders.save
    INSERT orders [client]\
"""

INLINE_TEST = """
from inline_snapshot import snapshot

import app


def test_place_order(tracechain):
    app.place_order(1234)
    assert tracechain.tree(attributes=["http.route"], normalize=True) == snapshot({value})
"""

SYRUPY_TEST = """
import app


def test_place_order(tracechain, snapshot):
    app.place_order(1234)
    assert tracechain.tree(attributes=["http.route"], normalize=True) == snapshot
"""


def inline_value(tree: str) -> str:
    """The literal inline-snapshot writes for a multi-line string (without a newline at its end)."""
    return '"""\\\n' + tree + '\\\n"""'


@pytest.fixture
def shop(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(app=APP)
    pytester.path.joinpath("variant.txt").write_text("ok\n")
    monkeypatch.delenv("CI", raising=False)  # inline-snapshot disables itself under CI
    # and both libraries act as xdist workers when the outer run's worker variables are inherited
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def set_variant(pytester: pytest.Pytester, variant: str) -> None:
    pytester.path.joinpath("variant.txt").write_text(variant + "\n")


def read(path: Path) -> str:
    return path.read_text()


def run(run_pytest: RunPytest, *args: str) -> pytest.RunResult:
    return run_pytest("--tracechain-check=fail", *args)


# -- inline-snapshot -------------------------------------------------------------------


def test_inline_snapshot_create_writes_the_tree_into_the_test_which_then_passes(
    shop: pytest.Pytester, run_pytest: RunPytest
) -> None:
    test_file = shop.makepyfile(test_shop=INLINE_TEST.format(value=""))
    created = run(run_pytest, "--inline-snapshot=create")
    created.stdout.fnmatch_lines(["*your snapshot is missing one value.*"])
    assert inline_value(TREE) in read(test_file)

    passed = run(run_pytest)
    passed.assert_outcomes(passed=1)


def test_inline_snapshot_fix_rewrites_the_snapshot_after_a_span_disappears(
    shop: pytest.Pytester, run_pytest: RunPytest
) -> None:
    test_file = shop.makepyfile(test_shop=INLINE_TEST.format(value=inline_value(TREE)))
    run(run_pytest).assert_outcomes(passed=1)
    set_variant(shop, "gone")

    failed = run(run_pytest)
    failed.assert_outcomes(failed=1, errors=1)  # the assertion, and inline-snapshot's teardown report
    if sys.version_info < (3, 11):  # inline-snapshot on 3.10 counts the snapshots, shows no change
        failed.stdout.fnmatch_lines(["Error: one snapshot has incorrect values (--inline-snapshot=fix)"])
    else:
        failed.stdout.fnmatch_lines(SHOWN_FIX, consecutive=True)
    assert inline_value(TREE) in read(test_file)

    run(run_pytest, "--inline-snapshot=fix")
    fixed = TREE.replace("\n    INSERT orders [client]", "")
    assert inline_value(fixed) in read(test_file)
    run(run_pytest).assert_outcomes(passed=1)


# The change inline-snapshot shows (and does not apply) when a span disappears.
SHOWN_FIX = [
    "*Fix snapshots*",
    "*test_shop.py*",
    "*@@ -9,6 +9,5 @@*",
    "*",
    '*  POST /orders/<n> [[]server] {http.route="/orders/{order_id}"} *',
    "*    orders publish [[]producer] *",
    "*      orders process [[]consumer] {remote} *",
    "* -  orders.save *",
    "* -    INSERT orders [[]client]\\ *",
    "* +  orders.save\\ *",
    '*  """) *',
    "*",
    "These changes are not applied.",
]


# -- syrupy ------------------------------------------------------------------------------


def test_syrupy_snapshot_update_writes_an_ambr_file_which_then_passes(
    shop: pytest.Pytester, run_pytest: RunPytest
) -> None:
    shop.makepyfile(test_shop=SYRUPY_TEST)
    failed = run(run_pytest)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*1 snapshot failed*"])

    updated = run(run_pytest, "--snapshot-update")
    updated.assert_outcomes(passed=1)
    updated.stdout.fnmatch_lines(["1 snapshot generated."])
    ambr = read(shop.path / "__snapshots__" / "test_shop.ambr")
    assert (
        ambr
        == "# serializer version: 1\n# name: test_place_order\n  '''\n"
        + textwrap.indent(TREE, "  ")
        + "\n  '''\n# ---\n"
    )
    assert not [line for line in ambr.splitlines() if line != line.rstrip()]  # nothing a hook would strip

    run(run_pytest).assert_outcomes(passed=1)


# -- what a user reads when the trace changes ---------------------------------------------

# The lines of the diff syrupy shows for each breakage (it elides unchanged lines with "...").
SYRUPY_DIFFS = {
    "moved": [
        "E           '''",
        "E             ...",
        "E               orders process [[]consumer] {remote}",
        "E         -   orders.save",
        "E         + orders.save",
        "E         -     INSERT orders [[]client]",
        "E         +   INSERT orders [[]client]",
    ],
    "gone": [
        "E           '''",
        "E            ...",
        "E             orders.save",
        "E         -     INSERT orders [[]client]",
    ],
    "kind": [
        "E           '''",
        'E           POST /orders/<n> [[]server] {http.route="/orders/{order_id}"}',
        "E         -   orders publish [[]producer]",
        "E         +   orders publish",
        "E               orders process [[]consumer] {remote}",
        "E             ...",
    ],
}

# And the whole-line diff the plugin gives for a plain ``tree() == "..."`` (inline-snapshot under CI).
PLAIN_DIFFS = {
    "moved": [
        'E           POST /orders/<n> [[]server] {http.route="/orders/{order_id}"}',
        "E             orders publish [[]producer]",
        "E               orders process [[]consumer] {remote}",
        "E         -   orders.save",
        "E         + orders.save",
        "E         -     INSERT orders [[]client]",
        "E         +   INSERT orders [[]client]",
    ],
    "gone": [
        'E           POST /orders/<n> [[]server] {http.route="/orders/{order_id}"}',
        "E             orders publish [[]producer]",
        "E               orders process [[]consumer] {remote}",
        "E             orders.save",
        "E         -     INSERT orders [[]client]",
    ],
    "kind": [
        'E           POST /orders/<n> [[]server] {http.route="/orders/{order_id}"}',
        "E         -   orders publish [[]producer]",
        "E         +   orders publish",
        "E               orders process [[]consumer] {remote}",
        "E             orders.save",
        "E               INSERT orders [[]client]",
    ],
}


def checks(variant: str) -> list[str]:
    """A lost context is also a chain finding: fail mode would report it beside the diff."""
    return ["--tracechain-check=warn"] if variant == "moved" else []


@pytest.mark.parametrize("variant", sorted(SYRUPY_DIFFS))
def test_syrupy_shows_the_lines_that_changed(
    shop: pytest.Pytester, run_pytest: RunPytest, variant: str
) -> None:
    shop.makepyfile(test_shop=SYRUPY_TEST)
    run(run_pytest, "--snapshot-update").assert_outcomes(passed=1)
    set_variant(shop, variant)

    failed = run(run_pytest, *checks(variant))
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        ["E       *assert [[]+ received] == [[]- snapshot]", *SYRUPY_DIFFS[variant]],
        consecutive=True,
    )
    failed.stdout.fnmatch_lines(["1 snapshot failed."])


@pytest.mark.parametrize("variant", sorted(PLAIN_DIFFS))
def test_a_plain_comparison_shows_whole_lines_as_under_inline_snapshot_in_ci(
    shop: pytest.Pytester, run_pytest: RunPytest, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    shop.makepyfile(test_shop=INLINE_TEST.format(value=inline_value(TREE)))
    set_variant(shop, variant)
    monkeypatch.setenv("CI", "true")  # inline-snapshot disabled: snapshot(x) is x, a plain str

    failed = run(run_pytest, *checks(variant))
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        [
            "E       assert tree() == expected",
            "E         the captured trace tree differs (- expected, + captured):",
            *PLAIN_DIFFS[variant],
            "",
        ],
        consecutive=True,
    )


def test_other_string_comparisons_keep_pytests_own_diff(shop: pytest.Pytester, run_pytest: RunPytest) -> None:
    shop.makepyfile(
        test_shop="""
        def test_words(tracechain):
            tree = tracechain.tree()
            assert "a\\nb\\n" + tree == "a\\nc\\n"
        """
    )
    failed = run(run_pytest)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["E       AssertionError: assert 'a\\nb\\n' == 'a\\nc\\n'"])
    failed.stdout.no_fnmatch_line("*captured trace tree*")


# -- spans received from other processes -------------------------------------------------

CHILD = """
import os
import sys

from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("worker")
context = propagate.extract({"traceparent": os.environ["TRACEPARENT"]})
with tracer.start_as_current_span(f"job {sys.argv[1]} run", kind=SpanKind.CONSUMER, context=context):
    tracer.start_span("job.step").end()
provider.shutdown()
"""


def test_spans_received_from_another_process_are_in_the_tree(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    pytester.makepyfile(child=CHILD)
    pytester.makepyfile(
        test_jobs="""
        import subprocess
        import sys

        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind


        def test_job_in_a_child_process(tracechain, tracer, otlp_receiver):
            with tracer.start_as_current_span("POST /jobs", kind=SpanKind.SERVER):
                carrier = {}
                propagate.inject(carrier)
                env = {**otlp_receiver.env, "TRACEPARENT": carrier["traceparent"]}
                subprocess.run([sys.executable, "child.py", "8121"], env=env, check=True, timeout=60)
            # The receiver answers the child's export once its spans are in the capture.
            assert tracechain.tree(normalize=True) == (
                "POST /jobs [server]\\n"
                "  job <n> run [consumer] {remote}\\n"
                "    job.step"
            )
        """
    )
    run_pytest("--tracechain-check=fail").assert_outcomes(passed=1)
