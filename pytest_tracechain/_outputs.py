"""``--tracechain-export=DIR`` and ``--tracechain-html=FILE``: the plugin object that writes them.

``plugin.py`` registers an ``Outputs`` when either option is given and calls
``test_finished`` at the end of each captured test. Export files are written
there, by whichever process ran the test (each pytest-xdist worker writes its
own files into the same directory). The HTML page is written once: a worker
reduces each test to plain data and sends it to the controller in its
``workeroutput``; the controller (or the single process) writes the page at
session finish.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_tracechain import _export, _html
from pytest_tracechain._session import TestRun

# Keys in pytest-xdist's workerinput (paths resolved by the controller) and workeroutput.
_EXPORT_DIR = "tracechain_export_dir"
_HTML_FILE = "tracechain_html_file"
_HTML_TESTS = "tracechain_html_tests"
_EXPORTED = "tracechain_exported"
_ERRORS = "tracechain_output_errors"


class Outputs:
    """Writes captured tests out as OTLP JSON files and one HTML page."""

    def __init__(self, config: pytest.Config, *, export_dir: str | None, html_file: str | None) -> None:
        self.config = config
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        base = config.invocation_params.dir
        if workerinput is not None and _EXPORT_DIR in workerinput:
            export_dir, html_file = workerinput[_EXPORT_DIR], workerinput[_HTML_FILE]
        self.export_dir = Path(base, export_dir) if export_dir else None
        self.html_file = Path(base, html_file) if html_file else None
        self.exported = 0
        self.html_tests: list[_html.TestData] = []
        self.errors: list[str] = []
        self.html_written = False
        self._order: dict[str, int] | None = None
        self._outcomes: dict[str, str] = {}  # nodeid -> outcome of a skipped or xfail test's setup/call

    # -- per test ------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            return
        if hasattr(report, "wasxfail"):
            self._outcomes[report.nodeid] = "xfailed" if report.skipped else "xpassed"
        elif report.skipped:
            self._outcomes[report.nodeid] = "skipped"
        elif report.failed:  # kept until the test's teardown, also when that passes
            self._outcomes[report.nodeid] = "failed" if report.when == "call" else "error"

    def test_finished(self, item: pytest.Item, run: TestRun) -> None:
        """Called at the end of each captured test's teardown report."""
        try:
            self._test_finished(item, run)
        except Exception as exc:  # never crash the session over a report file
            self.errors.append(f"could not write the report of {item.nodeid}: {type(exc).__name__}: {exc}")

    def _test_finished(self, item: pytest.Item, run: TestRun) -> None:
        capture = run.state
        outcome = self._outcomes.pop(item.nodeid, None)
        if run.failed and outcome not in ("failed", "error"):
            outcome = "error"  # a teardown error (an unended span in fail mode, or a fixture's)
        outcome = outcome or "passed"
        now = time.time_ns()
        spans = capture.all_spans()
        if self.export_dir is not None and run.failed:
            self.export_dir.mkdir(parents=True, exist_ok=True)
            path = self.export_dir / _export.file_name(item.nodeid)
            document = _export.encode_spans(spans, end_time=now)
            path.write_text(json.dumps(document, ensure_ascii=True, separators=(",", ":")), encoding="ascii")
            self.exported += 1
        if self.html_file is not None:
            self.html_tests.append(
                _html.reduce_test(
                    item.nodeid,
                    spans,
                    findings=run.findings,
                    origins=capture.origin_map,
                    ambient=frozenset(capture.ambient),
                    outcome=outcome,
                    order=self._order_of(item),
                    end_time=now,
                )
            )

    def _order_of(self, item: pytest.Item) -> int:
        if self._order is None:
            self._order = {each.nodeid: index for index, each in enumerate(item.session.items)}
        return self._order.get(item.nodeid, len(self._order))

    # -- pytest-xdist ---------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Controller: give workers the paths resolved here (workers may run elsewhere)."""
        node.workerinput[_EXPORT_DIR] = str(self.export_dir) if self.export_dir else None
        node.workerinput[_HTML_FILE] = str(self.html_file) if self.html_file else None

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """Controller: collect what a worker wrote and the tests it reduced for the page."""
        output = getattr(node, "workeroutput", None) or {}
        self.exported += int(output.get(_EXPORTED, 0))
        self.errors += list(output.get(_ERRORS, ()))
        tests = output.get(_HTML_TESTS)
        if tests:
            self.html_tests += json.loads(tests)

    # -- session end ----------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            output: dict[str, Any] = self.config.workeroutput  # type: ignore[attr-defined]
            output[_EXPORTED] = self.exported
            output[_ERRORS] = self.errors
            if self.html_file is not None:
                output[_HTML_TESTS] = json.dumps(self.html_tests)
            return
        if self.html_file is None:
            return
        try:
            self.html_file.parent.mkdir(parents=True, exist_ok=True)
            text = _html.page(self.html_tests)
            self.html_file.write_text(text, encoding="utf-8", errors="replace")
            self.html_written = True
        except Exception as exc:  # never crash the session over a report file
            self.errors.append(f"could not write {self.html_file}: {exc}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """One line per output, as ``--junitxml`` prints where its file went."""
        if self.is_worker:
            return
        if self.export_dir is not None:
            count = self.exported
            terminalreporter.write_sep(
                "-",
                f"tracechain: {count} OTLP JSON file{'s' if count != 1 else ''} (one per failing captured "
                f"test) in {_shown(self.export_dir)}",
            )
        if self.html_written and self.html_file is not None:
            count = len(self.html_tests)
            terminalreporter.write_sep(
                "-",
                f"tracechain: HTML report of {count} captured test{'s' if count != 1 else ''} in "
                f"{_shown(self.html_file)}",
            )
        for error in self.errors:
            terminalreporter.write_line(f"tracechain: {error}", red=True)


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is below it."""
    try:
        return os.path.relpath(path) if Path.cwd() in path.parents else str(path)
    except ValueError:
        return str(path)
