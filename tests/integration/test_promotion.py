"""Promotion, approval, audit, MLflow mirror and rollback with real ZenML runs, through the CLI.

One module-scoped state: three versions trained on synthetic data before anything is promoted
(a later weak version would already be rejected by the training gate's champion check), then one
ordered story. Promotions re-judge the versions on a third synthetic file none of them saw.

Staging and production use the local gate policy here: synthetic data does not meet the
production thresholds, and these tests are about the promotion mechanics, not the thresholds.
All environments share one audit store (MLOPS_AUDIT_DB_URL points at the local one), as in the
local demo. People come from the loaded approval policy, and each acts through their own account on a
real ZenML server started once for this module (`mlops --as NAME`), so every promotion, approval
and countersignature is by a `zenml-server` identity (the server checks each person's key and
names them; the commands' ZenML work goes to the module's SQLite store, which the server serves).
The three training runs are a CI job's (a `github-oidc` token from a loopback issuer, naming the
person who started it), as in train-staging.yml.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import Result
from zenml import Model
from zenml.client import Client
from zenml.utils import source_utils

from mlops_cli.commands import training_config
from mlops_cli.errors import ExitCode
from mlops_platform.config import config_dir
from mlops_platform.governance.approvals.policy import PRODUCTION, STAGING, load_approval_policy
from mlops_platform.governance.promotion import PromotionDenied, PromotionOrder
from mlops_platform.infra import server
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.names import REJECTED_TAG, PlatformArtifact
from mlops_platform.reporting.governance_report import REPORT_FILE
from mlops_platform.runtime import tracking
from mlops_platform.runtime.runner import GovernedRunFailed, run_governed
from mlops_platform.trust.audit import AuditEventType, AuditRecord, AuditTrail
from mlops_platform.trust.identity import Actor
from readmission.names import MODEL_NAME
from readmission.pipelines.promotion import readmission_promotion
from tests.fake_github import FakeGitHub, approvals_path, serving
from tests.integration.helpers import (
    SYNTHETIC_BASELINE_MARGINS,
    copy_configs,
    invoke,
    write_synthetic_csv,
)
from tests.oidc_issuer import AUDIENCE, Issuer, job_environ, running_issuer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("promotion")]

# A deliberately weak booster (a few stumps): it passes the absolute gates of the local policy
# but is clearly worse than a full model, so the champion/challenger check must stop it.
WEAK_MODEL = {"max_iter": 8, "max_leaf_nodes": 2}
SOURCE_ROOT = Path(__file__).resolve().parents[2] / "src"
GITHUB_REPOSITORY = "acme/readmission"
GITHUB_RUN_ID = "4242"
GITHUB_TOKEN = "test-token-not-a-secret"


@dataclass(frozen=True)
class Cast:
    author: str  # trains v1 and v2; holds no approver role
    approver: str  # may approve production; also trains v3 (so approving v3 is self-approval)
    requester: str  # may request staging and production
    countersigner: str  # may countersign an emergency override


@dataclass(frozen=True)
class World:
    data: Path  # the current data promotions re-judge on
    cast: Cast
    configs: Path  # the configs of this module
    strict_configs: Path  # the same, where no stage accepts an asserted identity
    server_url: str  # the module's ZenML server, where every person has an account


def pick_cast() -> Cast:
    policy = load_approval_policy(PRODUCTION)
    staging_policy = load_approval_policy(STAGING)

    def people(policy_roles: tuple[str, ...], roles: dict[str, tuple[str, ...]]) -> list[str]:
        return [person for role in policy_roles for person in roles[role]]

    approver = people(policy.stages.production.approvers, policy.roles)[0]
    staging_requesters = set(people(staging_policy.stages.staging.requesters, staging_policy.roles))
    requester = next(
        p
        for p in people(policy.stages.production.requesters, policy.roles)
        if p in staging_requesters and p != approver
    )
    everyone = [p for members in policy.roles.values() for p in members]
    author = next(p for p in everyone if p not in (approver, requester))
    countersigner = next(
        p
        for p in people(policy.override.roles, policy.roles)
        if p not in (requester, approver, author)
    )
    return Cast(author, approver, requester, countersigner)


def promotion_configs(
    target: Path, model: dict[str, Any] | None = None, issuer: Issuer | None = None
) -> Path:
    """Configs where staging and production judge with the local policy (and, with ``issuer``,
    where local training accepts job tokens that loopback issuer signs)."""
    local = config_dir() / "local"
    policy = yaml.safe_load((local / "policy.yaml").read_text(encoding="utf-8"))
    # On synthetic data the logistic baseline is as good as the booster (it trails by up to
    # 0.011 ROC-AUC and 0.0024 Brier on these files); the baseline check is tested elsewhere.
    policy["baseline"] = SYNTHETIC_BASELINE_MARGINS
    overrides: dict[str, dict[str, Any]] = {
        "local/policy.yaml": policy,  # keeps production >= staging >= local strictness
        "staging/policy.yaml": policy,
        "production/policy.yaml": policy,
    }
    if model is not None:
        training = yaml.safe_load((local / "training.yaml").read_text(encoding="utf-8"))
        overrides["local/training.yaml"] = {**training, "model": model}
    if issuer is not None:
        base = yaml.safe_load((config_dir() / "base" / "platform.yaml").read_text("utf-8"))
        oidc = issuer.settings(environment=None).model_dump(mode="json")
        overrides["local/platform.yaml"] = {"identity": {**base["identity"], "github_oidc": oidc}}
    return copy_configs(target, overrides)


def disguise(name: str) -> str:
    """``name`` with Latin letters swapped for their Cyrillic lookalikes."""
    return name.translate(str.maketrans("aceopxy", "асеорху"))


def train(data: Path, actor: str, issuer: Issuer) -> str:
    """A training run by a CI job that ``actor`` started: its identity is the job's verified
    token (github-oidc), as in train-staging.yml; the run uses the module's direct store."""
    issuer.tokens[AUDIENCE] = issuer.token(actor=actor)
    saved = {name: os.environ.get(name) for name in job_environ(issuer)}
    os.environ.update(job_environ(issuer))
    try:
        result = invoke("train", "--env", "local", "--data", str(data), "--json")
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.update({name: value})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    trained_by = Client().get_model_version(MODEL_NAME, summary["model_version"]).run_metadata
    assert trained_by["registration"]["trained_by_identity"]["source"] == "github-oidc"
    return str(summary["model_version"])


