"""Real ZenML training runs through the CLI, each in its own temporary ZenML and MLflow store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from zenml.client import Client

from mlops_cli.errors import ExitCode
from mlops_platform.config import config_dir
from mlops_platform.governance.policy.models import load_policy
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.materializers.skops_model import SkopsModelMaterializer
from mlops_platform.names import VALIDATED_TAG, PlatformArtifact
from mlops_platform.runtime import runner, tracking
from mlops_platform.trust.audit import AuditTrail
from readmission.core.cohort import LABEL
from readmission.names import MODEL_NAME, Artifact
from tests.integration.helpers import copy_configs, invoke, invoke_json, write_synthetic_csv
from tests.oidc_issuer import job_environ, running_issuer

pytestmark = pytest.mark.usefixtures("isolated_state")

# The gate scores the platform holdout (issue 13), a different and harder patient sample than the
# seed-42 test split the foundation figures (ROC-AUC >= 0.675, Brier <= 0.0965) were set on: on
# the development copy it measured ROC-AUC 0.6715, Brier 0.0967, ECE 0.0059. The model must meet
# the production policy, the strictest, on it.
PRODUCTION_QUALITY = load_policy("production").quality
MAX_CALIBRATION_IN_THE_LARGE = 0.01
METRIC_KEYS = ("roc_auc", "pr_auc", "brier", "ece", "recall", "precision")


def _stored_files(uri: str) -> list[Path]:
    root = Path(uri)
    return [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())


def model_versions() -> list[str]:
    try:
        return [v.name for v in Client().list_model_versions(MODEL_NAME, size=100)]
    except KeyError:
        return []


@pytest.mark.slow
def test_training_on_real_data_meets_the_acceptance_figures(real_data: Path) -> None:
    summary = invoke_json("train", "--env", "local", "--data", str(real_data))

    assert summary["model_name"] == MODEL_NAME
    assert summary["data"]["source"] == "file"
    assert summary["data"]["rows"] == 81_168
    assert summary["data"]["patients"] == 56_990
    metrics = summary["metrics"]  # measured by the platform gate on its holdout patients
    assert summary["evaluation"]["patients"] == pytest.approx(0.2 * 56_990, rel=0.05)
    assert metrics["roc_auc"] >= PRODUCTION_QUALITY.min_roc_auc
    assert metrics["brier"] <= PRODUCTION_QUALITY.max_brier
    assert metrics["ece"] <= PRODUCTION_QUALITY.max_ece
    assert abs(metrics["mean_predicted"] - metrics["observed_rate"]) <= MAX_CALIBRATION_IN_THE_LARGE


@pytest.mark.slow
def test_training_run_records_model_version_mlflow_run_and_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reuse needs code named by a commit; a developer's checkout may be dirty while this runs.
    monkeypatch.setattr(runner, "source_tree_clean", lambda: True)
    data = write_synthetic_csv(tmp_path / "encounters.csv")
    original = data.read_bytes()
    # The attack: the requester's file is replaced right after the platform hashed it. The run
    # must read the bytes that were hashed (the platform's copy), never the replacement.
    hash_then_copy = runner.snapshot_data_file

    def replace_after_hashing(parameters: dict[str, Any], into: Path) -> Any:
        taken = hash_then_copy(parameters, into)
        write_synthetic_csv(data, patients=3000, seed=99)
        return taken

    monkeypatch.setattr(runner, "snapshot_data_file", replace_after_hashing)
    summary = invoke_json("train", "--env", "local", "--data", str(data))
    monkeypatch.setattr(runner, "snapshot_data_file", hash_then_copy)
    assert data.read_bytes() != original
    assert summary["data"]["sha256"] == hashlib.sha256(original).hexdigest()  # what the loader read
    assert summary["data_origin"] == str(data.resolve())
    assert Path(summary["data"]["location"]).parent.name == hashlib.sha256(original).hexdigest()
    data.write_bytes(original)

    version = Client().get_model_version(MODEL_NAME, summary["model_version"])
    assert VALIDATED_TAG in [tag.name for tag in version.tags]
    stored = version.run_metadata["gate_metrics"]
    for key in METRIC_KEYS:
        assert stored[key] == pytest.approx(summary["metrics"][key])

    model_artifact = version.get_model_artifact(Artifact.MODEL)
    assert model_artifact.materializer.import_path.endswith(SkopsModelMaterializer.__name__)
    loaded = model_artifact.load()
    assert hasattr(loaded, "predict_proba")

    mlflow_metrics, mlflow_params, mlflow_tags = tracking.run_data(
        summary["mlflow"]["run_id"] and tracking.stack_tracking_uri(), summary["mlflow"]["run_id"]
    )
    for key in METRIC_KEYS:  # data science's own numbers, mirrored from evaluate_model
        assert mlflow_metrics[f"metrics.{key}"] == pytest.approx(summary["reported_metrics"][key])
    assert mlflow_tags["environment"] == "local"
    assert mlflow_tags["git_sha"] == summary["code"]["git_sha"]
    assert mlflow_tags["data.sha256"] == summary["data"]["sha256"]
    # The platform's own hash of the file, beside the loader's, pins the evaluation data.
    registered_data = version.run_metadata["registration"]["data"]
    assert registered_data["file_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert "split_by_patient.params.seed" in mlflow_params

    events = AuditTrail(load_platform_settings("local").audit.url).records(model_name=MODEL_NAME)
    assert [e.event_type for e in events][-1] == "training_completed"
    assert events[-1].model_version == summary["model_version"]

    # The same file again: the data steps are reused, recorded on the run; the model is not.
    first_run = Client().get_pipeline_run(summary["run_name"])
    again_summary = invoke_json("train", "--data", str(data))
    again = Client().get_pipeline_run(again_summary["run_name"])
    reusable = set(load_platform_settings("local").caching.reusable_steps)
    assert {n for n, s in again.steps.items() if s.status.value == "cached"} == reusable
    assert again.run_metadata["reused_steps"] == {
        name: str(first_run.steps[name].id) for name in sorted(reusable)
    }
    for name in ("train_model", "validate_model", "register_model"):
        assert again.steps[name].status.value == "completed"
    uri = tracking.stack_tracking_uri() or ""
    _, _, again_tags = tracking.run_data(uri, again_summary["mlflow"]["run_id"])
    assert again_tags["reused_steps"] == ",".join(sorted(reusable))

    # The attack: the reused holdout's stored file gets other outcomes (what a gate would judge),
    # through the artifact store alone. The next run on the same file refuses before judging.
    holdout = again.steps["split_holdout"].outputs[PlatformArtifact.HOLDOUT_SET][0]
    stored = _stored_files(holdout.uri)
    original = {path: path.read_bytes() for path in stored}
    for path in stored:
        if path.name.endswith((".parquet", ".gzip", ".parquet.gzip")):
            frame = pd.read_parquet(path)
            frame[LABEL] = 1 - frame[LABEL]
            frame.to_parquet(path, compression="gzip")
    assert {p: p.read_bytes() for p in stored} != original
    before = model_versions()
    refused = invoke("train", "--data", str(data))
    assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
    assert "holdout_set" in refused.output and "signed" in refused.output
    passed = [
        e
        for e in AuditTrail(load_platform_settings("local").audit.url).records(
            model_name=MODEL_NAME
        )
        if e.event_type == "gate_passed"
    ]
    assert len(passed) == 2  # the two runs above; the refused run judged nothing
    for name in set(model_versions()) - set(before):  # kept only as a failed run's version
        assert "registration" not in Client().get_model_version(MODEL_NAME, name).run_metadata
    for path, content in original.items():
        path.write_bytes(content)

    # One byte more (a trailing newline: the same rows to pandas) is another file: nothing reused.
    data.write_bytes(data.read_bytes() + b"\n")
    changed = Client().get_pipeline_run(invoke_json("train", "--data", str(data))["run_name"])
    assert changed.run_metadata["reused_steps"] == {}
    assert {s.status.value for s in changed.steps.values()} == {"completed"}


def test_staging_never_falls_back_to_synthetic_data(
    isolated_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A laptop checkout (trail inside the state directory), where a private config folder is
    # allowed for staging; the refusal of synthetic data must hold there too.
    unreachable = {
        "data": {"download": True, "url": "http://127.0.0.1:9/uci.zip", "timeout_seconds": 2}
    }
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{isolated_state / 'audit.db'}")
    monkeypatch.delenv("READMISSION_DATA", raising=False)
    # Staging needs a verified identity: a CI job's token, from a loopback issuer it trusts here.
    with running_issuer() as issuer:
        platform = yaml.safe_load((config_dir() / "staging" / "platform.yaml").read_text())
        oidc = issuer.settings(environment="staging")
        platform["identity"]["github_oidc"] = oidc.model_dump(mode="json")
        overrides = {"staging/training.yaml": unreachable, "staging/platform.yaml": platform}
        monkeypatch.setenv("MLOPS_CONFIG_DIR", str(copy_configs(tmp_path / "configs", overrides)))
        issuer.tokens[oidc.audience] = issuer.token(environment="staging")
        for name, value in job_environ(issuer).items():
            monkeypatch.setenv(name, value)
        result = invoke("train", "--env", "staging")

    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "synthetic" in result.stderr
    assert model_versions() == []


@pytest.mark.slow
def test_local_falls_back_to_synthetic_data_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = {
        "data": {
            "allow_synthetic": True,
            "url": "http://127.0.0.1:9/uci.zip",
            "timeout_seconds": 2,
            "synthetic_patients": 15000,
        }
    }
    configs = copy_configs(tmp_path / "configs", {"local/training.yaml": unreachable})
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(configs))
    monkeypatch.delenv("READMISSION_DATA", raising=False)

    result = invoke("train", "--env", "local", "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["data"]["source"] == "synthetic"
    version = Client().get_model_version(MODEL_NAME, summary["model_version"])
    assert version.run_metadata["registration"]["data"]["source"] == "synthetic"
