"""Deliberately flawed models, trained inside a real ZenML pipeline, to prove each gate blocks.

The pipeline is the training pipeline with one step swapped: `train_probe_model` fits the real model
code and then makes it weak, miscalibrated, unfair or worse than the champion on purpose. Every
platform step (data gate, model gate, registration) is the real one.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from zenml import ArtifactConfig, pipeline, step
from zenml.enums import ArtifactType

from mlops_platform.evaluation.metrics import classification_metrics
from mlops_platform.steps.register_model import register_model
from mlops_platform.steps.validate_model import validate_model
from readmission.core.cohort import LABEL, features_and_label
from readmission.core.data import DataSettings
from readmission.core.features import ReadmissionFeatures
from readmission.core.model import train_readmission_model
from readmission.core.params import EvaluationParams, ModelParams, SplitParams
from readmission.names import Artifact
from readmission.pipelines.evaluation_data import readmission_contract, split_cohort
from readmission.pipelines.training import READMISSION_MODEL
from readmission.steps.evaluate_model import evaluate_model
from readmission.steps.make_golden_sample import make_golden_sample
from readmission.steps.train_model import train_baseline

UNFAIR_RACE = "AfricanAmerican"
PROBES = ("shuffled_labels", "unbalanced_weights", "unfair", "subsample")


class UnfairModel(ClassifierMixin, BaseEstimator):
    """Scores one race group with noise instead of the model: useless for exactly that group."""

    def __init__(self, model: BaseEstimator | None = None, group: str = UNFAIR_RACE) -> None:
        self.model = model
        self.group = group

    def fit(self, X: pd.DataFrame, y: pd.Series) -> UnfairModel:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        risk = self.model.predict_proba(X)[:, 1]
        in_group = (X["race"] == self.group).to_numpy()
        noise = np.random.default_rng(0).permutation(risk[in_group])
        risk = risk.copy()
        risk[in_group] = noise
        return np.column_stack([1 - risk, risk])


def probe_model(
    kind: str, train: pd.DataFrame, validation: pd.DataFrame, params: ModelParams
) -> BaseEstimator:
    if kind == "shuffled_labels":
        shuffled = train.assign(**{LABEL: np.random.default_rng(0).permutation(train[LABEL])})
        return train_readmission_model(shuffled, validation, params)
    if kind == "unbalanced_weights":
        features, label = features_and_label(train)
        return Pipeline(
            [
                ("features", ReadmissionFeatures()),
                ("boost", HistGradientBoostingClassifier(class_weight="balanced", random_state=0)),
            ]
        ).fit(features, label)
    if kind == "unfair":
        return UnfairModel(train_readmission_model(train, validation, params)).fit(
            train, train[LABEL]
        )
    if kind == "subsample":
        return train_readmission_model(train.sample(frac=0.08, random_state=0), validation, params)
    raise ValueError(f"Unknown probe {kind!r}; choose one of {PROBES}.")


@step
def train_probe_model(
    train: pd.DataFrame, validation: pd.DataFrame, params: ModelParams, kind: str
) -> Annotated[
    BaseEstimator, ArtifactConfig(name=Artifact.MODEL, artifact_type=ArtifactType.MODEL)
]:
    return probe_model(kind, train, validation, params)


@pipeline(name="gate_probe_training", model=READMISSION_MODEL)
def gate_probe_training(
    data: DataSettings,
    split: SplitParams,
    model: ModelParams,
    evaluation: EvaluationParams,
    kind: str,
) -> None:
    provenance, _, train, validation, test, holdout = split_cohort(data, split)
    candidate = train_probe_model(train, validation, model, kind)
    baseline = train_baseline(train, model)
    _, metrics, _ = evaluate_model(candidate, baseline, test, evaluation)
    decision = validate_model(
        evaluation_data=holdout,
        data_provenance=provenance,
        contract=readmission_contract(evaluation.operating_threshold),
        model=candidate,
        reported_metrics=metrics,
    )
    register_model(candidate, metrics, provenance, decision, make_golden_sample())


# --- attacks on the gate's inputs (issue: the gate measures what the platform chose) ----------


@step
def forge_report(test: pd.DataFrame) -> Annotated[dict[str, float], "forged_metrics"]:
    """Made-up probabilities (0.05 + 0.5 y) that look perfect: what the old gate trusted."""
    y = test[LABEL].to_numpy()
    return classification_metrics(y, 0.05 + 0.5 * y, 0.15)


@pipeline(name="forged_predictions_training", model=READMISSION_MODEL)
def forged_predictions_training(
    data: DataSettings, split: SplitParams, model: ModelParams, evaluation: EvaluationParams
) -> None:
    """A useless model (shuffled labels) handed to the gate with perfect-looking numbers."""
    provenance, _, train, validation, test, holdout = split_cohort(data, split)
    candidate = train_probe_model(train, validation, model, "shuffled_labels")
    forged = forge_report(test)
    decision = validate_model(
        evaluation_data=holdout,
        data_provenance=provenance,
        contract=readmission_contract(evaluation.operating_threshold),
        model=candidate,
        reported_metrics=forged,
    )
    register_model(candidate, forged, provenance, decision, make_golden_sample())


@step
def train_on_everything(
    train: pd.DataFrame, validation: pd.DataFrame, holdout: pd.DataFrame, params: ModelParams
) -> Annotated[
    BaseEstimator, ArtifactConfig(name=Artifact.MODEL, artifact_type=ArtifactType.MODEL)
]:
    """Fits on the holdout patients too, so the gate would measure memorised patients."""
    return train_readmission_model(
        pd.concat([train, holdout], ignore_index=True), validation, params
    )


@pipeline(name="leaky_training", model=READMISSION_MODEL)
def leaky_training(
    data: DataSettings, split: SplitParams, model: ModelParams, evaluation: EvaluationParams
) -> None:
    provenance, _, train, validation, _, holdout = split_cohort(data, split)
    candidate = train_on_everything(train, validation, holdout, model)
    decision = validate_model(
        evaluation_data=holdout,
        data_provenance=provenance,
        contract=readmission_contract(evaluation.operating_threshold),
        model=candidate,
    )
    register_model(candidate, {}, provenance, decision, make_golden_sample())
