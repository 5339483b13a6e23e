"""Training, prediction, leakage and skops storage of the readmission models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _ml_frames import raw_encounters
from pydantic import ValidationError
from sklearn.calibration import CalibratedClassifierCV
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from mlops_platform.infra.settings import allowed_model_types
from mlops_platform.materializers.skops_model import dumps_model, loads_model
from mlops_platform.trust.artifacts import model_types, refused_types
from readmission.core import uci
from readmission.core.cohort import LABEL, build_cohort, split_by_patient
from readmission.core.features import ReadmissionFeatures
from readmission.core.history import history_table
from readmission.core.model import (
    TrainingError,
    attach_known_history,
    predict_risk,
    train_baseline_model,
    train_readmission_model,
)
from readmission.core.params import ModelParams, SplitParams

SMALL = ModelParams(max_iter=30, max_leaf_nodes=7, min_samples_leaf=10, min_category_count=5)


@pytest.fixture(scope="module")
def splits() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    cohort = build_cohort(raw_encounters(n_rows=4000, n_patients=1500, seed=21))
    return split_by_patient(
        cohort, SplitParams(seed=3, test_fraction=0.25, validation_fraction=0.25)
    )


@pytest.fixture(scope="module")
def model(splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> CalibratedClassifierCV:
    train, validation, _ = splits
    return train_readmission_model(train, validation, SMALL)


@pytest.fixture(scope="module")
def baseline(splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> object:
    return train_baseline_model(splits[0], SMALL)


def test_model_predicts_probabilities_from_raw_frames(
    model: CalibratedClassifierCV, splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    test = splits[2]

    risk = predict_risk(model, test)

    assert risk.shape == (len(test),)
    assert ((risk >= 0.0) & (risk <= 1.0)).all()
    assert np.unique(risk).size > 10


def test_model_finds_the_signal(
    model: CalibratedClassifierCV,
    baseline: object,
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    test = splits[2]

    assert roc_auc_score(test[LABEL], predict_risk(model, test)) > 0.6
    assert roc_auc_score(test[LABEL], predict_risk(baseline, test)) > 0.6


def test_model_is_the_feature_pipeline_calibrated_as_configured(
    model: CalibratedClassifierCV, splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    train, validation, _ = splits
    isotonic = train_readmission_model(
        train, validation, SMALL.model_copy(update={"calibration": "isotonic"})
    )

    assert isinstance(model.estimator.estimator.steps[0][1], ReadmissionFeatures)
    assert SMALL.calibration == "sigmoid"
    assert type(model.calibrated_classifiers_[0].calibrators[0]).__name__ == "_SigmoidCalibration"
    assert isinstance(isotonic.calibrated_classifiers_[0].calibrators[0], IsotonicRegression)


def test_outcome_columns_never_reach_a_prediction(
    model: CalibratedClassifierCV, splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    test = splits[2]
    rng = np.random.default_rng(0)
    shuffled = test.assign(
        **{
            uci.TARGET_COLUMN: rng.permutation(test[uci.TARGET_COLUMN].to_numpy()),
            LABEL: rng.permutation(test[LABEL].to_numpy()),
        }
    )
    assert not shuffled[LABEL].equals(test[LABEL])

    expected = predict_risk(model, test)

    np.testing.assert_array_equal(predict_risk(model, shuffled), expected)
    np.testing.assert_array_equal(
        predict_risk(model, test.drop(columns=[uci.TARGET_COLUMN, LABEL])), expected
    )


@pytest.mark.parametrize("which", ["model", "baseline"])
def test_skops_round_trip_needs_only_allow_listed_types(
    which: str,
    request: pytest.FixtureRequest,
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    fitted = request.getfixturevalue(which)
    data = dumps_model(fitted)

    assert refused_types(data, allowed_model_types("local")) == []
    loaded = loads_model(data)
    np.testing.assert_array_equal(predict_risk(loaded, splits[2]), predict_risk(fitted, splits[2]))


def test_the_allow_list_is_exactly_what_the_models_contain(
    model: CalibratedClassifierCV,
    baseline: object,
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    """Nothing is listed "just in case": every name on `allowed_types` is used by the model (with
    either calibration the training config accepts) or the baseline; names only stored versions
    still hold are on `retained_types`, never on both lists."""
    from mlops_platform.config import load_layered
    from mlops_platform.infra.settings import SerializationSettings

    isotonic = train_readmission_model(
        splits[0], splits[1], SMALL.model_copy(update={"calibration": "isotonic"})
    )
    used = set()
    for fitted in (model, isotonic, baseline):
        used |= set(model_types(dumps_model(fitted)))
    listed = SerializationSettings.model_validate(
        load_layered("platform", "local")["serialization"]
    )
    assert used == set(listed.allowed_types)
    assert not set(listed.retained_types) & used
    assert allowed_model_types("local") == set(listed.allowed_types) | set(listed.retained_types)


def test_training_needs_the_label_and_both_outcomes(
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    train, validation, _ = splits

    with pytest.raises(TrainingError, match=LABEL):
        train_readmission_model(train.drop(columns=[LABEL]), validation, SMALL)
    with pytest.raises(TrainingError, match="both outcomes"):
        train_baseline_model(train.assign(**{LABEL: 0}), SMALL)


def test_model_params_refuse_unknown_keys_and_methods() -> None:
    with pytest.raises(ValidationError):
        ModelParams(n_estimators=10)
    with pytest.raises(ValidationError):
        ModelParams(calibration="platt")


def test_known_history_reaches_the_loaded_models_features(
    model: CalibratedClassifierCV, splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    shuffled = splits[2].sample(frac=1.0, random_state=2)
    chunks = [shuffled.iloc[i : i + 25] for i in range(0, len(shuffled), 25)]
    whole = predict_risk(model, shuffled)
    loaded = loads_model(dumps_model(model))
    unbound = np.concatenate([predict_risk(loaded, chunk) for chunk in chunks])

    attach_known_history(loaded, history_table(shuffled))
    bound = np.concatenate([predict_risk(loaded, chunk) for chunk in chunks])

    np.testing.assert_allclose(bound, whole, rtol=0, atol=1e-12)
    assert not np.allclose(unbound, whole)


def test_known_history_needs_the_feature_step(
    baseline: object, splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    copy = loads_model(dumps_model(baseline))
    attach_known_history(copy, history_table(splits[0]))
    assert len(copy.named_steps["features"]._known_history) == len(splits[0])
    with pytest.raises(TrainingError, match="holds no ReadmissionFeatures step"):
        attach_known_history(IsotonicRegression(), history_table(splits[0]))
