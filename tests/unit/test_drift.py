"""Drift monitor: PSI, reference profiles, streaming accumulation and the decision rule.

The population is synthetic (generated here, shaped like the engineered UCI features) and the
"model" is a fixed logistic function of it, so every expected outcome is known by construction.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_platform.config import ENVIRONMENTS, ConfigError
from mlops_platform.evaluation.drift import (
    MISSING_CATEGORY,
    OTHER_CATEGORY,
    DriftAccumulator,
    DriftConfigError,
    DriftInputError,
    DriftResult,
    DriftThresholds,
    ReferenceProfile,
    build_reference,
    load_drift_thresholds,
    psi,
)

NUMERIC = (
    "age_years",
    "number_inpatient",
    "num_medications",
    "time_in_hospital",
    "num_lab_procedures",
    "num_procedures",
    "number_outpatient",
    "number_emergency",
    "number_diagnoses",
)
CATEGORICAL = (
    "admission_type",
    "discharge_group",
    "diag_1_group",
    "race",
    "gender",
    "A1Cresult",
    "diabetesMed",
)
AGE_MIDPOINTS = np.arange(5.0, 100.0, 10.0)
AGE_SHARES = np.array([0.002, 0.007, 0.016, 0.037, 0.095, 0.17, 0.22, 0.256, 0.169, 0.028])
ADMISSION = {"emergency": 0.53, "urgent": 0.18, "elective": 0.19, "missing": 0.10}
DISCHARGE = {
    "home": 0.60,
    "transfer_facility": 0.20,
    "home_health": 0.13,
    "other": 0.06,
    "left_against_advice": 0.01,
}
RACE = {
    "Caucasian": 0.75,
    "AfricanAmerican": 0.19,
    "?": 0.019,
    "Hispanic": 0.02,
    "Other": 0.015,
    "Asian": 0.006,
}
A1C = {"None": 0.83, ">8": 0.08, "Norm": 0.05, ">7": 0.04}
# 30 diagnosis groups with Zipf-like shares: more than max_categories, so "__other__" is used.
DIAGNOSES = [f"icd_group_{index:02d}" for index in range(30)]
DIAGNOSIS_SHARES = 1.0 / np.arange(1, 31)


def population(rows: int, seed: int) -> pd.DataFrame:
    """Encounters drawn from one fixed population; ``seed`` only changes which ones."""
    rng = np.random.default_rng(seed)
    age = rng.choice(AGE_MIDPOINTS, size=rows, p=AGE_SHARES / AGE_SHARES.sum())
    labs = rng.normal(43.0, 19.0, size=rows).round()
    labs[rng.random(rows) < 0.02] = np.nan
    return pd.DataFrame(
        {
            "age_years": age,
            "number_inpatient": rng.negative_binomial(1, 0.6, size=rows),
            "num_medications": rng.poisson(10 + age / 10),
            "time_in_hospital": np.clip(1 + rng.poisson(3.4, size=rows), 1, 14),
            "num_lab_procedures": labs,
            "num_procedures": rng.poisson(1.3, size=rows),
            "number_outpatient": rng.negative_binomial(1, 0.8, size=rows),
            "number_emergency": rng.negative_binomial(1, 0.9, size=rows),
            "number_diagnoses": np.clip(rng.poisson(7.4, size=rows), 1, 16),
            "admission_type": rng.choice(list(ADMISSION), size=rows, p=list(ADMISSION.values())),
            "discharge_group": rng.choice(list(DISCHARGE), size=rows, p=list(DISCHARGE.values())),
            "diag_1_group": rng.choice(
                DIAGNOSES, size=rows, p=DIAGNOSIS_SHARES / DIAGNOSIS_SHARES.sum()
            ),
            "race": rng.choice(list(RACE), size=rows, p=list(RACE.values())),
            "gender": rng.choice(["Female", "Male"], size=rows, p=[0.54, 0.46]),
            "A1Cresult": rng.choice(list(A1C), size=rows, p=list(A1C.values())),
            "diabetesMed": rng.choice(["Yes", "No"], size=rows, p=[0.77, 0.23]),
        }
    ).astype({name: "str" for name in CATEGORICAL})


def score(frame: pd.DataFrame) -> np.ndarray:
    """A fixed 'model': readmission risk rising with age, prior stays and transfers."""
    logit = (
        -2.4
        + 0.025 * (frame["age_years"] - 65)
        + 0.35 * frame["number_inpatient"]
        + 0.02 * (frame["num_medications"] - 16)
        + 0.04 * (frame["time_in_hospital"] - 4)
        + 0.4 * (frame["discharge_group"] == "transfer_facility")
        + 0.25 * (frame["admission_type"] == "emergency")
    )
    return 1.0 / (1.0 + np.exp(-logit.to_numpy(dtype="float64")))


def shifted_batch(rows: int) -> pd.DataFrame:
    """Only emergency admissions of patients over 70: a filter of the same population."""
    pool = population(10 * rows, seed=99)
    chosen = pool[(pool["admission_type"] == "emergency") & (pool["age_years"] > 70)]
    return chosen.iloc[:rows].reset_index(drop=True)


def accumulate(reference: ReferenceProfile, batch: pd.DataFrame, chunks: int = 1) -> DriftResult:
    return accumulator_for(reference, batch, chunks).result(load_drift_thresholds("production"))


def accumulator_for(
    reference: ReferenceProfile, batch: pd.DataFrame, chunks: int = 1
) -> DriftAccumulator:
    accumulator = DriftAccumulator(reference)
    for rows in np.array_split(np.arange(len(batch)), chunks):
        part = batch.iloc[rows]
        accumulator.update(part, score(part))
    return accumulator


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    frame = population(50_000, seed=0)
    return build_reference(frame, score(frame), NUMERIC, CATEGORICAL)


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_from_the_reference_population_raise_no_alarm(
    reference: ReferenceProfile, seed: int, env: str
) -> None:
    thresholds = load_drift_thresholds(env)
    batch = population(20_000, seed=seed)
    result = accumulator_for(reference, batch).result(thresholds)

    assert not result.drift_detected, result.reasons
    assert not result.insufficient_data
    assert result.reasons == []
    assert result.drifted_features == []
    assert max(result.feature_psi.values()) < thresholds.feature_psi / 10
    assert result.prediction_psi < thresholds.prediction_psi / 10
    assert result.prediction_ks_statistic < thresholds.prediction_ks_min_statistic / 2


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_emergency_admissions_over_70_are_flagged_and_named(
    reference: ReferenceProfile, env: str
) -> None:
    thresholds = load_drift_thresholds(env)
    result = accumulator_for(reference, shifted_batch(20_000)).result(thresholds)

    assert result.drift_detected
    assert {"age_years", "admission_type"} <= set(result.drifted_features)
    assert "discharge_group" not in result.drifted_features
    assert any(reason.startswith("PSI of age_years ") for reason in result.reasons)
    assert any("admission_type" in reason for reason in result.reasons)
    assert thresholds.ks_exceeded(result.prediction_ks_statistic, result.prediction_ks_pvalue)
    psi_values = [result.feature_psi[name] for name in result.drifted_features]
    assert psi_values == sorted(psi_values, reverse=True)


def test_an_age_shift_alone_is_caught_by_the_prediction_rules(reference: ReferenceProfile) -> None:
    """Only one of 16 features moves, so rule 1 stays quiet; the predictions still move."""
    thresholds = load_drift_thresholds("production")
    premise = "one drifted feature must be within the allowed share for this test"
    assert not thresholds.share_exceeded(1 / len(reference.features)), premise
    pool = population(200_000, seed=5)
    batch = pool[pool["age_years"] > 70].iloc[:20_000]

    result = accumulator_for(reference, batch).result(thresholds)

    assert result.drifted_features == ["age_years"]
    assert not thresholds.share_exceeded(result.share_drifted)
    assert result.drift_detected
    assert any("within the" in reason for reason in result.reasons)


def test_a_significant_but_tiny_prediction_shift_is_not_drift(reference: ReferenceProfile) -> None:
    """Risk scores 6% higher: the KS p-value is tiny, but the shift is below the effect size."""
    thresholds = load_drift_thresholds("production")
    batch = population(20_000, seed=1)
    accumulator = DriftAccumulator(reference)
    accumulator.update(batch, score(batch) * 1.06)

    result = accumulator.result(thresholds)

    premise = "this batch must be significant by p-value alone, and below the effect size"
    assert result.prediction_ks_pvalue < thresholds.prediction_ks_pvalue, premise
    assert result.prediction_ks_statistic < thresholds.prediction_ks_min_statistic, premise
    assert not result.drift_detected, result.reasons


def test_seven_chunks_give_the_same_result_as_one_update(reference: ReferenceProfile) -> None:
    batch = shifted_batch(20_000)
    whole = accumulate(reference, batch, chunks=1)
    streamed = accumulate(reference, batch, chunks=7)
    thresholds = whole.thresholds

    assert streamed.feature_psi == whole.feature_psi
    assert streamed.batch_proportions == whole.batch_proportions
    assert streamed.prediction_psi == whole.prediction_psi
    assert thresholds.ks_exceeded(
        streamed.prediction_ks_statistic, streamed.prediction_ks_pvalue
    ) == thresholds.ks_exceeded(whole.prediction_ks_statistic, whole.prediction_ks_pvalue)
    # The reservoir draws one number per row in row order, so it is identical as well.
    assert streamed == whole


def test_accumulator_state_does_not_grow_with_rows(reference: ReferenceProfile) -> None:
    accumulator = DriftAccumulator(reference, reservoir_size=1000)
    size_at_start = accumulator.state_nbytes
    chunk = population(20_000, seed=4)
    for _ in range(10):
        accumulator.update(chunk, score(chunk))
        assert accumulator.sample_size <= 1000
        assert accumulator.state_nbytes == size_at_start

    assert accumulator.rows == 200_000
    assert accumulator.sample_size == 1000


def test_reservoir_is_a_uniform_sample_of_all_rows() -> None:
    """Predictions equal to the row's position in the stream, reference uniform on [0, 1):
    a fair sample passes the KS test, one biased towards early or late rows does not."""
    frame = population(5000, seed=6)
    uniform = (np.arange(5000) + 0.5) / 5000
    reference = build_reference(frame, uniform, NUMERIC, CATEGORICAL)
    accumulator = DriftAccumulator(reference, reservoir_size=2000, seed=3)
    rows = 100_000
    chunk = population(10_000, seed=7)
    for start in range(0, rows, len(chunk)):
        accumulator.update(chunk, (start + np.arange(len(chunk))) / rows)

    result = accumulator.result(load_drift_thresholds("production"))

    assert accumulator.sample_size == 2000
    assert result.prediction_ks_pvalue > 0.001
    assert result.prediction_psi < 0.05


def test_psi_of_a_hand_computed_example() -> None:
    expected = np.array([0.5, 0.5])
    actual = np.array([0.25, 0.75])
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)

    assert psi(expected, actual) == pytest.approx(by_hand, rel=1e-12)
    assert psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(by_hand, rel=1e-12)
    assert psi(actual, expected) == pytest.approx(by_hand, rel=1e-12)


def test_psi_floors_empty_bins_at_epsilon() -> None:
    by_hand = (0.1 - 1e-4) * math.log(0.1 / 1e-4) + (0.4 - 0.5) * math.log(0.4 / 0.5)

    value = psi(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.4, 0.1]), epsilon=1e-4)

    assert value == pytest.approx(by_hand, rel=1e-12)


def test_psi_of_identical_distributions_is_zero() -> None:
    proportions = np.array([0.1, 0.2, 0.0, 0.7])
    assert psi(proportions, proportions) == 0.0
    assert psi(proportions, proportions * 1000) == 0.0


@pytest.mark.parametrize(
    ("expected", "actual", "message"),
    [
        ([0.5, 0.5], [1.0], "same non-zero length"),
        ([0.5, 0.5], [-0.5, 1.5], "non-negative"),
        ([0.5, 0.5], [0.0, 0.0], "not all zero"),
        ([0.5, np.nan], [0.5, 0.5], "finite"),
    ],
)
def test_psi_rejects_unusable_inputs(expected: list, actual: list, message: str) -> None:
    with pytest.raises(DriftInputError, match=message):
        psi(np.array(expected), np.array(actual))


def test_numeric_bins_are_right_closed_deciles_with_a_missing_bin() -> None:
    """A count column that is mostly 0 gets (-inf, 0] as its first bin, not an empty one."""
    frame = pd.DataFrame({"visits": [0, 0, 0, 0, 0, 0, 0, 1, 2, np.nan], "kind": ["a"] * 10})
    profile = build_reference(frame, np.full(10, 0.2), ["visits"], ["kind"]).features[0]

    assert profile.edges == [-math.inf, 0.0, 1.0, 2.0, math.inf]
    assert profile.proportions == pytest.approx([0.7, 0.1, 0.1, 0.0, 0.1])
    assert profile.bin_labels() == ["≤ 0", "(0, 1]", "(1, 2]", "> 2", "missing"]


def test_new_missing_values_and_values_beyond_the_reference_range_count_as_drift() -> None:
    frame = pd.DataFrame({"visits": np.arange(1000.0) % 10, "kind": ["a"] * 1000})
    reference = build_reference(frame, np.full(1000, 0.2), ["visits"], ["kind"])
    batch = pd.DataFrame({"visits": [np.nan] * 500 + [50.0] * 500, "kind": ["a"] * 1000})

    accumulator = DriftAccumulator(reference)
    accumulator.update(batch, np.full(1000, 0.2))
    result = accumulator.result(load_drift_thresholds("production"))

    assert result.batch_proportions["visits"][-2:] == [0.5, 0.5]
    assert result.drifted_features == ["visits"]


def test_top_categories_are_kept_and_unseen_ones_go_to_other() -> None:
    values = ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + [None] * 5
    frame = pd.DataFrame({"kind": pd.Series(values, dtype="str"), "x": np.zeros(100)})
    reference = build_reference(frame, np.full(100, 0.1), ["x"], ["kind"], max_categories=3)
    profile = reference.features[1]

    assert profile.categories == ["a", "b", "c", OTHER_CATEGORY]
    assert profile.proportions == pytest.approx([0.5, 0.3, 0.15, 0.05])

    accumulator = DriftAccumulator(reference)
    batch = pd.DataFrame({"kind": ["a", "zebra", None, "c"], "x": np.zeros(4)})
    accumulator.update(batch, np.full(4, 0.1))
    assert accumulator.result(load_drift_thresholds("production")).batch_proportions[
        "kind"
    ] == pytest.approx([0.25, 0.0, 0.25, 0.5])


def test_missing_categorical_values_form_their_own_category() -> None:
    frame = pd.DataFrame({"kind": ["a", None, None, "b"] * 25, "x": np.zeros(100)})
    profile = build_reference(frame, np.full(100, 0.1), ["x"], ["kind"]).features[1]

    assert profile.categories == [MISSING_CATEGORY, "a", "b", OTHER_CATEGORY]


def test_integer_categorical_columns_are_compared_as_text() -> None:
    frame = pd.DataFrame({"code": np.arange(100) % 4 + 1, "x": np.zeros(100)})
    reference = build_reference(frame, np.full(100, 0.1), ["x"], ["code"])
    accumulator = DriftAccumulator(reference)
    accumulator.update(frame, np.full(100, 0.1))

    assert reference.features[1].categories == ["1", "2", "3", "4", OTHER_CATEGORY]
    assert accumulator.result(load_drift_thresholds("production")).feature_psi["code"] == 0.0


def test_reference_survives_a_json_round_trip(reference: ReferenceProfile) -> None:
    text = json.dumps(reference.as_dict(), allow_nan=False)
    restored = ReferenceProfile.from_dict(json.loads(text))

    assert restored == reference
    batch = shifted_batch(5000)
    assert accumulate(restored, batch) == accumulate(reference, batch)


def test_an_unknown_profile_version_is_rejected(reference: ReferenceProfile) -> None:
    stored = reference.as_dict() | {"version": 99}
    with pytest.raises(DriftInputError, match="version 99"):
        ReferenceProfile.from_dict(stored)


def test_reference_sample_is_capped_and_deterministic() -> None:
    frame = population(8000, seed=8)
    predictions = score(frame)
    first = build_reference(frame, predictions, NUMERIC, CATEGORICAL, prediction_sample=500)
    again = build_reference(frame, predictions, NUMERIC, CATEGORICAL, prediction_sample=500)
    other = build_reference(frame, predictions, NUMERIC, CATEGORICAL, prediction_sample=500, seed=1)

    assert len(first.prediction_sample) == 500
    assert first == again
    assert first.prediction_sample != other.prediction_sample
    assert set(first.prediction_sample) <= set(predictions.tolist())


def test_small_batches_are_reported_as_insufficient_data(reference: ReferenceProfile) -> None:
    thresholds = load_drift_thresholds("production")
    result = accumulate(reference, shifted_batch(thresholds.min_rows - 1))

    assert result.insufficient_data
    assert not result.drift_detected
    assert result.reasons[0].startswith("Insufficient data:")
    assert "age_years" in result.drifted_features


def test_an_empty_accumulator_reports_no_statistics(reference: ReferenceProfile) -> None:
    result = DriftAccumulator(reference).result(load_drift_thresholds("production"))

    assert result.insufficient_data and not result.drift_detected
    assert math.isnan(result.prediction_psi)
    metrics = result.metrics()
    assert metrics["drift_rows"] == 0.0
    assert "drift_prediction_psi" not in metrics


def test_metrics_are_flat_numbers_with_one_psi_per_feature(reference: ReferenceProfile) -> None:
    result = accumulate(reference, shifted_batch(5000))
    metrics = result.metrics()

    assert all(isinstance(value, float) for value in metrics.values())
    assert metrics["drift_detected"] == 1.0
    assert metrics["drift_psi_age_years"] == result.feature_psi["age_years"]
    assert {f"drift_psi_{name}" for name in (*NUMERIC, *CATEGORICAL)} <= set(metrics)


def test_update_rejects_bad_chunks_without_counting_them(reference: ReferenceProfile) -> None:
    accumulator = DriftAccumulator(reference)
    batch = population(100, seed=10)
    with pytest.raises(DriftInputError, match="diag_1_group"):
        accumulator.update(batch.drop(columns="diag_1_group"), score(batch))
    with pytest.raises(DriftInputError, match="one value per row"):
        accumulator.update(batch, score(batch)[:10])
    with pytest.raises(DriftInputError, match="NaN or infinite"):
        accumulator.update(batch, np.full(100, np.nan))
    with pytest.raises(DriftInputError, match="non-numeric"):
        accumulator.update(batch.assign(age_years="old"), score(batch))

    assert accumulator.rows == 0


def test_build_reference_rejects_a_feature_listed_twice() -> None:
    frame = population(100, seed=11)
    with pytest.raises(DriftInputError, match="age_years"):
        build_reference(frame, score(frame), ["age_years"], ["age_years"])


def _write_monitoring(directory: Path, drift: dict[str, object]) -> Path:
    (directory / "base").mkdir(parents=True)
    (directory / "base" / "monitoring.yaml").write_text(json.dumps({"drift": drift}))
    return directory


def _base_drift_section() -> dict[str, object]:
    return asdict(load_drift_thresholds("production"))


def test_thresholds_load_for_every_environment() -> None:
    for env in ENVIRONMENTS:
        assert isinstance(load_drift_thresholds(env), DriftThresholds)
    with pytest.raises(ConfigError, match="Unknown environment"):
        load_drift_thresholds("qa")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"share_of_drifted_features": 1.0}, "share_of_drifted_features"),
        ({"feature_psi": 5.0}, "feature_psi"),
        ({"prediction_ks_min_statistic": 0.9}, "prediction_ks_min_statistic"),
        ({"min_rows": 0}, "min_rows"),
        ({"enabled": False}, "enabled"),
    ],
)
def test_thresholds_that_would_switch_a_rule_off_are_rejected(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    directory = _write_monitoring(tmp_path, _base_drift_section() | change)
    with pytest.raises(DriftConfigError, match=message):
        load_drift_thresholds("production", directory)


def test_a_missing_threshold_is_rejected(tmp_path: Path) -> None:
    section = _base_drift_section()
    del section["prediction_psi"]
    with pytest.raises(DriftConfigError, match="prediction_psi"):
        load_drift_thresholds("staging", _write_monitoring(tmp_path, section))
