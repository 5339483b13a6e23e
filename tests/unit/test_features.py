"""The feature transformer: ICD-9 chapters, codes, history without look-ahead, no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _ml_frames import raw_encounters
from sklearn.base import clone

from readmission.core import features as features_module
from readmission.core import uci
from readmission.core.cohort import build_cohort, features_and_label
from readmission.core.features import (
    ADMISSION_SOURCE_GROUPS,
    ADMISSION_TYPE_GROUPS,
    CATEGORICAL_FEATURES,
    DISCHARGE_GROUPS,
    FEATURE_NAMES,
    HISTORY_FEATURES,
    FeatureError,
    ReadmissionFeatures,
    icd9_chapter,
)
from tests.feature_change import NEW_FEATURE, add_feature


@pytest.fixture(scope="module")
def inputs() -> pd.DataFrame:
    return features_and_label(build_cohort(raw_encounters(n_rows=500, n_patients=120, seed=7)))[0]


@pytest.fixture(scope="module")
def fitted(inputs: pd.DataFrame) -> ReadmissionFeatures:
    return ReadmissionFeatures(min_category_count=5).fit(inputs)


@pytest.mark.parametrize(
    ("code", "chapter"),
    [
        ("428", "circulatory"),
        ("785", "circulatory"),
        ("250.83", "diabetes"),
        ("250", "diabetes"),
        ("V57", "supplementary"),
        ("E909", "supplementary"),
        ("?", "missing"),
        ("786", "respiratory"),
        ("577", "digestive"),
        ("820.01", "injury"),
        ("715", "musculoskeletal"),
        ("599", "genitourinary"),
        ("162", "neoplasms"),
        ("38", "infectious"),
        ("780", "other"),
    ],
)
def test_icd9_chapter(code: str, chapter: str) -> None:
    assert icd9_chapter(pd.Series([code], dtype="string")).tolist() == [chapter]


@pytest.mark.parametrize(
    ("groups", "codes"),
    [
        (ADMISSION_TYPE_GROUPS, uci.ADMISSION_TYPE_IDS),
        (DISCHARGE_GROUPS, uci.DISCHARGE_DISPOSITION_IDS),
        (ADMISSION_SOURCE_GROUPS, uci.ADMISSION_SOURCE_IDS),
    ],
)
def test_code_groups_place_every_known_code_once(
    groups: dict[str, tuple[int, ...]], codes: tuple[int, ...]
) -> None:
    grouped = [code for members in groups.values() for code in members]
    assert sorted(grouped) == sorted(codes)


def test_output_has_stable_numeric_columns(
    fitted: ReadmissionFeatures, inputs: pd.DataFrame
) -> None:
    out = fitted.transform(inputs)

    assert list(out.columns) == list(FEATURE_NAMES)
    assert list(fitted.get_feature_names_out()) == list(FEATURE_NAMES)
    assert out.index.equals(inputs.index)
    assert all(dtype == "float64" for dtype in out.dtypes)
    assert not out.isna().any().any()


def test_identifiers_and_outcome_are_not_features() -> None:
    names = set(FEATURE_NAMES)

    assert not names & {uci.ENCOUNTER_ID, uci.PATIENT_ID, uci.TARGET_COLUMN, "readmitted_30d"}
    assert not any("readmit" in name for name in names)


def test_output_does_not_depend_on_the_outcome_column(
    fitted: ReadmissionFeatures, inputs: pd.DataFrame
) -> None:
    outcomes = np.random.default_rng(0).choice(uci.TARGET_VALUES, size=len(inputs))
    with_outcome = inputs.assign(**{uci.TARGET_COLUMN: outcomes})

    pd.testing.assert_frame_equal(fitted.transform(with_outcome), fitted.transform(inputs))


def test_engineered_values_on_a_known_encounter(fitted: ReadmissionFeatures) -> None:
    raw = raw_encounters(n_rows=1, seed=8)
    raw.loc[0, list(uci.MEDICATIONS)] = "No"
    raw.loc[0, ["insulin", "metformin", "glipizide"]] = ["Up", "Down", "Steady"]
    raw.loc[0, ["age", "diag_1", "diag_2", "diag_3"]] = ["[70-80)", "428", "250.83", "?"]
    raw.loc[0, ["number_outpatient", "number_emergency", "number_inpatient"]] = [1, 2, 3]

    row = fitted.transform(raw.drop(columns=[uci.TARGET_COLUMN])).iloc[0]

    assert row["age_years"] == 75.0
    assert (row["meds_in_use"], row["meds_up"], row["meds_down"]) == (3.0, 1.0, 1.0)
    assert row["utilisation_total"] == 6.0
    assert row["heart_failure"] == 1.0
    assert row["diagnosis_chapters"] == 2.0
    assert row["prior_encounters"] == 0.0


def test_history_counts_only_earlier_encounters() -> None:
    raw = raw_encounters(n_rows=3, seed=9)
    raw[uci.PATIENT_ID] = 77
    raw[uci.ENCOUNTER_ID] = [30, 10, 20]
    raw["time_in_hospital"] = [5, 2, 3]
    raw["number_inpatient"] = [0, 4, 1]
    inputs = raw.drop(columns=[uci.TARGET_COLUMN])

    out = ReadmissionFeatures().fit(inputs).transform(inputs)

    assert out["prior_encounters"].tolist() == [2.0, 0.0, 1.0]
    assert out["prior_inpatient_days"].tolist() == [5.0, 0.0, 2.0]
    assert out["previous_inpatient_visits"].tolist() == [1.0, 0.0, 4.0]


def test_history_is_point_in_time(fitted: ReadmissionFeatures, inputs: pd.DataFrame) -> None:
    latest = inputs.groupby(uci.PATIENT_ID)[uci.ENCOUNTER_ID].transform("max")
    repeat_patients = inputs[uci.PATIENT_ID].duplicated(keep=False)
    later = inputs[repeat_patients & (inputs[uci.ENCOUNTER_ID] == latest)]
    assert len(later) > 10
    earlier = inputs.drop(index=later.index)

    full = fitted.transform(inputs).loc[earlier.index, list(HISTORY_FEATURES)]
    without_later = fitted.transform(earlier)[list(HISTORY_FEATURES)]

    pd.testing.assert_frame_equal(full, without_later)
    assert full["prior_encounters"].max() >= 1.0


def test_row_order_does_not_change_an_encounters_features(
    fitted: ReadmissionFeatures, inputs: pd.DataFrame
) -> None:
    shuffled = inputs.sample(frac=1.0, random_state=3)

    pd.testing.assert_frame_equal(
        fitted.transform(shuffled).loc[inputs.index], fitted.transform(inputs)
    )


def test_rare_and_unseen_categories_share_one_code(
    fitted: ReadmissionFeatures, inputs: pd.DataFrame
) -> None:
    known = fitted.categories_["medical_specialty"]
    unseen = inputs.head(2).assign(medical_specialty=["Neurology-NotSeen", known[0]])

    codes = fitted.transform(unseen)["medical_specialty"].tolist()

    assert codes == [float(len(known)), 0.0]
    rare = ReadmissionFeatures(min_category_count=10_000).fit(inputs)
    assert set(rare.transform(inputs)["medical_specialty"]) == {0.0}


def test_categories_are_learned_in_fit_only(inputs: pd.DataFrame) -> None:
    features = ReadmissionFeatures(min_category_count=5).fit(inputs)
    learned = {name: list(values) for name, values in features.categories_.items()}

    features.transform(inputs.assign(race="Martian"))

    assert features.categories_ == learned
    assert set(learned) == set(CATEGORICAL_FEATURES)


def test_missing_input_column_is_named(fitted: ReadmissionFeatures, inputs: pd.DataFrame) -> None:
    with pytest.raises(FeatureError, match="diag_2"):
        fitted.transform(inputs.drop(columns=["diag_2"]))


def test_invalid_setting_is_refused(inputs: pd.DataFrame) -> None:
    with pytest.raises(FeatureError, match="min_category_count"):
        ReadmissionFeatures(min_category_count=0).fit(inputs)


def test_a_fitted_transformer_ignores_features_added_to_the_code_later(
    fitted: ReadmissionFeatures, inputs: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = fitted.transform(inputs)
    add_feature(monkeypatch)

    after = fitted.transform(inputs)
    refitted = ReadmissionFeatures(min_category_count=5).fit(inputs).transform(inputs)

    pd.testing.assert_frame_equal(after, before)
    assert NEW_FEATURE in refitted.columns  # the new code does compute it for new models
    assert NEW_FEATURE not in after.columns


def test_a_transformer_fitted_before_the_lists_were_stored_scores_as_before(
    fitted: ReadmissionFeatures, inputs: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = clone(fitted)
    legacy.__dict__.update(
        {k: v for k, v in fitted.__dict__.items() if k not in ("numeric_features_",)}
    )
    legacy.__dict__.pop("categorical_features_", None)
    assert not hasattr(legacy, "numeric_features_")
    before = fitted.transform(inputs)
    add_feature(monkeypatch)

    pd.testing.assert_frame_equal(legacy.transform(inputs), before)
    assert legacy.fitted_features() == fitted.fitted_features()


def test_a_feature_the_code_no_longer_computes_is_refused(
    fitted: ReadmissionFeatures, inputs: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    derive = features_module._derive

    def without_age(frame: pd.DataFrame, known: object = None) -> object:
        numeric, categorical = derive(frame, known)
        del numeric["age_years"]
        return numeric, categorical

    monkeypatch.setattr(features_module, "_derive", without_age)
    with pytest.raises(FeatureError, match=r"no longer computes: \['age_years'\].*_derive"):
        fitted.transform(inputs)


def test_a_listed_feature_the_code_does_not_compute_is_named_at_fit(
    inputs: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Day-one review: a name added to NUMERIC_FEATURES without its computation was refused
    with the stored-model message ("fitted with features this code no longer computes")."""
    listed = [*features_module.NUMERIC_FEATURES, "short_stay"]
    monkeypatch.setattr(features_module, "NUMERIC_FEATURES", tuple(listed))
    with pytest.raises(FeatureError, match=r"lists \['short_stay'\], which `_derive` does not"):
        features_module.ReadmissionFeatures().fit(inputs)


