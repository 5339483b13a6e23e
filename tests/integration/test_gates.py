"""Each model gate blocks a real ZenML training run of a deliberately flawed model."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from zenml import Model
from zenml.client import Client

from mlops_cli.commands import training_config
from mlops_cli.errors import ExitCode
from mlops_platform.config import config_dir
from mlops_platform.evaluation.holdout import HoldoutLeakError
from mlops_platform.governance.check import check_gates_upstream
from mlops_platform.governance.gate_origin import GateOriginError
from mlops_platform.governance.policy.evaluate import GateFailedError
from mlops_platform.governance.promotion import PromotionOrder
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.names import REJECTED_TAG, VALIDATED_TAG, PlatformArtifact
from mlops_platform.reporting.model_report import SECTION_IDS
from mlops_platform.runtime import tracking
from mlops_platform.runtime.runner import GovernedRunFailed, run_governed
from mlops_platform.steps.validate_model import MODEL_REPORT_FILE
from mlops_platform.trust.audit import AuditTrail
from mlops_platform.trust.identity import Actor
from readmission.core.params import EvaluationParams
from readmission.names import MODEL_NAME
from tests.integration.broken_pipelines import ungated_promotion
from tests.integration.gate_probes import (
    forged_predictions_training,
    gate_probe_training,
    leaky_training,
)
from tests.integration.helpers import (
    copy_configs,
    hold_stage,
    invoke,
    invoke_json,
    write_synthetic_csv,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gates")]

TESTER = Actor("gate-tester", "asserted")


@pytest.fixture(scope="module")
def champion(
    module_state: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, object]]:
    """A validated model trained on the real pipeline, holding the production stage."""
    base = tmp_path_factory.mktemp("gates")
    platform = yaml.safe_load((config_dir() / "base" / "platform.yaml").read_text())
    platform["serialization"]["allowed_types"].append("tests.integration.gate_probes.UnfairModel")
    configs = copy_configs(base / "configs", {"base/platform.yaml": platform})
    data = write_synthetic_csv(base / "encounters.csv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_CONFIG_DIR", str(configs))
        summary = invoke_json("train", "--env", "local", "--data", str(data))
        hold_stage(str(summary["model_version"]), "production")
        yield {"summary": summary, "data": data}


def run_probe(kind: str, data: Path) -> GovernedRunFailed:
    parameters = {**training_config("local", data).pipeline_parameters(), "kind": kind}
    with pytest.raises(GovernedRunFailed) as failure:
        run_governed(gate_probe_training, "local", TESTER, parameters)
    error = failure.value
    assert error.step == "validate_model"
    assert error.error_class() is GateFailedError
    return error


def failed_checks(error: GovernedRunFailed) -> set[str]:
    return {line.split("=")[0].strip(" -") for line in error.error_message.splitlines()[1:]}


def latest_version() -> object:
    return Client().list_model_versions(MODEL_NAME, sort_by="desc:number", size=1).items[0]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("shuffled_labels", {"roc_auc"}),
        ("unbalanced_weights", {"ece", "brier"}),
        ("unfair", {"subgroup_roc_auc_min", "equalized_odds_difference"}),
        ("subsample", {"roc_auc_drop_vs_champion"}),
    ],
)
def test_flawed_model_is_blocked_and_rejected(
    champion: dict[str, object], kind: str, expected: set[str]
) -> None:
    error = run_probe(kind, champion["data"])

    assert expected <= failed_checks(error), error.error_message
    version = latest_version()
    tags = {tag.name for tag in version.tags}
    assert REJECTED_TAG in tags and VALIDATED_TAG not in tags
    assert version.run_metadata["gate_decision"]["passed"] is False
    trail = AuditTrail(load_platform_settings("local").audit.url)
    events = [r for r in trail.records(model_name=MODEL_NAME) if r.model_version == version.name]
    assert [e.event_type for e in events] == ["gate_failed", "pipeline_failed"]
    assert set(events[0].details["failed_checks"]) >= expected
    # The rejected version's only record names the code that trained and judged it.
    assert len(events[0].details["git_sha"] or "") == 40 and "git_dirty" in events[0].details
    # Re-judging it names the rejection, not a tampered record (and raises no integrity alert).
    again = invoke("gate", "--version", version.name, "--env", "local")
    assert again.exit_code == ExitCode.NOT_FOUND, again.output
    assert "rejected by its training gate" in again.output


def test_champion_comparison_uses_the_production_model(champion: dict[str, object]) -> None:
    version = latest_version()
    recorded = version.run_metadata["champion"]
    assert recorded["model_version"] == champion["summary"]["model_version"]
    assert recorded["stage"] == "production"


@pytest.fixture(scope="module")
def rejected(champion: dict[str, object]) -> object:
    """A version the training gate rejected: the module's newest one, or one trained here."""
    newest = latest_version()
    if REJECTED_TAG not in {tag.name for tag in newest.tags}:
        run_probe("shuffled_labels", champion["data"])
        newest = latest_version()
    return newest