@pytest.fixture(scope="module")
def world(module_state: Path, zenml_server: str) -> Iterator[World]:
    root = module_state.parent
    for name in [n for n in os.environ if n.startswith("GITHUB_")] + ["READMISSION_DATA"]:
        os.environ.pop(name, None)
    # One audit chain for every environment, as in the local demo (module_state restores it).
    os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{module_state / 'audit.db'}"
    issuer_context = ExitStack()
    issuer = issuer_context.enter_context(running_issuer())
    configs = promotion_configs(root / "configs", issuer=issuer)
    weak_configs = promotion_configs(root / "weak-configs", WEAK_MODEL, issuer)
    strict_configs = copy_configs(
        root / "strict-configs",
        {"local/approvals.yaml": {"stages": {STAGING: {"requesters": ["*"]}}}},
    )
    # xdist workers have no __main__ file, from which ZenML derives the source root; `src` keeps
    # step and error sources importable under their package names (mlops_platform.…).
    source_utils.set_custom_source_root(str(SOURCE_ROOT))
    try:
        cast = pick_cast()
        # An admin made an account whose name is a Cyrillic lookalike of the approver's.
        server.create_accounts_in_store([disguise(cast.approver)])
        os.environ["MLOPS_CONFIG_DIR"] = str(configs)
        first = write_synthetic_csv(root / "first.csv", seed=11)
        assert train(first, cast.author, issuer) == "1"
        assert train(write_synthetic_csv(root / "second.csv", seed=12), cast.author, issuer) == "2"
        os.environ["MLOPS_CONFIG_DIR"] = str(weak_configs)
        assert train(first, cast.approver, issuer) == "3"
        os.environ["MLOPS_CONFIG_DIR"] = str(configs)
        issuer_context.close()
        current = write_synthetic_csv(root / "current.csv", seed=13)
        yield World(current, cast, configs, strict_configs, zenml_server)
    finally:
        issuer_context.close()
        source_utils.set_custom_source_root(None)


def promote(world: World, version: str, stage: str, actor: str, *extra: str) -> Result:
    return invoke(
        "--as",
        actor,
        "promote",
        "--version",
        version,
        "--to",
        stage,
        "--reason",
        f"promote {version} to {stage}",
        "--data",
        str(world.data),
        "--json",
        *extra,
    )


def output_json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


def records(model_name: str | None = MODEL_NAME) -> list[AuditRecord]:
    trail = AuditTrail(load_platform_settings(PRODUCTION).audit.url)
    try:
        return trail.records(model_name=model_name)
    finally:
        trail.close()


def stage_of(version: str) -> str | None:
    return Client().get_model_version(MODEL_NAME, int(version)).stage


def registered(version: str) -> str:
    metadata = Client().get_model_version(MODEL_NAME, int(version)).run_metadata
    return str(metadata["registration"]["mlflow"]["registered_version"])


def mlflow_aliases() -> dict[str, str]:
    uri = tracking.stack_tracking_uri()
    assert uri, "the local stack has an MLflow experiment tracker"
    aliases = MlflowClient(uri).get_registered_model(MODEL_NAME).aliases
    return {alias: str(version) for alias, version in aliases.items()}


def approve(version: str, actor: str) -> Result:
    return invoke(
        "--as", actor, "approve", "--version", version, "--to", PRODUCTION, "--reason", "ok"
    )


def moved_state() -> tuple[dict[str, str | None], dict[str, str], list[str]]:
    """What a refused attempt must leave as it was: ZenML stages, MLflow aliases, and the audit
    trail (its record hashes, leaving out the `promotion_denied` records refusals add)."""
    stages = {
        v.name: v.stage for v in Client().list_model_versions(model_name_or_id=MODEL_NAME, size=50)
    }
    kept = [r.record_hash for r in records(None) if r.event_type != "promotion_denied"]
    return stages, mlflow_aliases(), kept


def assert_refused(result: Result, before: Any, rule: str) -> None:
    """Exit 5, the rule named, a `promotion_denied` recorded, and nothing else moved."""
    assert result.exit_code == ExitCode.DENIED, result.output
    assert rule in result.stderr, result.stderr
    assert records(None)[-1].event_type == AuditEventType.PROMOTION_DENIED
    assert moved_state() == before


@pytest.fixture
def github_reviews(world: World) -> Iterator[str]:
    """A loopback server answering like GitHub's run-approvals API; yields its base URL."""
    path = approvals_path(GITHUB_REPOSITORY, GITHUB_RUN_ID)
    reviews = [
        {
            "state": "approved",
            "comment": "validation report reviewed",
            "environments": [{"id": 1, "name": PRODUCTION}],
            "user": {"login": world.cast.approver, "id": 7, "type": "User"},
        }
    ]
    with serving(FakeGitHub(path, GITHUB_TOKEN, body=reviews)) as fake:
        yield fake.url


