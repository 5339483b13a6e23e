"""The demo's stage timeline: wall and CPU seconds per stage, as `make bench` reads them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mlops_cli.demo import Timeline, save_timeline


def _burn(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_each_stage_records_the_cpu_this_process_spent_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
    (tmp_path / "demo").mkdir()
    timeline = Timeline()
    started = time.perf_counter()
    _burn(0.2)
    timeline.add("busy", "done", started)
    started = time.perf_counter()
    time.sleep(0.2)
    timeline.add("waiting", "done", started)

    saved = json.loads(save_timeline(timeline, {"v1": "1"}).read_text())

    busy, waiting = saved["stages"]
    assert busy["cpu_seconds"] >= 0.19 and busy["seconds"] >= busy["cpu_seconds"] - 0.02
    assert waiting["seconds"] >= 0.19 and waiting["cpu_seconds"] < 0.1
    assert saved["total_cpu_seconds"] == pytest.approx(
        busy["cpu_seconds"] + waiting["cpu_seconds"], abs=0.02
    )