def test_small_frames_remembered_per_value_equal_the_batch_path(
    inputs: pd.DataFrame, fitted: ReadmissionFeatures
) -> None:
    """A request-sized frame takes the remembered-values path; every feature that does not
    depend on other rows (all but history) and every category code equals the batch path's."""
    big = inputs.iloc[: 4 * features_module.SMALL_FRAME_ROWS].reset_index(drop=True)
    assert len(big) > features_module.SMALL_FRAME_ROWS
    big.loc[[1, 8], "medical_specialty"] = "Zoology"  # unseen in fitting: the shared last code
    features_module._REMEMBERED.clear()
    numeric, categorical = features_module._derive(big)
    coded = fitted.transform(big)
    own_row = [n for n in fitted.fitted_features()[0] if n not in features_module.HISTORY_FEATURES]
    for rows in ([0], [3, 1], [0], list(range(5, 25)), [7, 7 + 1]):  # cold, then remembered
        small = big.iloc[rows]
        small_numeric, small_categorical = features_module._derive(small)
        for name in own_row:
            np.testing.assert_array_equal(small_numeric[name], numeric[name][rows], err_msg=name)
        for name, values in categorical.items():
            assert small_categorical[name].tolist() == values[rows].tolist(), name
        small_coded = fitted.transform(small)
        pd.testing.assert_frame_equal(
            small_coded[fitted.fitted_features()[1]], coded.iloc[rows][fitted.fitted_features()[1]]
        )
    assert features_module._REMEMBERED  # the small path really ran
