"""Checks before a run starts: shard and output limits, field limits and the first chunk's schema."""

from __future__ import annotations

import gzip
import os
import zipfile
from pathlib import Path

import pytest

from mlops_platform.batch.preflight import (
    InputLimitError,
    InputRules,
    check_input,
    check_input_once,
    check_output_dir,
    parse_shard,
)
from mlops_platform.batch.reader import MAX_FIELD_CHARS, BatchInputError
from readmission.core.synthetic import generate_encounters
from readmission.input_rules import SCORING_READER, SCORING_VALIDATOR, TRAINING_READER

SCORING = InputRules(SCORING_READER, SCORING_VALIDATOR)


@pytest.fixture(scope="module")
def csv_text() -> str:
    return generate_encounters(80, seed=3).to_csv(index=False)


@pytest.mark.parametrize("text", ["3/2", "0/0", "2/2", "-1/4", "1", "a/b", "1/99999999999"])
def test_a_shard_outside_0_to_n_minus_1_is_refused(text: str) -> None:
    with pytest.raises(InputLimitError, match="--shard"):
        parse_shard(text)


def test_valid_shards_parse() -> None:
    assert (parse_shard("0/1").index, parse_shard("0/1").count) == (0, 1)
    assert (parse_shard(" 3 / 4 ").index, parse_shard("3/4").count) == (3, 4)
    assert parse_shard(None).count == 1


def test_output_inside_a_forbidden_place_is_refused_except_the_allowed_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    allowed = state / "predictions"
    (state / "zenml").mkdir(parents=True)
    places = {"state directory": state}
    with pytest.raises(InputLimitError, match="inside the state directory"):
        check_output_dir(state / "zenml" / "x", places, allowed)
    with pytest.raises(InputLimitError, match="inside the state directory"):
        check_output_dir(state, places, allowed)
    # a symlink outside pointing inside is judged by where it leads
    link = tmp_path / "innocent"
    link.symlink_to(state / "zenml")
    with pytest.raises(InputLimitError, match="inside the state directory"):
        check_output_dir(link, places, allowed)
    assert check_output_dir(allowed, places, allowed) == allowed.resolve()
    assert check_output_dir(tmp_path / "out", places, allowed) == (tmp_path / "out").resolve()


def test_an_existing_file_as_output_is_refused(tmp_path: Path) -> None:
    taken = tmp_path / "results.csv"
    taken.write_text("x")
    with pytest.raises(InputLimitError, match="existing file"):
        check_output_dir(taken, {}, tmp_path / "default")


