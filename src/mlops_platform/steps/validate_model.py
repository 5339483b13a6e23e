"""Shared model gate: quality, calibration, fairness, champion and baseline, then a model report.

The platform chooses what the gate measures. It keeps only the patients of its own holdout
(`mlops_platform.evaluation.holdout`) from the evaluation frame, checks that none of them is in
the data the model was fitted or calibrated on (the inputs of the step that produced the model
artifact, read from ZenML), loads the candidate (and the baseline and the champion) from the model
version and computes their predictions itself. Numbers that data-science steps computed are shown
in the report, never gated on.

The report and subgroup table are saved even when the gate fails, so a rejected model can be
reviewed; the version is then tagged `rejected` and never `validated`.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from zenml import add_tags, get_step_context, log_metadata, save_artifact, step
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.types import HTMLString

from mlops_platform.evaluation.fairness import sensitive_groups, summarize_fairness
from mlops_platform.evaluation.holdout import (
    HoldoutError,
    HoldoutLeakError,
    assert_no_leak,
    frame_sha256,
    split_holdout,
)
from mlops_platform.evaluation.metrics import classification_metrics
from mlops_platform.governance.model_stages import at_version_threshold, recorded_training
from mlops_platform.governance.policy.evaluate import (
    IS_CHAMPION,
    NO_CHAMPION,
    GateDecision,
    GateFailedError,
    evaluate,
    unapproved_data_problem,
)
from mlops_platform.governance.policy.models import GatePolicy, load_policy
from mlops_platform.governance.promotion import OPERATING_THRESHOLD_KEY
from mlops_platform.infra.settings import LOCAL_ENV, load_platform_settings
from mlops_platform.names import KEY_METRICS, REJECTED_KEY, REJECTED_TAG, PlatformArtifact
from mlops_platform.reporting.model_report import ModelReportContext, render_model_report
from mlops_platform.runtime import tracking
from mlops_platform.runtime.run_context import ExistingVersionRefused, GovernedContext
from mlops_platform.trust import golden
from mlops_platform.trust.artifacts import (
    GATE_MODEL_SHA256,
    ModelCodeMissing,
    UntrustedModelError,
    load_verified,
    load_verified_model,
    loaded_digest,
)
from mlops_platform.trust.events import one_decision, record_version_event
from mlops_platform.trust.outputs import (
    check_in_run,
    check_output,
    check_reused_outputs,
    checked,
    load_checked,
    run_artifact,
    version_artifact,
)
from mlops_platform.trust.stored import CheckedArtifact

Y_TRUE, Y_PROB = "y_true", "y_prob"
MODEL_REPORT_FILE = "model_report.html"  # the report's name among the MLflow run's artifacts
logger = logging.getLogger(__name__)
BASELINE_ARTIFACT_ID = "baseline_artifact_id"  # in the gate record


class ModelContract(BaseModel):
    """What the platform needs to know about a team's model to judge it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_artifact: str  # name of the model artifact in the ZenML model version
    patient_column: str  # holdout membership and bootstrap clusters are per patient
    label_column: str  # the 0/1 outcome the gate scores against
    label_columns: tuple[str, ...]  # outcome columns dropped before any model scores a row
    operating_threshold: float
    baseline_artifact: str | None = None  # the simple model staging/production compare with
    # Import path of `describe(model) -> lines`: the model card's predictors, read from the
    # stored model itself (what it was fitted with), never from today's feature lists.
    describe_predictors: str | None = None


def model_card_predictors(model: Any, contract: ModelContract) -> tuple[str, ...]:
    """The model card's predictor lines for the loaded `model` (empty: not described)."""
    if contract.describe_predictors is None:
        return ()
    module_name, _, attribute = contract.describe_predictors.rpartition(".")
    try:
        describe = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(
            f"The model contract's describe_predictors {contract.describe_predictors!r} cannot be "
            f"imported: {error}. Name a function 'package.module.function' taking the model."
        ) from error
    try:
        return tuple(str(line) for line in describe(model))
    except Exception as error:  # the card is documentation, never a gate
        logger.warning("The model card's predictors could not be listed: %s", error)
        return (f"Predictors could not be listed for this model: {error}",)


class Evaluation(BaseModel):
    """The platform's evaluation set: holdout rows of the given frame, identified by content."""

    model_config = ConfigDict(frozen=True)

    data_sha256: str  # the file the holdout rows came from
    refreshed: bool  # a promotion on other data than the version's own, allowed by the policy
    sha256: str  # the holdout rows themselves
    rows: int
    patients: int
    holdout_fraction: float


# Where training and evaluation data may come from outside the local environment.
GOVERNED_DATA_SOURCES: tuple[str, ...] = ("file", "download")


class DataSourceRefused(RuntimeError):
    """Staging and production judge and publish models only on real data."""


def data_source_problem(
    env: str, provenance: dict[str, Any], *, trained_on: str | None = None
) -> str | None:
    """Why `provenance` may not feed a gate in `env` (None: it may); synthetic only locally.

    ``trained_on``: the data source the version's verified training record names (a
    promotion): a version trained on synthetic data is not judged outside local either, even
    on a file that hashes like its training data."""
    if env == "local":
        return None
    if trained_on is not None and trained_on not in GOVERNED_DATA_SOURCES:
        return (
            f"the {env} gate refuses a version trained on data from source {trained_on!r} (its "
            "verified training record): outside local only versions trained on a real file or "
            "the verified download are judged; train it again on the real file"
        )
    source = provenance.get("source")
    if source in GOVERNED_DATA_SOURCES and provenance.get("sha256"):
        return None
    return (
        f"the {env} gate refuses data from source {source!r} (sha256 "
        f"{provenance.get('sha256') or 'missing'}): outside local, models are judged only on a "
        f"real file or the verified download ({', '.join(GOVERNED_DATA_SOURCES)}), never on "
        "synthetic data, whatever the training config allows"
    )


