"""When a checkout counts as a developer's laptop (local stores by default) and when it does not."""

from __future__ import annotations

import pytest

from mlops_platform.infra.settings import is_local_checkout


@pytest.mark.parametrize(
    "environ",
    [
        {},
        # What ZenML sets inside every step of a run on the local SQLite store.
        {"ZENML_STORE_URL": "sqlite:////home/me/.mlops/zenml/local_stores/zenml.db"},
    ],
)
def test_a_laptop_with_the_local_store_is_local(environ: dict[str, str]) -> None:
    assert is_local_checkout(environ)


@pytest.mark.parametrize(
    "environ",
    [
        {"CI": "true"},
        {"GITHUB_ACTIONS": "true"},
        {"ZENML_STORE_URL": "https://zenml.example.org"},
        {"ZENML_STORE_URL": "http://127.0.0.1:8237"},
        {"ZENML_STORE_URL": "mysql://zenml@db/zenml"},
        # A SQLite store does not make a CI runner local.
        {"CI": "true", "ZENML_STORE_URL": "sqlite:////tmp/zenml.db"},
    ],
)
def test_ci_or_a_server_is_never_local(environ: dict[str, str]) -> None:
    assert not is_local_checkout(environ)
