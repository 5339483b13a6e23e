"""Artifacts load from the bytes that were checked (`trust.stored`), never from a second read."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from zenml.integrations.pandas.materializers.pandas_materializer import PandasMaterializer
from zenml.materializers.built_in_materializer import BuiltInContainerMaterializer

from mlops_cli.errors import ExitCode, exit_code_for
from mlops_platform.materializers.skops_model import SkopsModelMaterializer
from mlops_platform.trust.outputs import stored_digest
from mlops_platform.trust.stored import (
    ReadOnlyFiles,
    StoredFiles,
    StoredFilesError,
    data_type_of,
    digest_files,
    load_stored,
    materializer_of,
    read_stored,
)

PANDAS = f"{PandasMaterializer.__module__}.{PandasMaterializer.__qualname__}"
CONTAINER = f"{BuiltInContainerMaterializer.__module__}.{BuiltInContainerMaterializer.__qualname__}"


def record(uri: Path, materializer: str, data_type: str) -> SimpleNamespace:
    """The fields of ZenML's artifact version record that a load reads."""
    return SimpleNamespace(
        id="a1",
        uri=str(uri),
        materializer=SimpleNamespace(import_path=materializer),
        data_type=SimpleNamespace(import_path=data_type),
    )


class _Touch:
    """Unpickling it creates `marker`: proof that a load ran code from the files."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))


def touching_pickle(marker: Path) -> bytes:
    return pickle.dumps(_Touch(marker))


def frame_artifact(folder: Path, outcome: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"patient": [1, 2, 3], "outcome": [outcome] * 3}).to_parquet(
        folder / "df.parquet.gzip"
    )
    return folder


def test_a_frame_swapped_after_it_was_read_loads_as_read(tmp_path: Path) -> None:
    folder = frame_artifact(tmp_path / "holdout", outcome=0)
    stored = read_stored(str(folder))
    assert stored.digest == stored_digest(str(folder))  # the digest the signatures hold
    frame_artifact(folder, outcome=1)  # the swap, between the check and the load
    assert stored_digest(str(folder)) != stored.digest
    loaded = load_stored(record(folder, PANDAS, "pandas.DataFrame"), stored)
    assert loaded["outcome"].tolist() == [0, 0, 0]


def test_a_container_artifact_loads_from_the_checked_json(tmp_path: Path) -> None:
    folder = tmp_path / "reference"
    folder.mkdir()
    (folder / "data.json").write_text(json.dumps({"bins": [1, 2]}), encoding="utf-8")
    stored = read_stored(str(folder))
    (folder / "data.json").write_text(json.dumps({"bins": [9]}), encoding="utf-8")
    assert load_stored(record(folder, CONTAINER, "builtins.dict"), stored) == {"bins": [1, 2]}


def test_the_view_serves_only_the_checked_files_and_never_writes(tmp_path: Path) -> None:
    root = str(tmp_path / "artifact")
    view = ReadOnlyFiles(StoredFiles.of(root, {"df.parquet": b"rows", "sub/x.json": b"{}"}))
    assert view.exists(f"{root}/df.parquet") and view.isdir(f"{root}/sub")
    assert view.open(f"{root}//df.parquet", "rb").read() == b"rows"  # the same path spelled so
    assert view.isdir(f"{root}/.") and view.exists(f"{root}/sub/../df.parquet")
    assert view.listdir(root) == ["df.parquet", "sub"]
    assert view.open(f"{root}/sub/x.json").read() == "{}"
    assert not view.exists(f"{root}/other")
    with pytest.raises(FileNotFoundError):
        view.open(f"{root}/other", "rb")
    with pytest.raises(StoredFilesError, match="read-only"):
        view.open(f"{root}/df.parquet", "wb")
    with pytest.raises(StoredFilesError, match="outside"):
        view.open(str(tmp_path / "elsewhere" / "df.parquet"), "rb")
    with pytest.raises(StoredFilesError, match="outside"):
        view.open(f"{root}-sibling/df.parquet", "rb")


def test_a_single_file_artifact_is_served_by_its_own_uri(tmp_path: Path) -> None:
    single = tmp_path / "model.bin"
    single.write_bytes(b"model")
    stored = read_stored(str(single))
    assert stored.files == {"": b"model"} and stored.digest == digest_files({"": b"model"})
    assert ReadOnlyFiles(stored).open(str(single), "rb").read() == b"model"


def test_a_load_with_files_of_another_artifact_is_refused(tmp_path: Path) -> None:
    stored = read_stored(str(frame_artifact(tmp_path / "a", outcome=0)))
    other = frame_artifact(tmp_path / "b", outcome=1)
    with pytest.raises(StoredFilesError, match="not of artifact"):
        load_stored(record(other, PANDAS, "pandas.DataFrame"), stored)


def test_recorded_data_types_are_the_materializers_own_or_loaded_subclasses() -> None:
    assert data_type_of("pandas.DataFrame", PandasMaterializer) is pd.DataFrame
    assert data_type_of("builtins.dict", BuiltInContainerMaterializer) is dict
    assert data_type_of("collections.OrderedDict", BuiltInContainerMaterializer) is OrderedDict
    for recorded in ("builtins.eval", "os.system", "pandas.Series.__init__", ""):
        with pytest.raises(StoredFilesError, match="data type"):
            data_type_of(recorded, PandasMaterializer)
    # The skops file names its own types (checked against the allow-list as it loads): the
    # recorded type is not used, so a model class not imported yet still loads.
    assert data_type_of("builtins.dict", SkopsModelMaterializer) is BaseEstimator


def test_a_recorded_type_or_materializer_never_imports_a_module() -> None:
    """ZenML's record names a module that is not loaded: nothing is imported (in a new
    interpreter, so that no other test has imported it first)."""
    script = (
        "import sys\n"
        "from mlops_platform.trust.stored import data_type_of, materializer_of, StoredFilesError\n"
        "from zenml.integrations.pandas.materializers.pandas_materializer import "
        "PandasMaterializer\n"
        "from mlops_platform.materializers.skops_model import SkopsModelMaterializer\n"
        "forest = 'sklearn.ensemble._forest.RandomForestClassifier'\n"
        "assert data_type_of(forest, SkopsModelMaterializer).__name__ == 'BaseEstimator'\n"
        "assert 'sklearn.ensemble' not in sys.modules\n"
        "for call in (lambda: data_type_of('antigravity.X', PandasMaterializer),\n"
        "             lambda: materializer_of('antigravity.Materializer')):\n"
        "    try:\n"
        "        call()\n"
        "    except StoredFilesError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('accepted')\n"
        "print('antigravity' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


CLOUDPICKLE = "zenml.materializers.cloudpickle_materializer.CloudpickleMaterializer"


def test_only_materializers_are_accepted_as_materializers() -> None:
    assert materializer_of(PANDAS) is PandasMaterializer
    with pytest.raises(StoredFilesError, match="not a materializer"):
        materializer_of("zenml.client.Client", vouched=True)
    with pytest.raises(StoredFilesError, match="cannot be found"):
        materializer_of("zenml.materializers.no_such_module.Gone", vouched=True)


def test_a_materializer_that_runs_code_needs_a_record_someone_vouches_for() -> None:
    """A pickle-based materializer named by a database record alone is refused; named by the
    run's signature or as the artifact was written, it is the run's own choice."""
    with pytest.raises(StoredFilesError, match="without running code"):
        materializer_of(CLOUDPICKLE)
    assert materializer_of(CLOUDPICKLE, vouched=True).__name__ == "CloudpickleMaterializer"


def test_a_pickle_planted_under_a_changed_record_never_runs(tmp_path: Path) -> None:
    """The attack: the record of a frame artifact is changed to cloudpickle and a pickle that
    would create a file is put beside it. Loaded from the record alone: refused, nothing ran."""
    folder = frame_artifact(tmp_path / "holdout", outcome=0)
    marker = tmp_path / "ran"

    (folder / "artifact.pkl").write_bytes(touching_pickle(marker))
    stored = read_stored(str(folder))
    with pytest.raises(StoredFilesError, match="without running code"):
        load_stored(record(folder, CLOUDPICKLE, "pandas.DataFrame"), stored)
    assert not marker.exists()
    written_as_frame = StoredFiles(stored.uri, stored.files, stored.digest, PANDAS)
    with pytest.raises(StoredFilesError, match="record was changed"):
        load_stored(record(folder, CLOUDPICKLE, "pandas.DataFrame"), written_as_frame)
    assert not marker.exists()


def test_files_that_do_not_load_as_recorded_refuse_with_a_message(tmp_path: Path) -> None:
    folder = frame_artifact(tmp_path / "holdout", outcome=0)  # two columns
    with pytest.raises(StoredFilesError, match="do not load as Series"):
        load_stored(record(folder, PANDAS, "pandas.Series"), read_stored(str(folder)))


def test_a_refused_load_exits_as_an_integrity_failure() -> None:
    assert exit_code_for(StoredFilesError) == ExitCode.AUDIT_BROKEN


def test_zenml_s_own_loader_refuses_a_materializer_that_runs_code(tmp_path: Path) -> None:
    """`artifact.load()` goes through ZenML's loader; guarded, a record naming cloudpickle beside
    a planted pickle is refused before anything is imported or unpickled, and a frame loads."""
    from zenml.artifacts import utils as artifact_utils

    from mlops_platform.trust.stored import guard_artifact_loads

    guard_artifact_loads()
    folder = frame_artifact(tmp_path / "record", outcome=0)
    marker = tmp_path / "ran"

    (folder / "artifact.pkl").write_bytes(touching_pickle(marker))
    view = ReadOnlyFiles(read_stored(str(folder)))
    with pytest.raises(StoredFilesError, match="without running code"):
        artifact_utils._load_artifact_from_uri(CLOUDPICKLE, "builtins.dict", str(folder), view)
    assert not marker.exists()
    with pytest.raises(StoredFilesError, match="data type"):
        artifact_utils._load_artifact_from_uri(PANDAS, "os.system", str(folder), view)
    frame = artifact_utils._load_artifact_from_uri(PANDAS, "pandas.DataFrame", str(folder), view)
    assert frame["outcome"].tolist() == [0, 0, 0]


def test_a_container_whose_files_name_element_materializers_is_refused(tmp_path: Path) -> None:
    """ZenML's container materializer reads a materializer per element from its own files when
    they are not JSON: a pickle named there runs. Without a vouched record, only JSON loads."""
    folder = tmp_path / "manifest"
    (folder / "0").mkdir(parents=True)
    marker = tmp_path / "ran"

    (folder / "0" / "artifact.pkl").write_bytes(touching_pickle(marker))
    (folder / "metadata.json").write_text(
        json.dumps(
            [{"path": str(folder / "0"), "type": "builtins.object", "materializer": CLOUDPICKLE}]
        ),
        encoding="utf-8",
    )
    with pytest.raises(StoredFilesError, match="not stored as JSON"):
        load_stored(record(folder, CONTAINER, "builtins.list"), read_stored(str(folder)))
    assert not marker.exists()


def test_step_inputs_are_checked_where_zenml_loads_them() -> None:
    """`check_step_inputs` wraps the method ZenML's step runner loads inputs with; if a ZenML
    upgrade renames it, this fails instead of inputs silently loading unchecked."""
    from zenml.orchestrators.step_runner import StepRunner

    from mlops_platform.trust import outputs

    outputs.check_step_inputs()
    assert getattr(getattr(StepRunner, outputs._LOAD_INPUT), "_mlops_checks_inputs", False)
    assert outputs.check_step_inputs() is False  # once per process
