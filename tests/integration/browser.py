"""Headless Debian Chromium for the browser tests: the rendered DOM and a screenshot of a page."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

TIMEOUT_S = 120
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--window-size=1400,900",
    "--virtual-time-budget=15000",
)


def chromium() -> str:
    """The Chromium binary, or a skip saying why there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "No Chromium binary on PATH: `apt-get install -y chromium` failed or was not run "
            "(.ci/run attempts it); the browser tests need Debian's headless Chromium."
        )
    return found


def _chromium(url: str, action: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run(
            [chromium(), *BASE_FLAGS, f"--user-data-dir={profile}", action, url],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    assert done.returncode == 0, f"chromium {action} {url} failed: {done.stderr[-2000:]}"
    return done.stdout


def dump_dom(url: str) -> str:
    return _chromium(url, "--dump-dom")


def screenshot(url: str, target: Path) -> Path:
    target.unlink(missing_ok=True)
    _chromium(url, f"--screenshot={target}")
    assert target.is_file() and target.stat().st_size > 0, f"no screenshot of {url}"
    return target
