"""A governed run is one `run_governed` signed; environment variables make nothing governed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlops_platform.runtime.preconditions import (
    RunSetting,
    config_fingerprint,
    precondition_problems,
)
from mlops_platform.runtime.run_context import GovernedContext, UngovernedRunError
from mlops_platform.trust.signing import Signer, Verifier, key_id

PLATFORM_KEY = Ed25519PrivateKey.generate()
SIGNER = Signer(PLATFORM_KEY)
CONTEXT = GovernedContext(
    env="staging",
    actor="bob",
    git_sha="a" * 40,
    git_dirty=False,
    run_name="readmission_training-staging-0123456789ab",
    config_sha256="c" * 64,
)


def trusted(env: str) -> Verifier:
    public = PLATFORM_KEY.public_key()
    return Verifier({key_id(public): public})


def test_a_token_signed_by_the_platform_names_its_run() -> None:
    token = CONTEXT.to_token(SIGNER)
    assert GovernedContext.from_token(token, CONTEXT.run_name, trusted) == CONTEXT


def test_a_token_signed_with_another_key_is_refused() -> None:
    forged = CONTEXT.to_token(Signer(Ed25519PrivateKey.generate()))
    with pytest.raises(UngovernedRunError, match="not trusted"):
        GovernedContext.from_token(forged, CONTEXT.run_name, trusted)


def test_a_changed_actor_or_environment_breaks_the_signature() -> None:
    token = CONTEXT.to_token(SIGNER)
    for field, value in (("actor", "mallory"), ("env", "production"), ("git_dirty", True)):
        tampered = {**token, "context": {**token["context"], field: value}}
        with pytest.raises(UngovernedRunError, match="does not match the signed content"):
            GovernedContext.from_token(tampered, CONTEXT.run_name, trusted)


def test_a_token_copied_from_another_run_is_refused() -> None:
    token = CONTEXT.to_token(SIGNER)
    with pytest.raises(UngovernedRunError, match="copied from another run"):
        GovernedContext.from_token(token, "readmission_training-staging-ffffffffffff", trusted)


@pytest.mark.parametrize("token", [None, {}, {"context": "x"}, {"context": {"env": "local"}}])
def test_a_missing_or_malformed_token_is_refused(token: object) -> None:
    with pytest.raises(UngovernedRunError):
        GovernedContext.from_token(token, CONTEXT.run_name, trusted)


def test_environment_variables_alone_do_not_make_a_run_governed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_RUN_ENV", "production")
    monkeypatch.setenv("MLOPS_RUN_ACTOR", "release-bot")
    with pytest.raises(UngovernedRunError, match="not started through the platform"):
        GovernedContext.current()


def test_the_model_allow_list_is_not_chosen_by_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_platform.infra.settings import allowed_model_types
    from mlops_platform.runtime.run_context import current_environment

    monkeypatch.setenv("MLOPS_RUN_ENV", "production")
    assert current_environment() == "local"
    assert allowed_model_types() == allowed_model_types("local")


REAL_STAGING = RunSetting(
    env="staging",
    local_trust=False,
    config_override=None,
    active_stack="readmission-staging",
    expected_stack="readmission-staging",
    has_tracker=True,
    git_dirty=False,
)


def test_a_clean_launch_on_the_registered_stack_may_start() -> None:
    assert precondition_problems(REAL_STAGING) == []
    assert precondition_problems(replace(REAL_STAGING, env="production")) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"config_override": "/tmp/my-configs"}, "MLOPS_CONFIG_DIR"),
        ({"active_stack": "default"}, "registered stack"),
        ({"has_tracker": False}, "MLflow experiment tracker"),
        ({"git_dirty": True}, "uncommitted changes"),
        (
            {"stack_differences": ("experiment_tracker 'mlflow': tracking_insecure_tls is True",)},
            "tracking_insecure_tls is True",
        ),
    ],
)
def test_each_escape_hatch_is_refused_in_staging_and_production(change: dict, named: str) -> None:
    for env in ("staging", "production"):
        problems = precondition_problems(replace(REAL_STAGING, env=env, **change))
        assert len(problems) == 1 and named in problems[0]


def test_local_and_local_trust_keep_the_local_rules() -> None:
    loose = replace(
        REAL_STAGING,
        config_override="/x",
        active_stack="default",
        has_tracker=False,
        git_dirty=True,
    )
    assert precondition_problems(replace(loose, env="local")) == []
    assert precondition_problems(replace(loose, local_trust=True)) == []


def test_config_fingerprint_follows_the_effective_config(tmp_path) -> None:
    import shutil

    from mlops_platform.config import repository_config_dir

    copy = tmp_path / "configs"
    shutil.copytree(repository_config_dir(), copy)
    assert config_fingerprint("production", copy) == config_fingerprint(
        "production", repository_config_dir()
    )
    (copy / "production" / "policy.yaml").write_text("quality:\n  min_roc_auc: 0.7\n", "utf-8")
    assert config_fingerprint("production", copy) != config_fingerprint(
        "production", repository_config_dir()
    )
