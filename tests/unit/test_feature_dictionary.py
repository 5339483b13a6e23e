"""The feature dictionary covers every feature, and docs/FEATURES.md is generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from readmission.core import feature_dictionary, uci
from readmission.core.features import FEATURE_NAMES
from readmission.pipelines.evaluation_data import readmission_contract

DOC = Path(__file__).resolve().parents[2] / "docs" / "FEATURES.md"


def test_every_feature_has_an_entry_with_raw_source_columns() -> None:
    assert set(feature_dictionary.DICTIONARY) == set(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        entry = feature_dictionary.entry(name)
        assert entry.meaning and set(entry.sources) <= set(uci.COLUMNS), name


def test_a_feature_without_an_entry_is_named() -> None:
    with pytest.raises(KeyError, match="'insulin_changed' has no entry"):
        feature_dictionary.predictor_descriptions(("insulin_changed",))


def test_the_doc_is_the_generated_dictionary() -> None:
    assert DOC.read_text(encoding="utf-8") == feature_dictionary.markdown(), (
        "docs/FEATURES.md is stale: python -m readmission.core.feature_dictionary > docs/FEATURES.md"
    )


def test_the_model_card_lists_every_predictor() -> None:
    predictors = readmission_contract(0.2).predictors

    assert [p.split(":", 1)[0] for p in predictors] == list(FEATURE_NAMES)
