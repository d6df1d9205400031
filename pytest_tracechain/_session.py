"""The per-test side of the plugin: one ``TestRun`` from setup to the end of teardown.

``plugin.py`` imports this module on the first test that uses the plugin; it
imports OpenTelemetry, so a session that never uses the plugin never loads it.
The chain rules and their reports (``_chain``) are imported only for a test
whose chains the quick proof (``_intact``) cannot show intact.
"""

from __future__ import annotations

import linecache
import warnings
from typing import TYPE_CHECKING

import pytest
from opentelemetry import context, trace

from pytest_tracechain import _provider, _scope, _spawn
from pytest_tracechain._capture import TraceCapture, view_of
from pytest_tracechain._errors import TraceAssertionError, TraceChainUsageError, TraceChainWarning
from pytest_tracechain._intact import is_trivially_intact
from pytest_tracechain._settings import CheckMode, Rules
from pytest_tracechain._state import CaptureState

if TYPE_CHECKING:
    from pytest_tracechain._chain import Finding

REPORT_SECTION = "tracechain: broken trace chains"
TREES_SECTION = "tracechain: captured traces"
PROPERTY = "tracechain"
LEAK_PROPERTY = "tracechain.leaked"
SILENT_PROPERTY = "tracechain.nothing_captured"
FAIL_MODE_NOTE = "(pytest-tracechain's chain check, fail mode: see --tracechain-check and the marker)"
WARNING_AS_ERROR_NOTE = "(pytest-tracechain's chain check: a TraceChainWarning, turned into an error by -W)"


def _def_line(item: pytest.Item) -> int:
    """The line of the test's ``def``: the warnings summary prints it (a decorator's line reads oddly)."""
    line = (item.location[1] or 0) + 1
    code = getattr(getattr(item, "obj", None), "__code__", None)
    if code is None:
        return line
    lines = linecache.getlines(code.co_filename)
    for number in range(code.co_firstlineno, min(len(lines), code.co_firstlineno + 50) + 1):
        if lines[number - 1].lstrip().startswith(("def ", "async def ")):
            return number
    return line


def running_capture() -> TraceCapture:
    """The running test's ``TraceCapture``: the ``tracechain`` fixture's value."""
    state = _provider.running_state()
    if state is None:  # cannot happen: setup or pytest_fixture_setup started it
        raise RuntimeError("pytest-tracechain: no capture is running for this test")
    return view_of(state)


def _analyze(state: CaptureState) -> list[Finding]:
    """The chain rules' findings over the finished spans: none, the rules not even imported, when the
    quick proof shows the chains intact (most tests)."""
    if is_trivially_intact(state):
        return []
    from pytest_tracechain._chain import apply_rules

    return apply_rules(state)  # not analyze(), which would make the proof again


def _key(finding: Finding) -> tuple[str, int | None]:
    """What a finding is about: its kind and span (reported once per test)."""
    return (finding.kind.value, finding.span.context.span_id if finding.span is not None else None)


