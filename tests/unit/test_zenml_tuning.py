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
