"""The launch key that decides which governed runs may reuse data steps (runtime.caching)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from mlops_platform.infra.settings import CachingSettings, load_platform_settings
from mlops_platform.runtime import caching
from mlops_platform.trust.signing import Signer

PLATFORM = Signer(Ed25519PrivateKey.generate())
CONTENT = caching.LaunchContent(
    git_sha="a" * 40,
    git_dirty=False,
    data_file_sha256="b" * 64,
    holdout_key_sha256=caching.holdout_key_digest(b"platform-holdout-key"),
    holdout_fraction=0.2,
)


def test_the_same_content_under_the_same_key_gives_the_same_launch_key() -> None:
    assert caching.launch_key_for(CONTENT, PLATFORM) == caching.launch_key_for(CONTENT, PLATFORM)


@pytest.mark.parametrize(
    "change",
    [
        {"data_file_sha256": "c" + "b" * 63},  # one byte of the file changed its hash
        {"git_sha": "d" * 40},
        {"holdout_key_sha256": caching.holdout_key_digest(b"another-key")},
        {"holdout_fraction": 0.25},
    ],
)
def test_any_change_of_content_gives_another_launch_key(change: dict[str, object]) -> None:
    changed = dataclasses.replace(CONTENT, **change)
    assert caching.launch_key_for(changed, PLATFORM) != caching.launch_key_for(CONTENT, PLATFORM)


def test_without_the_environments_key_the_launch_key_cannot_be_computed() -> None:
    # Somebody running the steps outside the platform, with a key of their own, gets other keys,
    # so their step runs are never served to a governed run.
    forged = caching.launch_key_for(CONTENT, Signer(Ed25519PrivateKey.generate()))
    assert forged != caching.launch_key_for(CONTENT, PLATFORM)


@pytest.mark.parametrize("change", [{"git_dirty": True}, {"git_sha": "unknown"}, {"git_sha": ""}])
def test_code_not_named_by_a_commit_is_never_reused(change: dict[str, object]) -> None:
    content = dataclasses.replace(CONTENT, **change)
    first, second = (caching.launch_key_for(content, PLATFORM) for _ in range(2))
    assert first != second
    assert first.startswith("unreusable:")
    assert content.digest() == ""  # its runs sign no launch: nothing they made is reused


@pytest.mark.parametrize(
    "change",
    [
        {"data_file_sha256": "c" + "b" * 63},
        {"git_sha": "d" * 40},
        {"holdout_key_sha256": caching.holdout_key_digest(b"another-key")},
        {"holdout_fraction": 0.25},
    ],
)
def test_the_signed_launch_digest_names_every_part_of_the_content(
    change: dict[str, object],
) -> None:
    assert len(CONTENT.digest()) == 64
    assert CONTENT.digest() == dataclasses.replace(CONTENT).digest()
    assert dataclasses.replace(CONTENT, **change).digest() != CONTENT.digest()


def test_the_cache_function_gives_the_launch_key_only_during_a_launch() -> None:
    outside = {caching.launch_key() for _ in range(3)}
    assert len(outside) == 3  # random: nothing is reused outside a governed launch
    with caching.launching("key-of-this-launch"):
        assert caching.launch_key() == "key-of-this-launch"
    assert caching.launch_key() != "key-of-this-launch"


@pytest.mark.parametrize("step", sorted(caching.NEVER_REUSED))
def test_steps_that_decide_can_never_be_listed_as_reusable(step: str) -> None:
    with pytest.raises(ValidationError, match=step):
        CachingSettings(reusable_steps=("load_encounters", step))


def test_the_repository_lists_only_steps_that_decide_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CI", "true")  # also on a runner, where nothing defaults to a local trail
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{tmp_path / 'audit.db'}")
    for env in ("local", "staging", "production"):
        listed = set(load_platform_settings(env).caching.reusable_steps)
        assert listed and not listed & caching.NEVER_REUSED


def test_step_options_turn_on_the_cache_with_the_platform_function_for_listed_steps() -> None:
    options = caching.step_options(["load_encounters"])
    assert set(options) == {"load_encounters"}
    assert options["load_encounters"]["enable_cache"] is True
    assert options["load_encounters"]["cache_policy"]["cache_func"] == caching.CACHE_FUNC


def test_reused_steps_name_the_cached_steps_and_their_original_runs() -> None:
    steps = {
        "load_encounters": SimpleNamespace(status="cached", original_step_run_id="run-1"),
        "train_model": SimpleNamespace(status="completed", original_step_run_id=None),
    }
    assert caching.reused_steps(steps) == {"load_encounters": "run-1"}


def test_a_reusable_step_no_pipeline_has_is_a_check_finding() -> None:
    """The newcomer review: a step renamed by data science stayed listed under its old name in
    caching.reusable_steps, and nothing said so."""
    from mlops_platform.governance.check import reusable_step_findings

    steps = {"load_encounters", "save_patient_history", "train_model"}
    (finding,) = reusable_step_findings(("load_encounters", "collect_patient_history"), steps)
    assert finding.rule == "reusable-step-unknown"
    assert "'collect_patient_history'" in finding.message
    assert reusable_step_findings(("load_encounters",), steps) == []
