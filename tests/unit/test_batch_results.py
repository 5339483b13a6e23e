"""Result directories: staged under a hidden name, published by rename, never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_platform.batch.results import (
    INCOMPLETE_PREFIX,
    MANIFEST_FILE,
    ResultDirectory,
    ResultLocationError,
    ResultNotFoundError,
    list_results,
    read_manifest,
    result_directories,
)


def manifest(finished_at: str) -> dict[str, object]:
    return {"timings": {"finished_at": finished_at}}


def test_a_result_is_visible_only_after_publication(tmp_path: Path) -> None:
    result = ResultDirectory(tmp_path / "out", "run-1")
    result.path("predictions.parquet").write_bytes(b"rows")

    assert result.staging.name == f"{INCOMPLETE_PREFIX}run-1"
    assert list_results(tmp_path / "out") == []
    with pytest.raises(ResultNotFoundError, match="never finished"):
        read_manifest(result.staging)

    published = result.publish(manifest("2030-01-01T00:00:00+00:00"))

    assert published == tmp_path / "out" / "run-1"
    assert (published / "predictions.parquet").read_bytes() == b"rows"
    assert read_manifest(published)["timings"]["finished_at"].startswith("2030")
    assert not result.staging.exists()
    assert list_results(tmp_path / "out") == [published]


def test_a_published_run_is_never_overwritten(tmp_path: Path) -> None:
    ResultDirectory(tmp_path, "run-1").publish(manifest("2030-01-01T00:00:00+00:00"))

    with pytest.raises(ResultLocationError, match="never overwritten"):
        ResultDirectory(tmp_path, "run-1")


def test_discard_leaves_no_trace_in_an_output_it_created(tmp_path: Path) -> None:
    result = ResultDirectory(tmp_path / "new" / "out", "run-1")
    result.path("predictions.parquet").write_bytes(b"half")

    result.discard()

    assert not (tmp_path / "new" / "out").exists()


def test_discard_keeps_an_existing_output_and_its_results(tmp_path: Path) -> None:
    kept = ResultDirectory(tmp_path, "run-1").publish(manifest("2030-01-01T00:00:00+00:00"))
    ResultDirectory(tmp_path, "run-2").discard()

    assert [p.name for p in tmp_path.iterdir()] == [kept.name]


def test_results_are_listed_by_finishing_time_and_incomplete_ones_ignored(tmp_path: Path) -> None:
    late = ResultDirectory(tmp_path, "b").publish(manifest("2030-01-02T00:00:00+00:00"))
    early = ResultDirectory(tmp_path, "a").publish(manifest("2030-01-01T00:00:00+00:00"))
    ResultDirectory(tmp_path, "crashed").path("predictions.parquet").write_bytes(b"half")
    (tmp_path / "no-manifest").mkdir()

    assert list_results(tmp_path) == [early, late]
    assert result_directories(tmp_path) == [late, early]
    assert result_directories(late) == [late]
    with pytest.raises(ResultNotFoundError):
        result_directories(tmp_path / f"{INCOMPLETE_PREFIX}crashed")


@pytest.mark.parametrize("run_id", ["../escape", ".hidden", "a/b", ""])
def test_run_ids_that_could_escape_or_hide_are_refused(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(ResultLocationError):
        ResultDirectory(tmp_path, run_id)


def test_an_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")

    with pytest.raises(ResultLocationError, match="is a file"):
        ResultDirectory(tmp_path / "out", "run-1")


def test_manifest_is_written_last_and_durably(tmp_path: Path) -> None:
    published = ResultDirectory(tmp_path, "run-1").publish({"timings": {"finished_at": "x"}})

    assert (published / MANIFEST_FILE).read_text().endswith("\n")