def test_promotion_approval_and_rollback_story(
    world: World, github_reviews: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cast = world.cast

    # Nothing holds production yet: there is nothing to roll back to.
    nothing = invoke("--as", cast.requester, "rollback", "--to", PRODUCTION, "--reason", "r")
    assert nothing.exit_code == ExitCode.NOT_FOUND, nothing.output
    unknown = promote(world, "99", STAGING, cast.requester)
    assert unknown.exit_code == ExitCode.NOT_FOUND, unknown.output

    # Approved data files: with evaluation_data.approved_file_sha256 set, a staging gate refuses
    # a file the list lacks, the one given to the run or the one the version was trained on
    # (v1: first.csv). Production lists the same, so the environments stay ordered.
    def sha256(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    staging_policy = yaml.safe_load((world.configs / "staging" / "policy.yaml").read_text())
    for listed, refused_file in (
        (world.configs.parent / "first.csv", "this run's data file"),
        (world.data, "the file version 1 was trained on"),
    ):
        evaluation = {**staging_policy["evaluation_data"], "approved_file_sha256": [sha256(listed)]}
        approved_only = {**staging_policy, "evaluation_data": evaluation}
        listing = copy_configs(
            world.configs.parent / f"approved-{listed.stem}",
            {"staging/policy.yaml": approved_only, "production/policy.yaml": approved_only},
        )
        with monkeypatch.context() as data_rule:
            data_rule.setenv("MLOPS_CONFIG_DIR", str(listing))
            stages, aliases, kept = moved_state()
            unlisted = promote(world, "1", STAGING, cast.requester)
            assert unlisted.exit_code == ExitCode.DENIED, unlisted.output
            assert refused_file in unlisted.stderr, unlisted.stderr
            assert "evaluation_data.approved_file_sha256" in unlisted.stderr
            # Nothing moved; the trail only gained the failed run's record.
            assert moved_state()[:2] == (stages, aliases)
            trail = [r for r in records(None) if r.event_type != "promotion_denied"]
            assert [r.record_hash for r in trail[: len(kept)]] == kept
            assert {r.event_type for r in trail[len(kept) :]} == {"pipeline_failed"}

    # v1 to staging: no approval needed there; the MLflow alias follows.
    first = promote(world, "1", STAGING, cast.requester)
    assert first.exit_code == 0, first.output
    assert output_json(first)["promoted"] is True
    assert stage_of("1") == STAGING
    assert mlflow_aliases() == {STAGING: registered("1")}

    # Production without an approval: denied, said, and recorded.
    denied = promote(world, "1", PRODUCTION, cast.requester)
    assert denied.exit_code == ExitCode.DENIED, denied.output
    assert "denied by policy" in denied.stderr
    assert "found 0 valid" in denied.stderr
    assert output_json(denied)["promoted"] is False
    refusal = records()[-1]
    assert (refusal.event_type, refusal.model_version, refusal.stage) == (
        AuditEventType.PROMOTION_DENIED,
        "1",
        PRODUCTION,
    )
    assert refusal.details["action"] == "promotion"
    assert stage_of("1") == STAGING

    # The requester cannot approve by typing the approver's name: refused, nothing recorded.
    before = len(records(model_name=None))
    typed = invoke(
        "--as",
        cast.requester,
        "approve",
        "--version",
        "1",
        "--to",
        PRODUCTION,
        "--actor",
        cast.approver,
        "--reason",
        "ok",
    )
    assert typed.exit_code == ExitCode.DENIED, typed.output
    assert "differs from the verified identity" in typed.stderr
    assert (len(records(model_name=None)), stage_of("1")) == (before, STAGING)

    # The requester swaps the approver's key file for a key the server never issued: the server
    # vouches for no one, so nothing is approved or recorded.
    key_file = server.key_path(cast.approver)
    real_key = key_file.read_text()
    key_file.write_text("ZENKEY_" + base64.b64encode(b'{"id": "forged", "key": "x"}').decode())
    try:
        forged = approve("1", cast.approver)
    finally:
        key_file.write_text(real_key)
    assert forged.exit_code == ExitCode.DENIED, forged.output
    assert "did not vouch for this key" in forged.stderr
    assert (len(records(model_name=None)), stage_of("1")) == (before, STAGING)

    # An approval withdrawn by the person who gave it no longer counts; nobody else withdraws it.
    def withdraw(actor: str) -> Result:
        return invoke("--as", actor, "withdraw", "--version", "1", "--to", PRODUCTION,
                      "--reason", "the report had an error", "--json")  # fmt: skip

    mistaken = approve("1", cast.approver)
    assert mistaken.exit_code == 0, mistaken.output
    given = records()[-1]
    # A promotion that started on it and crashed (its start record, no end): the approval is
    # not withdrawn under it (attack review: reconcile then rolled forward on a withdrawn one).
    from mlops_platform.trust.events import record_event

    crashed = record_event(
        PRODUCTION, AuditEventType.PROMOTION_STARTED, cast.requester, model_name=MODEL_NAME,
        model_version="1", stage=PRODUCTION,
        details={"target_stage": PRODUCTION, "approvals": [{"seq": given.seq}]},
    )  # fmt: skip
    before = len(records(model_name=None))
    open_move = withdraw(cast.approver)
    assert open_move.exit_code == ExitCode.DENIED, open_move.output
    assert f"started at audit record {crashed.seq}" in open_move.output
    assert len(records(model_name=None)) == before  # nothing recorded
    closed = invoke("--as", cast.requester, "audit", "reconcile", "--env", PRODUCTION, "--json")
    assert closed.exit_code == 0, closed.output
    before = len(records(model_name=None))
    not_theirs = withdraw(cast.requester)
    assert not_theirs.exit_code == ExitCode.NOT_FOUND, not_theirs.output
    assert len(records(model_name=None)) == before  # nothing recorded
    withdrawn = withdraw(cast.approver)
    assert withdrawn.exit_code == 0, withdrawn.output
    assert output_json(withdrawn)["withdrawn"] == [given.seq]
    assert records()[-1].event_type == AuditEventType.APPROVAL_WITHDRAWN
    before = moved_state()
    assert_refused(promote(world, "1", PRODUCTION, cast.requester), before, "found 0 valid")
    assert withdraw(cast.approver).exit_code == ExitCode.NOT_FOUND  # nothing left to withdraw

    # An approval by a model risk officer, then production; the approval is read back from the
    # audit trail and mirrored onto the model version's metadata.
    approval = approve("1", cast.approver)
    assert approval.exit_code == 0, approval.output
    recorded = records()[-1]
    assert recorded.event_type == AuditEventType.APPROVAL_RECORDED
    assert recorded.details["approver"] == cast.approver
    assert recorded.details["source"] == "zenml-server"
    identity = recorded.details["identity"]
    assert (identity["name"], identity["source"]) == (cast.approver, "zenml-server")
    assert identity["evidence"]["server_url"] == world.server_url
    metadata = Client().get_model_version(MODEL_NAME, 1).run_metadata
    assert f"audit_{recorded.seq:06d}_approval_recorded" in metadata
    # A production policy that names a protected branch this clone does not have: the commit
    # v1 was trained at (read from its verified training record) cannot be shown to be on it.
    local_approvals = yaml.safe_load((world.configs / "local" / "approvals.yaml").read_text())
    local_approvals["stages"][PRODUCTION]["code_from_branch"] = "no-such-protected-branch"
    guarded = copy_configs(
        world.configs.parent / "branch-configs", {"local/approvals.yaml": local_approvals}
    )
    with monkeypatch.context() as branch_rule:
        branch_rule.setenv("MLOPS_CONFIG_DIR", str(guarded))
        before = moved_state()
        off_branch = promote(world, "1", PRODUCTION, cast.requester)
        # (A clean clone is refused for the branch, a working copy with edits for its dirty tree.)
        assert_refused(off_branch, before, "'no-such-protected-branch'")
        trained_at = next(
            r.details["git_sha"]
            for r in records()
            if r.event_type == AuditEventType.TRAINING_COMPLETED and r.model_version == "1"
        )
        assert trained_at[:12] in off_branch.stderr
    live = promote(world, "1", PRODUCTION, cast.requester, "--ticket", "CHG-1")
    assert live.exit_code == 0, live.output
    decision = output_json(live)
    assert decision["approvals"] == [
        {"approver": cast.approver, "source": "zenml-server", "seq": recorded.seq}
    ]
    assert decision["previous_holder"] is None
    assert (stage_of("1"), decision["ticket"]) == (PRODUCTION, "CHG-1")
    assert mlflow_aliases() == {PRODUCTION: registered("1")}
    gates = Client().get_model_version(MODEL_NAME, 1).run_metadata
    assert gates["gate_decision"] == gates["gate_decision_production"]
    assert gates["gate_decision_local"]["environment"] == "local"
    assert gates["gate_decision_staging"]["passed"] is True

    # v2 to staging. A promotion run started without the command (so without its approval
    # check) is stopped by the promotion step itself: it checks the approvals again.
    assert promote(world, "2", STAGING, cast.requester).exit_code == 0
    config = training_config(PRODUCTION, world.data)
    with pytest.raises(GovernedRunFailed) as bypass:
        run_governed(
            readmission_promotion.with_options(model=Model(name=MODEL_NAME, version="2")),
            PRODUCTION,
            Actor(cast.requester, "asserted"),
            {
                "data": config.data,
                "split": config.split,
                "evaluation": config.evaluation,
                "target_stage": PRODUCTION,
                "request": PromotionOrder(reason="straight to the pipeline"),
            },
        )
    assert (bypass.value.step, bypass.value.error_class()) == ("promote_model", PromotionDenied)
    assert "found 0 valid" in bypass.value.error_message
    step_refusal = next(r for r in reversed(records()) if r.event_type == "promotion_denied")
    assert (step_refusal.model_version, step_refusal.details["reason"]) == (
        "2",
        "straight to the pipeline",
    )
    assert stage_of("2") == STAGING

    # Approved by a GitHub environment reviewer, then production: v1 archived. The job proves it
    # runs in the production environment of the repository with its OIDC token (signed by a
    # loopback issuer whose keys the production config trusts); GITHUB_* variables prove nothing.
    with running_issuer() as issuer, monkeypatch.context() as github:
        production_platform = world.configs / "production" / "platform.yaml"
        saved = production_platform.read_text(encoding="utf-8")
        settings = yaml.safe_load(saved)
        oidc = issuer.settings(repository=GITHUB_REPOSITORY, api_url=github_reviews)
        settings["identity"]["github_oidc"] = oidc.model_dump(mode="json")
        production_platform.write_text(yaml.safe_dump(settings), encoding="utf-8")
        issuer.tokens[oidc.audience] = issuer.token(
            actor=cast.requester, repository=GITHUB_REPOSITORY, run_id=GITHUB_RUN_ID
        )
        for name, value in {**job_environ(issuer), "GITHUB_TOKEN": GITHUB_TOKEN}.items():
            github.setenv(name, value)
        try:
            reviewed = invoke(
                "approve",
                "--version",
                "2",
                "--to",
                PRODUCTION,
                "--reason",
                "workflow approval",
                "--from-github-environment",
                PRODUCTION,
                "--json",
            )
        finally:
            production_platform.write_text(saved, encoding="utf-8")
    assert reviewed.exit_code == 0, reviewed.output
    (github_approval,) = output_json(reviewed)["approvals"]
    assert github_approval["approver"] == cast.approver
    assert github_approval["source"] == "github-environment"
    # The reviewer's name from GitHub; the evidence is the job that read it, by its verified token.
    assert github_approval["identity"]["source"] == "github-environment"
    reader = github_approval["identity"]["evidence"]["recorded_by"]
    assert (reader["source"], reader["evidence"]["environment"]) == ("github-oidc", PRODUCTION)
    assert github_approval["run_url"] == (
        f"https://github.com/{GITHUB_REPOSITORY}/actions/runs/{GITHUB_RUN_ID}"
    )
    assert github_approval["reason"] == "validation report reviewed"
    second = promote(world, "2", PRODUCTION, cast.requester)
    assert second.exit_code == 0, second.output
    assert output_json(second)["previous_holder"] == "1"
    assert (stage_of("1"), stage_of("2")) == ("archived", PRODUCTION)
    assert mlflow_aliases() == {PRODUCTION: registered("2")}

    # Attempts to get around separation of duties: each refused, nothing moved.
    before = moved_state()
    # The holder of production may not be moved to staging: production would be left empty.
    demote = promote(world, "2", STAGING, cast.requester)
    assert_refused(demote, before, "would leave production with no model")
    assert "mlops rollback --to production" in demote.stderr
    # An override the requester alone asks for: no countersignature was recorded by anyone.
    alone = promote(world, "3", PRODUCTION, cast.requester, "--override")
    assert_refused(alone, before, "needs a countersignature recorded by a second person")
    typed = promote(world, "3", PRODUCTION, cast.requester, "--override-approver", "x")
    assert typed.exit_code == ExitCode.USAGE  # the requester-typed countersigner is gone
    # A Cyrillic lookalike of the approver approving v3, which the real approver trained.
    # Its account exists on the server (an admin made it): the server vouches for the name, the
    # policy still refuses the lookalike.
    disguised = disguise(cast.approver)
    assert disguised != cast.approver
    assert_refused(approve("3", disguised), before, "lookalike names are refused")
    # A blank --actor is refused, never replaced by the OS user.
    blank = invoke("approve", "--version", "1", "--to", PRODUCTION, "--actor", "", "--reason", "r")
    assert blank.exit_code == ExitCode.BAD_INPUT, blank.output
    assert "is blank" in blank.stderr
    # Production accepts no typed name: the requester typing the approver's name gets nothing,
    # and nothing is recorded (the refusal comes before any store is read).
    count = len(records(None))
    for args in (
        ("approve", "--version", "1", "--to", PRODUCTION, "--reason", "r"),
        ("promote", "--version", "1", "--to", PRODUCTION, "--reason", "r"),
    ):
        typed_name = invoke("--as", cast.requester, *args, "--actor", cast.approver)
        assert typed_name.exit_code == ExitCode.DENIED, typed_name.output
        assert "differs from the verified identity" in typed_name.stderr
        assert (moved_state(), len(records(None))) == (before, count)

    # Self-approval: the approver trained v3.
    own = approve("3", cast.approver)
    assert own.exit_code == ExitCode.DENIED, own.output
    assert "authored the training run" in own.stderr
    assert records()[-1].event_type == AuditEventType.PROMOTION_DENIED
    assert records()[-1].details["action"] == "approval"

    # The weak v3 ("latest") reaches staging (no champion there), but not production, even with
    # an emergency override: the override replaces approvals, never the gates.
    assert promote(world, "latest", STAGING, cast.requester).exit_code == 0
    assert stage_of("3") == STAGING
    # Rolling staging back would restore its previous holder, v2, which holds production: that
    # would empty production, so the rollback is governed by production too and refused.
    before = moved_state()
    emptying = invoke("--as", cast.requester, "rollback", "--to", STAGING, "--reason", "INC-8")
    assert_refused(emptying, before, "would leave production with no model")
    signed = invoke(
        "--as",
        cast.countersigner,
        "countersign",
        "--version",
        "3",
        "--to",
        PRODUCTION,
        "--reason",
        "readmission spike: the staging model is needed in production now",
        "--json",
    )
    assert signed.exit_code == 0, signed.output
    signature = records()[-1]
    assert (signature.event_type, signature.actor) == ("countersignature", cast.countersigner)
    assert signature.details["identity"]["source"] == "zenml-server"
    assert signature.details["identity"]["os_user"]
    # The governance report's evidence shows it (day-one review: no trace of the countersigner).
    out = world.configs.parent / "report-countersigned"
    report = invoke("report", "--out", str(out), "--json")
    assert report.exit_code == 0, report.output
    html_text = (out / REPORT_FILE).read_text(encoding="utf-8")
    found = re.search(r'<section id="approvals">(.*?)</section>', html_text, re.S)
    assert found and "countersignature of an override" in found.group(1)
    assert f"<td>{cast.countersigner}</td>" in found.group(1)
    worse = promote(world, "3", PRODUCTION, cast.requester, "--override")
    assert worse.exit_code == ExitCode.GATE_FAILED, worse.output
    assert "roc_auc_drop_vs_champion" in worse.stderr
    assert "- -" not in worse.stderr  # each failed check is one bullet
    failed = output_json(worse)["failed_checks"]
    assert failed and all(name.endswith("_vs_champion") for name in failed), failed
    events = [r.event_type for r in records()[-3:]]
    assert events == ["gate_failed", "pipeline_failed", "promotion_denied"]
    assert (stage_of("2"), stage_of("3")) == (PRODUCTION, STAGING)
    tags = {tag.name for tag in Client().get_model_version(MODEL_NAME, 3).tags}
    assert REJECTED_TAG not in tags  # fit for staging still; only this promotion was denied

    # Version 1's realised outcomes were judged degraded in production (as `mlops monitor
    # outcomes` records it): a rollback to it is refused, and restoring it anyway is recorded.
    from mlops_platform.trust.events import record_event

    degraded = record_event(
        PRODUCTION, AuditEventType.OUTCOMES_CHECKED, cast.approver, model_name=MODEL_NAME,
        model_version="1",
        details={"verdict": "degraded", "as_of": "2026-03-01", "labels_sha256": "e" * 64},
    )  # fmt: skip
    before = moved_state()
    refused = invoke("--as", cast.requester, "rollback", "--to", PRODUCTION, "--reason", "INC-7")
    assert_refused(refused, before, f"audit record {degraded.seq}")
    assert "--despite-degraded" in refused.stderr

    # Rollback restores the previous production holder from the trail.
    back = invoke(
        "--as", cast.requester, "rollback", "--to", PRODUCTION, "--reason", "INC-7", "--json",
        "--despite-degraded",
    )  # fmt: skip
    assert back.exit_code == 0, back.output
    assert f"audit record {degraded.seq}" in output_json(back)["despite_degraded_outcomes"][0]
    assert (output_json(back)["model_version"], output_json(back)["replaced"]) == ("1", "2")
    assert (stage_of("1"), stage_of("2")) == (PRODUCTION, "archived")
    assert mlflow_aliases() == {PRODUCTION: registered("1"), STAGING: registered("3")}
    rollback = records()[-1]
    assert (rollback.event_type, rollback.actor, rollback.details["reason"]) == (
        AuditEventType.ROLLBACK,
        cast.requester,
        "INC-7",
    )
    assert rollback.details["approval_rule"].startswith("rollback: no new approval")

    # v2 left production; the approval its promotion consumed does not bring it back.
    before = moved_state()
    reuse = promote(world, "2", PRODUCTION, cast.requester)
    assert_refused(reuse, before, "found 0 valid")

    # History shows the whole sequence, from the audit trail.
    history = json.loads(invoke("history", "--json").stdout)["stages"]
    assert [t["model_version"] for t in history[STAGING]] == ["1", "2", "3"]
    assert [(t["model_version"], t["started_by"]) for t in history[PRODUCTION]] == [
        ("1", "promotion"),
        ("2", "promotion"),
        ("1", "rollback"),
    ]
    assert [t["until"] is None for t in history[PRODUCTION]] == [False, False, True]
    assert history[STAGING][0]["until"] == history[PRODUCTION][0]["since"]

    # At the moment version 2 was promoted, it held production under the recorded policy.
    from mlops_platform.governance.history_at import effective_policy_sha256

    moment = invoke("history", "--at", history[PRODUCTION][1]["since"], "--json")
    assert moment.exit_code == 0, moment.output
    held = output_json(moment)["stages"]
    assert (held[PRODUCTION]["model_version"], held[PRODUCTION]["started_by"]) == ("2", "promotion")
    assert held[PRODUCTION]["policy_sha256"] == effective_policy_sha256(PRODUCTION)
    assert invoke("history", "--at", "not-a-time").exit_code == ExitCode.BAD_INPUT

    # One person's degraded verdict (recorded from labels of their choosing: the insider review
    # kept any version out of production with it, for good) stops a promotion, naming the record
    # and the way past it; a countersigned override (a second person) goes past it, recorded.
    def countersign(reason: str) -> Any:
        return invoke(
            "--as", cast.countersigner, "countersign", "--version", "2", "--to", PRODUCTION,
            "--reason", reason,
        )  # fmt: skip

    # A countersignature given before the verdict existed (attack review: it went past the
    # verdict, so the requester alone decided to) does not go past it.
    blind = countersign("INC-10: emergency release while the approver is away, reviewed")
    assert blind.exit_code == 0, blind.output
    verdict = record_event(
        PRODUCTION, AuditEventType.OUTCOMES_CHECKED, cast.requester, model_name=MODEL_NAME,
        model_version="2",
        details={"verdict": "degraded", "as_of": "2026-03-02", "labels_sha256": "f" * 64},
    )  # fmt: skip
    before = moved_state()
    unseen = promote(world, "2", PRODUCTION, cast.requester, "--override")
    assert_refused(unseen, before, f"does not name that verdict (record {verdict.seq})")
    assert approve("2", cast.approver).exit_code == 0
    before = moved_state()
    blocked = promote(world, "2", PRODUCTION, cast.requester)
    assert_refused(blocked, before, f"audit record {verdict.seq}")
    assert "mlops promote --override" in blocked.stderr
    signed = countersign("the degraded verdict's labels were never the hospital's: INC-11")
    assert signed.exit_code == 0, signed.output
    assert f"degraded outcome verdict (audit record {verdict.seq}" in signed.stdout
    past = promote(world, "2", PRODUCTION, cast.requester, "--override")
    assert past.exit_code == 0, past.output
    assert (stage_of("2"), stage_of("1")) == (PRODUCTION, "archived")
    moved = next(r for r in reversed(records()) if r.event_type == "promotion_started")
    (went_past,) = moved.details["override"]["despite_degraded_outcomes"]
    assert f"audit record {verdict.seq}" in went_past
    # A rollback brings back no version trained on a file today's approved list lacks (review
    # of the approved lists: a rollback skipped them); --despite-policy would, recorded.
    evaluation = {**staging_policy["evaluation_data"], "approved_file_sha256": [sha256(world.data)]}
    listed_only = {**staging_policy, "evaluation_data": evaluation}
    listing = copy_configs(
        world.configs.parent / "approved-rollback",
        {"staging/policy.yaml": listed_only, "production/policy.yaml": listed_only},
    )
    with monkeypatch.context() as data_rule:
        data_rule.setenv("MLOPS_CONFIG_DIR", str(listing))
        before = moved_state()
        unlisted = invoke(
            "--as", cast.requester, "rollback", "--to", PRODUCTION, "--reason", "INC-12",
            "--despite-degraded",
        )  # fmt: skip
        assert_refused(unlisted, before, "the file version 1 was trained on")
        assert "--despite-policy" in unlisted.stderr
        # The holders were trained on files the list now lacks (v2: second.csv, v3: first.csv):
        # `mlops check` names each (it passed them before the list was the only gate on them).
        listed = invoke("check", "--json")
        assert listed.exit_code == ExitCode.CHECK_FAILED, listed.output
        named = {
            f["subject"].rsplit(" ", 1)[-1]: f["message"]
            for f in json.loads(listed.stdout)["findings"]
            if f["rule"] == "holder-data-vs-policy"
        }
        assert sorted(named) == ["2", "3"], listed.output
        assert "the file the production holder was trained on" in named["2"]
        assert "the file the staging holder was trained on" in named["3"]
    # Back to the story's end for the tests after it (v1 holds production, v2 archived): v1's
    # own degraded verdict (above) makes it a rollback past it.
    restored = invoke(
        "--as", cast.requester, "rollback", "--to", PRODUCTION, "--reason", "INC-12",
        "--despite-degraded",
    )  # fmt: skip
    assert restored.exit_code == 0, restored.output
    assert (stage_of("1"), stage_of("2")) == (PRODUCTION, "archived")

    # The chain verifies after all of it, and `mlops check` sees MLflow drift from ZenML.
    verified = invoke("audit", "verify", "--json")
    assert verified.exit_code == 0, verified.output
    assert output_json(verified)["records_checked"] == len(records(model_name=None))
    assert invoke("check").exit_code == 0
    uri = tracking.stack_tracking_uri()
    assert uri
    MlflowClient(uri).set_registered_model_alias(MODEL_NAME, PRODUCTION, registered("2"))
    drifted = invoke("check", "--json")
    assert drifted.exit_code == ExitCode.CHECK_FAILED, drifted.output
    (finding,) = json.loads(drifted.stdout)["findings"]
    assert finding["rule"] == "mlflow-mirror"
    assert (
        f"production holder is version 1 (MLflow version {registered('1')})" in finding["message"]
    )


# Documented commands that only read the stores. `--expected-head` takes a placeholder hash.
READ_ONLY_COMMANDS = (
    ("versions",),
    ("compare",),
    ("policy", "show"),
    ("gate",),
    ("history",),
    ("audit", "verify"),
    ("audit", "log"),
    ("model", "types"),
    ("check",),
    ("report",),
)
GUIDES = ("README.md", "docs/DEVELOPER_GUIDE.md", "docs/PLATFORM_GUIDE.md", "docs/PROMOTION.md")
NEEDS_VARIABLE = "needs the environment variable"


def documented_read_only_commands() -> list[list[str]]:
    """The read-only `mlops` commands of the README and the guides, each once, in order."""
    from tests.cli.test_docs import all_commands

    found: list[list[str]] = []
    for where, words in all_commands():
        if not where.startswith(GUIDES) or words[0] != "mlops" or words in found:
            continue
        read_only = any(tuple(words[1 : 1 + len(c)]) == c for c in READ_ONLY_COMMANDS)
        if read_only and "--expected-head" not in words:
            found.append(words)
    return found


# A fresh `mlops` process per command, without paying ZenML's import each time: one interpreter
# does what the console script does before a command (`workspace.activate()`, then imports),
# and forks once per command; each child runs one command from that state and exits, so no
# command sees another's settings, caches or environment.
_FORKING_CLI = r"""
import json, os, sys
from mlops_platform import workspace
workspace.activate()
from mlops_cli.app import app
import mlflow.tracking, zenml.client
import mlops_cli.commands, mlops_platform.governance.model_stages, readmission.pipelines.training
commands, out_dir = json.loads(sys.argv[1]), sys.argv[2]
for index, args in enumerate(commands):
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        for fd, suffix in ((1, "out"), (2, "err")):
            target = os.open(f"{out_dir}/{index}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(target, fd)
        code = 0
        try:
            app(args=args, prog_name="mlops")
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps([index, os.waitstatus_to_exitcode(status)]), flush=True)
"""


def test_documented_read_only_commands_run_in_a_fresh_shell(
    world: World, module_state: Path, tmp_path: Path
) -> None:
    """After the lifecycle above, the read-only commands of the README and the guides run in a
    new shell: only PATH, HOME and where the checkout keeps its state (`.mlops`, here the test's
    state directory), no MLOPS_AUDIT_DB_URL, ZENML_* or config variables. `gate` may give its
    verdict (exit 4: the repository's production policy is stricter than this module's)."""
    # The story above left MLflow's production alias drifted on purpose; put it back.
    uri = tracking.stack_tracking_uri()
    assert uri
    MlflowClient(uri).set_registered_model_alias(MODEL_NAME, PRODUCTION, registered("1"))
    commands = documented_read_only_commands()
    assert {tuple(c[1:2]) for c in commands} >= {("versions",), ("history",), ("audit",)}
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    arguments = [
        [str(tmp_path / "report") if w == ".mlops/report" else w for w in words[1:]]
        for words in commands
    ]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _FORKING_CLI, json.dumps(arguments), str(outputs)],
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(tmp_path / "home"),
            "MLOPS_STATE_DIR": str(module_state),  # stands in for the checkout's .mlops
        },
        cwd=SOURCE_ROOT.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    codes = dict(json.loads(line) for line in done.stdout.splitlines())
    assert sorted(codes) == list(range(len(commands))), done.stdout

    failed = []
    for index, words in enumerate(commands):
        allowed = (0, ExitCode.GATE_FAILED) if words[1] == "gate" else (0,)
        output = "".join((outputs / f"{index}.{s}").read_text() for s in ("out", "err"))
        if codes[index] not in allowed or NEEDS_VARIABLE in output:
            failed.append(f"{' '.join(words)} -> exit {codes[index]}: {output[-800:]}")
    assert not failed, "\n\n".join(failed)
    print(f"{len(commands)} documented commands in a fresh shell: {elapsed:.1f} s")


