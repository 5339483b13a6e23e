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
