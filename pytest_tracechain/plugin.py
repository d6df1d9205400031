"""pytest hooks and fixtures of pytest-tracechain (the ``pytest11`` entry point).

Kept thin and free of OpenTelemetry imports: a session where no test uses the
plugin imports nothing and installs no tracer provider.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_tracechain._errors import TraceAssertionError
from pytest_tracechain._settings import CheckMode, Rules

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from pytest_tracechain._capture import TraceCapture
    from pytest_tracechain._otlp import OtlpReceiver
    from pytest_tracechain._outputs import Outputs  # noqa: F401  (outputs_key's type)
    from pytest_tracechain._session import TestRun

CHECK_MODES = CheckMode.names()
SHOW_MODES = ("fail", "all", "off")
_FIXTURES = frozenset({"tracechain", "tracer"})
_MARKER_ARGS = ("check", "single_trace", "lost_context")
# The user properties _session.TestRun puts on reports (plain strings here, so
# the summary needs no import of it).
_PROPERTY = "tracechain"
_LEAK_PROPERTY = "tracechain.leaked"
_SILENT_PROPERTY = "tracechain.nothing_captured"
_TREES_SECTION = "tracechain: captured traces"  # _session.TREES_SECTION
_ACTIVE_HOOKS = "tracechain-active-hooks"
_DEFAULT_RULES = Rules()  # frozen: one for every test without the marker


run_key = pytest.StashKey["TestRun"]()
# (check mode, check every test), from options and ini, read at configure.
_settings_key = pytest.StashKey[tuple[CheckMode, bool]]()
# --tracechain-show's mode, read at configure.
_show_key = pytest.StashKey[str]()
# Whether report sections get colour, read at the first use.
_color_key = pytest.StashKey[bool]()
# The writers of --tracechain-export and --tracechain-html, when either is asked for.
outputs_key = pytest.StashKey["Outputs"]()


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
    group.addoption(
        "--tracechain-show",
        choices=SHOW_MODES,
        default=None,
        help="print the captured trace trees in a report section of failing tests (fail), of every "
        "captured test (all: a passing test's trees in the terminal summary, or with -rP in pytest's "
        "PASSES section), or never (off) (default: the tracechain_show ini value, else fail)",
    )
    group.addoption(
        "--tracechain-export",
        metavar="DIR",
        default=None,
        help="write the spans of each failing captured test to DIR as OTLP JSON, one file per test",
    )
    group.addoption(
        "--tracechain-html",
        metavar="FILE",
        default=None,
        help="write one self-contained HTML page with a waterfall of each captured test's traces",
    )
    parser.addini("tracechain_check", "off, warn or fail: see --tracechain-check", default="warn")
    parser.addini("tracechain_show", "fail, all or off: see --tracechain-show", default="fail")
    parser.addini("tracechain_export", "a directory: see --tracechain-export", default="")
    parser.addini("tracechain_html", "a file: see --tracechain-html", default="")
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
    mode = _option_or_ini(config, "tracechain_check").lower()
    if mode not in CHECK_MODES:
        raise pytest.UsageError(f"tracechain_check = {mode!r} is not one of: {', '.join(CHECK_MODES)}")
    config.stash[_settings_key] = (CheckMode(mode), _check_all(config))  # read once, used by every test
    show = _option_or_ini(config, "tracechain_show").lower()
    if show not in SHOW_MODES:
        raise pytest.UsageError(f"tracechain_show = {show!r} is not one of: {', '.join(SHOW_MODES)}")
    config.stash[_show_key] = show
    export_dir = _option_or_ini(config, "tracechain_export")
    html_file = _option_or_ini(config, "tracechain_html")
    if export_dir or html_file:
        from pytest_tracechain._outputs import Outputs

        outputs = Outputs(config, export_dir=export_dir or None, html_file=html_file or None)
        config.stash[outputs_key] = outputs
        config.pluginmanager.register(outputs, "tracechain-outputs")
    config.pluginmanager.register(_Summary(show_passing=show == "all"), "tracechain-summary")


def pytest_unconfigure(config: pytest.Config) -> None:
    provider = sys.modules.get("pytest_tracechain._provider")
    if provider is not None:
        provider.shutdown()


def _color(config: pytest.Config) -> bool:
    """Whether the terminal takes colour (``--color``, ``NO_COLOR``, ``FORCE_COLOR``, a tty)."""
    color = config.stash.get(_color_key, None)
    if color is None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        color = config.stash[_color_key] = bool(getattr(getattr(reporter, "_tw", None), "hasmarkup", False))
    return color


def _option_or_ini(config: pytest.Config, name: str) -> str:
    option = config.getoption(name, None)
    return str(option if option is not None else config.getini(name)).strip()


def _check_all(config: pytest.Config) -> bool:
    option = config.getoption("tracechain_check_all", None)
    return bool(option if option is not None else config.getini("tracechain_check_all"))


def _marker_settings(item: pytest.Item, marker: pytest.Mark | None) -> tuple[CheckMode, Rules]:
    check = item.config.stash[_settings_key][0]
    if marker is None:
        return check, _DEFAULT_RULES
    unknown = sorted(set(marker.kwargs) - set(_MARKER_ARGS))
    if marker.args or unknown:
        given = ", ".join([*map(repr, marker.args), *(f"{k}=" for k in unknown)])
        pytest.fail(
            f"@pytest.mark.tracechain got {given}; it takes only the keyword arguments "
            "check='off'|'warn'|'fail', single_trace=bool, lost_context=bool",
            pytrace=False,
        )
    asked = marker.kwargs.get("check")
    if asked is not None:
        # The values of the ini option, in any case as there; "" is not a mode.
        if not isinstance(asked, str) or asked.strip().lower() not in CHECK_MODES:
            pytest.fail(
                f"@pytest.mark.tracechain(check={asked!r}): check must be one of {', '.join(CHECK_MODES)}",
                pytrace=False,
            )
        check = CheckMode(asked.strip().lower())
    return check, Rules(
        lost_context=_marker_flag(marker, "lost_context", default=True),
        single_trace=_marker_flag(marker, "single_trace", default=False),
    )


def _marker_flag(marker: pytest.Mark, name: str, *, default: bool) -> bool:
    """A boolean argument of the marker: True or False, never a value taken by its truthiness."""
    value = marker.kwargs.get(name, default)
    if not isinstance(value, bool):
        pytest.fail(f"@pytest.mark.tracechain({name}={value!r}): {name} must be True or False", pytrace=False)
    return value


def _session() -> Any:
    """``pytest_tracechain._session``, imported on the first test that uses the plugin."""
    session = sys.modules.get("pytest_tracechain._session")
    if session is None:
        import pytest_tracechain._session as session
    return session


def _start(item: pytest.Item, marker: pytest.Mark | None) -> TestRun:
    manager = item.config.pluginmanager
    if not manager.has_plugin(_ACTIVE_HOOKS):
        manager.register(_ActiveHooks(item.config), _ACTIVE_HOOKS)
    check, rules = _marker_settings(item, marker)
    run: TestRun = _session().TestRun(item, check, rules)
    item.stash[run_key] = run
    return run


# trylast: run inside other plugins' wrappers, so the span they open for the
# phase (pytest-opentelemetry, pytest-otel) is already current and counts as ambient.
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    marker = item.get_closest_marker("tracechain")
    names = getattr(item, "fixturenames", ())
    wanted = (
        marker is not None
        or "tracechain" in names
        or "tracer" in names
        # a test that receives spans from other processes wants them captured
        or "otlp_receiver" in names
        or item.config.stash[_settings_key][1]
    )
    run = _start(item, marker) if wanted else None
    if run is not None:
        run.phase_started()
    try:
        return (yield)
    finally:
        if run is not None:
            run.phase_ended()


class _ActiveHooks:
    """The per-test hooks, registered when the first test uses the plugin.

    Until then a session pays only for the setup hook's check of each test's
    fixture names: a project with the plugin installed and unused is left alone.
    """

    def __init__(self, config: pytest.Config) -> None:
        # Read once (pytest_configure set them), not at each of a test's three reports.
        self.show = config.stash[_show_key]
        self.outputs = config.stash.get(outputs_key, None)

    # trylast: run inside other plugins' wrappers (see pytest_runtest_setup).
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        run = item.stash.get(run_key, None)
        if run is None:
            return (yield)
        run.phase_started()
        try:
            result = yield
        except BaseException:
            run.phase_ended()
            run.check_call(test_failed=True)
            raise
        run.phase_ended()
        run.check_call(test_failed=False)
        return result

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        run = item.stash.get(run_key, None)
        if run is None:
            return (yield)
        run.phase_started()
        try:
            return (yield)
        finally:
            run.end()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, Any]:
        report = yield
        run = item.stash.get(run_key, None)
        if run is None:
            return report
        # Most reports have nothing to add: the phase raised nothing, no chain report waits, no trees.
        if call.excinfo is not None or run.sections or self.show == "all" or report.outcome == "failed":
            self._annotate(report, run, call, item.config)
        if call.when == "teardown":
            if self.outputs is not None:
                self.outputs.test_finished(item, run)
            del item.stash[run_key]  # the test is over: let its spans go
        return report

    def _annotate(
        self, report: pytest.TestReport, run: TestRun, call: pytest.CallInfo[None], config: pytest.Config
    ) -> None:
        """The chain report and the captured trees of a phase, in its report."""
        error = call.excinfo.value if call.excinfo is not None else None
        note = getattr(error, "_tracechain_note", None)
        if note is not None:
            report.longrepr = f"{error}\n\n{note}"  # the chain report alone, no plugin frames
        report.sections.extend(run.take_sections(call.when))
        failed = report.failed
        if failed:
            run.failed = True
        show = self.show
        wanted = (show == "all" and call.when == "call") or (show == "fail" and failed)
        # A failed trace assertion, and a chain report raised as the failure, already show the
        # traces in their message: said once.
        shown = failed and (isinstance(error, TraceAssertionError) or note is not None)
        if wanted and not shown:
            report.sections.append(run.trees_section(color=_color(config)))


class _Summary:
    """Counts the reports with broken chains (on the controller under pytest-xdist)."""

    def __init__(self, show_passing: bool = False) -> None:
        self.show_passing = show_passing  # --tracechain-show=all: trees of passing tests, if pytest won't
        self.passing: list[tuple[str, str]] = []  # (nodeid, trees)
        self.broken: dict[str, list[str]] = {}
        self.leaked: list[object] = []  # Leak.as_property() values, from every report
        self.silent: dict[str, None] = {}  # why nothing could be captured, in order

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.show_passing and report.when == "call" and report.passed:
            self.passing += [
                (report.nodeid, text) for name, text in report.sections if name == _TREES_SECTION
            ]
        if not report.user_properties:
            return
        found = [str(value) for name, value in report.user_properties if name == _PROPERTY]
        if found:
            self.broken.setdefault(report.nodeid, []).extend(found)
        self.leaked += [value for name, value in report.user_properties if name == _LEAK_PROPERTY]
        self.silent.update(
            dict.fromkeys(str(v) for name, v in report.user_properties if name == _SILENT_PROPERTY)
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        # pytest prints a passing test's sections only with -rP (or -rA).
        if self.passing and "P" not in getattr(terminalreporter, "reportchars", ""):
            terminalreporter.section("tracechain: captured traces of passing tests")
            for nodeid, text in self.passing:
                terminalreporter.write_sep("_", nodeid)
                terminalreporter.line(text)

        router = _settled_router()
        leaked = _leak_lines(self.leaked, router)
        dropped = router.dropped if router is not None else 0  # otlp_receiver, between tests
        if dropped:
            leaked.append(
                f"otlp_receiver dropped {dropped} span{'s' if dropped != 1 else ''} that arrived while no "
                "test was running"
            )
        # Once per session: assertions found nothing, and no chain could break.
        leaked[:0] = [f"nothing was captured: {reason}" for reason in self.silent]
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


def _settled_router() -> Any:
    """This process's router once the requests the receiver answered are captured (None if never made)."""
    provider = sys.modules.get("pytest_tracechain._provider")
    router = provider.existing_router() if provider is not None else None
    if router is not None:
        router.settle()  # what the receiver answered last is counted, dropped or leaked
    return router


