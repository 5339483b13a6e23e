"""The gate reads its holdout's rows from the run's hashed copy of the data file, in each form the
data-science loader accepts (CSV, gzip'd CSV, the UCI zip with its CSV in a folder), and never
from a copy whose bytes changed."""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from mlops_platform.runtime import provenance
from mlops_platform.runtime.provenance import SnapshotError, read_snapshot_columns

CSV = b"encounter_id,patient_nbr,readmitted,extra\n1,10,<30,x\n2,11,NO,y\n"


def _zip(member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, CSV)
        archive.writestr("dataset_diabetes/IDs_mapping.csv", b"a,b\n1,2\n")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("d.csv", CSV),
        ("d.csv.gz", gzip.compress(CSV)),
        ("d.zip", _zip("dataset_diabetes/diabetic_data.csv")),
        ("top.zip", _zip("diabetic_data.csv")),
    ],
    # ids by name: the bytes hold timestamps, and xdist's workers must collect the same ids
    ids=["csv", "csv.gz", "zip-in-folder", "zip-top"],
)
def test_each_form_is_read(tmp_path: Path, name: str, data: bytes) -> None:
    provenance._SNAPSHOT_COLUMNS.clear()
    path = tmp_path / name
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    frame = read_snapshot_columns(
        sha, str(path), ["encounter_id", "readmitted"], "diabetic_data.csv"
    )
    assert frame.to_dict("list") == {"encounter_id": ["1", "2"], "readmitted": ["<30", "NO"]}


def test_a_changed_copy_is_refused(tmp_path: Path) -> None:
    provenance._SNAPSHOT_COLUMNS.clear()
    path = tmp_path / "d.csv"
    path.write_bytes(CSV)
    sha = hashlib.sha256(CSV).hexdigest()
    path.write_bytes(CSV.replace(b"<30", b"NO"))  # an outcome changed after the launch hashed it
    with pytest.raises(SnapshotError, match="no longer has SHA-256"):
        read_snapshot_columns(sha, str(path), ["encounter_id", "readmitted"])


def test_a_missing_column_or_an_ambiguous_zip_is_refused_in_words(tmp_path: Path) -> None:
    provenance._SNAPSHOT_COLUMNS.clear()
    path = tmp_path / "d.csv"
    path.write_bytes(CSV)
    sha = hashlib.sha256(CSV).hexdigest()
    with pytest.raises(SnapshotError, match="no column 'discharge_disposition_id'"):
        read_snapshot_columns(sha, str(path), ["encounter_id", "discharge_disposition_id"])
    twice = io.BytesIO()
    with zipfile.ZipFile(twice, "w") as archive:
        archive.writestr("a/diabetic_data.csv", CSV)
        archive.writestr("b/diabetic_data.csv", CSV.replace(b"<30", b"NO"))
    both = tmp_path / "both.zip"
    both.write_bytes(twice.getvalue())
    with pytest.raises(SnapshotError, match=r"holding 2 files named diabetic_data\.csv"):
        read_snapshot_columns(
            hashlib.sha256(twice.getvalue()).hexdigest(),
            str(both),
            ["encounter_id"],
            "diabetic_data.csv",
        )


def test_batch_scoring_still_refuses_a_zip(tmp_path: Path) -> None:
    from mlops_platform.batch.reader import BatchInput, BatchInputError

    path = tmp_path / "d.zip"
    path.write_bytes(_zip("diabetic_data.csv"))
    with pytest.raises(BatchInputError, match="batch scoring reads CSV"):
        BatchInput(path, 100)