def evaluation_data_problem(
    env: str, registered_sha256: str | None, given_sha256: str | None, allow_refresh: bool
) -> tuple[str | None, bool]:
    """(why the data is refused or None, whether it is a recorded refresh) for a re-judgement.

    Staging and production judge an already trained version on the dataset registered with it
    (same SHA-256); another dataset only where the policy allows a refresh.
    """
    if env == "local" or (registered_sha256 and registered_sha256 == given_sha256):
        return None, False
    if allow_refresh and given_sha256:
        return None, True
    kept = _kept_copy(registered_sha256)
    return (
        f"the {env} promotion gate judges version data pinned at training (sha256 "
        f"{registered_sha256 or 'not registered'}), but was given sha256 "
        f"{given_sha256 or 'missing'}; evaluate on the registered dataset"
        + (f" (this checkout keeps a copy: --data {kept})" if kept else "")
        + ", or have the platform team allow a refresh (evaluation_data.allow_refresh in "
        f"configs/{env}/policy.yaml)",
        False,
    )


def _kept_copy(sha256: str | None) -> str | None:
    """The platform's copy of a run's data file with this SHA-256, if this checkout holds one:
    where to point --data to judge on a version's own file."""
    from mlops_platform.runtime.provenance import snapshot_copies

    found = snapshot_copies(sha256) if sha256 else []
    return str(found[0]) if len(found) == 1 else None


def pinned_data_hashes(
    recorded: Mapping[str, Any],
    registration: Mapping[str, Any],
    data_provenance: dict[str, Any],
    governed: GovernedContext,
) -> tuple[str | None, str | None]:
    """(registered, given) SHA-256 of the evaluation data that pinning compares.

    The pin is read from ``recorded``, the details of the version's verified `training_completed`
    record, never from ZenML's ``registration`` metadata, which any ZenML user can rewrite to
    name another file; metadata that disagrees with the record refuses (`GateRecordMismatch`).
    Versions registered with the platform's own hash of the data file (``data_file_sha256``,
    taken by `run_governed` before the run) are compared on that hash, never on the loader's.
    Versions registered before it, and data that is not a local file (a verified download), fall
    back to the hash of the CSV bytes the loader reported.
    """
    file_pin = recorded.get("data_file_sha256") or None
    loader_pin = recorded.get("data_sha256") or None
    claimed = registration.get("data") or {}
    if (claimed.get("file_sha256") or None, claimed.get("sha256") or None) != (
        file_pin,
        loader_pin,
    ):
        raise GateRecordMismatch(
            f"ZenML metadata registration.data of version {registration.get('model_version')} "
            f"names data sha256 {claimed.get('file_sha256') or claimed.get('sha256')}, but its "
            f"verified training record names {file_pin or loader_pin}: the metadata was edited "
            "outside the platform. Nothing was judged or moved; decisions use the trail. Restore "
            "the metadata and find out who changed it (`mlops check`)."
        )
    if file_pin:
        return str(file_pin), governed.data_file_sha256 or None
    return loader_pin, data_provenance.get("sha256")


def holdout_inputs(env: str, policy: GatePolicy | None = None) -> tuple[bytes, float]:
    """The platform's holdout key (platform config) and fraction (gate policy) for `env`."""
    chosen = policy or load_policy(env)
    return load_platform_settings(env).holdout.key_bytes(), chosen.holdout.fraction


def check_holdout_rows(
    holdout: pd.DataFrame,
    contract: ModelContract,
    governed: GovernedContext,
    key: bytes,
    fraction: float,
) -> None:
    """Refuse a holdout that is not the one the platform derives from the run's data file.

    The pipeline's code builds the cohort the holdout is split from (its rows and outcomes); the
    gate judges only if those are exactly the file's rows of holdout patients, minus the
    configured exclusions, with the outcomes the file records (`holdout.rows`, platform.yaml).
    Without a data file (a download) only the local environment goes on, with a warning.
    """
    from mlops_platform.evaluation.holdout import (
        expected_holdout_labels,
        holdout_file_rows,
        holdout_input_problems,
        holdout_rows_problems,
    )
    from mlops_platform.runtime.provenance import read_snapshot_columns

    rows = load_platform_settings(governed.env).holdout.rows
    if rows is None:
        return
    if not governed.data_file_sha256:
        if governed.env == LOCAL_ENV:
            logger.warning(
                "The run was given no data file, so the holdout's rows and outcomes were not "
                "checked against one (the local environment only); pass --data to check them."
            )
            return
        raise HoldoutError(
            f"The gate in {governed.env} judges only a holdout it can derive from the run's "
            "data file, and this run was given none; pass the data file (--data or "
            "READMISSION_DATA)."
        )
    if contract.patient_column != rows.patient_column:
        raise HoldoutError(
            f"The pipeline draws the holdout by {contract.patient_column!r}, but the platform "
            f"draws it by patient, {rows.patient_column!r} (holdout.rows.patient_column in "
            "platform.yaml): a holdout drawn by another column lets a holdout patient's other "
            "rows reach training. Use the platform's patient column in the model contract."
        )
    if rows.id_column not in holdout.columns or contract.label_column not in holdout.columns:
        raise HoldoutError(
            f"The holdout handed to the gate lacks the row id {rows.id_column!r} or the outcome "
            f"{contract.label_column!r}, so the platform cannot check it against the data file."
        )
    # Every column: the model is judged on the file's own values of each row, as served.
    raw = holdout_file_rows(
        read_snapshot_columns(
            governed.data_file_sha256, governed.data_file_path, None, rows.zip_member
        ),
        (governed.data_file_sha256, rows.zip_member),
        rows.patient_column,
        key,
        fraction,
    )
    expected = expected_holdout_labels(
        raw[rows.columns()],
        rows.patient_column,
        key,
        fraction,
        id_column=rows.id_column,
        label_column=rows.label_column,
        label_positive=rows.label_positive,
        exclude=rows.exclude,
    )
    given = pd.Series(
        holdout[contract.label_column].to_numpy(), index=holdout[rows.id_column].astype(str)
    )
    problems = holdout_rows_problems(given, expected) + holdout_input_problems(
        holdout, raw, id_column=rows.id_column, hidden=outcome_columns(contract, governed.env)
    )
    if problems:
        raise HoldoutError(
            f"The holdout handed to the gate is not the one the platform derives from the run's "
            f"data file (SHA-256 {governed.data_file_sha256[:16]}…): "
            + "; ".join(problems)
            + ". The gate judges the file's rows of holdout patients and the outcomes the file "
            "records (holdout.rows in platform.yaml), and gives the model each row's own values "
            "from the file without its outcome, as serving does, whatever the pipeline's code "
            "computes; restore the loading and cohort code, or change holdout.rows with the "
            "platform's owners."
        )


