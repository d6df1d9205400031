"""--tracechain-export and --tracechain-html (work in progress)."""

from __future__ import annotations

import pytest

from pytest_tracechain._session import TestRun


class Outputs:
    """Writes captured tests out as OTLP JSON files and one HTML page."""

    def __init__(self, config: pytest.Config, *, export_dir: str | None, html_file: str | None) -> None:
        self.config = config
        self.export_dir = export_dir
        self.html_file = html_file

    def test_finished(self, item: pytest.Item, run: TestRun) -> None:
        """Called at the end of each captured test's teardown report."""
