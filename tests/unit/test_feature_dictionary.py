"""The feature dictionary covers every feature, docs/FEATURES.md is generated from it, and the model
card lists the features a stored model was fitted with."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _ml_frames import raw_encounters
from sklearn.calibration import CalibratedClassifierCV

from mlops_platform.steps.validate_model import model_card_predictors
from readmission.core import feature_dictionary, uci
from readmission.core.cohort import build_cohort, split_by_patient
from readmission.core.features import FEATURE_NAMES, _derive
from readmission.core.model import TrainingError, train_readmission_model
from readmission.core.params import ModelParams, SplitParams
from readmission.pipelines.evaluation_data import readmission_contract
from tests.feature_change import NEW_FEATURE, add_feature

DOC = Path(__file__).resolve().parents[2] / "docs" / "FEATURES.md"
SMALL = ModelParams(max_iter=10, max_leaf_nodes=5, min_samples_leaf=10, min_category_count=5)


def test_every_feature_has_an_entry_with_raw_source_columns() -> None:
    missing = set(FEATURE_NAMES) - set(feature_dictionary.DICTIONARY)
    assert not missing, f"add an entry to readmission/core/feature_dictionary.py for {missing}"
    # An entry beyond today's lists is a feature taken out of the lists but still computed for
    # the stored versions that read it (docs/DEVELOPER_GUIDE.md, "Renaming or removing a
    # feature"): their model cards keep its meaning. An entry nothing computes is stale.
    numeric, categorical = _derive(raw_encounters(60, seed=4))
    stale = set(feature_dictionary.DICTIONARY) - set(numeric) - set(categorical)
    assert not stale, f"remove the entries of features `_derive` no longer computes: {stale}"
    for name in feature_dictionary.DICTIONARY:
        entry = feature_dictionary.entry(name)
        assert entry.meaning and set(entry.sources) <= set(uci.COLUMNS), name


def test_a_feature_without_an_entry_is_named() -> None:
    with pytest.raises(KeyError, match="'insulin_changed' has no entry"):
        feature_dictionary.entry("insulin_changed")


def test_the_doc_is_the_generated_dictionary() -> None:
    assert DOC.read_text(encoding="utf-8") == feature_dictionary.markdown(), (
        "docs/FEATURES.md is stale: python -m readmission.core.feature_dictionary > docs/FEATURES.md"
    )


@pytest.fixture(scope="module")
def splits() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    cohort = build_cohort(raw_encounters(n_rows=1500, n_patients=600, seed=5))
    return split_by_patient(
        cohort, SplitParams(seed=3, test_fraction=0.25, validation_fraction=0.25)
    )


def _train(splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> CalibratedClassifierCV:
    return train_readmission_model(splits[0], splits[1], SMALL)


def _names(lines: tuple[str, ...]) -> list[str]:
    return [line.split(":", 1)[0] for line in lines]


def test_the_model_card_lists_every_feature_the_model_was_fitted_with(splits) -> None:
    model = _train(splits)

    lines = model_card_predictors(model, readmission_contract(0.2))

    assert _names(lines) == list(FEATURE_NAMES)
    age = feature_dictionary.entry("age_years")
    assert f"age_years: {age.meaning} [age]" in lines


def test_a_feature_added_after_training_is_not_on_the_stored_models_card(
    splits, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _train(splits)
    add_feature(monkeypatch)  # today's code and dictionary now know one more feature

    lines = model_card_predictors(model, readmission_contract(0.2))

    assert NEW_FEATURE in feature_dictionary.DICTIONARY
    assert NEW_FEATURE not in _names(lines)
    assert _names(lines) == [n for n in FEATURE_NAMES if n != NEW_FEATURE]


def test_a_feature_todays_code_no_longer_knows_is_listed_by_name(
    splits, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        add_feature(patched)  # the code the version was trained with had one more feature
        model = _train(splits)
    assert NEW_FEATURE not in feature_dictionary.DICTIONARY  # today's code: the feature is gone

    lines = model_card_predictors(model, readmission_contract(0.2))

    assert f"{NEW_FEATURE}: {feature_dictionary.NOT_IN_DICTIONARY}" in lines
    assert "not in today's dictionary" in feature_dictionary.NOT_IN_DICTIONARY
    assert len(lines) == len(FEATURE_NAMES) + 1


def test_a_model_without_the_feature_step_is_refused_by_name() -> None:
    with pytest.raises(TrainingError, match="no fitted ReadmissionFeatures step"):
        feature_dictionary.model_predictors(object())


def test_a_model_the_describer_cannot_list_gets_a_card_line_not_a_failed_run() -> None:
    # The card is documentation: a model the team's describer refuses (as above) is still judged
    # by the gate, and its card says why the predictors are missing.
    lines = model_card_predictors(object(), readmission_contract(0.5))
    assert len(lines) == 1 and lines[0].startswith("Predictors could not be listed")
    assert "no fitted ReadmissionFeatures step" in lines[0]
