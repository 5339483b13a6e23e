"""The launcher's cache of ZenML's module-to-package lookup."""

from __future__ import annotations

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