# The screenshots the guides show; `make screenshots` copies them from test-output/ to docs/images/.
SCREENSHOTS = ("model_report.png", "versions.png")


@pytest.mark.browser
def test_screenshots_of_the_model_report_and_the_versions_list(
    world: World, output_dir: Path
) -> None:
    """After the lifecycle: production's model report, and `mlops versions` (stage, verdict,
    metrics, who trained and approved), rendered in Chromium."""
    from tests.integration import browser

    browser.chromium()
    report = Client().get_model_version(MODEL_NAME, 1).get_artifact(PlatformArtifact.MODEL_REPORT)
    report_page = output_dir / "model_report.html"
    report_page.write_text(str(report.load()), encoding="utf-8")
    listed = invoke("versions")
    assert listed.exit_code == 0, listed.output
    assert PRODUCTION in listed.stdout and world.cast.approver in listed.stdout  # approved by
    versions_page = output_dir / "versions.html"
    versions_page.write_text(
        browser.terminal_page("mlops versions", listed.stdout), encoding="utf-8"
    )

    for page, shot in zip((report_page, versions_page), SCREENSHOTS, strict=True):
        target = browser.screenshot(page.as_uri(), output_dir / shot)
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot


def test_forged_approval_stops_promotion_and_truncation_is_found(world: World) -> None:
    """After the story (v1 holds production, v2 archived): an approval for v2 forged with raw SQL
    (its hash computed as anyone can) stops `mlops promote` with exit 8, nothing moves and nothing
    is chained on top; deleting the newest records is found by the anchors on ZenML versions."""
    from sqlalchemy import create_engine, text

    from mlops_platform.trust.audit import seal_record
    from mlops_platform.trust.audit.chain import canonical_json
    from mlops_platform.workspace import state_dir

    url = load_platform_settings(PRODUCTION).audit.url
    intact = records(model_name=None)
    head = intact[-1]
    forged = seal_record(
        seq=head.seq + 1,
        recorded_at=head.recorded_at,
        event_type=AuditEventType.APPROVAL_RECORDED,
        actor=world.cast.approver,
        model_name=MODEL_NAME,
        model_version="2",
        stage=PRODUCTION,
        details={"approver": world.cast.approver, "source": "asserted", "environment": PRODUCTION},
        prev_hash=head.record_hash,
    )
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events VALUES (:seq, :recorded_at, :event_type, :actor, "
                ":model_name, :model_version, :stage, :details, :prev_hash, :record_hash, "
                "NULL, NULL)"
            ),
            {**forged.__dict__, "details": canonical_json(forged.details)},
        )

    refused = promote(world, "2", PRODUCTION, world.cast.requester)

    assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
    assert f"record {forged.seq} carries no signature" in refused.stderr
    assert (stage_of("1"), stage_of("2")) == (PRODUCTION, "archived")
    assert len(records(model_name=None)) == len(intact) + 1  # nothing chained on top
    assert invoke("history").exit_code == ExitCode.AUDIT_BROKEN

    # Remove the forged row and the newest real record; forget this checkout's checkpoint, so
    # only the heads mirrored onto the ZenML model versions know what is missing.
    with engine.begin() as connection:
        connection.execute(text(f"DELETE FROM audit_events WHERE seq >= {head.seq}"))
    engine.dispose()
    for checkpoint in (state_dir() / "audit-checkpoints").glob("*.json"):
        checkpoint.unlink()

    truncated = invoke("audit", "verify", "--env", PRODUCTION)

    assert truncated.exit_code == ExitCode.AUDIT_BROKEN, truncated.output
    assert f"the trail ends at record {head.seq - 1}" in truncated.stderr
    assert "ZenML metadata" in truncated.stderr

    # And with the model deleted from ZenML too (no access control there): its MLflow tag
    # still names the cut records (the second review: verify then passed, exit 0, as it learned
    # the models from ZenML only).
    Client().delete_model(MODEL_NAME)
    truncated = invoke("audit", "verify", "--env", PRODUCTION)
    assert truncated.exit_code == ExitCode.AUDIT_BROKEN, truncated.output
    assert "MLflow tag" in truncated.stderr