def _leak_lines(reported: list[object], router: Any) -> list[str]:
    """One line per test whose spans outlived it: reported ones, then this process's since.

    A test's leaks can be drained at several later teardowns (and a report
    can come twice, as with pytest-rerunfailures): they are added up per test.
    """
    if not reported and router is None:
        return []
    from pytest_tracechain._leaks import Leak

    per_test: dict[str, Leak] = {}
    seen: set[tuple[object, ...]] = set()
    drained = router.drain_leaks() if router is not None else []  # ended after the last test
    for leak in [Leak.from_property(value) for value in reported] + drained:
        if leak is None:
            continue
        key = (leak.test, leak.span_name, leak.after_ns, leak.count)
        if key in seen:
            continue
        seen.add(key)
        if leak.test in per_test:
            per_test[leak.test].merge(leak)
        else:
            per_test[leak.test] = leak
    lines = [leak.describe() for leak in per_test.values()]
    if router is not None:  # open when the session ended: never reported otherwise (this process only)
        for test, count in router.still_open().items():
            spans = "span" if count == 1 else "spans"
            lines.append(
                f"{count} {spans} of {test} still open when the session ended (work that outlived it)"
            )
    return lines


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> None:
    """Start the capture for a test that asks for a fixture of ours with getfixturevalue()."""
    if fixturedef.argname in _FIXTURES and run_key not in request.node.stash:
        _start(request.node, request.node.get_closest_marker("tracechain"))