def test_a_clean_file_passes_and_a_bad_first_chunk_is_refused(
    tmp_path: Path, csv_text: str
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(csv_text)
    check_input(good, SCORING)
    gz = tmp_path / "good.csv.gz"
    gz.write_bytes(gzip.compress(csv_text.encode()))
    check_input(gz, SCORING)

    bad = tmp_path / "bad.csv"
    bad.write_text(csv_text.replace("Caucasian", "Martian", 1))
    with pytest.raises(BatchInputError, match="race") as refused:
        check_input(bad, SCORING)
    assert "before the run started" in str(refused.value)


def test_a_file_passed_once_in_a_process_is_checked_again_only_when_it_changed(
    tmp_path: Path, csv_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_platform.batch import preflight

    reads: list[Path] = []

    def counted(path: Path, rules: InputRules, **options: bool) -> None:
        reads.append(path)
        check_input(path, rules, **options)

    monkeypatch.setattr(preflight, "check_input", counted)
    data = tmp_path / "train.csv"
    data.write_text(csv_text)
    check_input_once(data, SCORING)
    check_input_once(tmp_path / "." / "train.csv", SCORING)
    assert len(reads) == 1

    # Rewritten in place (same size, so only the modification time tells): checked and refused.
    bad = csv_text.replace("Caucasian", "Caucasiax", 1)
    data.write_text(bad)
    assert len(bad) == len(csv_text)
    with pytest.raises(BatchInputError, match="race"):
        check_input_once(data, SCORING)
    with pytest.raises(BatchInputError, match="race"):
        check_input_once(data, SCORING)  # a refusal is never remembered
    # Passed, then rewritten with the modification time put back (`cp -p`, `rsync -t`).
    data.write_text(csv_text)
    check_input_once(data, SCORING)
    passed_mtime = data.stat().st_mtime_ns
    data.write_text(bad)
    os.utime(data, ns=(passed_mtime, passed_mtime))
    with pytest.raises(BatchInputError, match="race"):
        check_input_once(data, SCORING)
    # Another file moved into its place, and other rules, are checked too.
    fresh = tmp_path / "fresh.csv"
    fresh.write_text(csv_text)
    fresh.replace(data)
    check_input_once(data, SCORING)
    check_input_once(data, InputRules(TRAINING_READER, SCORING_VALIDATOR))
    assert len(reads) == 7


def test_a_field_over_the_limit_is_named_with_its_column_and_row(
    tmp_path: Path, csv_text: str
) -> None:
    header, first, *rest = csv_text.splitlines()
    cells = first.split(",")
    cells[-1] = "x" * (MAX_FIELD_CHARS + 1)
    path = tmp_path / "long.csv"
    path.write_text("\n".join([header, ",".join(cells), *rest]) + "\n")
    with pytest.raises(BatchInputError, match=r"data row 1 holds 131,073 characters"):
        check_input(path, SCORING)


def test_a_header_field_over_the_csv_limit_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text('"' + "h" * (MAX_FIELD_CHARS + 10) + '",b\n1,2\n')
    with pytest.raises(BatchInputError, match="header line"):
        check_input(path, SCORING)


def test_a_gz_name_on_plain_text_is_refused(tmp_path: Path, csv_text: str) -> None:
    path = tmp_path / "plain.csv.gz"
    path.write_text(csv_text)
    with pytest.raises(BatchInputError, match="not gzip-compressed"):
        check_input(path, SCORING)


def test_a_zip_is_accepted_only_where_allowed_and_only_intact(
    tmp_path: Path, csv_text: str
) -> None:
    path = tmp_path / "uci.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("dataset_diabetes/diabetic_data.csv", csv_text)
    training = InputRules(TRAINING_READER, "readmission.core.schema.validate_encounters")
    check_input(path, training, allow_zip=True)
    with pytest.raises(BatchInputError, match="zip"):
        check_input(path, SCORING)
    data = bytearray(path.read_bytes())
    data[60:70] = b"\x00" * 10  # damage the compressed member
    path.write_bytes(bytes(data))
    with pytest.raises(BatchInputError, match="zip"):
        check_input(path, training, allow_zip=True)


def test_a_column_missing_only_in_the_first_rows_is_never_reported_from_them(
    tmp_path: Path,
) -> None:
    """Day-one review: with another rule broken, the pre-check also said payer_code was all
    missing, judged on its first rows only (the whole real file has 48,968 payer codes). Only
    the whole file can break "never entirely missing": the pre-check reports the rest."""
    from readmission.core.schema import ALL_MISSING_MIN_ROWS

    frame = generate_encounters(ALL_MISSING_MIN_ROWS + 200, seed=5)
    frame["payer_code"] = "?"
    quiet = tmp_path / "quiet.csv"
    frame.to_csv(quiet, index=False)
    check_input(quiet, SCORING)  # only the whole-file rule fails: left to the pipeline

    frame.loc[frame.index[3], "race"] = "Martian"
    broken = tmp_path / "broken.csv"
    frame.to_csv(broken, index=False)
    with pytest.raises(BatchInputError, match="race") as refused:
        check_input(broken, SCORING)
    assert "payer_code" not in str(refused.value)
    assert [f["column"] for f in refused.value.failures] == ["race"]
