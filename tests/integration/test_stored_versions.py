"""Stored versions under changed code and changed policy, on one trained state.

A feature added to the code after a version is in production breaks nothing that is stored, and
`mlops gate` re-judges a stored version under today's policy without moving anything.

One module state: version 1 is trained with today's feature code and put in production. Then the
feature code changes in this process (tests/feature_change.py), as a data scientist's edit would:
training a new version (whose champion/challenger check scores version 1) and batch scoring with
version 1 still work when a feature is added, and the golden-sample check refuses version 1 with
exit 8 when an existing feature is computed differently.
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

from mlops_cli.errors import ExitCode
from mlops_platform.config import CONFIG_DIR_VARIABLE, config_dir
from mlops_platform.governance.policy.evaluate import IS_CHAMPION
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.runtime import tracking
from mlops_platform.trust import golden
from mlops_platform.trust.audit import AuditTrail
from readmission.names import MODEL_NAME
from tests.feature_change import NEW_FEATURE, add_feature, add_history_feature, redefine_feature
from tests.integration.helpers import (
    copy_configs,
    hold_stage,
    invoke,
    invoke_json,
    write_synthetic_csv,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stored_versions")]


@dataclass(frozen=True)
class World:
    root: Path
    data: Path
    production: str


@pytest.fixture(scope="module")
def world(module_state: Path) -> Iterator[World]:
    root = module_state.parent
    # Scoring and promotion check the model file with the stage's environment; every stage
    # records to the one local trail here, as the demo sets it up (isolated() restores the env).
    os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{module_state / 'audit.db'}"
    data = write_synthetic_csv(root / "encounters.csv", patients=12000)
    trained = invoke_json("train", "--env", "local", "--data", str(data))
    version = str(trained["model_version"])
    # Only the stage matters here; promotion itself is tested in test_promotion.py.
    hold_stage(version, "production")
    yield World(root, data, version)


def test_registration_stores_the_golden_sample_and_its_scores(world: World) -> None:
    version = Client().get_model_version(MODEL_NAME, world.production)
    record = version.run_metadata["registration"][golden.REGISTRATION_KEY]

    assert record["rows"] == len(version.get_artifact(golden.GOLDEN_ARTIFACT).load())
    assert len(record["scores"]) == record["rows"] > 0
    # The MLflow run is named after the version and carries the key metrics as columns.
    registration = version.run_metadata["registration"]
    metrics, _, tags = tracking.run_data(
        tracking.stack_tracking_uri(), registration["mlflow"]["run_id"]
    )
    assert tags["mlflow.runName"] == f"{MODEL_NAME}-v{world.production}-readmission_training"
    assert metrics["roc_auc"] == pytest.approx(registration["metrics"]["roc_auc"])


def test_after_adding_a_feature_training_and_scoring_still_work(world: World) -> None:
    with pytest.MonkeyPatch.context() as patch:
        add_feature(patch)
        trained = invoke_json("train", "--env", "local", "--data", str(world.data))
        champion = Client().get_model_version(MODEL_NAME, str(trained["model_version"]))
        sample = world.root / "sample.csv"
        write_synthetic_csv(sample, patients=300, seed=21)
        scored = invoke_json("infer", "--input", str(sample), "--output", str(world.root / "out"))

    new_model = champion.get_model_artifact("readmission_model").load()
    assert champion.run_metadata["champion"]["model_version"] == world.production
    assert NEW_FEATURE in _feature_names(new_model)
    assert scored["model_version"] == world.production
    assert scored["rows_scored"] > 0


def test_after_adding_a_history_column_the_stored_version_still_scores(world: World) -> None:
    """The newcomer review's: a history feature reading a new column, added to HISTORY_COLUMNS
    as the Developer Guide says; the production version's saved patient history lacks that
    column, and batch scoring with it stopped with exit 1 (HistoryError)."""
    sample = world.root / "sample-history.csv"
    write_synthetic_csv(sample, patients=200, seed=23)
    with pytest.MonkeyPatch.context() as patch:
        add_history_feature(patch)
        scored = invoke_json(
            "infer", "--input", str(sample), "--output", str(world.root / "out-history")
        )
    assert scored["model_version"] == world.production
    assert scored["rows_scored"] > 0


def test_code_that_changes_a_stored_model_s_scores_is_refused_with_exit_8(world: World) -> None:
    sample = world.root / "sample-2.csv"
    write_synthetic_csv(sample, patients=100, seed=22)
    with pytest.MonkeyPatch.context() as patch:
        redefine_feature(patch)
        result = invoke("infer", "--input", str(sample), "--output", str(world.root / "refused"))

    assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
    assert f"version {world.production} of {MODEL_NAME}" in result.output
    assert "this code changes its predictions" in result.output
    assert not (world.root / "refused").exists() or not any((world.root / "refused").iterdir())


def _feature_names(model: object) -> list[str]:
    from readmission.core.model import _feature_steps

    return [name for step in _feature_steps(model) for name in step.feature_names_out_]


def test_gate_re_judges_a_version_under_today_s_policy_without_moving_anything(
    world: World,
) -> None:
    trail = AuditTrail(load_platform_settings("local").audit.url)
    records_before = len(trail.records())

    today = invoke_json("gate", "--version", world.production, "--env", "local")
    local = yaml.safe_load((config_dir() / "local" / "policy.yaml").read_text(encoding="utf-8"))
    local["quality"]["min_roc_auc"] = 0.99  # only this threshold changes
    configs = copy_configs(world.root / "strict-configs", {"local/policy.yaml": local})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONFIG_DIR_VARIABLE, str(configs))
        stricter = invoke("gate", "--version", world.production, "--env", "local", "--json")

    assert today["decision"]["passed"] is True and today["moved"] is False
    # The holder re-judged for its own stage is the champion: said so, not "no champion".
    holder = invoke("gate", "--version", world.production, "--env", "production")
    assert f"Version {world.production} (holds production)" in holder.stdout, holder.output
    assert IS_CHAMPION in holder.stdout.replace("\n", "")
    assert stricter.exit_code == ExitCode.GATE_FAILED, stricter.output
    failed = [
        c["name"] for c in json.loads(stricter.stdout)["decision"]["checks"] if not c["passed"]
    ]
    assert failed == ["roc_auc"]
    version = Client().get_model_version(MODEL_NAME, world.production)
    assert version.stage == "production"
    assert "rejected" not in {tag.name for tag in version.tags}
    assert len(trail.records()) == records_before


def test_versions_and_compare_show_every_version_s_results(world: World) -> None:
    listed = invoke_json("versions")["versions"]
    rows = {row["model_version"]: row for row in listed}
    newest = listed[0]["model_version"]

    compared = invoke_json("compare", world.production, newest)
    table = invoke("versions")

    assert rows[world.production]["stage"] == "production"
    assert rows[world.production]["verdict"] == "passed"
    assert rows[world.production]["trained_by"] != "-"
    assert set(rows[world.production]["metrics"]) >= {"roc_auc", "brier", "ece"}
    assert compared["versions"] == [world.production, newest]
    roc = next(m for m in compared["metrics"] if m["metric"] == "roc_auc")
    assert roc["difference"] == pytest.approx(roc[newest] - roc[world.production])
    # each version's metrics name the holdout rows they were measured on, from its gate's record
    holdout = next(f for f in compared["facts"] if f["fact"] == "holdout")
    assert holdout[world.production] != "-" and holdout[newest] != "-"
    assert compared["same_holdout"] is holdout["same"]
    assert table.exit_code == 0 and "production" in table.stdout
