"""The demo's stage timeline: wall and CPU seconds per stage, as `make bench` reads them.

The clocks are a test clock (wall and CPU seconds advanced by the test), so what is checked is
the bookkeeping, not how fast this machine is: a shared machine made a real-clock version fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli import demo
from mlops_cli.demo import Timeline, save_timeline


class Clock:
    """Wall and CPU clocks in the shape of the `time` functions the timeline reads."""

    def __init__(self) -> None:
        self.wall, self.cpu = 1000.0, 10.0

    def perf_counter(self) -> float:
        return self.wall

    def process_time(self) -> float:
        return self.cpu

    def busy(self, seconds: float) -> None:
        self.wall += seconds
        self.cpu += seconds

    def wait(self, seconds: float) -> None:
        self.wall += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(demo, "time", fake)
    return fake


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory with the demo's folder, as `mlops demo` leaves it."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
    (tmp_path / "demo").mkdir()
    return tmp_path


def _timeline(clock: Clock) -> Timeline:
    return Timeline(_cpu_mark=clock.process_time())


def test_each_stage_records_the_cpu_this_process_spent_in_it(state: Path, clock: Clock) -> None:
    timeline = _timeline(clock)
    started = clock.perf_counter()
    clock.busy(0.2)
    timeline.add("busy", "done", started)
    started = clock.perf_counter()
    clock.wait(0.3)
    timeline.add("waiting", "done", started)

    saved = json.loads(save_timeline(timeline, {"v1": "1"}).read_text())

    busy, waiting = saved["stages"]
    assert (busy["seconds"], busy["cpu_seconds"]) == (0.2, 0.2)
    assert (waiting["seconds"], waiting["cpu_seconds"]) == (0.3, 0.0)
    assert saved["total_cpu_seconds"] == pytest.approx(0.2)
    assert saved["total_seconds"] == pytest.approx(0.5)


def test_each_promote_command_is_timed_on_its_own_and_the_budget_reads_those(
    state: Path, clock: Clock
) -> None:
    from benchmarks.budget import figures

    timeline = _timeline(clock)
    started = clock.perf_counter()
    refused = clock.perf_counter()
    clock.wait(0.3)  # the refused attempt and the approvals of a production stage
    timeline.promotion("1", "production", 5, refused)
    promoted = clock.perf_counter()
    clock.busy(0.1)
    timeline.promotion("1", "production", 0, promoted)
    timeline.add("v1 to production", "promoted", started)

    saved = json.loads(save_timeline(timeline, {"v1": "1"}).read_text())

    (stage,) = saved["stages"]
    refusal, promotion = saved["promotions"]
    assert (refusal["exit_code"], promotion["exit_code"]) == (5, 0)
    assert promotion["to"] == "production" and promotion["version"] == "1"
    assert (promotion["seconds"], refusal["seconds"], stage["seconds"]) == (0.1, 0.3, 0.4)
    # The budgeted figure is the successful command, not the stage with its approvals.
    assert figures({"lifecycle": saved})["promotion_max_seconds"] == promotion["seconds"]
    # A timeline written before the commands were timed falls back to the stages.
    older = {k: v for k, v in saved.items() if k != "promotions"}
    assert figures({"lifecycle": older})["promotion_max_seconds"] == stage["seconds"]


def test_a_chapter_outside_the_lifecycle_is_saved_apart_and_not_in_the_total(
    state: Path, clock: Clock
) -> None:
    timeline = _timeline(clock)
    started = clock.perf_counter()
    clock.busy(0.1)
    timeline.add("train v1", "done", started)
    started = clock.perf_counter()
    clock.busy(0.2)
    timeline.add_chapter("real-time scoring", "HTTP 200", started)
    started = clock.perf_counter()
    clock.busy(0.1)
    timeline.add("lineage", "done", started)

    saved = json.loads(save_timeline(timeline, {"v1": "1"}).read_text())

    assert [s["stage"] for s in saved["stages"]] == ["train v1", "lineage"]
    (chapter,) = saved["outside_total"]
    assert chapter == {
        "stage": "real-time scoring",
        "outcome": "HTTP 200",
        "seconds": 0.2,
        "cpu_seconds": 0.2,
    }
    assert saved["total_seconds"] == pytest.approx(0.2)
    # The chapter's CPU is its own: the stage after it does not count it again.
    assert saved["stages"][1]["cpu_seconds"] == pytest.approx(0.1)
