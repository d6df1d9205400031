"""pytest hooks and fixtures of pytest-tracechain (the ``pytest11`` entry point).

Kept thin and free of OpenTelemetry imports: a session where no test uses the
plugin imports nothing and installs no tracer provider.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Tracer

    from pytest_tracechain._capture import TraceCapture
    from pytest_tracechain._chain import Finding

CHECK_MODES = ("off", "warn", "fail")
_FIXTURES = ("tracechain", "tracer")
_MARKER_ARGS = ("check", "single_trace", "lost_context")
_REPORT_SECTION = "tracechain: broken trace chains"
_PROPERTY = "tracechain"
_LEAK_PROPERTY = "tracechain.leaked"
_FAIL_MODE_NOTE = "(pytest-tracechain's chain check, fail mode: see --tracechain-check and the marker)"
_WARNING_AS_ERROR_NOTE = "(pytest-tracechain's chain check: a TraceChainWarning, turned into an error by -W)"


@dataclass
class _TestState:
    """Per-test state kept in ``item.stash`` from setup to the end of teardown."""

    capture: TraceCapture
    entry_context: Context
    check: str
    reported_scope_events: int = 0


state_key = pytest.StashKey[_TestState]()
# Report sections waiting for the report of their phase: (when, text).
_sections_key = pytest.StashKey[list[tuple[str, str]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tracechain", "OpenTelemetry trace chains (pytest-tracechain)")
    group.addoption(
        "--tracechain-check",
        choices=CHECK_MODES,
        default=None,
        help="what tests with broken trace chains get: nothing, a TraceChainWarning, or a failure "
        "(default: the tracechain_check ini value, else warn)",
    )
    group.addoption(
        "--tracechain-check-all",
        action="store_true",
        default=None,
        help="capture and check every test, also those that use neither the tracechain fixture nor "
        "the marker",
    )
    parser.addini("tracechain_check", "off, warn or fail: see --tracechain-check", default="warn")
    parser.addini(
        "tracechain_check_all", "check every test: see --tracechain-check-all", type="bool", default=False
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tracechain(check=None, single_trace=False, lost_context=True): capture this test's "
        "OpenTelemetry spans and check its trace chains; check is off, warn or fail (default: "
        "--tracechain-check), single_trace=True demands exactly one trace, lost_context=False "
        "turns the lost-context rule off.",
    )
    mode = _config_check(config)
    if mode not in CHECK_MODES:
        raise pytest.UsageError(f"tracechain_check = {mode!r} is not one of: {', '.join(CHECK_MODES)}")
    config.pluginmanager.register(_Summary(), "tracechain-summary")


def pytest_unconfigure(config: pytest.Config) -> None:
    import sys

    provider = sys.modules.get("pytest_tracechain._provider")
    if provider is not None:
        provider.shutdown()


def _config_check(config: pytest.Config) -> str:
    option = config.getoption("tracechain_check", None)
    return str(option if option is not None else config.getini("tracechain_check")).strip().lower()


def _check_all(config: pytest.Config) -> bool:
    option = config.getoption("tracechain_check_all", None)
    return bool(option if option is not None else config.getini("tracechain_check_all"))


def _wants_capture(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return (
        any(name in names for name in _FIXTURES)
        or item.get_closest_marker("tracechain") is not None
        or _check_all(item.config)
    )


def _marker_settings(item: pytest.Item) -> tuple[str, bool, bool]:
    check, single_trace, lost_context = _config_check(item.config), False, True
    marker = item.get_closest_marker("tracechain")
    if marker is None:
        return check, single_trace, lost_context
    unknown = sorted(set(marker.kwargs) - set(_MARKER_ARGS))
    if marker.args or unknown:
        given = ", ".join([*map(repr, marker.args), *(f"{k}=" for k in unknown)])
        pytest.fail(
            f"@pytest.mark.tracechain got {given}; it takes only the keyword arguments "
            "check='off'|'warn'|'fail', single_trace=bool, lost_context=bool",
            pytrace=False,
        )
    check = marker.kwargs.get("check") or check
    if check not in CHECK_MODES:
        pytest.fail(
            f"@pytest.mark.tracechain(check={check!r}): check must be one of {', '.join(CHECK_MODES)}",
            pytrace=False,
        )
    return (
        check,
        bool(marker.kwargs.get("single_trace", False)),
        bool(marker.kwargs.get("lost_context", True)),
    )


def _start_capture(item: pytest.Item) -> _TestState:
    from opentelemetry import context

    from pytest_tracechain import _provider
    from pytest_tracechain._capture import TraceCapture
    from pytest_tracechain._errors import TraceChainUsageError

    check, single_trace, lost_context = _marker_settings(item)
    try:
        router = _provider.router()
    except TraceChainUsageError as exc:
        pytest.fail(str(exc), pytrace=False)
    state = _TestState(TraceCapture(item.nodeid), context.get_current(), check)
    state.capture._lost_context_rule = lost_context
    state.capture._single_trace_rule = single_trace
    item.stash[state_key] = state
    router.open(state.capture)
    return state


def _mark_ambient(item: pytest.Item) -> None:
    """The span current when a test phase starts belongs to the test harness."""
    state = item.stash.get(state_key, None)
    if state is None:
        return
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        state.capture._add_ambient(context.span_id)


def _phase_ended(item: pytest.Item) -> None:
    state = item.stash.get(state_key, None)
    if state is not None:
        state.capture._phase_ended()


def _act_on(item: pytest.Item, state: _TestState, findings: list[Finding], *, test_failed: bool) -> None:
    """Record findings in the report, then warn or fail as the check mode says."""
    from pytest_tracechain._chain import report
    from pytest_tracechain._errors import TraceAssertionError, TraceChainWarning

    if not findings:
        return
    text = report(findings, state.capture)
    summary = "; ".join(f"{f.kind}: {f.span.name!r}" if f.span is not None else f.kind for f in findings)
    item.user_properties.append((_PROPERTY, summary))
    item.user_properties.append((f"{_PROPERTY}.report", text))
    if state.check == "fail" and not test_failed:
        error = TraceAssertionError(text)
        error._tracechain_note = _FAIL_MODE_NOTE  # type: ignore[attr-defined]  # shown as the report alone
        raise error
    if not test_failed:  # a failed test shows its own error; the section explains the chain
        lineno = item.location[1]
        try:
            # Attributed to the test, so the warnings summary points at it.
            warnings.warn_explicit(
                TraceChainWarning(text), TraceChainWarning, str(item.path), (lineno or 0) + 1
            )
        except TraceChainWarning as error:  # -W error::...TraceChainWarning: the warning is the failure
            error._tracechain_note = _WARNING_AS_ERROR_NOTE  # type: ignore[attr-defined]
            raise
    when = "teardown" if state.capture._closed else "call"
    item.stash.setdefault(_sections_key, []).append((when, text))


def _scope_findings(state: _TestState) -> list[Finding]:
    from pytest_tracechain._chain import scope_leaks

    events = state.capture._scope_events[state.reported_scope_events :]
    state.reported_scope_events += len(events)
    return scope_leaks(events)


# trylast: run inside other plugins' wrappers, so the span they open for the
# phase (pytest-opentelemetry, pytest-otel) is already current and counts as ambient.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    if _wants_capture(item):
        _start_capture(item)
        _mark_ambient(item)
    try:
        return (yield)
    finally:
        _phase_ended(item)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    _mark_ambient(item)
    try:
        result = yield
    except BaseException:
        _check_call(item, test_failed=True)
        raise
    finally:
        _phase_ended(item)
    _check_call(item, test_failed=False)
    return result


def _check_call(item: pytest.Item, *, test_failed: bool) -> None:
    state = item.stash.get(state_key, None)
    if state is None or state.check == "off":
        return
    from pytest_tracechain._chain import analyze_capture

    findings = analyze_capture(state.capture)
    _act_on(item, state, findings + _scope_findings(state), test_failed=test_failed)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    _mark_ambient(item)
    try:
        return (yield)
    finally:
        state = item.stash.get(state_key, None)
        if state is not None:
            del item.stash[state_key]
            _end_capture(item, state)


def _end_capture(item: pytest.Item, state: _TestState) -> None:
    from pytest_tracechain import _provider, _scope
    from pytest_tracechain._chain import scope_leaks, unended

    leftovers = _scope.leftover(state.capture, state.entry_context)
    router = _provider.existing_router()
    if router is not None:
        router.close(state.capture)
    if state.check == "off":
        return
    if router is not None:
        # Spans of earlier tests that ended since: reported through this test's
        # report, so the controller's summary lists them under pytest-xdist too.
        for leak in router.drain_leaks():
            item.user_properties.append((_LEAK_PROPERTY, leak.describe()))
    findings = unended(state.capture) + _scope_findings(state) + scope_leaks(leftovers)
    _act_on(item, state, findings, test_failed=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    note = getattr(call.excinfo.value, "_tracechain_note", None) if call.excinfo is not None else None
    if note is not None and call.excinfo is not None:
        report.longrepr = f"{call.excinfo.value}\n\n{note}"
    pending = item.stash.get(_sections_key, None)
    if pending:
        for when, text in [entry for entry in pending if entry[0] == call.when]:
            report.sections.append((_REPORT_SECTION, text))
            pending.remove((when, text))
    return report


class _Summary:
    """Counts the reports with broken chains (on the controller under pytest-xdist)."""

    def __init__(self) -> None:
        self.broken: dict[str, list[str]] = {}
        self.leaked: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = [str(value) for name, value in report.user_properties if name == _PROPERTY]
        if found:
            self.broken.setdefault(report.nodeid, []).extend(found)
        self.leaked += [str(value) for name, value in report.user_properties if name == _LEAK_PROPERTY]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        import sys

        provider = sys.modules.get("pytest_tracechain._provider")
        router = provider.existing_router() if provider is not None else None
        leaked = list(dict.fromkeys(self.leaked))  # one line per leak, also when reported twice
        if router is not None:  # ended after the last test (this process only)
            leaked += [leak.describe() for leak in router.drain_leaks()]
        if not self.broken and not leaked:
            return
        terminalreporter.section("tracechain")
        if self.broken:
            count = len(self.broken)
            terminalreporter.line(f"tracechain: {count} test{'s' if count != 1 else ''} with broken chains")
            for nodeid, values in self.broken.items():
                terminalreporter.line(f"  {nodeid}: {'; '.join(dict.fromkeys(values))}")
        for leak in leaked:
            terminalreporter.line(f"tracechain: {leak}")


@pytest.fixture
def tracechain(request: pytest.FixtureRequest) -> TraceCapture:
    """The spans started during this test (a ``TraceCapture``)."""
    state: _TestState | None = request.node.stash.get(state_key, None)
    if state is None:  # requested through getfixturevalue(): start now
        state = _start_capture(request.node)
    return state.capture


@pytest.fixture
def tracer(request: pytest.FixtureRequest) -> Tracer:
    """An OpenTelemetry tracer of the provider in use, for spans the test opens itself."""
    from pytest_tracechain import _provider

    if request.node.stash.get(state_key, None) is None:
        _start_capture(request.node)
    return _provider.tracer()
