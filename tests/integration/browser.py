"""Headless Debian Chromium for the browser tests: the rendered DOM and a screenshot of a page."""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

TIMEOUT_S = 120
SCREENSHOT_ATTEMPTS = 3
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


def _chromium(url: str, action: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run(
            [chromium(), *BASE_FLAGS, f"--user-data-dir={profile}", action, url],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    assert done.returncode == 0, f"chromium {action} {url} failed: {done.stderr[-2000:]}"
    return done


def dump_dom(url: str) -> str:
    return _chromium(url, "--dump-dom").stdout


def screenshot(url: str, target: Path) -> Path:
    """A PNG of the page. Headless Chromium on a loaded machine now and then exits 0 without
    writing the file (seen once in CI), so a missing file is retried before it fails the test."""
    stderr = ""
    for _ in range(SCREENSHOT_ATTEMPTS):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        stderr = _chromium(url, f"--screenshot={target}").stderr
        if target.is_file() and target.stat().st_size > 0:
            return target
    raise AssertionError(
        f"no screenshot of {url} after {SCREENSHOT_ATTEMPTS} attempts: {stderr[-2000:]}"
    )


def terminal_page(command: str, output: str) -> str:
    """An HTML page showing `$ command` and its output as a terminal would, for a screenshot of
    a command-line table (the README's `mlops versions`, for instance)."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(command)}</title></head>"
        "<body style='margin:0;background:#1e1e1e'>"
        "<pre style=\"margin:0;padding:20px;color:#e6e6e6;font:14px/1.35 'DejaVu Sans Mono',"
        'monospace">'
        f"<span style='color:#8ae234'>$</span> {html.escape(command)}\n{html.escape(output)}"
        "</pre></body></html>"
    )
