"""The gate's holdout risks are reused by content: same model file and same rows, never otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from mlops_platform.steps.validate_model import Y_PROB, ModelContract, platform_predictions
from mlops_platform.trust.artifacts import loaded_digest, loads_model, model_types

CONTRACT = ModelContract(
    model_artifact="model",
    patient_column="patient",
    label_column="label",
    label_columns=("label",),
    operating_threshold=0.5,
)


def _holdout(seed: int = 0, rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return pd.DataFrame(
        {"patient": np.arange(rows), "x": x, "label": (x + rng.normal(size=rows) > 0).astype(int)}
    )


def _model_file(c: float) -> bytes:
    data = _holdout(seed=1)
    model = Pipeline(
        [
            ("pick", ColumnTransformer([("x", "passthrough", ["x"])])),
            ("fit", LogisticRegression(C=c)),
        ]
    ).fit(data[["patient", "x"]], data["label"])
    return skops.io.dumps(model)


def _load(data: bytes) -> object:
    return loads_model(data, model_types(data))


def test_the_same_file_on_the_same_rows_is_scored_once() -> None:
    data, holdout = _model_file(1.0), _holdout()
    first = platform_predictions(_load(data), holdout, CONTRACT, "local")
    again = platform_predictions(_load(data), holdout.copy(), CONTRACT, "local")

    assert loaded_digest(_load(data)) is not None
    assert first.attrs["reused"] is False
    assert again.attrs["reused"] is True
    np.testing.assert_array_equal(again[Y_PROB].to_numpy(), first[Y_PROB].to_numpy())


def test_another_row_or_another_file_is_scored_again() -> None:
    data, holdout = _model_file(0.5), _holdout(seed=2)
    base = platform_predictions(_load(data), holdout, CONTRACT, "local")

    changed = holdout.copy()
    changed.loc[0, "x"] += 1.0  # one value of one row
    moved = platform_predictions(_load(data), changed, CONTRACT, "local")
    assert moved.attrs["reused"] is False
    assert moved[Y_PROB].iloc[0] != base[Y_PROB].iloc[0]

    other = platform_predictions(_load(_model_file(0.01)), holdout, CONTRACT, "local")
    assert other.attrs["reused"] is False
    assert not np.allclose(other[Y_PROB].to_numpy(), base[Y_PROB].to_numpy())


def test_a_model_not_loaded_from_a_file_is_never_reused() -> None:
    model = _load(_model_file(2.0))
    fitted_here = Pipeline(model.steps)  # same estimators, not built from a file
    holdout = _holdout(seed=3)
    assert loaded_digest(fitted_here) is None
    assert platform_predictions(fitted_here, holdout, CONTRACT, "local").attrs["reused"] is False
    assert platform_predictions(fitted_here, holdout, CONTRACT, "local").attrs["reused"] is False
