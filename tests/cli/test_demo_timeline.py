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


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory with the demo's folder, as `mlops demo` leaves it."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
    (tmp_path / "demo").mkdir()
    return tmp_path


def test_each_stage_records_the_cpu_this_process_spent_in_it(state: Path) -> None:
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


def test_each_promote_command_is_timed_on_its_own_and_the_budget_reads_those(
    state: Path,
) -> None:
    from benchmarks.budget import figures

    timeline = Timeline()
    started = time.perf_counter()
    refused = time.perf_counter()
    time.sleep(0.3)  # the refused attempt and the approvals of a production stage
    timeline.promotion("1", "production", 5, refused)
    promoted = time.perf_counter()
    time.sleep(0.1)
    timeline.promotion("1", "production", 0, promoted)
    timeline.add("v1 to production", "promoted", started)

    saved = json.loads(save_timeline(timeline, {"v1": "1"}).read_text())

    (stage,) = saved["stages"]
    refusal, promotion = saved["promotions"]
    assert (refusal["exit_code"], promotion["exit_code"]) == (5, 0)
    assert promotion["to"] == "production" and promotion["version"] == "1"
    assert 0.09 <= promotion["seconds"] < refusal["seconds"] < stage["seconds"]
    # The budgeted figure is the successful command, not the stage with its approvals.
    assert figures({"lifecycle": saved})["promotion_max_seconds"] == promotion["seconds"]
    # A timeline written before the commands were timed falls back to the stages.
    older = {k: v for k, v in saved.items() if k != "promotions"}
    assert figures({"lifecycle": older})["promotion_max_seconds"] == stage["seconds"]


def test_a_chapter_outside_the_lifecycle_is_saved_apart_and_not_in_the_total(state: Path) -> None:
    timeline = Timeline()
    started = time.perf_counter()
    _burn(0.1)
    timeline.add("train v1", "done", started)
    started = time.perf_counter()
    _burn(0.2)
    timeline.add_chapter("real-time scoring", "HTTP 200", started)
    started = time.perf_counter()
    _burn(0.1)
    timeline.add("lineage", "done", started)

    saved = json.loads(save_timeline(timeline, {"v1": "1"}).read_text())

    assert [s["stage"] for s in saved["stages"]] == ["train v1", "lineage"]
    (chapter,) = saved["outside_total"]
    assert chapter["stage"] == "real-time scoring" and chapter["cpu_seconds"] >= 0.19
    assert saved["total_seconds"] == pytest.approx(
        sum(s["seconds"] for s in saved["stages"]), abs=0.01
    )
    assert saved["total_seconds"] < 0.2 + chapter["seconds"]
    # The chapter's CPU is its own: the stage after it does not count it again.
    assert saved["stages"][1]["cpu_seconds"] < 0.18
