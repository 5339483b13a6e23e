"""Registered model files are pinned, signed and checked before every load, through the real CLI.

One module-scoped state: two versions trained on synthetic data (the readmission model passes the
allow-list on save and on load along the way). Each attack replaces a registered version's
`model.skops` in the local artifact store with another valid, allow-listed, even validly signed
model file (the other version's), which the type allow-list alone cannot catch, and restores it
afterwards. Stage history for the rollback is written to the audit trail the way promotions
write it; promotions themselves are tested in test_promotion.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import Result
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.utils import source_utils

from mlops_cli.errors import ExitCode
from mlops_platform.governance import transaction
from mlops_platform.governance.approvals.policy import STAGING
from mlops_platform.governance.check import trail_findings
from mlops_platform.governance.model_stages import read_history
from mlops_platform.governance.promotion import PromotionOrder
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.names import VALIDATED_TAG
from mlops_platform.runtime import tracking
from mlops_platform.steps.validate_model import (
    BASELINE_ARTIFACT_ID,
    GateRecordMismatch,
    judge_run_again,
)
from mlops_platform.trust.artifacts import (
    GATE_MODEL_SHA256,
    MODEL_FILENAME,
    verify_registered_model,
)
from mlops_platform.trust.audit import AuditEventType, AuditTrail
from mlops_platform.trust.events import record_version_event
from readmission.names import MODEL_NAME, Artifact
from tests.integration.helpers import clear_stage, hold_stage, invoke, write_synthetic_csv
from tests.integration.test_promotion import Cast, pick_cast, promotion_configs

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("model_artifacts")]

SOURCE_ROOT = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True)
class World:
    root: Path
    data: Path
    cast: Cast


def model_file(version: str) -> Path:
    artifact = (
        Client().get_model_version(MODEL_NAME, int(version)).get_model_artifact(Artifact.MODEL)
    )
    return Path(artifact.uri) / MODEL_FILENAME


@contextmanager
def swapped(version: str, replacement: str) -> Iterator[Path]:
    """`version`'s stored model file replaced by `replacement`'s for the duration."""
    target = model_file(version)
    original = target.read_bytes()
    shutil.copyfile(model_file(replacement), target)
    try:
        yield target
    finally:
        target.write_bytes(original)


def audit_records(event_type: str) -> list[object]:
    trail = AuditTrail(load_platform_settings("local").audit.url)
    try:
        return trail.records(model_name=MODEL_NAME, event_types=[event_type])
    finally:
        trail.close()


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Webhook.received.append(json.loads(self.rfile.read(length))["text"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def alerts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Texts of the alerts posted to a loopback webhook during the test."""
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Webhook.received = []
    webhook_env = load_platform_settings("local").alerting.webhook_env
    monkeypatch.setenv(webhook_env, f"http://127.0.0.1:{server.server_port}/alert")
    yield _Webhook.received
    server.shutdown()
    server.server_close()


def integrity_alerts(alerts: list[str]) -> list[str]:
    return [text for text in alerts if "Model file check failed" in text]


def train(data: Path, actor: str) -> str:
    """A local training run by ``actor`` (asserted names are accepted locally)."""
    result = invoke("train", "--env", "local", "--data", str(data), "--actor", actor, "--json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["model_version"])


def stage_of(version: str) -> str | None:
    return Client().get_model_version(MODEL_NAME, int(version)).stage


@pytest.fixture(scope="module")
def world(module_state: Path, zenml_server: str) -> Iterator[World]:
    root = module_state.parent
    for name in [n for n in os.environ if n.startswith("GITHUB_")] + ["READMISSION_DATA"]:
        os.environ.pop(name, None)
    os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{module_state / 'audit.db'}"
    os.environ["MLOPS_CONFIG_DIR"] = str(promotion_configs(root / "configs"))
    source_utils.set_custom_source_root(str(SOURCE_ROOT))
    try:
        cast = pick_cast()
        assert train(write_synthetic_csv(root / "first.csv", seed=11), cast.author) == "1"
        assert train(write_synthetic_csv(root / "second.csv", seed=12), cast.author) == "2"
        yield World(root, write_synthetic_csv(root / "current.csv", patients=2000, seed=13), cast)
    finally:
        source_utils.set_custom_source_root(None)


def test_registration_pins_and_signs_the_stored_file(world: World) -> None:
    version = Client().get_model_version(MODEL_NAME, 1)
    digest = hashlib.sha256(model_file("1").read_bytes()).hexdigest()
    pin = version.run_metadata["registration"]["model_file"]
    assert pin["sha256"] == digest
    artifact = version.get_model_artifact(Artifact.MODEL)
    assert pin["artifact_id"] == str(artifact.id)
    assert artifact.run_metadata["model_file"] == pin
    verified = verify_registered_model(version, STAGING, Artifact.MODEL)
    assert verified.pin.key_id == pin["key_id"]
    uri = tracking.stack_tracking_uri()
    mlflow_version = version.run_metadata["registration"]["mlflow"]["registered_version"]
    tags = MlflowClient(uri).get_model_version(MODEL_NAME, mlflow_version).tags
    assert tags["model_sha256"] == digest
    (record,) = [
        r for r in audit_records(AuditEventType.TRAINING_COMPLETED) if r.model_version == "1"
    ]
    assert record.details["model_sha256"] == digest
    assert record.details["model_signature_key_id"] == pin["key_id"]


def test_model_types_lists_the_trained_types_against_the_allow_list(world: World) -> None:
    result = invoke("model", "types", "--version", "1", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert "readmission.core.features.ReadmissionFeatures" in payload["types"]
    assert payload["not_allowed"] == []
    assert "sklearn.linear_model._logistic.LogisticRegression" in payload["allowed_unused"]


def test_a_swapped_file_is_refused_at_infer_and_nothing_is_written(
    world: World, alerts: list[str]
) -> None:
    hold_stage("1", "production")
    intact = world.root / "intact"
    scored = invoke("infer", "--input", str(world.data), "--output", str(intact), "--json")
    assert scored.exit_code == 0, scored.output
    traced = invoke(
        "lineage", "--predictions", str(intact), "--encounter-id", _first_id(world), "--json"
    )
    assert traced.exit_code == 0, traced.output
    file_status = json.loads(traced.stdout)["model_version"]["model_file"]
    assert file_status["status"] == "verified"
    assert file_status["key_id"]

    output = world.root / "after-swap"
    with swapped("1", replacement="2"):
        result = invoke("infer", "--input", str(world.data), "--output", str(output))
        assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
        assert "replaced or altered" in result.output
        assert not output.exists() or not any(output.iterdir())
        assert integrity_alerts(alerts)
        traced = invoke(
            "lineage", "--predictions", str(intact), "--encounter-id", _first_id(world), "--json"
        )
        assert json.loads(traced.stdout)["model_version"]["model_file"]["status"] == "refused"
        assert "model-file-vs-pin" in {f.rule for f in trail_findings(MODEL_NAME)}
        # The service refuses the holder before any service starts (it timed out after 180 s
        # with exit 7 and a log deleted before anyone could read it).
        served = invoke("serve", "start")
        assert served.exit_code == ExitCode.AUDIT_BROKEN, served.output
        assert "replaced or altered" in served.output
        assert invoke("serve", "status").exit_code == ExitCode.NOT_FOUND


def _training_into(monkeypatch: pytest.MonkeyPatch, version: str | None) -> None:
    """The training pipeline's Model edited to name ``version`` (data-science code, unreviewed)."""
    from zenml import Model

    from readmission.pipelines import training

    named = Model(name=MODEL_NAME, version=version)
    monkeypatch.setattr(
        training, "readmission_training", training.readmission_training.with_options(model=named)
    )


def test_a_training_run_into_the_production_version_is_refused_and_cannot_jam_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fresh-eyes review's attack: the training pipeline's Model named version 1 (or the
    stage `production`), ZenML linked the run's model file to the production version, and
    production could be neither scored nor replaced (exit 8 everywhere)."""
    hold_stage("1", "production")
    versions = len(Client().list_model_versions(MODEL_NAME, size=50))
    pinned = Client().get_model_version(MODEL_NAME, 1).run_metadata["registration"]["model_file"]
    for named in ("1", "production"):
        _training_into(monkeypatch, named)
        refused = invoke("train", "--env", "local", "--data", str(world.data), "--actor", "x")
        assert refused.exit_code == ExitCode.DENIED, refused.output
        assert "must create a new model version" in refused.output.replace("\n", " ")
    assert len(Client().list_model_versions(MODEL_NAME, size=50)) == versions
    assert "version-named" in {f.rule for f in _check_pipeline_findings()}

    # Past that refusal (the launch check skipped, as if the pipeline got round it): the run
    # links its model file to version 1, registration refuses to publish a second model under
    # it, production still loads its signed file, and `mlops check` names the foreign link.
    from mlops_platform.runtime import runner

    monkeypatch.setattr(runner, "refuse_existing_versions", lambda composed: None)
    _training_into(monkeypatch, "1")
    version = Client().get_model_version(MODEL_NAME, 1)
    try:
        past = invoke("train", "--env", "local", "--data", str(world.data), "--actor", "x")
        assert past.exit_code == ExitCode.DENIED, past.output
        assert "already registered and holds production" in past.output.replace("\n", " ")
        assert VALIDATED_TAG in {t.name for t in Client().get_model_version(MODEL_NAME, 1).tags}
        assert "rejected" not in {t.name for t in Client().get_model_version(MODEL_NAME, 1).tags}
        version = Client().get_model_version(MODEL_NAME, 1)
        assert version.run_metadata["registration"]["model_file"] == pinned
        foreign = version.get_model_artifact(Artifact.MODEL)
        assert str(foreign.id) != pinned["artifact_id"]  # what jammed production before
        output = world.root / "after-link"
        scored = invoke("infer", "--input", str(world.data), "--output", str(output), "--json")
        assert scored.exit_code == 0, scored.output
        assert json.loads(scored.stdout)["model_version"] == "1"
        findings = [f for f in trail_findings(MODEL_NAME) if f.rule == "model-link-vs-pin"]
        assert findings and str(foreign.id) in findings[0].message, findings
        checked = invoke("check")
        assert checked.exit_code == ExitCode.CHECK_FAILED
        assert "model-link-vs-pin" in checked.output
    finally:
        from zenml.utils.pagination_utils import depaginate

        links = depaginate(Client().list_model_version_artifact_links, model_version_id=version.id)
        for link in links:
            linked = link.artifact_version
            if linked.artifact.name == Artifact.MODEL and str(linked.id) != pinned["artifact_id"]:
                Client().delete_model_version_artifact_link(version.id, linked.id)
    restored = Client().get_model_version(MODEL_NAME, 1).get_model_artifact(Artifact.MODEL)
    assert str(restored.id) == pinned["artifact_id"]


def test_a_foreign_link_changes_neither_the_type_review_nor_the_rollback(world: World) -> None:
    """Version 2's model file linked to version 1 with ZenML's client (an insider, or a run
    whose Model named version 1): `mlops model types` reviewed the linked file, presenting
    another file as version 1's, and a rollback to version 1 loaded it and then refused
    production's way back (golden sample mismatch, exit 8). Both follow the signed pin now."""
    from zenml.model.utils import link_artifact_version_to_model_version
    from zenml.utils.pagination_utils import depaginate

    first = Client().get_model_version(MODEL_NAME, 1)
    pinned = first.run_metadata["registration"]["model_file"]
    foreign = Client().get_model_version(MODEL_NAME, 2).get_model_artifact(Artifact.MODEL)
    link_artifact_version_to_model_version(foreign, first)
    try:
        assert str(
            Client().get_model_version(MODEL_NAME, 1).get_model_artifact(Artifact.MODEL).id
        ) == str(foreign.id)
        reviewed = invoke("model", "types", "--version", "1", "--json")
        assert reviewed.exit_code == 0, reviewed.output
        payload = json.loads(reviewed.stdout)
        assert (payload["artifact_id"], payload["sha256"]) == (
            pinned["artifact_id"],
            pinned["sha256"],
        )
        assert payload["signed_file"] is True

        for number in ("1", "2"):  # staging history: v1, then v2
            hold_stage(number, STAGING, world.cast.requester)
        result = invoke(
            "--as", world.cast.requester, "rollback", "--to", STAGING, "--reason", "INC-3"
        )
        assert result.exit_code == 0, result.output
        assert stage_of("1") == STAGING
    finally:
        links = depaginate(Client().list_model_version_artifact_links, model_version_id=first.id)
        for link in links:
            if str(link.artifact_version.id) == str(foreign.id):
                Client().delete_model_version_artifact_link(first.id, foreign.id)
    restored = Client().get_model_version(MODEL_NAME, 1).get_model_artifact(Artifact.MODEL)
    assert str(restored.id) == pinned["artifact_id"]


def test_a_rollback_to_a_version_today_s_policy_refuses_needs_despite_policy(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The newcomer review: the staging ROC-AUC limit raised after version 1 was judged; a
    promotion of it was refused (exit 4) but a rollback restored it silently. Its recorded gate
    measurements are compared with today's limits: denied (exit 5, recorded, nothing moves),
    and restored with --despite-policy, whose records name the checks it went past."""
    configs = Path(shutil.copytree(os.environ["MLOPS_CONFIG_DIR"], tmp_path / "configs"))
    for env in (STAGING, "production"):
        path = configs / env / "policy.yaml"
        policy = yaml.safe_load(path.read_text(encoding="utf-8"))
        policy.setdefault("quality", {})["min_roc_auc"] = 0.99
        path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(configs))
    for number in ("1", "2"):  # staging history: v1, then v2
        hold_stage(number, STAGING, world.cast.requester)
    rollbacks = len(audit_records(AuditEventType.ROLLBACK))
    command = ["--as", world.cast.requester, "rollback", "--to", STAGING, "--reason", "INC-4"]

    refused = invoke(*command)
    assert refused.exit_code == ExitCode.DENIED, refused.output
    assert "today's staging policy needs >= 0.99" in " ".join(refused.output.split())
    assert (stage_of("2"), stage_of("1")) == (STAGING, ModelStages.ARCHIVED)
    assert len(audit_records(AuditEventType.ROLLBACK)) == rollbacks
    assert audit_records(AuditEventType.PROMOTION_DENIED)[-1].details["action"] == "rollback"

    restored = invoke(*command, "--despite-policy")
    assert restored.exit_code == 0, restored.output
    assert stage_of("1") == STAGING
    (record,) = audit_records(AuditEventType.ROLLBACK)[-1:]
    assert any("roc_auc" in why for why in record.details["despite_policy"])


def _check_pipeline_findings() -> list[Any]:
    from mlops_platform.governance.check import check_pipeline
    from readmission.pipelines import training

    return check_pipeline(training.readmission_training.copy(), {})


def test_a_swapped_candidate_is_refused_at_promotion(world: World, alerts: list[str]) -> None:
    before = len(audit_records(AuditEventType.PROMOTION))
    with swapped("2", replacement="1"):
        result = promote_to_staging(world, "2")
    assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
    assert "replaced or altered" in result.output
    assert stage_of("2") != STAGING
    assert len(audit_records(AuditEventType.PROMOTION)) == before
    assert integrity_alerts(alerts)


def test_a_swapped_champion_stops_the_promotion_gate(world: World, alerts: list[str]) -> None:
    """The gate scores the current holder too: its file must also be the signed one."""
    hold_stage("1", STAGING)
    with swapped("1", replacement="2"):
        result = promote_to_staging(world, "2")
    assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
    assert "validate_model" in result.output
    assert stage_of("1") == STAGING
    assert stage_of("2") != STAGING
    assert integrity_alerts(alerts)


def test_a_swapped_rollback_target_is_refused_and_the_stage_stays(
    world: World, alerts: list[str]
) -> None:
    for number in ("1", "2"):  # v1 held staging, then v2 took it (as promotions record it)
        hold_stage(number, STAGING, world.cast.requester)
    before = len(audit_records(AuditEventType.ROLLBACK))
    with swapped("1", replacement="2"):
        result = invoke(
            "--as", world.cast.requester, "rollback", "--to", STAGING, "--reason", "INC-1"
        )
    assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
    assert "replaced or altered" in result.output
    assert stage_of("2") == STAGING
    assert stage_of("1") != STAGING
    assert len(audit_records(AuditEventType.ROLLBACK)) == before
    assert integrity_alerts(alerts)


def test_a_crash_mid_rollback_is_reconciled(world: World) -> None:
    """A rollback is a transaction like a promotion: a crash after `rollback_started` leaves a
    finding, and `mlops audit reconcile` rolls it back (ZenML never moved) or forward (it did)."""
    for number in ("1", "2"):  # staging history: v1, then v2 (the previous test may have run)
        hold_stage(number, STAGING, world.cast.requester)
    uri = tracking.stack_tracking_uri() or ""
    for phase, outcome, holder in (
        ("started", "rolled back", "2"),
        ("stage_moved", "rolled forward", "1"),
    ):
        transaction.FAILPOINTS.add(phase)
        try:
            with pytest.raises(transaction.Crash):
                invoke(
                    "--as", world.cast.requester, "rollback", "--to", STAGING, "--reason", "INC-2"
                )
        finally:
            transaction.FAILPOINTS.clear()
        (finding,) = [f for f in trail_findings(MODEL_NAME) if f.rule == "unfinished-promotion"]
        assert finding.message.startswith("rollback of version 1 to staging")
        # Nothing else moves until it is resolved: the next rollback resolves it first, here
        # reconcile does, as `mlops check` tells the reader to.
        result = invoke("audit", "reconcile", "--env", STAGING, "--json")
        assert result.exit_code == 0, result.output
        (done,) = json.loads(result.stdout)["reconciled"]
        assert (done["kind"], done["model_version"], done["outcome"]) == ("rollback", "1", outcome)
        assert stage_of(holder) == STAGING and stage_of("2" if holder == "1" else "1") != STAGING
        open_tenures = [
            t.model_version for t in read_history(MODEL_NAME, [STAGING])[STAGING] if t.until is None
        ]
        assert open_tenures == [holder]
        aliases = MlflowClient(uri).get_registered_model(MODEL_NAME).aliases or {}
        registered = (
            Client().get_model_version(MODEL_NAME, int(holder)).run_metadata["registration"]
        )
        assert str(aliases[STAGING]) == str(registered["mlflow"]["registered_version"])
        assert not [f for f in trail_findings(MODEL_NAME) if f.rule == "unfinished-promotion"]
    ends = audit_records(AuditEventType.ROLLBACK_ABORTED) + audit_records(AuditEventType.ROLLBACK)
    assert {r.details["started_seq"] for r in ends} == {
        r.seq for r in audit_records(AuditEventType.ROLLBACK_STARTED)
    }


def promote_to_staging(world: World, version: str) -> Result:
    return invoke(
        "--as",
        world.cast.requester,
        "promote",
        "--version",
        version,
        "--to",
        STAGING,
        "--reason",
        "a swapped file must not move",
        "--data",
        str(world.data),
    )


def _first_id(world: World) -> str:
    with world.data.open(encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
        row = handle.readline().strip().split(",")
    return row[header.index("encounter_id")]


def test_a_model_file_swapped_after_the_gate_is_not_registered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: during a training run, after the gate scored the new model, a writer of the
    artifact store replaces its file with another valid, allow-listed model (version 1's). The
    registration compares the stored bytes with the file the gate scored: exit 8, no pin, no
    `validated` tag."""
    from mlops_platform.steps import register_model as registration

    read_then = registration.read_artifact_file

    def swap_then_read(artifact: Any) -> bytes:
        shutil.copyfile(model_file("1"), Path(artifact.uri) / MODEL_FILENAME)
        return read_then(artifact)

    monkeypatch.setattr(registration, "read_artifact_file", swap_then_read)
    result = invoke(
        "train", "--env", "local", "--data", str(world.root / "second.csv"),
        "--actor", world.cast.author, "--json",
    )  # fmt: skip
    assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
    assert "replaced after the gate judged it" in result.output
    newest = Client().list_model_versions(MODEL_NAME, sort_by="desc:number", size=1)[0]
    assert newest.number == 3
    assert "registration" not in newest.run_metadata
    assert VALIDATED_TAG not in [tag.name for tag in newest.tags]


def overtaken_by_version_1(
    world: World, monkeypatch: pytest.MonkeyPatch, then: Any = None
) -> Result:
    """`mlops promote` of version 2 to staging while nothing holds it, made deterministic: after
    2's gate compared it with no holder and before its promotion takes the lock, another
    promotion (of version 1, with a gate of its own run recorded) wins. ``then()`` runs next,
    before version 2's promotion goes on."""
    client = Client()
    clear_stage(STAGING)
    real_promote = transaction.promote

    def overtaken(version: Any, order: PromotionOrder, request: Any) -> dict[str, Any]:
        if version.name == "2":
            other = client.get_model_version(MODEL_NAME, 1)
            run_id = f"other-{uuid.uuid4().hex}"
            record_version_event(
                STAGING, AuditEventType.GATE_PASSED, world.cast.requester, other,
                details={"pipeline_run_id": run_id, "champion_version": None},
            )  # fmt: skip
            real_promote(
                other,
                PromotionOrder(reason="the other promotion"),
                transaction.PromotionRequest(
                    target_stage=STAGING,
                    actor=world.cast.requester,
                    gate_decision={
                        "environment": STAGING,
                        "passed": True,
                        "champion_version": None,
                    },
                    common={"reason": "the other promotion", "pipeline_run_id": run_id},
                    mlflow_uri=request.mlflow_uri,
                ),
            )
            if then is not None:
                then()
        return real_promote(version, order, request)

    monkeypatch.setattr(transaction, "promote", overtaken)
    return invoke(
        "--as", world.cast.requester, "promote", "--version", "2", "--to", STAGING,
        "--reason", "overtaken", "--data", str(world.root / "second.csv"), "--json",
    )  # fmt: skip


def test_a_promotion_overtaken_after_its_gate_is_judged_again_against_the_real_holder(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 2 is judged again by the platform, on its gate's own rows, file and baseline,
    against version 1, which took the stage meanwhile; the verdict is recorded before anything
    moves, and decides. What the re-judgement reads cannot be swapped: other model bytes, other
    rows, another baseline or a run without a platform gate step stop it (exit 8)."""
    result = overtaken_by_version_1(world, monkeypatch)

    assert result.exit_code == 0, result.output
    assert (stage_of("2"), stage_of("1")) == (STAGING, ModelStages.ARCHIVED)
    gates = [g for g in audit_records(AuditEventType.GATE_PASSED) if g.model_version == "2"]
    own, again = gates[-2:]
    assert own.details["champion_version"] is None and not own.details.get("rejudged")
    assert again.details["rejudged"] is True
    assert (again.details["champion_version"], again.details["earlier_champion_version"]) == (
        "1",
        None,
    )
    # The same rows and the same file as the run's own gate.
    assert again.details["pipeline_run_id"] == own.details["pipeline_run_id"]
    assert again.details["evaluation_sha256"] == own.details["evaluation_sha256"]
    assert again.details["model_sha256"] == own.details["model_sha256"]
    (move,) = [p for p in audit_records(AuditEventType.PROMOTION) if p.model_version == "2"][-1:]
    assert move.details["previous_holder"] == "1" and move.details["gate_rejudged"] is True
    assert again.seq < move.details["started_seq"]
    metadata = Client().get_model_version(MODEL_NAME, 2).run_metadata
    decision = metadata[f"gate_decision_{STAGING}"]
    assert decision["champion_version"] == "1" == metadata["champion"]["model_version"]
    judged = {check["name"] for check in decision["checks"]}
    assert "roc_auc_drop_vs_champion" in judged and "champion" not in judged
    assert json.loads(result.stdout)["previous_holder"] == "1"
    assert not [f for f in trail_findings(MODEL_NAME) if f.rule == "gate-metadata-vs-trail"]

    version, run_id = Client().get_model_version(MODEL_NAME, 2), again.details["pipeline_run_id"]
    # Version 1 holds the stage again, as when version 2 was judged again.
    hold_stage("1", STAGING)
    for tampered, refusal in [
        ({GATE_MODEL_SHA256: "0" * 64}, "is not the file its gate scored"),
        ({"evaluation": {**decision["evaluation"], "sha256": "0" * 64}}, "are not the rows"),
        ({BASELINE_ARTIFACT_ID: str(uuid.uuid4())}, "not the one its gate scored"),
    ]:
        with pytest.raises(GateRecordMismatch, match=refusal):
            judge_run_again(version, STAGING, STAGING, {**decision, **tampered}, run_id)
    with pytest.raises(GateRecordMismatch, match="has 0 platform gate steps"):
        judge_run_again(version, STAGING, STAGING, decision, str(uuid.uuid4()))
    # Untampered, the same judgement is made again.
    assert (
        judge_run_again(version, STAGING, STAGING, decision, run_id)["checks"]
        == (decision["checks"])
    )


def test_a_failed_rejudgement_stops_the_promotion_with_the_gate_exit_code(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staging policy is tightened after version 2's gate passed and before its promotion
    takes the lock: the re-judgement under the lock applies today's limits, fails, and the
    promotion stops with exit 4 naming the failed check; the refusal is recorded, version 1
    keeps the stage, and `mlops check` finds no disagreement."""
    configs = Path(os.environ["MLOPS_CONFIG_DIR"])
    files = [configs / env / "policy.yaml" for env in (STAGING, "production")]
    saved = [f.read_text(encoding="utf-8") for f in files]

    def tighten() -> None:
        for policy in files:
            settings = yaml.safe_load(policy.read_text(encoding="utf-8"))
            settings["quality"] = {**settings.get("quality", {}), "min_roc_auc": 0.99}
            policy.write_text(yaml.safe_dump(settings), encoding="utf-8")

    try:
        result = overtaken_by_version_1(world, monkeypatch, then=tighten)
    finally:
        for policy, text in zip(files, saved, strict=True):
            policy.write_text(text, encoding="utf-8")

    assert result.exit_code == ExitCode.GATE_FAILED, result.output
    assert "roc_auc" in json.loads(result.stdout)["failed_checks"]
    assert "when judged again against version 1" in result.stderr
    assert (stage_of("1"), stage_of("2")) == (STAGING, ModelStages.ARCHIVED)
    failed = [g for g in audit_records(AuditEventType.GATE_FAILED) if g.model_version == "2"]
    assert failed[-1].details["rejudged"] is True
    denial = audit_records(AuditEventType.PROMOTION_DENIED)[-1]
    assert denial.model_version == "2" and denial.seq > failed[-1].seq
    assert not [f for f in trail_findings(MODEL_NAME) if f.rule == "gate-metadata-vs-trail"]


def test_a_failing_promotion_gate_never_tags_a_registered_version_rejected(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The second review's attack: the promotion pipeline (data-science code) edited so that its
    gate rejects on failure, once as it stands (the candidate) and once with the gate's Model
    pointed at the staging holder, then judged by a policy no model meets. Tagged `rejected`, a
    registered version could never be promoted again (and the holder would be marked rejected
    while serving). The gate denies; it tags neither version, and nothing moves."""
    from zenml import Model

    from mlops_platform.names import REJECTED_TAG
    from mlops_platform.steps.validate_model import validate_model
    from readmission.pipelines import promotion

    configs = Path(shutil.copytree(os.environ["MLOPS_CONFIG_DIR"], tmp_path / "configs"))
    for env in (STAGING, "production"):
        path = configs / env / "policy.yaml"
        policy = yaml.safe_load(path.read_text(encoding="utf-8"))
        policy.setdefault("quality", {})["min_roc_auc"] = 1.0  # within bounds, met by no model
        path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(configs))
    hold_stage("1", STAGING, world.cast.requester)
    before = len(audit_records(AuditEventType.PROMOTION))

    for pointed_at in (None, STAGING):
        gate = validate_model.with_options(model=Model(name=MODEL_NAME, version=pointed_at))
        if pointed_at is None:
            gate = validate_model

        def rejecting_gate(step: Any = gate, **inputs: Any) -> Any:
            return step(**{**inputs, "reject_on_failure": True})

        monkeypatch.setattr(promotion, "validate_model", rejecting_gate)
        result = promote_to_staging(world, "2")
        assert result.exit_code == ExitCode.GATE_FAILED, result.output
        for number in ("1", "2"):
            tags = {t.name for t in Client().get_model_version(MODEL_NAME, int(number)).tags}
            assert REJECTED_TAG not in tags, (pointed_at, number, tags)
            assert VALIDATED_TAG in tags, (pointed_at, number, tags)
        assert stage_of("1") == STAGING and stage_of("2") != STAGING
    assert len(audit_records(AuditEventType.PROMOTION)) == before