class TestRun:
    """A test's capture and check, kept in ``item.stash`` from setup to teardown."""

    __test__ = False  # not a test class, whatever pytest's python_classes say

    def __init__(self, item: pytest.Item, check: CheckMode, rules: Rules) -> None:
        error: str | None = None
        try:
            self.router = _provider.router()
        except TraceChainUsageError as exc:
            error = str(exc)
        if error is not None:  # outside the except block: said once, not chained to itself
            pytest.fail(error, pytrace=False)
        self.item = item
        self.check = check
        self.state = CaptureState(item.nodeid, rules)
        self.capture = TraceCapture(self.state, _ispytest=True)
        self.entry_context = context.get_current()
        self.reported_scope_events = 0
        # Report sections waiting for the report of their phase: (when, text).
        self.sections: list[tuple[str, str]] = []
        # Every finding of this test (for --tracechain-html and --tracechain-export).
        self.findings: list[Finding] = []
        # Whether a phase of this test failed (set by the report hook).
        self.failed = False
        # How many spans had finished when the call-end check ran (None: it did not run).
        self.finished_at_call: int | None = None
        self.router.open(self.state)

    def phase_started(self) -> None:
        """The span current when a test phase starts belongs to the test harness."""
        current = _spawn.mark_home()
        if current is None:
            current = context.get_current()
        if not current:  # an empty context, as between tests without a harness's spans: no span
            return
        span_context = trace.get_current_span(current).get_span_context()
        if span_context.is_valid:
            self.state.add_ambient(span_context.span_id)

    def phase_ended(self) -> None:
        self.state.phase_ended()

    def check_call(self, *, test_failed: bool) -> None:
        """When the test function returns (or raised): the analysis of finished spans."""
        if self.check is not CheckMode.OFF:
            self.router.settle()
            self.finished_at_call = len(self.state.finished)
            self._act_on(_analyze(self.state) + self._new_scope_findings(), test_failed=test_failed)

    def end(self) -> None:
        """At the end of teardown: close the capture; unended spans, scope leaks, leaks."""
        leftovers = _scope.leftover(self.state, self.entry_context)
        self.router.settle()  # the spans the receiver answered for during the test are the test's
        self.router.close(self.state)
        if not self.state.origins:
            reason = _provider.why_nothing_is_captured()
            if reason is not None:  # said once in the terminal summary
                self.item.user_properties.append((SILENT_PROPERTY, reason))
        if self.check is CheckMode.OFF:
            return
        # Spans of earlier tests that ended since: reported through this test's
        # report, so the controller's summary lists them under pytest-xdist too.
        for leak in self.router.drain_leaks():
            self.item.user_properties.append((LEAK_PROPERTY, leak.as_property()))
        findings = self._ended_since_call()
        if self.state.open:
            from pytest_tracechain._chain import unended

            findings += unended(self.state)
        findings += self._new_scope_findings()
        if leftovers:
            from pytest_tracechain._chain import scope_leaks

            findings += scope_leaks(leftovers)
        self._act_on(findings, test_failed=False)

    def _ended_since_call(self) -> list[Finding]:
        """Findings the call-end check could not see: spans that ended during teardown.

        (A consumer or worker fixture's span, still open when the test returned.)
        """
        if self.finished_at_call is None or len(self.state.finished) == self.finished_at_call:
            return []
        seen = {_key(finding) for finding in self.findings}
        return [finding for finding in _analyze(self.state) if _key(finding) not in seen]

    def _new_scope_findings(self) -> list[Finding]:
        if len(self.state.scope_events) == self.reported_scope_events:
            return []
        events = self.state.scope_events[self.reported_scope_events :]
        self.reported_scope_events += len(events)
        from pytest_tracechain._chain import scope_leaks

        return scope_leaks(events)

    def _act_on(self, findings: list[Finding], *, test_failed: bool) -> None:
        """Record findings in the report, then warn or fail as the check mode says."""
        if not findings:
            return
        from pytest_tracechain._chain import report, summary

        self.findings += findings
        item = self.item
        text = report(findings, self.state)
        item.user_properties.append((PROPERTY, summary(findings)))
        item.user_properties.append((f"{PROPERTY}.report", text))
        if self.check is CheckMode.FAIL and not test_failed:
            error = TraceAssertionError(text)
            error._tracechain_note = FAIL_MODE_NOTE  # type: ignore[attr-defined]  # shown as the report alone
            raise error
        if not test_failed:  # a failed test shows its own error; the section explains the chain
            line = _def_line(item)
            try:
                # Attributed to the test, so the warnings summary points at it.
                warnings.warn_explicit(TraceChainWarning(text), TraceChainWarning, str(item.path), line)
            except TraceChainWarning as error:  # -W error::...TraceChainWarning: the warning is the failure
                error._tracechain_note = WARNING_AS_ERROR_NOTE  # type: ignore[attr-defined]
                raise
        if test_failed:
            # The failure shows the traces (its message, or the captured-traces section, marked
            # as here): the section lists the findings only, so nothing is said twice.
            text = report(findings, self.state, trees=False)
        self.sections.append(("teardown" if self.state.closed else "call", text))

    def trees_section(self, *, color: bool = False) -> tuple[str, str]:
        """The report section of ``--tracechain-show``: the captured trees, spans at fault marked."""
        from pytest_tracechain._render import MESSAGE_LIMIT

        marks = {f.span.context.span_id: f.kind.value for f in self.findings if f.span is not None}
        return (TREES_SECTION, self.state.render(highlight=marks, limit=MESSAGE_LIMIT, color=color))

    def take_sections(self, when: str) -> list[tuple[str, str]]:
        """The report sections of phase ``when``, once."""
        if not self.sections:
            return []
        taken = [(REPORT_SECTION, text) for phase, text in self.sections if phase == when]
        self.sections = [entry for entry in self.sections if entry[0] != when]
        return taken