# The fixtures take no `request` (pytest builds a request fixture definition for
# every use of it, a measurable part of a test's cost): the capture is the
# running test's, which the router holds while the test runs.
@pytest.fixture
def tracechain() -> TraceCapture:
    """The spans started during this test (a ``TraceCapture``)."""
    capture: TraceCapture = _session().running_capture()  # not `from ... import` (about 1 µs a test)
    return capture


@pytest.fixture(scope="session")
def otlp_receiver() -> Generator[OtlpReceiver, None, None]:
    """A local OTLP/HTTP receiver; spans other processes export to it join the running test's capture.

    Needs the ``otlp`` extra (``pip install pytest-tracechain[otlp]``).
    """
    from pytest_tracechain import _otlp

    with _otlp.serve() as receiver:
        yield receiver


@pytest.fixture
def tracer() -> Tracer:
    """An OpenTelemetry tracer of the provider in use, for spans the test opens itself."""
    from pytest_tracechain import _provider

    return _provider.tracer()


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    """Whole lines for a failed ``tracechain.tree() == expected`` (pytest would cut them)."""
    tree_text = sys.modules.get("pytest_tracechain._tree_text")
    if op != "==" or tree_text is None:  # not loaded: no tree() was taken (and nothing is imported)
        return None
    return tree_text.compare_trees(left, right)  # type: ignore[no-any-return]
