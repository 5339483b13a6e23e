"""The local ZenML dashboard, opened in headless Chromium, shows a real training run and its
model report visualization.

One real training run in an isolated state, then `start_zenml_server` (the code behind
`make dashboard`) on a free port, never 8237, so a user's own dashboard is left alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from zenml.client import Client

from mlops_platform.infra.dashboard import (
    RUNS_PAGE,
    ZENML_PORT,
    api_get,
    api_token,
    free_port,
    port_open,
    start_zenml_server,
    stop_zenml_server,
)
from mlops_platform.names import PlatformArtifact
from mlops_platform.reporting.model_report import SECTION_IDS
from tests.integration import browser
from tests.integration.helpers import invoke, write_synthetic_csv

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_dashboard_shows_the_run_and_the_model_report(
    isolated_state: Path, output_dir: Path
) -> None:
    browser.chromium()
    data = write_synthetic_csv(isolated_state.parent / "train.csv")
    trained = invoke("train", "--data", str(data))
    assert trained.exit_code == 0, trained.output
    client = Client()
    run = client.list_pipeline_runs(sort_by="desc:created", size=1).items[0]
    report = client.get_artifact_version(PlatformArtifact.MODEL_REPORT)

    port = free_port()
    assert port != ZENML_PORT
    started = time.monotonic()
    try:
        url = start_zenml_server(port)
        server_s = time.monotonic() - started
        token = api_token(url)
        visual = api_get(url, f"/artifact_versions/{report.id}/visualize?index=0", token)
        assert visual["type"] == "html"
        for section_id in SECTION_IDS:
            assert f'<section id="{section_id}">' in visual["value"], section_id

        page = f"{url}{RUNS_PAGE}"
        dom = browser.dump_dom(page)
        browser.screenshot(page, output_dir / "dashboard_runs.png")
        assert "Add your account details" not in dom, "onboarding survey was not skipped"
        assert run.name in dom, f"run {run.name} not on {page}"
    finally:
        stop_zenml_server()
    assert not port_open(port)
    print(f"server start {server_s:.1f} s, total {time.monotonic() - started:.1f} s")