def test_a_rejected_version_is_visible_in_both_uis_and_never_promoted(
    rejected: object, monkeypatch: pytest.MonkeyPatch, zenml_server: str
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name = rejected.name
    # ZenML: the version (tag rejected) holds its report, and its run is tagged rejected.
    assert REJECTED_TAG in {tag.name for tag in rejected.tags}
    assert "<section" in str(rejected.get_artifact(PlatformArtifact.MODEL_REPORT).load())
    run = Client().list_pipeline_runs(model_version_id=rejected.id, size=1).items[0]
    assert REJECTED_TAG in {tag.name for tag in run.tags}
    # MLflow: the registry lists it, tagged rejected, with the report in its source run, and
    # it holds no model that MLflow could load.
    uri = tracking.stack_tracking_uri()
    mlflow_client = MlflowClient(uri)
    listed = [
        v
        for v in mlflow_client.search_model_versions(f"name='{MODEL_NAME}'")
        if v.tags.get("zenml_model_version") == name
    ]
    assert len(listed) == 1
    entry = listed[0]
    assert entry.tags[REJECTED_TAG] == "true" and entry.tags["gate"] == "failed"
    assert "rejected by the training gate" in entry.description
    reports = [a.path for a in mlflow_client.list_artifacts(entry.run_id)]
    assert MODEL_REPORT_FILE in reports
    mlflow.set_tracking_uri(uri)
    with pytest.raises(MlflowException, match="MLmodel"):
        mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{entry.version}")

    # The promotion path refuses it, and nothing moves.
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", load_platform_settings("local").audit.url)
    trail = AuditTrail(load_platform_settings("local").audit.url)
    before = len(trail.records())
    aliases = dict(mlflow_client.get_registered_model(MODEL_NAME).aliases or {})
    refused = invoke(
        "--as", "bob", "promote", "--version", name, "--to", "staging", "--reason", "try"
    )

    assert refused.exit_code == ExitCode.DENIED, refused.output
    assert f"tagged '{REJECTED_TAG}'" in refused.stderr
    assert Client().get_model_version(MODEL_NAME, name).stage is None
    assert dict(mlflow_client.get_registered_model(MODEL_NAME).aliases or {}) == aliases
    assert {r.event_type for r in trail.records()[before:]} <= {"promotion_denied"}


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section" and values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "img" and (values.get("src") or "").startswith("data:image/png;base64,"):
            self.images += 1


def test_model_report_is_linked_to_the_version_and_complete(
    champion: dict[str, object], output_dir: Path
) -> None:
    version = Client().get_model_version(MODEL_NAME, champion["summary"]["model_version"])
    report = version.get_artifact(PlatformArtifact.MODEL_REPORT)
    html = str(report.load())
    (output_dir / "model_report.html").write_text(html, encoding="utf-8")

    parsed = _Sections()
    parsed.feed(html)
    assert set(SECTION_IDS) <= parsed.ids
    assert parsed.images >= 2
    assert version.get_artifact(PlatformArtifact.SUBGROUP_TABLE).load().shape[0] > 0


# --- the gate measures what the platform chose ------------------------------------------------


def test_forged_predictions_and_a_vacuous_threshold_do_not_pass(
    champion: dict[str, object],
) -> None:
    """A useless model handed in with perfect-looking numbers, at operating threshold 0.001."""
    parameters = training_config("local", champion["data"]).pipeline_parameters()
    parameters["evaluation"] = EvaluationParams(operating_threshold=0.001)
    with pytest.raises(GovernedRunFailed) as failure:
        run_governed(forged_predictions_training, "local", TESTER, parameters)

    error = failure.value
    assert error.step == "validate_model" and error.error_class() is GateFailedError
    assert {"roc_auc", "operating_threshold_min"} <= failed_checks(error), error.error_message
    version = latest_version()
    assert version.run_metadata["reported_metrics"]["roc_auc"] == 1.0  # what was handed in
    assert version.run_metadata["gate_metrics"]["roc_auc"] < 0.6  # what the platform measured
    assert VALIDATED_TAG not in {tag.name for tag in version.tags}


def test_a_model_fitted_on_holdout_patients_is_refused(champion: dict[str, object]) -> None:
    parameters = training_config("local", champion["data"]).pipeline_parameters()
    with pytest.raises(GovernedRunFailed) as failure:
        run_governed(leaky_training, "local", TESTER, parameters)

    error = failure.value
    assert error.step == "validate_model"
    assert error.error_class() is HoldoutLeakError
    assert "of the platform holdout" in error.error_message
    assert "train_on_everything.holdout" in error.error_message
    assert Client().get_model_version(MODEL_NAME, champion["summary"]["model_version"]).stage == (
        "production"
    )


def test_a_promotion_without_the_gate_fails_the_check_and_moves_nothing(
    champion: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [f.rule for f in check_gates_upstream(ungated_promotion, {})] == ["gate-upstream"]

    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", load_platform_settings("local").audit.url)
    version = str(champion["summary"]["model_version"])
    pipeline = ungated_promotion.with_options(model=Model(name=MODEL_NAME, version=version))
    parameters = {
        "target_stage": "staging",
        "environment": "staging",
        "request": PromotionOrder(reason="skip the gate"),
    }
    with pytest.raises(GovernedRunFailed) as failure:
        run_governed(pipeline, "staging", TESTER, parameters)

    assert failure.value.step == "promote_model"
    assert failure.value.error_class() is GateOriginError
    assert "cannot be handed in" in failure.value.error_message
    assert "not by the platform gate" in failure.value.error_message
    assert [v.name for v in Client().list_model_versions(MODEL_NAME, stage="staging")] == []
    trail = AuditTrail(load_platform_settings("local").audit.url)
    moves = {(r.event_type, r.stage) for r in trail.records(model_name=MODEL_NAME)}
    assert ("promotion", "staging") not in moves


def test_training_json_reports_every_check_with_value_limit_and_evaluation_hash(
    champion: dict[str, object],
) -> None:
    summary = champion["summary"]
    gate = summary["gates"]
    assert gate["passed"] is True
    names = {c["name"] for c in gate["checks"]}
    assert {"roc_auc", "brier", "ece", "operating_threshold_min"} <= names
    assert all("value" in c and "limit" in c for c in gate["checks"])
    evaluation = summary["evaluation"]
    assert len(evaluation["sha256"]) == 64 and evaluation["patients"] > 0
    assert gate["evaluation"]["sha256"] == evaluation["sha256"]
    assert summary["metrics"] == gate["metrics"]
