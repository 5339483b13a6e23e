"""The launcher's measured workarounds for fixed costs of ZenML and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from zenml.utils import source_utils

from mlops_platform.runtime import zenml_tuning


def test_the_lookup_is_cached_and_answers_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    current = source_utils._get_package_for_module
    original = getattr(
        current, "__wrapped__", current
    )  # as ZenML ships it, even if a run cached it
    monkeypatch.setattr(source_utils, "_get_package_for_module", original)
    uncached = [original(name) for name in ("pandas.core.frame", "numpy", "zenml.models")]

    assert zenml_tuning.cache_package_lookups() is True
    cached = source_utils._get_package_for_module
    assert cached is not original and hasattr(cached, "cache_info")
    assert [cached(name) for name in ("pandas.core.frame", "numpy", "zenml.models")] == uncached
    assert uncached[0] == "pandas"

    assert zenml_tuning.cache_package_lookups() is True
    assert source_utils._get_package_for_module is cached


def test_a_zenml_without_the_lookup_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(source_utils, "_get_package_for_module")

    assert zenml_tuning.cache_package_lookups() is False


class _Registry:
    def __init__(self) -> None:
        self.activations = 0

    def activate_integrations(self) -> None:
        self.activations += 1


def test_integrations_are_activated_once_per_process() -> None:
    registry = _Registry()

    assert zenml_tuning.activate_integrations_once(registry) is True
    assert registry.activations == 1
    registry.activate_integrations()  # as ZenML's compiler calls it before every run
    assert zenml_tuning.activate_integrations_once(registry) is True
    assert registry.activations == 1


def test_zenmls_registry_keeps_the_materializers_after_activation() -> None:
    from zenml.integrations.registry import integration_registry
    from zenml.materializers.materializer_registry import materializer_registry

    assert zenml_tuning.activate_integrations_once(integration_registry) is True
    integration_registry.activate_integrations()
    assert "DataFrame" in {t.__name__ for t in materializer_registry.materializer_types}


def test_dataframe_artifacts_are_written_with_zstd_and_gzip_ones_still_load(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd
    import pyarrow.parquet as pq
    from zenml.integrations.pandas.materializers import pandas_materializer
    from zenml.integrations.pandas.materializers.pandas_materializer import PandasMaterializer

    monkeypatch.setattr(pandas_materializer, "COMPRESSION_TYPE", "gzip")  # as ZenML ships it
    frame = pd.DataFrame({"patient_nbr": [3, 1, 2], "race": ["A", "B", None]})

    class _Store:  # the local artifact store's open(), without a ZenML stack
        def open(self, path: str, mode: str = "r"):
            return open(path, mode)

        def exists(self, path: str) -> bool:
            import os

            return os.path.exists(path)

    def materializer(folder: str) -> PandasMaterializer:
        (tmp_path / folder).mkdir()
        found = PandasMaterializer(uri=str(tmp_path / folder))
        monkeypatch.setattr(PandasMaterializer, "artifact_store", property(lambda _: _Store()))
        return found

    old = materializer("old")
    old.save(frame)
    assert zenml_tuning.compress_dataframes_faster() is True
    new = materializer("new")
    new.save(frame)

    codec = {
        name: pq.ParquetFile(tmp_path / name / pandas_materializer.PARQUET_FILENAME)
        .metadata.row_group(0)
        .column(0)
        .compression
        for name in ("old", "new")
    }
    assert codec == {"old": "GZIP", "new": "ZSTD"}
    pd.testing.assert_frame_equal(old.load(pd.DataFrame), frame)
    pd.testing.assert_frame_equal(new.load(pd.DataFrame), frame)


def test_only_the_local_zenml_and_mlflow_stores_commit_without_waiting_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`workspace.activate` relaxes the commits of this state's ZenML and MLflow store files, by
    path; the audit trail keeps SQLite's full sync even where its file is named like a store's
    (a review put the trail at .../zenml.db and got WAL and NORMAL)."""
    from sqlalchemy import create_engine, text

    from mlops_platform.workspace import relax_local_store_syncs

    state = tmp_path / "state"
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(state / "zenml"))
    monkeypatch.delenv("ZENML_STORE_URL", raising=False)
    zenml_store = state / "zenml" / "local_stores" / "default_zen_store" / "zenml.db"
    mlflow_store = state / "mlflow" / "mlflow.db"
    trail_named_like_a_store = tmp_path / "trail" / "zenml.db"
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{trail_named_like_a_store}")
    relax_local_store_syncs()
    relax_local_store_syncs()  # once per process, however often it is called

    def settings(path: Path) -> tuple[str, int]:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}")
        with engine.connect() as connection:
            found = (
                connection.execute(text("PRAGMA journal_mode")).scalar(),
                connection.execute(text("PRAGMA synchronous")).scalar(),
            )
        engine.dispose()
        return found

    assert settings(zenml_store) == ("wal", 1)  # NORMAL
    assert settings(mlflow_store) == ("wal", 1)
    assert settings(trail_named_like_a_store) == ("delete", 2)  # SQLite's defaults: FULL
    # However the trail's URL spells the file (a review used these two), it keeps full sync.
    for spelling in (
        f"sqlite+pysqlite:///{zenml_store}",
        f"sqlite:///{zenml_store}?timeout=30",
    ):
        monkeypatch.setenv("MLOPS_AUDIT_DB_URL", spelling)
        assert settings(zenml_store)[1] == 2
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{trail_named_like_a_store}")
    assert settings(state / "audit.db") == ("delete", 2)
    assert settings(tmp_path / "elsewhere" / "mlflow.db") == ("delete", 2)  # by path, not name
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{mlflow_store}")  # even the same file
    (mlflow_store.parent / "x").mkdir()
    other = mlflow_store.parent / "x" / ".." / "mlflow.db"
    assert settings(other)[1] == 2  # the trail's own file keeps full sync


def test_stopping_the_server_folds_the_write_ahead_log_into_the_store_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review copied zenml.db alone after `mlops server stop` and found version 2 still in
    staging: the last moves were in zenml.db-wal."""
    import shutil
    import sqlite3

    from mlops_platform.infra.server import checkpoint_local_stores

    state = tmp_path / "state"
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(state / "zenml"))
    monkeypatch.delenv("ZENML_STORE_URL", raising=False)
    store = state / "zenml" / "local_stores" / "default_zen_store" / "zenml.db"
    store.parent.mkdir(parents=True)
    writer = sqlite3.connect(store)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # as a killed server leaves it
    writer.execute("CREATE TABLE stage (version TEXT)")
    writer.execute("INSERT INTO stage VALUES ('2')")
    writer.commit()
    assert store.with_name("zenml.db-wal").stat().st_size > 0
    shutil.copy(store, tmp_path / "before.db")
    with pytest.raises(sqlite3.OperationalError):  # the copy alone lacks the commits
        sqlite3.connect(tmp_path / "before.db").execute("SELECT * FROM stage").fetchall()

    assert checkpoint_local_stores() == [store.resolve()]
    writer.close()
    shutil.copy(store, tmp_path / "after.db")
    assert sqlite3.connect(tmp_path / "after.db").execute("SELECT * FROM stage").fetchall() == [
        ("2",)
    ]