def outcome_columns(contract: ModelContract, env: str) -> frozenset[str]:
    """Columns no model is ever given at a gate: the outcome the gate scores against, the
    contract's other outcome columns and the data file's own outcome column (``holdout.rows``
    of platform.yaml): whatever the contract lists, a model never sees the answer it is judged
    on (serving and batch scoring never give it one either)."""
    rows = load_platform_settings(env).holdout.rows
    platform_outcome = (rows.label_column,) if rows is not None else ()
    return frozenset((contract.label_column, *contract.label_columns, *platform_outcome))


def platform_predictions(
    model: Any, holdout: pd.DataFrame, contract: ModelContract, env: str
) -> pd.DataFrame:
    """The model's risk for each holdout row, with the outcome and the sensitive columns.

    The model is given the rows without any outcome column (`outcome_columns`).

    Content-addressed: the risks of the same model file (SHA-256 of the bytes it was loaded
    from, `trust.artifacts.loaded_digest`) on the same rows (`frame_sha256`) are computed once
    per process and reused; ``attrs["reused"]`` says which it was.
    """
    digest = loaded_digest(model)
    key = (digest, frame_sha256(holdout)) if digest else None
    risk = _RISKS.get(key) if key else None
    reused = risk is not None
    if risk is None:
        hidden = outcome_columns(contract, env)
        fitted_with = sorted(hidden.intersection(map(str, getattr(model, "feature_names_in_", ()))))
        if fitted_with:
            raise HoldoutLeakError(
                f"The model was fitted with the outcome column(s) {fitted_with} as input: the "
                "gate never gives a model the outcome it is judged on (nor do serving and batch "
                "scoring). Fit it on the features only (the contract's label_column, its "
                "label_columns and holdout.rows.label_column of platform.yaml are outcomes)."
            )
        features = holdout.drop(columns=[c for c in holdout.columns if c in hidden])
        risk = np.asarray(model.predict_proba(features)[:, 1], dtype="float64")
        if key:
            _RISKS[key] = risk
            while len(_RISKS) > _RISKS_LIMIT:
                _RISKS.popitem(last=False)
    predictions = pd.DataFrame(
        {
            contract.patient_column: holdout[contract.patient_column].to_numpy(),
            Y_TRUE: holdout[contract.label_column].to_numpy().astype(int),
            Y_PROB: risk.copy(),
        }
    )
    predictions.attrs["reused"] = reused
    return predictions


# Platform risks by (SHA-256 of the model file, SHA-256 of the holdout rows), in this process.
_RISKS: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_RISKS_LIMIT = 16


def platform_holdout(
    evaluation_data: pd.DataFrame, contract: ModelContract, key: bytes, fraction: float
) -> pd.DataFrame:
    """The rows of platform holdout patients in ``evaluation_data``: all any gate scores, so
    patients outside the holdout cannot change a result. Refuses an empty holdout."""
    _, holdout = split_holdout(evaluation_data, contract.patient_column, key, fraction)
    if holdout.empty:
        raise HoldoutError(
            f"The evaluation data ({len(evaluation_data)} rows) holds no patient of the platform "
            f"holdout (fraction {fraction}); evaluate on a larger file."
        )
    return holdout


