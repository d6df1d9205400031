"""--tracechain-show: the captured trees in a report section; colour only where the terminal takes it."""

from __future__ import annotations

import pytest

from tests.conftest import RunPytest, before_short_summary

SUITE = """
from opentelemetry import trace
from pytest_tracechain import assert_child_of

tracer = trace.get_tracer("app")

def test_passes(tracechain):
    with tracer.start_as_current_span("passing.request"):
        tracer.start_span("passing.child").end()

def test_plain_assert_fails(tracechain):
    with tracer.start_as_current_span("failing.request"):
        tracer.start_span("failing.child").end()
    assert 1 + 1 == 3

def test_trace_assertion_fails(tracechain):
    tracer.start_span("lonely").end()
    tracer.start_span("other").end()
    assert_child_of("lonely", "other")
"""

SECTION = "*- tracechain: captured traces -*"

# One test that loses the context at a thread: a broken chain the check reports.
LOST_CONTEXT = """
import threading
from opentelemetry import trace

tracer = trace.get_tracer("app")

def test_lost(tracechain):
    with tracer.start_as_current_span("request"):
        worker = threading.Thread(target=lambda: tracer.start_span("orphaned.job").end())
        worker.start()
        worker.join()
"""


def sections_in(result: pytest.RunResult) -> int:
    return sum(1 for line in result.stdout.lines if "tracechain: captured traces" in line)


def test_default_shows_trees_of_failing_tests_only(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(SUITE)
    result = run_pytest("--tb=short", "-rP")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_plain_assert_fails _*",
            "E   assert (1 + 1) == 3",
            SECTION,
            "trace * · 2 spans",
            "└─ failing.request · * · thread 'MainThread'",
            "   └─ failing.child · * · thread 'MainThread'",
        ]
    )
    # A failed trace assertion already shows the traces involved; a passing test shows none.
    assert sections_in(result) == 1
    result.stdout.no_fnmatch_line("*passing.request*")


def test_all_and_off(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(SUITE)
    result = run_pytest("--tb=short", "-rP", "--tracechain-show=all")
    result.stdout.fnmatch_lines(
        ["*_ test_passes _*", SECTION, "trace * · 2 spans", "└─ passing.request · * · thread 'MainThread'"]
    )
    # The failed trace assertion's message shows its traces: they are not shown again.
    assert sections_in(result) == 2
    result = run_pytest("--tb=short", "-rP", "--tracechain-show=off")
    assert sections_in(result) == 0
    result.assert_outcomes(passed=1, failed=2)


def test_ini_and_a_bad_value(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeini("[pytest]\ntracechain_show = off\n")
    assert sections_in(run_pytest("--tb=short")) == 0
    assert sections_in(run_pytest("--tb=short", "--tracechain-show=fail")) == 1  # the option wins
    pytester.makeini("[pytest]\ntracechain_show = sometimes\n")
    result = run_pytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tracechain_show = 'sometimes' is not one of: fail, all, off"])


@pytest.mark.parametrize(
    ("args", "env", "coloured"),
    [
        (["--color=yes"], {}, True),
        (["--color=no"], {}, False),
        ([], {}, False),  # not a terminal
        ([], {"FORCE_COLOR": "1"}, True),
        ([], {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
    ],
    ids=["color-yes", "color-no", "no-tty", "force-color", "no-color-wins"],
)
def test_colour_follows_the_terminal(
    pytester: pytest.Pytester,
    run_pytest: RunPytest,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    coloured: bool,
) -> None:
    for name in ("FORCE_COLOR", "NO_COLOR", "PY_COLORS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(SUITE)
    result = run_pytest("--tb=short", "-k", "plain_assert", *args)
    result.assert_outcomes(failed=1)
    tree_lines = [line for line in result.stdout.lines if "failing.child" in line]
    assert len(tree_lines) == 1
    # the span name in bold, its duration dimmed
    assert ("\x1b[1mfailing.child\x1b[0m" in tree_lines[0]) is coloured, tree_lines[0]
    assert ("\x1b[" in tree_lines[0]) is coloured


def test_all_works_without_rP(pytester: pytest.Pytester, run_pytest: RunPytest) -> None:
    pytester.makepyfile(SUITE)
    result = run_pytest("--tb=short", "--tracechain-show=all", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    # pytest shows a passing test's sections only with -rP: the plugin prints them itself.
    result.stdout.fnmatch_lines(
        [
            "*= tracechain: captured traces of passing tests =*",
            "*_ test_all_works_without_rP.py::test_passes _*",
            "trace * · 2 spans",
            "└─ passing.request · * · thread 'MainThread'",
            "   └─ passing.child · * · thread 'MainThread'",
        ]
    )
    # With -rP pytest shows them (once), and the plugin does not repeat them.
    result = run_pytest("--tb=short", "--tracechain-show=all", "-rP")
    assert result.stdout.str().count("passing.child") == 1
    result.stdout.no_fnmatch_line("*captured traces of passing tests*")


def test_a_chain_warning_turned_into_an_error_shows_its_trees_once(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(LOST_CONTEXT)
    result = run_pytest("--tb=short", "-W", "error::pytest_tracechain.TraceChainWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["[[]lost context] 'orphaned.job' started a new trace in thread *"])
    # The report is the failure: its trees are not repeated in a captured-traces section.
    # (Under CI=true pytest's short summary repeats each message whole: counted before it.)
    assert sum(1 for line in before_short_summary(result) if "└─ orphaned.job · " in line) == 1
    assert sections_in(result) == 0


def test_a_passing_test_s_chain_warning_is_a_section_of_its_report(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    """Warn mode: the test passes, its report (-rP, junitxml) carries the chain report."""
    pytester.makepyfile(LOST_CONTEXT)
    result = run_pytest("-rP", "-W", "ignore::pytest_tracechain.TraceChainWarning")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_lost _*",
            "*- tracechain: broken trace chains -*",
            "[[]lost context] 'orphaned.job' started a new trace in thread *",
        ]
    )


def test_a_strict_xpass_fails_without_an_exception_and_shows_its_trees(
    pytester: pytest.Pytester, run_pytest: RunPytest
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        @pytest.mark.xfail(strict=True)
        def test_xpass(tracechain):
            with tracer.start_as_current_span("xpass.request"):
                pass
        """
    )
    result = run_pytest("--tb=short")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*_ test_xpass _*", SECTION, "└─ xpass.request · * · thread 'MainThread'"])
