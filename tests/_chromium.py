"""Headless Chromium for the tests that look at a page: the HTML report, the built docs.

Debian's ``chromium`` (``.ci/run`` installs it). Without it a test skips with
the reason, except under ``CI=true``, where that is a failure: CI must not pass
by skipping what it is there to check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Nothing fetched, nothing synced, the same colours and no scrollbars on every machine.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
)


def find_chromium(needed_by: str) -> str:
    """The chromium binary; skip (fail under CI=true) naming what ``needed_by`` it."""
    path = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing; CI must install it (Debian package chromium, see .ci/run)")
        pytest.skip(f"chromium is not installed (Debian package chromium); {needed_by} needs it")
    return path


def run_chromium(chromium: str, profile: Path, *args: str, window: tuple[int, int] = (1200, 800)) -> str:
    """Run headless Chromium with its own profile directory and window; its stdout (``--dump-dom``)."""
    done = subprocess.run(
        [chromium, *FLAGS, f"--window-size={window[0]},{window[1]}", f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout
