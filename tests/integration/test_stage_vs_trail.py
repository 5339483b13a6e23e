"""A stage moved with ZenML alone, and a version number given again, change no decision.

ZenML's stage and its version numbers are writable by any ZenML user: a stage move with
`zenml model version update … --stage`, or a version deleted so that the next training gets its
number. The audit trail records which version (ZenML id and model file) held each stage and
was approved. These tests make those changes for real, through ZenML's own client, and check
that promotions and scoring refuse (exit 9 or 5), that nothing moves, and that
`mlops audit reconcile` gives the stage back to the recorded holder with a record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from zenml.client import Client
from zenml.enums import ModelStages

from mlops_cli.errors import ExitCode
from mlops_platform.config import config_dir
from mlops_platform.governance.approvals.policy import PRODUCTION, STAGING
from mlops_platform.governance.check import trail_findings
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.trust.audit import AuditEventType, AuditRecord, AuditTrail
from readmission.names import MODEL_NAME
from tests.integration.helpers import copy_configs, invoke, write_synthetic_csv
from tests.integration.test_promotion import Cast, pick_cast, promotion_configs

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stage_vs_trail")]


@dataclass(frozen=True)
class World:
    root: Path
    cast: Cast
    current: Path  # the data promotions re-judge on


def _train(data: Path, actor: str) -> str:
    result = invoke("--as", actor, "train", "--env", "local", "--data", str(data), "--json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["model_version"])


@pytest.fixture(scope="module")
def world(module_state: Path, zenml_server: str) -> Iterator[World]:
    root = module_state.parent
    os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{module_state / 'audit.db'}"
    os.environ["MLOPS_CONFIG_DIR"] = str(promotion_configs(root / "configs"))
    cast = pick_cast()
    assert _train(write_synthetic_csv(root / "a.csv", seed=41), cast.author) == "1"
    assert _train(write_synthetic_csv(root / "b.csv", seed=42), cast.author) == "2"
    yield World(root, cast, write_synthetic_csv(root / "current.csv", seed=43))


def _promote(world: World, version: str, stage: str) -> object:
    return invoke(
        "--as", world.cast.requester, "promote", "--version", version, "--to", stage,
        "--reason", "test", "--data", str(world.current),
    )  # fmt: skip


def _approve(world: World, version: str) -> object:
    return invoke(
        "--as", world.cast.approver, "approve", "--version", version, "--to", PRODUCTION,
        "--reason", "reviewed",
    )  # fmt: skip


def _records() -> list[AuditRecord]:
    trail = AuditTrail(load_platform_settings(PRODUCTION).audit.url)
    try:
        return trail.records(model_name=MODEL_NAME)
    finally:
        trail.close()


def _stages() -> dict[str, str | None]:
    return {v.name: v.stage for v in Client().list_model_versions(MODEL_NAME, size=50)}


def test_a_stage_moved_with_zenml_stops_promotion_and_scoring_until_reconciled(
    world: World,
) -> None:
    assert _promote(world, "1", STAGING).exit_code == 0
    # Out of band: version 1 put straight into production with ZenML's client.
    Client().update_model_version(MODEL_NAME, "1", stage=PRODUCTION, force=True)
    before, trail_before = _stages(), _records()

    scored = invoke("infer", "--input", str(world.current), "--output", str(world.root / "out"))
    assert scored.exit_code == ExitCode.CHECK_FAILED, scored.output
    assert "outside `mlops promote`" in scored.output
    assert not (world.root / "out").exists()  # nothing scored, no run started

    # Staging's recorded holder (1) left it outside the platform: a promotion there refuses.
    refused = _promote(world, "2", STAGING)
    assert refused.exit_code == ExitCode.CHECK_FAILED, refused.output
    assert "mlops audit reconcile" in refused.output
    assert _stages() == before
    assert [r.record_hash for r in _records()] == [r.record_hash for r in trail_before]

    reconciled = invoke(
        "--as", world.cast.requester, "audit", "reconcile", "--env", "staging", "--json"
    )
    assert reconciled.exit_code == 0, reconciled.output
    assert _stages()["1"] == STAGING  # given back to the recorded holder
    restored = _records()[-1]
    assert restored.event_type == AuditEventType.STAGE_RESTORED
    assert (restored.details["found"], restored.details["restored"]) == (None, "1")
    assert restored.actor == world.cast.requester  # who restored it, verified
    assert not [f for f in trail_findings(MODEL_NAME) if f.rule == "stage-vs-trail"]

    # The way through the platform works again: 1 to production with an approval.
    assert _approve(world, "1").exit_code == 0
    promoted = _promote(world, "1", PRODUCTION)
    assert promoted.exit_code == 0, promoted.output
    assert _stages()["1"] == PRODUCTION


def test_production_emptied_or_the_model_renamed_in_zenml_is_named_and_moves_nothing(
    world: World,
) -> None:
    """The fresh-eyes review emptied production with ZenML alone (the holder archived, the model
    renamed or deleted): scoring said "promote one" (exit 6), `mlops deploy` said production
    already serves a version moved there by hand, and `mlops check` passed."""
    from mlops_platform.governance.model_stages import StageChangedOutsideError
    from mlops_platform.serving.models import stage_holder

    assert _stages()["1"] == PRODUCTION  # the recorded holder (the test before)
    trail_before = [r.record_hash for r in _records()]
    Client().update_model_version(MODEL_NAME, "1", stage=ModelStages.ARCHIVED, force=True)
    scored = invoke("infer", "--input", str(world.current), "--output", str(world.root / "o2"))
    assert scored.exit_code == ExitCode.CHECK_FAILED, scored.output
    assert "records version 1 as its holder" in scored.output
    assert not (world.root / "o2").exists()
    with pytest.raises(StageChangedOutsideError, match="records version 1"):
        stage_holder(MODEL_NAME, PRODUCTION)  # what `mlops serve start` resolves first

    # Another version put into production by hand: deploy does not call it "already served".
    Client().update_model_version(MODEL_NAME, "2", stage=PRODUCTION, force=True)
    manifest = world.root / "production.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "stage": PRODUCTION,
                "model": {"name": MODEL_NAME, "version": "2"},
                "config": {"environment": PRODUCTION},
                "change": {"reason": "release 2", "ticket": None},
            }
        )
    )
    deployed = invoke("deploy", "--manifest", str(manifest), "--json")
    assert deployed.exit_code == ExitCode.CHECK_FAILED, deployed.output
    Client().update_model_version(MODEL_NAME, "1", stage=PRODUCTION, force=True)  # put back
    Client().update_model_version(MODEL_NAME, "2", stage=ModelStages.NONE, force=True)

    Client().update_model(MODEL_NAME, name="renamed_by_hand")
    try:
        checked = invoke("check")
        assert checked.exit_code == ExitCode.CHECK_FAILED, checked.output
        assert "[model-missing]" in checked.output and "'renamed_by_hand'" in checked.output
        assert invoke("infer", "--input", str(world.current)).exit_code == ExitCode.CHECK_FAILED
    finally:
        Client().update_model("renamed_by_hand", name=MODEL_NAME)
    assert "[model-missing]" not in invoke("check").output
    assert [r.record_hash for r in _records()] == trail_before  # nothing recorded, nothing moved
    assert _stages()["1"] == PRODUCTION


def test_approvals_and_staging_of_a_deleted_version_do_not_pass_to_its_number(
    world: World,
) -> None:
    assert _promote(world, "2", STAGING).exit_code == 0
    assert _approve(world, "2").exit_code == 0
    scored_by_old = world.root / "scored-by-deleted-2"
    scored = invoke(
        "infer", "--stage", STAGING, "--input", str(world.current), "--output", str(scored_by_old)
    )
    assert scored.exit_code == 0, scored.output
    encounter = _first_encounter(world.current)
    traced = invoke("lineage", "--predictions", str(scored_by_old), "--encounter-id", encounter)
    assert traced.exit_code == 0, traced.output
    listed = json.loads(invoke("versions", "--json").stdout)["versions"]
    (reviewed,) = [row for row in listed if row["model_version"] == "2"]
    pin = Client().get_model_version(MODEL_NAME, "2").run_metadata["registration"]["model_file"]
    assert reviewed["model_sha256"] == pin["sha256"]  # where the release's author reads it
    release = world.root / "release.yaml"  # a release of the reviewed model, by number and file
    release.write_text(yaml.safe_dump({
        "stage": PRODUCTION,
        "model": {"name": MODEL_NAME, "version": "2",
                  "model_sha256": reviewed["model_sha256"]},
        "config": {"environment": PRODUCTION},
        "change": {"reason": "release of the reviewed version 2"},
    }), encoding="utf-8")  # fmt: skip
    # Out of band: version 2, staged and approved, deleted; the next training gets number 2.
    Client().delete_model_version(Client().get_model_version(MODEL_NAME, "2").id)
    assert _train(world.current, world.cast.requester) == "2"
    # A prediction the deleted version made is not traced to the new version 2 (the second
    # review: lineage showed the new version's commit, data and a training after the scoring).
    traced = invoke("lineage", "--predictions", str(scored_by_old), "--encounter-id", encounter)
    assert traced.exit_code == ExitCode.AUDIT_BROKEN, traced.output
    assert "was deleted and its number given to another" in " ".join(traced.output.split())
    # Nor does the release reviewed for the old version 2 deploy the new one.
    deployed = invoke("--as", world.cast.requester, "deploy", "--manifest", str(release))
    assert deployed.exit_code == ExitCode.DENIED, deployed.output
    assert "now names another model" in " ".join(deployed.output.split())
    # A ZenML writer makes the new version 2's registration claim the reviewed file: the
    # manifest is compared with the file its verified training record signed, not that claim,
    # so it is refused (exit 5); production and the trail's moves are as they were.
    from zenml import log_metadata

    registration = dict(Client().get_model_version(MODEL_NAME, "2").run_metadata["registration"])
    claimed = {**registration["model_file"], "sha256": reviewed["model_sha256"]}
    moves = [r.seq for r in _records() if r.event_type == AuditEventType.PROMOTION]
    stages = _stages()
    log_metadata({"registration": {**registration, "model_file": claimed}},
                 model_name=MODEL_NAME, model_version="2")  # fmt: skip
    try:
        deployed = invoke("--as", world.cast.requester, "deploy", "--manifest", str(release))
        assert deployed.exit_code == ExitCode.DENIED, deployed.output
        assert "now names another model" in " ".join(deployed.output.split())
        assert _stages() == stages
        assert [r.seq for r in _records() if r.event_type == AuditEventType.PROMOTION] == moves
    finally:
        log_metadata({"registration": registration}, model_name=MODEL_NAME, model_version="2")
    # Staging's recorded holder is gone: reconcile records it and leaves staging empty.
    assert (
        invoke("--as", world.cast.requester, "audit", "reconcile", "--env", "staging").exit_code
        == 0
    )
    assert _records()[-1].details["restored"] is None
    # That record is about the deleted version 2: it is not mirrored onto the new version 2.
    mirrored = Client().get_model_version(MODEL_NAME, "2").run_metadata
    assert not [key for key in mirrored if key.endswith("_stage_restored")], sorted(mirrored)
    before = _stages()

    refused = _promote(world, "2", PRODUCTION)
    assert refused.exit_code == ExitCode.DENIED, refused.output
    assert "never been in staging" in refused.output
    assert "found 0 valid" in refused.output
    assert _stages() == before
    assert _records()[-1].event_type == AuditEventType.PROMOTION_DENIED
    # Nor does the evidence show the deleted version's approval as the new version's (the
    # fresh-eyes review: `mlops versions` said "production: <approver>" for it).
    shown = invoke("versions", "--json")
    assert shown.exit_code == 0, shown.output
    (row,) = [r for r in json.loads(shown.stdout)["versions"] if r["model_version"] == "2"]
    assert row["approved_by"] == {}, row


def _first_encounter(data: Path) -> str:
    with data.open(encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
        return handle.readline().strip().split(",")[header.index("encounter_id")]


def test_reconcile_never_empties_a_stage_on_an_edited_registration_record(world: World) -> None:
    """The production holder's registration record edited (one digit of its pinned SHA-256) so
    that it no longer looks like the recorded model: reconcile checks the holder's signed pin
    and file, refuses (exit 8) and moves nothing; production keeps its holder."""
    from zenml import log_metadata

    holder = Client().get_model_version(MODEL_NAME, ModelStages.PRODUCTION)
    registration = dict(holder.run_metadata["registration"])
    pin = dict(registration["model_file"])
    edited = {**pin, "sha256": ("0" if pin["sha256"][0] != "0" else "1") + pin["sha256"][1:]}
    log_metadata({"registration": {**registration, "model_file": edited}},
                 model_name=MODEL_NAME, model_version=holder.name)  # fmt: skip
    before, trail_before = _stages(), [r.record_hash for r in _records()]
    try:
        refused = invoke(
            "--as", world.cast.requester, "audit", "reconcile", "--env", "production"
        )  # fmt: skip
        assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
        assert _stages() == before and _stages()[holder.name] == PRODUCTION
        assert [r.record_hash for r in _records()] == trail_before
    finally:
        log_metadata({"registration": registration},
                     model_name=MODEL_NAME, model_version=holder.name)  # fmt: skip
    assert not [f for f in trail_findings(MODEL_NAME) if f.rule == "stage-vs-trail"]


def test_rewritten_registration_metadata_cannot_choose_the_data_a_promotion_judges_on(
    world: World,
) -> None:
    """Any ZenML user can log new `registration` metadata on a version. Rewritten to pin the
    file the requester wants to be judged on (and its MLflow version aimed at another), the
    promotion still reads the pin from the verified training record: it refuses (exit 8) and
    nothing moves, and `mlops check` names both edits."""
    import hashlib

    from zenml import log_metadata

    version = Client().get_model_version(MODEL_NAME, "2")
    registration = dict(version.run_metadata["registration"])
    chosen = write_synthetic_csv(world.root / "chosen.csv", seed=44)  # the requester's pick
    doctored = hashlib.sha256(chosen.read_bytes()).hexdigest()
    assert registration["data"]["file_sha256"] != doctored
    rewritten = {
        **registration,
        "data": {**registration["data"], "file_sha256": doctored},
        "mlflow": {**registration["mlflow"], "registered_version": "1"},
    }
    log_metadata({"registration": rewritten}, model_name=MODEL_NAME, model_version="2")
    before, trail_before = _stages(), [r.record_hash for r in _records()]
    try:
        refused = invoke(
            "--as", world.cast.requester, "promote", "--version", "2", "--to", STAGING,
            "--reason", "test", "--data", str(chosen),
        )  # fmt: skip
        assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
        assert "edited outside the platform" in refused.output and doctored in refused.output
        assert _stages() == before

        checked = invoke("check", "--json")
        assert checked.exit_code == ExitCode.CHECK_FAILED, checked.output
        rules = {f.rule for f in trail_findings(MODEL_NAME)}
        assert {"data-vs-trail", "mlflow-version-vs-trail"} <= rules
    finally:
        log_metadata({"registration": registration}, model_name=MODEL_NAME, model_version="2")
    # only the refusal's own records were added
    added = [r for r in _records() if r.record_hash not in set(trail_before)]
    assert not {r.event_type for r in added} & {
        AuditEventType.PROMOTION,
        AuditEventType.GATE_PASSED,
    }
    rules = {f.rule for f in trail_findings(MODEL_NAME)}
    assert not {"data-vs-trail", "mlflow-version-vs-trail"} & rules


def test_a_cohort_step_that_doctors_feature_values_at_promotion_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data-science code changes what the promotion gate sees without changing rows or
    outcomes: readmitted patients get ten more inpatient stays, so the version looks better.
    The model is judged on the data file's own values of each row (`holdout_input_problems`),
    and on the pinned file the holdout rows must be the very rows the training gate judged
    (their SHA-256 is in the verified training record): refused with exit 5, nothing moved."""
    from readmission.core.cohort import LABEL
    from readmission.steps import build_cohort as cohort_step

    honest = cohort_step.build

    def doctored(raw: object) -> object:
        cohort = honest(raw)
        readmitted = cohort[LABEL] == 1
        cohort.loc[readmitted, "number_inpatient"] = cohort.loc[readmitted, "number_inpatient"] + 10
        return cohort

    monkeypatch.setattr(cohort_step, "build", doctored)
    # A real change of cohort code is a new commit, so no earlier run's cohort is reused (the
    # launch key holds the commit); here the commit stays, so reuse is switched off instead.
    platform = yaml.safe_load((config_dir() / "base" / "platform.yaml").read_text("utf-8"))
    platform["caching"] = {"reusable_steps": []}
    no_reuse = copy_configs(world.root / "no-reuse", {"base/platform.yaml": platform})
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(no_reuse))
    before, trail_before = _stages(), [r.record_hash for r in _records()]

    refused = _promote(world, "2", STAGING)

    assert refused.exit_code == ExitCode.DENIED, refused.output
    assert "column 'number_inpatient' differs from the data file" in refused.output.replace(
        "\n", " "
    )
    assert _stages() == before
    added = [r for r in _records() if r.record_hash not in set(trail_before)]
    assert not {r.event_type for r in added} & {
        AuditEventType.PROMOTION,
        AuditEventType.GATE_PASSED,
    }


def test_a_production_move_no_valid_decision_could_make_is_a_check_finding(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The attack review's: code running in the promoting process (the pipelines it launches
    import data science's package) made the approval decision say yes without any approval, and
    the move to production was recorded with `approvals: []`. No valid policy allows that
    (production always needs an approval by someone other than the requester and the author):
    `mlops check` replays every recorded production move against those rules and names it."""
    import dataclasses

    from mlops_platform.governance import model_stages
    from tests.integration.helpers import hold_stage

    # Champion margins at their bounds, so that only the decision is under test, not the gate.
    base = yaml.safe_load(Path(os.environ["MLOPS_CONFIG_DIR"], "local", "policy.yaml").read_text())
    policy = {**base, "champion": {"max_roc_auc_drop": 0.05, "max_brier_increase": 0.01,
                                   "max_ece_increase": 0.02}}  # fmt: skip
    overrides = {f"{env}/policy.yaml": policy for env in ("local", STAGING, PRODUCTION)}
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(copy_configs(tmp_path / "configs", overrides)))
    assert not [f for f in trail_findings(MODEL_NAME) if f.rule == "promotion-vs-rules"]
    hold_stage("2", STAGING, world.cast.requester)
    real = model_stages.check_promotion

    def says_yes(*args: object, **kwargs: object) -> object:
        decision = real(*args, **kwargs)  # type: ignore[arg-type]
        return dataclasses.replace(decision, allowed=True, reasons=(), approvals=())

    monkeypatch.setattr(model_stages, "check_promotion", says_yes)
    moved = _promote(world, "2", PRODUCTION)
    assert moved.exit_code == 0, moved.output
    assert _stages()["2"] == PRODUCTION
    (move,) = [r for r in _records() if r.event_type == AuditEventType.PROMOTION][-1:]
    assert move.details["approvals"] == [] and move.model_version == "2"

    monkeypatch.setattr(model_stages, "check_promotion", real)
    checked = invoke("check")
    assert checked.exit_code == ExitCode.CHECK_FAILED, checked.output
    (finding,) = [f for f in trail_findings(MODEL_NAME) if f.rule == "promotion-vs-rules"]
    assert f"record {move.seq}" in finding.message
    assert "consumed no approval" in finding.message

    # The holder deleted outside the platform, no version given its number: reconcile records
    # that production is left empty and says so (it crashed with exit 1 mirroring the record
    # onto the deleted version, after writing it).
    Client().delete_model_version(Client().get_model_version(MODEL_NAME, "2").id)
    reconciled = invoke(
        "--as", world.cast.requester, "audit", "reconcile", "--env", PRODUCTION, "--json"
    )  # fmt: skip
    assert reconciled.exit_code == 0, reconciled.output
    restored = _records()[-1]
    assert restored.event_type == AuditEventType.STAGE_RESTORED
    assert (restored.model_version, restored.details["restored"]) == ("2", None)
    assert (
        restored.details["version_identity"]["model_version_id"]
        == move.details["version_identity"]["model_version_id"]
    )


def test_a_promotion_past_a_degraded_verdict_without_an_override_is_a_check_finding(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code in the promoting process that drops the standing degraded outcome verdict from the
    decision promotes with an ordinary approval: `mlops check` replays the verdicts that stood at
    the move and names the promotion that did not go past it with a countersigned override."""
    from mlops_platform.governance import model_stages
    from mlops_platform.trust.events import record_event
    from tests.integration.helpers import clear_stage, hold_stage

    clear_stage(PRODUCTION)  # the test before left production empty by a reconcile, or not
    hold_stage("1", STAGING, world.cast.requester)
    verdict = record_event(
        PRODUCTION, AuditEventType.OUTCOMES_CHECKED, world.cast.approver, model_name=MODEL_NAME,
        model_version="1",
        details={"verdict": "degraded", "as_of": "2026-03-01", "labels_sha256": "d" * 64},
    )  # fmt: skip
    assert _approve(world, "1").exit_code == 0
    refused = _promote(world, "1", PRODUCTION)
    assert refused.exit_code == ExitCode.DENIED, refused.output
    assert f"audit record {verdict.seq}" in refused.output

    monkeypatch.setattr(model_stages, "_outcome_records", lambda model_name: [])
    moved = _promote(world, "1", PRODUCTION)
    assert moved.exit_code == 0, moved.output
    assert _stages()["1"] == PRODUCTION
    monkeypatch.undo()

    checked = invoke("check", "--json")
    assert checked.exit_code == ExitCode.CHECK_FAILED, checked.output
    found = [f for f in json.loads(checked.stdout)["findings"] if f["rule"] == "promotion-vs-rules"]
    promotion = [r for r in _records() if r.event_type == AuditEventType.PROMOTION][-1]
    (finding,) = [f for f in found if f"record {promotion.seq}" in f["message"]]
    assert f"degraded (outcome record {verdict.seq})" in finding["message"]


def test_a_killed_real_time_service_is_named_until_its_end_is_recorded(world: World) -> None:
    """A service killed (SIGKILL, a crash) leaves `serving_started` without `serving_stopped`
    and no deployment: its last answers are in no recorded log part. `mlops check` names it;
    `mlops serve stop` with nothing running records its end, under who ran it."""
    from mlops_platform.serving.deploy import deployment_name
    from mlops_platform.trust.events import record_event

    started = record_event(
        "local", AuditEventType.SERVING_STARTED, world.cast.requester, model_name=MODEL_NAME,
        model_version="1", stage=PRODUCTION,
        details={"deployment": deployment_name("local"), "inference_run_id": "serve-killed",
                 "log_dir": str(world.root / "predictions")},
    )  # fmt: skip

    def named() -> list[str]:
        return [f.message for f in trail_findings(MODEL_NAME) if f.rule == "serving-not-stopped"]

    (message,) = named()
    assert f"record {started.seq}" in message and "mlops serve stop --env local" in message
    stopped = invoke("serve", "stop", "--json")
    assert stopped.exit_code == 0, stopped.output
    (ended,) = json.loads(stopped.stdout)["ended"]
    assert ended["started_seq"] == started.seq
    end = next(r for r in _local_records() if r.seq == ended["seq"])
    assert end.event_type == AuditEventType.SERVING_STOPPED and end.details["log_parts"] == {}
    assert named() == []
    assert invoke("serve", "stop").exit_code == ExitCode.NOT_FOUND  # nothing left to close


def _local_records() -> list[AuditRecord]:
    trail = AuditTrail(load_platform_settings("local").audit.url)
    try:
        return trail.records()
    finally:
        trail.close()
