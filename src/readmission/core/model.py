"""Train the readmission model (calibrated gradient boosting) and its logistic baseline.

Both models are sklearn estimators that take raw encounter frames: the feature transformer is
their first step, so whoever loads a model cannot apply different feature code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from readmission.core import uci
from readmission.core.cohort import LABEL, features_and_label
from readmission.core.features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    ReadmissionFeatures,
)
from readmission.core.history import KnownHistory
from readmission.core.params import ModelParams


class RiskModel(Protocol):
    """Anything with scikit-learn's `predict_proba`, such as the models trained here."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, one row per encounter, column 1 for readmission."""
        ...


class TrainingError(ValueError):
    """A training frame cannot be used to fit a model."""


def _labelled(frame: pd.DataFrame, role: str) -> tuple[pd.DataFrame, pd.Series]:
    if LABEL not in frame.columns:
        raise TrainingError(
            f"The {role} frame has no '{LABEL}' column. Build it with "
            "cohort.build_cohort before training."
        )
    features, label = features_and_label(frame)
    classes = sorted(label.unique().tolist())
    if classes != [0, 1]:
        raise TrainingError(
            f"The {role} frame must hold both outcomes (0 and 1) in '{LABEL}'; got {classes} "
            f"over {len(label)} encounters. Use a larger or less filtered cohort."
        )
    return features, label


def build_boosting_pipeline(params: ModelParams) -> Pipeline:
    """Unfitted feature transformer followed by gradient boosting.

    Categorical codes are split on as ordered numbers (ordered by training frequency) rather
    than through `categorical_features`: that option makes the fitted booster hold a
    `functools.partial`, which the platform's type allow-list refuses (a partial can wrap any
    function). On the UCI development file the two differ by about 0.001 ROC-AUC.
    """
    return Pipeline(
        [
            ("features", ReadmissionFeatures(min_category_count=params.min_category_count)),
            (
                "boosting",
                HistGradientBoostingClassifier(
                    learning_rate=params.learning_rate,
                    max_iter=params.max_iter,
                    max_leaf_nodes=params.max_leaf_nodes,
                    min_samples_leaf=params.min_samples_leaf,
                    l2_regularization=params.l2_regularization,
                    max_features=params.max_features,
                    early_stopping=False,
                    random_state=params.random_state,
                ),
            ),
        ]
    )


def train_readmission_model(
    train: pd.DataFrame, validation: pd.DataFrame, params: ModelParams
) -> CalibratedClassifierCV:
    """Fit boosting on `train` at natural prevalence, then calibrate it on `validation`.

    The fitted pipeline is frozen, so calibration only learns the probability mapping on
    patients the trees never saw; resampling is avoided because it distorts that mapping.
    OpenMP threads are capped at `params.threads` while fitting: on a shared 2-core machine an
    oversubscribed booster ran 3.5 times slower than a single-threaded one.
    """
    x_train, y_train = _labelled(train, "train")
    x_validation, y_validation = _labelled(validation, "validation")
    with threadpool_limits(limits=params.threads, user_api="openmp"):
        pipeline = build_boosting_pipeline(params).fit(x_train, y_train)
        calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline), method=params.calibration)
        return calibrated.fit(x_validation, y_validation)


def train_baseline_model(train: pd.DataFrame, params: ModelParams) -> Pipeline:
    """Logistic regression on the same features (categories one-hot), for comparison."""
    x_train, y_train = _labelled(train, "train")
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore"),
                list(CATEGORICAL_FEATURES),
            ),
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                list(NUMERIC_FEATURES),
            ),
        ]
    )
    baseline = Pipeline(
        [
            ("features", ReadmissionFeatures(min_category_count=params.min_category_count)),
            ("encode", encode),
            ("logistic", LogisticRegression(C=params.baseline_c, max_iter=2000)),
        ]
    )
    return baseline.fit(x_train, y_train)


def predict_risk(model: RiskModel, frame: pd.DataFrame) -> np.ndarray:
    """Probability of readmission within 30 days for each row of a raw encounter frame."""
    inputs = frame.drop(columns=[LABEL, uci.TARGET_COLUMN], errors="ignore")
    return np.asarray(model.predict_proba(inputs)[:, 1], dtype="float64")


def attach_known_history(model: Any, history: pd.DataFrame) -> None:
    """Let the feature steps of a loaded model draw on patient history known before scoring.

    The batch contract's `bind_context`: batch scoring calls it once with the model version's
    `patient_history` artifact before the first chunk.
    """
    known = KnownHistory(history)
    steps = list(_feature_steps(model))
    if not steps:
        raise TrainingError(
            f"{type(model).__name__} holds no ReadmissionFeatures step to attach patient history "
            "to; score with a model built by readmission.core.model."
        )
    for features in steps:
        features.attach_history(known)


def fitted_feature_lists(model: Any) -> tuple[list[str], list[str]]:
    """(numeric, categorical) features the fitted `ReadmissionFeatures` of `model` learned.

    Every feature step of a model built here is fitted once (calibration wraps the same frozen
    pipeline), so they agree; a model whose steps disagree, or that holds none, is refused.
    """
    found = {
        (tuple(numeric), tuple(categorical))
        for numeric, categorical in (step.fitted_features() for step in _feature_steps(model))
    }
    if len(found) != 1:
        raise TrainingError(
            f"{type(model).__name__} holds "
            + (
                "no fitted ReadmissionFeatures step"
                if not found
                else f"feature steps fitted with {len(found)} different feature lists"
            )
            + "; its features cannot be listed. Describe a model built by readmission.core.model."
        )
    numeric, categorical = found.pop()
    return list(numeric), list(categorical)


def _feature_steps(estimator: Any) -> Iterator[ReadmissionFeatures]:
    if isinstance(estimator, ReadmissionFeatures):
        yield estimator
    elif isinstance(estimator, Pipeline):
        for _, step in estimator.steps:
            yield from _feature_steps(step)
    elif isinstance(estimator, FrozenEstimator):
        yield from _feature_steps(estimator.estimator)
    elif isinstance(estimator, CalibratedClassifierCV):
        for calibrated in getattr(estimator, "calibrated_classifiers_", []):
            yield from _feature_steps(calibrated.estimator)
