"""Result directories: staged under a hidden name, published by rename, never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.errors import ExitCode, as_cli_error
from mlops_platform.batch.contract import BatchArtifact
from mlops_platform.batch.results import (
    _MANIFEST_ARTIFACT,
    INCOMPLETE_PREFIX,
    MANIFEST_FILE,
    ResultDirectory,
    ResultLocationError,
    ResultManifestError,
    ResultNotFoundError,
    check_results,
    list_results,
    read_manifest,
    result_directories,
)


def manifest(finished_at: str, run_id: str = "run-1") -> dict[str, object]:
    return {
        "inference_run_id": run_id,
        "model": {"name": "m", "version": "1"},
        "contract": {"id_columns": ["encounter_id"], "score_column": "risk"},
        "timings": {"finished_at": finished_at},
    }


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


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{}\n", "no 'inference_run_id' text"),
        ("not json\n", "not readable JSON"),
        ("[1, 2]\n", "a JSON list, not an object"),
        ('{"inference_run_id": "x", "model": {"name": "m", "version": "1"}}', "no 'contract'"),
        (
            '{"inference_run_id": "x", "model": {"name": "m", "version": "1"}, "contract": '
            '{"id_columns": [], "score_column": "s"}, "timings": {"finished_at": "x"}}',
            "names no id columns",
        ),
        (
            '{"inference_run_id": "x", "model": {"name": "m", "version": "1"}, "contract": '
            '{"id_columns": ["e"], "score_column": "s"}, "timings": {}}',
            "'timings' lacks 'finished_at'",
        ),
    ],
    ids=["empty-object", "not-json", "list", "no-contract", "no-id-columns", "no-finish"],
)
def test_a_folder_beside_results_that_is_no_result_stops_readers_with_one_message(
    tmp_path: Path, content: str, named: str
) -> None:
    """Insider review: `mkdir DIR/0000...; echo '{}' > manifest.json` beside real results made
    lineage and outcome monitoring crash with a KeyError or JSONDecodeError traceback (exit 1)."""
    ResultDirectory(tmp_path, "run-1").publish(manifest("2030-01-01T00:00:00+00:00"))
    stray = tmp_path / "00000000-0000-0000-0000-000000000000"
    stray.mkdir()
    (stray / MANIFEST_FILE).write_text(content, encoding="utf-8")
    (stray / "predictions.parquet").touch()

    for read in (list_results, result_directories, check_results):
        with pytest.raises(ResultManifestError, match=named) as raised:
            read(tmp_path)
        assert str(stray) in str(raised.value) and "move that folder out" in str(raised.value)
    with pytest.raises(ResultManifestError, match=named):
        check_results(stray)  # the folder passed as the result itself
    error = as_cli_error(raised.value)
    assert error is not None and error.code == ExitCode.BAD_INPUT
    assert _MANIFEST_ARTIFACT == BatchArtifact.MANIFEST  # the name the message points to


def test_results_are_listed_by_the_finishing_time_their_manifests_state_then_by_name(
    tmp_path: Path,
) -> None:
    b = ResultDirectory(tmp_path, "b").publish(manifest("2030-01-01T00:00:00+00:00", "b"))
    a = ResultDirectory(tmp_path, "a").publish(manifest("2030-01-01T00:00:00+00:00", "a"))
    assert list_results(tmp_path) == [a, b]
    check_results(tmp_path)  # nothing to refuse
    check_results(tmp_path / "absent")


def test_the_governance_report_names_a_latest_result_that_is_no_result(tmp_path: Path) -> None:
    """The newest result the trail records, with its manifest damaged: the report says why its
    lineage is not shown instead of stopping."""
    from types import SimpleNamespace

    from mlops_platform.reporting.governance_report import _lineage_of_latest

    result = tmp_path / "run-1"
    result.mkdir()
    (result / "predictions.parquet").write_bytes(b"not parquet")
    (result / MANIFEST_FILE).write_text("not json", encoding="utf-8")
    record = SimpleNamespace(details={"output_dir": str(result)})  # the trail's record

    lineage, note = _lineage_of_latest(record)  # type: ignore[arg-type]

    assert lineage is None and note.startswith("Lineage is not shown") and "not readable" in note
    # A readable manifest beside predictions that are no Parquet file: named too.
    (result / MANIFEST_FILE).write_text(json.dumps(manifest("2030-01-01T00:00:00+00:00")))
    lineage, note = _lineage_of_latest(record)  # type: ignore[arg-type]
    assert lineage is None and note.startswith("Lineage is not shown"), note


def test_a_folder_with_predictions_but_no_manifest_is_refused_not_skipped(tmp_path: Path) -> None:
    """A real result whose manifest.json was deleted must not drop out of lineage and of the
    outcome verdict unseen; an empty folder or a run that never finished is still no result."""
    kept = ResultDirectory(tmp_path, "run-1").publish(manifest("2030-01-01T00:00:00+00:00"))
    (kept / "predictions.parquet").write_bytes(b"rows")
    (tmp_path / "empty").mkdir()
    ResultDirectory(tmp_path, "crashed").path("predictions.parquet").write_bytes(b"half")
    assert list_results(tmp_path) == [kept]

    (kept / MANIFEST_FILE).unlink()
    for read in (list_results, result_directories, check_results):
        with pytest.raises(
            ResultManifestError, match=r"holds predictions\.parquet but no"
        ) as raised:
            read(tmp_path)
        assert str(kept) in str(raised.value)