def score_holdout(
    model: Any,
    evaluation_data: pd.DataFrame,
    contract: ModelContract,
    key: bytes,
    fraction: float,
    env: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(holdout rows, platform predictions on them): what every gate measures, in one function."""
    holdout = platform_holdout(evaluation_data, contract, key, fraction)
    return holdout, platform_predictions(model, holdout, contract, env)


def decision_record(
    decision: GateDecision,
    metrics: dict[str, Any] | None = None,
    evaluation: Evaluation | None = None,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "passed": decision.passed,
        "environment": decision.environment,
        "checks": [
            {
                "name": c.name,
                "passed": c.passed,
                "value": c.value,
                "limit": c.limit,
                "comparison": c.comparison,
                "detail": c.detail,
            }
            for c in decision.checks
        ],
        "metrics": metrics or {},
        "baseline_metrics": baseline,
        "evaluation": evaluation.model_dump() if evaluation else None,
    }


def champion_scores(
    model_name: str, stage: str, contract: ModelContract, holdout: pd.DataFrame, env: str
) -> tuple[str, np.ndarray] | None:
    """The current holder of `stage` scored on the same holdout rows, or None if none holds it.

    The champion's file is checked against its signed pin with `env`'s trusted keys first, and
    its golden sample against this code. The holder must be the one the verified trail records
    (exit 9 otherwise): a model moved into the stage, or out of it, with ZenML alone never
    becomes, or stops being, the model a candidate is compared with.
    """
    from mlops_platform.governance.model_stages import require_recorded_stage

    require_recorded_stage(model_name, stage)
    try:
        champion = Client().get_model_version(model_name, ModelStages(stage))
    except KeyError:
        return None
    try:
        model = load_verified_model(champion, contract.model_artifact, env)
        golden.verify_version(champion, model)
    except (ModelCodeMissing, UntrustedModelError, golden.GoldenSampleMismatch) as error:
        # Said as the champion's refusal: the candidate is compared with it, so it must load.
        raise type(error)(
            f"The champion, the {stage} holder (version {champion.name}), cannot be compared "
            f"with under this code: {error} A candidate is judged against the champion, so no "
            "version can be trained on this code until it scores the champion again: restore "
            "what the champion needs (docs/DEVELOPER_GUIDE.md, 'Renaming or removing a feature' "
            "and 'Moving code a stored model refers to'), retrain, and remove it once no stored "
            "version that may be scored or rolled back to needs it."
        ) from error
    return champion.name, platform_predictions(model, holdout, contract, env)[Y_PROB].to_numpy()


def training_frames(
    artifact: Any, env: str, run_id: Any = None, loaded: dict[str, Any] | None = None
) -> dict[str, pd.DataFrame]:
    """The DataFrame inputs of the step run that produced a model artifact, by input name.

    For an artifact of run `run_id` (the gate's own run), inputs made by another run are read
    only if their stored files are what that run signed (`trust.outputs`). An artifact of an
    earlier run (a stored version's model or baseline) must be among that run's signed outputs,
    and each input among what that run signed as made or used: a relinked input is refused.
    `loaded` keeps artifact values by artifact version id across calls of one gate: the candidate
    and the baseline are fitted on the same training frame, which is read once."""
    if artifact.producer_step_run_id is None:
        return {}
    producer_run = str(artifact.producer_pipeline_run_id or "")
    earlier = run_id is None or producer_run != str(run_id)
    if earlier:
        check_output(artifact, env)
    producer = Client().get_run_step(artifact.producer_step_run_id)
    loaded = {} if loaded is None else loaded
    frames: dict[str, pd.DataFrame] = {}
    for name, versions in producer.regular_inputs.items():
        for index, version in enumerate(versions):
            key = str(version.id)
            if key not in loaded:
                if earlier:
                    loaded[key] = check_in_run(version, producer_run, env).load()
                else:
                    loaded[key] = load_checked(version, env, run_id)
            value = loaded[key]
            if isinstance(value, pd.DataFrame):
                frames[f"{producer.name}.{name}" + (f"[{index}]" if index else "")] = value
    return frames


def judge(
    predictions: pd.DataFrame,
    holdout: pd.DataFrame,
    contract: ModelContract,
    model_name: str,
    env: str,
    champion_stage: str,
    baseline_prob: np.ndarray | None = None,
    policy: GatePolicy | None = None,
    *,
    compare_with_champion: bool = True,
) -> tuple[GateDecision, Any, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """Compute the metrics, fairness summary, champion and baseline comparison, and decide."""
    policy = policy or load_policy(env)
    y = predictions[Y_TRUE].to_numpy().astype(int)
    p = predictions[Y_PROB].to_numpy(dtype=float)
    metrics = classification_metrics(y, p, contract.operating_threshold)
    fairness = summarize_fairness(
        y,
        p,
        sensitive_groups(holdout),
        contract.operating_threshold,
        policy.fairness.min_group_size,
        min_group_events=policy.fairness.min_group_events,
    )
    scored = (
        champion_scores(model_name, champion_stage, contract, holdout, env)
        if compare_with_champion
        else None
    )
    champion = None
    if scored is not None:
        version, champion_p = scored
        champion = {
            **classification_metrics(y, champion_p, contract.operating_threshold),
            "model_version": version,
            "stage": champion_stage,
        }
    baseline = (
        classification_metrics(y, baseline_prob, contract.operating_threshold)
        if baseline_prob is not None
        else None
    )
    decision = evaluate(
        metrics,
        fairness,
        champion,
        policy,
        env,
        operating_threshold=contract.operating_threshold,
        baseline=baseline,
        champion_absent=NO_CHAMPION if compare_with_champion else IS_CHAMPION,
    )
    return decision, fairness, metrics, champion, baseline


def _linked_artifact(version: Any, name: str) -> Any:
    """The latest artifact `name` linked to the model version, or None."""
    try:
        return version.get_model_artifact(name)
    except KeyError:
        return None


def checked_inputs(context: Any, env: str) -> dict[str, CheckedArtifact]:
    """The step's single-artifact inputs by name, each read once and checked (`checked`): made by
    this run, as its step wrote it; made by another, as that run signed it."""
    run_id = context.pipeline_run.id
    return {
        name: checked(versions[0], env, run_id)
        for name, versions in context.inputs.items()
        if len(versions) == 1
    }


def _checked_value(inputs: dict[str, CheckedArtifact], name: str) -> Any:
    if name not in inputs:
        raise HoldoutError(
            f"The gate's input {name!r} is not one stored artifact of a step, so what it reads "
            "cannot be checked; pass it as the output of a step of the pipeline."
        )
    return inputs[name].load()


def _own_run_artifact(context: Any, name: str | None, env: str) -> CheckedArtifact | None:
    """The output `name` of this run's steps (made or reused), checked, or None."""
    found = run_artifact(context.pipeline_run.id, name)
    return None if found is None else checked(found, env, context.pipeline_run.id)


def _baseline_artifact(version: Any, contract: ModelContract, env: str) -> CheckedArtifact | None:
    """A stored version's baseline model artifact as its training run signed it, or None (no
    baseline in the contract or made by that run)."""
    if not contract.baseline_artifact:
        return None
    return version_artifact(version, contract.baseline_artifact, env)


def baseline_risks(
    baseline_artifact: CheckedArtifact | None,
    holdout: pd.DataFrame,
    contract: ModelContract,
    env: str,
) -> np.ndarray | None:
    """The baseline model's platform risks on the holdout rows, or None without a baseline.

    The artifact comes checked: a stored version's through `version_artifact` (as its training
    run signed it), a training gate's from its own run (made by it, or reused and checked by
    `check_reused_outputs`)."""
    if baseline_artifact is None:
        return None
    baseline = baseline_artifact.load()
    return platform_predictions(baseline, holdout, contract, env)[Y_PROB].to_numpy()


def _input_artifact_id(name: str) -> str | None:
    inputs = get_step_context().inputs.get(name) or []
    return str(inputs[0].id) if len(inputs) == 1 else None


def rejudge_stored(
    version: Any, env: str, contract: ModelContract
) -> tuple[GateDecision, dict[str, Any], dict[str, Any] | None]:
    """Judge a stored version again under today's policy of `env`, moving and recording nothing.

    As the gate does: the version's own model file (digest, signature and types checked, golden
    sample re-scored) is scored by the platform on the platform holdout its training run set aside
    (`holdout_set`), with its baseline for the baseline margin; every metric, the fairness summary
    and the comparison with today's holder of the stage `env` promotes to (production for local,
    unless the version holds that stage itself) are judged with today's policy, at the operating
    threshold the version was judged at in training (`version_threshold`).
    """
    champion_stage = (
        env
        if env in (ModelStages.STAGING.value, ModelStages.PRODUCTION.value)
        else ModelStages.PRODUCTION.value
    )
    # At the threshold it was judged and would be scored at (its verified training record).
    contract = at_version_threshold(contract, version, env)
    model = load_verified_model(version, contract.model_artifact, env)
    golden.verify_version(version, model)
    holdout_artifact = version_artifact(version, PlatformArtifact.HOLDOUT_SET, env)
    if holdout_artifact is None:
        raise HoldoutError(
            f"The training run of version {version.name} set no platform holdout aside "
            f"('{PlatformArtifact.HOLDOUT_SET.value}'), so it cannot be judged again; train a new "
            "version."
        )
    holdout = holdout_artifact.load()
    predictions = platform_predictions(model, holdout, contract, env)
    baseline_prob = baseline_risks(
        _baseline_artifact(version, contract, env), holdout, contract, env
    )
    decision, _, metrics, champion, _ = judge(
        predictions,
        holdout,
        contract,
        version.model.name,
        env,
        champion_stage,
        baseline_prob=baseline_prob,
        compare_with_champion=version.stage != champion_stage,
    )
    return decision, metrics, champion


@step
def validate_model(
    evaluation_data: pd.DataFrame,
    data_provenance: dict[str, Any],
    contract: ModelContract,
    model: Any = None,
    reported_metrics: dict[str, Any] | None = None,
    champion_stage: str = ModelStages.PRODUCTION.value,
    reject_on_failure: bool = True,
) -> Annotated[dict[str, Any], PlatformArtifact.GATE_DECISION]:
    """Judge the model version of this run on the platform holdout of `evaluation_data`.

    `model`, when given (training), must be the model artifact linked to the run's model version;
    it only orders the step after training. `reported_metrics` are data science's own numbers,
    shown in the report. Training runs reject a failing model (`reject_on_failure`); a promotion
    run only denies the promotion, because the same model may still fit a less demanding stage.
    """
    # A verdict is one decision: its reads of the trail and its records compare the trail with
    # the anchors once per trail head (`one_decision`).
    with one_decision():
        return judge_version(
            evaluation_data,
            data_provenance,
            contract,
            model,
            reported_metrics,
            champion_stage,
            reject_on_failure,
        )


def judge_version(
    evaluation_data: pd.DataFrame,
    data_provenance: dict[str, Any],
    contract: ModelContract,
    model: Any,
    reported_metrics: dict[str, Any] | None,
    champion_stage: str,
    reject_on_failure: bool,
) -> dict[str, Any]:
    """The body of `validate_model`, run inside its step."""
    governed = GovernedContext.current()
    context = get_step_context()
    version = context.model_version
    if version is None:
        raise RuntimeError("Model pipelines must declare a ZenML Model for the gate to judge.")
    # Whatever this run reused from earlier runs (data steps, the baseline) is judged only if its
    # stored files are what those runs signed: an edited reused holdout or baseline refuses.
    # Each must also come from a run of the same launch content (commit, data file, holdout).
    check_reused_outputs(context.pipeline_run.id, governed.env, governed.launch_sha256)
    # Every input is read again from checked bytes (what this run made: as its steps wrote it;
    # what it reused: as its run signed it), and judged as read here, not as ZenML loaded it.
    inputs = checked_inputs(context, governed.env)
    evaluation_data = _checked_value(inputs, "evaluation_data")
    data_provenance = _checked_value(inputs, "data_provenance")
    source_problem = data_source_problem(governed.env, data_provenance)
    if source_problem:
        raise DataSourceRefused(f"Refused: {source_problem}.")
    registration = version.run_metadata.get("registration")
    if governed.creates_version and (registration is not None or version.stage):
        # A training run judges only the version it created: never a registered version (its
        # verdict would tag the production holder rejected), whatever the pipeline names.
        raise ExistingVersionRefused(
            f"This training run's model version {version.name} is already registered"
            + (f" and holds {version.stage}" if version.stage else "")
            + ": a training run judges and registers only the new version it creates. Remove "
            "`version=` from the Model of the pipeline and its steps."
        )
    # Only a version no gate has registered is tagged rejected: whatever the pipeline says
    # (`reject_on_failure`, a step's Model pointed at a stage), a gate never retags a
    # registered version, such as the production holder.
    rejects = reject_on_failure and registration is None
    policy = load_policy(governed.env)
    approved = policy.evaluation_data.approved_file_sha256
    unapproved = unapproved_data_problem(
        governed.env, approved, {"this run's data file": governed.data_file_sha256 or None}
    )
    if unapproved:
        raise DataSourceRefused(f"Refused: {unapproved}.")
    key, fraction = holdout_inputs(governed.env, policy)
    refreshed, registered, judged_rows = False, None, None
    if registration is not None:  # a version trained in an earlier run: a promotion
        # Judged at the threshold it was trained and approved at, as it will be scored.
        recorded = recorded_training(version).details  # read once: threshold and data pin
        trained_file = f"the file version {version.name} was trained on (its verified record)"
        unapproved = unapproved_data_problem(
            governed.env, approved, {trained_file: recorded.get("data_file_sha256") or None}
        )
        if unapproved:
            raise DataSourceRefused(f"Refused: {unapproved}.")
        trained_problem = data_source_problem(
            governed.env,
            data_provenance,
            # Every training record names it (a provenance without a source: "None", refused).
            trained_on=str(recorded.get("data_source")) if "data_source" in recorded else None,
        )
        if trained_problem:
            raise DataSourceRefused(f"Refused: version {version.name}: {trained_problem}.")
        contract = at_version_threshold(contract, version, governed.env, recorded=recorded)
        registered, given = pinned_data_hashes(recorded, registration, data_provenance, governed)
        if registered and given == registered:
            # The pinned file again: its holdout rows must be the very rows training judged.
            judged_rows = recorded.get("evaluation_sha256")
        data_problem, refreshed = evaluation_data_problem(
            governed.env, registered, given, policy.evaluation_data.allow_refresh
        )
        if data_problem:
            raise DataSourceRefused(f"Refused: {data_problem}.")
    # Training: this run's own baseline; a promotion: the one the version's training run signed.
    baseline_artifact = (
        _baseline_artifact(version, contract, governed.env)
        if registration is not None
        else _own_run_artifact(context, contract.baseline_artifact, governed.env)
    )
    # The model file first, so that a replaced file is refused as such before anything else is
    # read: a registered version's through its signed pin (materializer, digest, signature and
    # type allow-list, before anything is deserialised), and the artifact the pin names is the
    # one whose training frames the leak check reads (never ZenML's newest link, which any run
    # or client call naming the version can change); training's own candidate from the bytes
    # checked as its step wrote them. ZenML's loader, which imports whatever materializer its
    # database names, is never used.
    if registration is not None:
        candidate, candidate_model = load_verified(version, contract.model_artifact, governed.env)
    else:
        candidate = _linked_artifact(version, contract.model_artifact)
        if candidate is None:
            raise HoldoutError(
                f"Model version {version.name} has no model artifact "
                f"{contract.model_artifact!r} for the gate to load and score."
            )
        candidate_model = None
    given = _input_artifact_id("model")
    if model is not None and given != str(candidate.id):
        raise HoldoutLeakError(
            f"The model handed to validate_model is not the {contract.model_artifact!r} artifact "
            f"of model version {version.name}; the gate judges the version's own model."
        )
    if candidate_model is None:
        candidate_model = checked(candidate, governed.env, context.pipeline_run.id).load()
    loaded: dict[str, Any] = {}
    baseline_record = baseline_artifact.artifact if baseline_artifact is not None else None
    for artifact in (candidate, baseline_record):
        if artifact is not None:
            frames = training_frames(artifact, governed.env, context.pipeline_run.id, loaded)
            assert_no_leak(frames, contract.patient_column, key, fraction)
    if registration is not None:
        # A registered version judged again (promotion): its stored model must still give the
        # answers it was registered with under this code, or the scores judged mean nothing.
        golden.verify_version(version, candidate_model)
    # The rows are checked against the data file before the model scores any of them.
    holdout = platform_holdout(evaluation_data, contract, key, fraction)
    check_holdout_rows(holdout, contract, governed, key, fraction)
    if judged_rows and frame_sha256(holdout) != judged_rows:
        raise HoldoutError(
            f"The holdout rows built from version {version.name}'s pinned data file (sha256 "
            f"{frame_sha256(holdout)}) are not the rows its training gate judged (sha256 "
            f"{judged_rows}, its verified training record): the code that builds them from the "
            "file (loading, cohort) changed their content since. A promotion re-judges the "
            "version on what it was judged on; promote a version trained with this code."
        )
    predictions = platform_predictions(candidate_model, holdout, contract, governed.env)
    evaluation = Evaluation(
        data_sha256=str(data_provenance.get("sha256") or ""),
        refreshed=refreshed,
        sha256=frame_sha256(holdout),
        rows=len(holdout),
        patients=int(holdout[contract.patient_column].nunique()),
        holdout_fraction=fraction,
    )
    baseline_prob = baseline_risks(baseline_artifact, holdout, contract, governed.env)
    decision, fairness, metrics, champion, baseline = judge(
        predictions,
        holdout,
        contract,
        version.model.name,
        governed.env,
        champion_stage,
        baseline_prob=baseline_prob,
        policy=policy,
    )
    report = render_model_report(
        ModelReportContext(
            model_name=version.model.name,
            model_version=version.name,
            environment=governed.env,
            y_true=predictions[Y_TRUE].to_numpy().astype(int),
            y_prob=predictions[Y_PROB].to_numpy(dtype=float),
            patient_ids=predictions[contract.patient_column].to_numpy(),
            operating_threshold=contract.operating_threshold,
            metrics=metrics,
            fairness=fairness,
            decision=decision,
            provenance={**data_provenance, "evaluation": evaluation.model_dump()},
            code_version={"git_sha": governed.git_sha, "git_dirty": governed.git_dirty},
            training_run_id=str(context.pipeline_run.id),
            baseline_metrics=baseline,
            predictors=model_card_predictors(candidate_model, contract),
        )
    )
    save_artifact(HTMLString(report), name=PlatformArtifact.MODEL_REPORT)
    save_artifact(fairness.table, name=PlatformArtifact.SUBGROUP_TABLE)
    # The holder the candidate was compared with; the promotion checks it still holds the stage.
    record = {
        **decision_record(decision, metrics, evaluation, baseline),
        "champion_version": champion["model_version"] if champion else None,
        # The SHA-256 of the bytes the candidate was built from and scored: registration and
        # promotion refuse a stored file that is not these bytes.
        GATE_MODEL_SHA256: loaded_digest(candidate_model),
        # The baseline scored, so that a re-judgement under the promotion lock uses the same one.
        BASELINE_ARTIFACT_ID: str(baseline_artifact.id) if baseline_artifact is not None else None,
        # The threshold judged; registration records it, and scoring uses it (not the config).
        OPERATING_THRESHOLD_KEY: contract.operating_threshold,
    }
    table = fairness.table.astype(object).where(fairness.table.notna(), None)
    subgroup_rows = [
        {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in row.items()}
        for row in json.loads(fairness.table.to_json(orient="records"))
    ]
    # The record first: ZenML's metadata mirrors it, so a refused record leaves the metadata as
    # it was, never ahead of the trail (`mlops check` would report that as an edit).
    from mlops_platform.governance.history_at import POLICY_HASH_KEY, effective_policy_sha256

    event = "gate_passed" if decision.passed else "gate_failed"
    record_version_event(
        governed.env,
        event,
        governed.actor,
        version,
        details={
            "failed_checks": [c.name for c in decision.failures()],
            # What it was judged against: each check's value and limit, and the effective policy
            # (a tightened or loosened threshold shows in the trail, as in promotion records).
            "limits": {
                c.name: [_finite(c.value), c.comparison, _finite(c.limit)] for c in decision.checks
            },
            # The platform's measurements and subgroup table, as reports and the outcome check
            # read them (ZenML's copies can be edited).
            "metrics": recorded_figures(metrics),
            "subgroups": subgroup_rows,
            POLICY_HASH_KEY: effective_policy_sha256(governed.env),
            "champion_version": champion["model_version"] if champion else None,
            "champion_stage": champion_stage,
            "pipeline_run_id": str(context.pipeline_run.id),
            # The code that judged (for a rejected version, the only record of its training's).
            "git_sha": governed.git_sha,
            "git_dirty": governed.git_dirty,
            "evaluation_sha256": evaluation.sha256,
            "data_sha256": evaluation.data_sha256,
            GATE_MODEL_SHA256: record[GATE_MODEL_SHA256],
            # A promotion on other data than the version's own, allowed by the policy.
            "evaluation_data_refreshed": refreshed,
            "registered_data_sha256": registered,
            # The version is tagged `rejected` next; `mlops check` finds the tag removed later.
            REJECTED_KEY: bool(rejects and not decision.passed),
        },
    )
    log_metadata(
        metadata={
            "gate_decision": record,
            # Kept per environment too, so a promotion's verdict does not hide training's.
            f"gate_decision_{decision.environment}": record,
            "gate_metrics": metrics,
            "gate_evaluation": evaluation.model_dump(),
            # The candidate's holdout risks came from an earlier gate on the same file and rows.
            "gate_scores_reused": bool(predictions.attrs.get("reused", False)),
            "reported_metrics": {k: v for k, v in (reported_metrics or {}).items() if k != "split"},
            "champion": champion or {"stage": champion_stage, "model_version": "none"},
            "subgroups": table.to_dict(orient="records"),
        },
        infer_model=True,
    )
    if governed.mlflow_run_id:
        tracking.log_text(governed.mlflow_uri, governed.mlflow_run_id, report, MODEL_REPORT_FILE)
        # The MLflow run is named after the model version and pipeline (rejected ones too), with
        # the key metrics and the verdict as columns of the runs table.
        tracking.log_values(
            governed.mlflow_uri,
            governed.mlflow_run_id,
            metrics={
                k: float(metrics[k])
                for k in KEY_METRICS
                if isinstance(metrics.get(k), int | float) and not isinstance(metrics[k], bool)
            },
            tags={
                "mlflow.runName": f"{version.model.name}-v{version.name}-{context.pipeline.name}",
                "model_version": version.name,
                "gate": "passed" if decision.passed else "failed",
            },
        )
    if not decision.passed:
        if rejects:
            Client().update_model_version(version.model.id, version.id, add_tags=[REJECTED_TAG])
            show_rejection(governed, version, str(context.pipeline_run.id), decision)
        raise GateFailedError(
            decision,
            f"Version {version.name} of {version.model.name}"
            + (" (tagged rejected: it is never promoted)" if rejects else ""),
        )
    return record


def _finite(value: float | None) -> float | None:
    """A figure as the trail can hold it (JSON has no NaN or infinity)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def recorded_figures(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The numeric entries of a gate's metrics as its audit record holds them (`_finite`)."""
    return {
        str(k): _finite(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


class GateRecordMismatch(RuntimeError):
    """A re-judgement cannot judge what the gate judged: other rows, another model or baseline
    file, or no gate step of the run to read them from."""


def judge_against_holder(
    version: Any,
    evaluation_data: pd.DataFrame,
    contract: ModelContract,
    env: str,
    champion_stage: str,
    gate_record: dict[str, Any],
) -> dict[str, Any]:
    """The gate's decision record again, judged against today's holder of ``champion_stage``.

    A promotion calls it under its lock when the stage changed after its gate ran
    (`governance.transaction.promote`), so that every candidate is judged against the holder it
    really replaces. Everything else is what the gate judged: the same holdout rows of the same
    evaluation data (their SHA-256 must equal the gate's), the same candidate file (its verified
    bytes must hash to the gate's ``model_sha256``) and the same baseline artifact (by the id the
    gate recorded), with the metric limits of `env`'s policy of today. Risks already computed in
    this process for the same file and rows are reused. Records and moves nothing.
    """
    policy = load_policy(env)
    key, fraction = holdout_inputs(env, policy)
    contract = at_version_threshold(contract, version, env, say=False)
    model = load_verified_model(version, contract.model_artifact, env)
    judged_file = gate_record.get(GATE_MODEL_SHA256)
    if not judged_file or loaded_digest(model) != judged_file:
        raise GateRecordMismatch(
            f"Version {version.name}'s stored model file (sha256 {loaded_digest(model)}) is not "
            f"the file its gate scored (sha256 {judged_file or 'not recorded'}); promote it again "
            "so that the gate scores the stored file."
        )
    holdout, predictions = score_holdout(model, evaluation_data, contract, key, fraction, env)
    evaluation = gate_record.get("evaluation") or {}
    if frame_sha256(holdout) != evaluation.get("sha256"):
        raise GateRecordMismatch(
            f"The holdout rows for re-judging version {version.name} (sha256 "
            f"{frame_sha256(holdout)}, fraction {fraction}) are not the rows its gate scored "
            f"(sha256 {evaluation.get('sha256') or 'not recorded'}, fraction "
            f"{evaluation.get('holdout_fraction')}): the evaluation data, or the holdout key or "
            "fraction of the platform, changed since the gate ran; promote it again."
        )
    baseline_prob = baseline_risks(
        _recorded_baseline(version, contract, gate_record, env), holdout, contract, env
    )
    decision, _, metrics, champion, baseline = judge(
        predictions,
        holdout,
        contract,
        version.model.name,
        env,
        champion_stage,
        baseline_prob=baseline_prob,
        policy=policy,
    )
    return {
        **decision_record(decision, metrics, None, baseline),
        "evaluation": evaluation,
        "champion_version": champion["model_version"] if champion else None,
        "champion": champion or {"stage": champion_stage, "model_version": "none"},
        BASELINE_ARTIFACT_ID: gate_record.get(BASELINE_ARTIFACT_ID),
        GATE_MODEL_SHA256: judged_file,
    }


def _recorded_baseline(
    version: Any, contract: ModelContract, gate_record: dict[str, Any], env: str
) -> Any:
    """The baseline artifact the gate scored (by its recorded id), never a newer one."""
    if not contract.baseline_artifact:
        return None
    recorded = gate_record.get(BASELINE_ARTIFACT_ID)
    linked = _baseline_artifact(version, contract, env)
    if not recorded or linked is None or str(linked.id) != str(recorded):
        raise GateRecordMismatch(
            f"Version {version.name}'s baseline {contract.baseline_artifact!r} is artifact "
            f"{linked.id if linked is not None else 'none'}, not the one its gate scored "
            f"({recorded or 'not recorded'}); promote it again."
        )
    return linked


def judge_run_again(
    version: Any, env: str, stage: str, gate_record: dict[str, Any], pipeline_run_id: str | None
) -> dict[str, Any]:
    """`judge_against_holder` on exactly what the platform gate of pipeline run
    ``pipeline_run_id`` judged: its evaluation data input and its model contract, read from that
    run's `validate_model` step in ZenML (never from the caller)."""
    from mlops_platform.governance.gate_origin import GATE_SOURCE

    try:
        run = Client().get_pipeline_run(pipeline_run_id) if pipeline_run_id else None
    except KeyError:
        run = None
    gates = [
        s
        for s in (run.steps.values() if run is not None else ())
        if s.spec is not None and s.spec.source.import_path == GATE_SOURCE
    ]
    if len(gates) != 1:
        raise GateRecordMismatch(
            f"Pipeline run {pipeline_run_id or '(none)'} has {len(gates)} platform gate steps, "
            f"so version {version.name} cannot be judged again on what its gate judged; "
            "promote it again."
        )
    (gate,) = gates
    evaluation = gate.regular_inputs.get("evaluation_data") or []
    contract = gate.config.parameters.get("contract")
    if len(evaluation) != 1 or not isinstance(contract, dict):
        raise GateRecordMismatch(
            f"The gate step of pipeline run {pipeline_run_id} has no single evaluation_data "
            "input and model contract parameter to judge again from; pass the contract as a "
            "parameter (as readmission_promotion does) and promote it again."
        )
    return judge_against_holder(
        version,
        # Made by that run itself, or reused by it from an earlier one (then checked).
        load_checked(evaluation[0], env, pipeline_run_id),
        ModelContract.model_validate(contract),
        env,
        stage,
        gate_record,
    )


def rejection_description(version_name: str, decision: GateDecision) -> str:
    """What the MLflow registry says about a rejected version: why, where its report is, and
    that it never moves."""
    return (
        f"Version {version_name} was rejected by the training gate. {decision.message()}\n"
        f"The model report is this run's {MODEL_REPORT_FILE}. A rejected version is never "
        "promoted; this registry entry holds no model."
    )


def show_rejection(
    governed: GovernedContext, version: Any, pipeline_run_id: str, decision: GateDecision
) -> None:
    """Make a rejected version visible: tag its ZenML run `rejected` and list it, with its
    report, in the MLflow model registry (tagged `rejected`, no loadable model).

    Visibility only: the gate has already refused the version (ZenML tag `rejected`, which the
    promotion path checks), so a failure here is logged and the gate failure still raised.
    """
    try:
        add_tags(tags=[REJECTED_TAG], run=pipeline_run_id)
        if governed.mlflow_run_id:
            tracking.register_rejected_version(
                governed.mlflow_uri,
                governed.mlflow_run_id,
                version.model.name,
                version.name,
                tags={
                    REJECTED_TAG: "true",
                    "gate": "failed",
                    "environment": decision.environment,
                    "failed_checks": ", ".join(c.name for c in decision.failures()),
                },
                description=rejection_description(version.name, decision),
            )
    except Exception as error:  # visibility must not hide the gate failure
        logger.warning(
            "Version %s was rejected, but showing it in the dashboards failed (%s: %s); it "
            "stays tagged %r in ZenML.",
            version.name,
            type(error).__name__,
            error,
            REJECTED_TAG,
        )
