"""Data and prediction drift between a model's training reference and a scored batch.

At training time :func:`build_reference` summarises the training features and predictions into a
small JSON-serialisable :class:`ReferenceProfile`, saved with the model version. Batch inference
streams each scored chunk through a :class:`DriftAccumulator`, whose state is a fixed set of
counts plus a bounded prediction sample, so memory does not grow with the number of rows.

Binning
    Numeric features use the reference deciles as bin edges (duplicates dropped, so a count
    column that is mostly 0 gets fewer bins), with -inf/+inf ends. Bins are right-closed,
    ``(e[i-1], e[i]]``, so the lowest bin holds the values equal to the lowest decile: for a
    column that is 0 in 70% of rows the first bin is ``(-inf, 0]``, not an empty ``(-inf, 0)``.
    NaN values get a final "missing" bin, kept even when the reference has none, so that newly
    missing values register as drift. Categorical features are compared as text
    (``str(value)``; NA becomes ``"__missing__"``): the ``max_categories`` most frequent
    reference categories keep their own bin and everything else, including categories never seen
    in the reference, goes to ``"__other__"``. The predicted probabilities are binned like a
    numeric feature, on the deciles of the reference prediction sample.

Population stability index (PSI)
    ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)``, where ``e_i`` and ``a_i`` are the reference and
    batch proportions of bin ``i``, each floored at ``epsilon`` so that an empty bin gives a
    large but finite term. It is the symmetrised Kullback-Leibler divergence; the usual reading
    (Siddiqi, "Credit Risk Scorecards", 2006) is below 0.1 stable, 0.1-0.25 moderate shift,
    above 0.25 significant shift. With ``k`` bins and no real shift PSI is about
    ``(k - 1) * (1 / n_reference + 1 / n_batch)``, so small batches inflate it.

Kolmogorov-Smirnov (KS) test
    ``scipy.stats.ks_2samp`` on the reference prediction sample and a uniform reservoir sample
    (algorithm R, seeded) of the batch predictions, both capped at a few thousand values.

Decision rule (thresholds from ``configs/*/monitoring.yaml``, see :class:`DriftThresholds`)
    A batch with fewer than ``min_rows`` rows is not assessed: ``drift_detected`` is False,
    ``insufficient_data`` is True and a reason says so; the statistics are still reported.
    Otherwise drift is detected when any of these holds:

    1. the share of features with PSI above ``feature_psi`` exceeds ``share_of_drifted_features``;
    2. the prediction PSI exceeds ``prediction_psi``;
    3. the KS p-value is below ``prediction_ks_pvalue`` AND the KS statistic exceeds
       ``prediction_ks_min_statistic``. With thousands of rows the p-value alone flags shifts too
       small to matter, hence the effect-size limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass as validated_dataclass
from scipy.stats import ks_2samp

from mlops_platform.config import ConfigError, load_layered, validation_issues

OTHER_CATEGORY = "__other__"
MISSING_CATEGORY = "__missing__"
MONITORING_CONFIG = "monitoring"
DRIFT_SECTION = "drift"
# Every top-level section of monitoring.yaml; each reader checks its own section's keys.
MONITORING_SECTIONS = frozenset({DRIFT_SECTION, "outcomes"})
PROFILE_VERSION = 1
PREDICTION_NAME = "prediction"
# Floor of every bin proportion in the PSI: an empty bin adds about p * ln(p / 1e-4).
PSI_EPSILON = 1e-4
_DECILES = np.linspace(0.1, 0.9, 9)


class DriftInputError(ValueError):
    """A frame, prediction array or stored profile given to the drift monitor is unusable."""


class DriftConfigError(ConfigError):
    """The drift thresholds in ``configs/*/monitoring.yaml`` are missing or out of bounds."""


@dataclass(frozen=True)
class FeatureProfile:
    """Reference distribution of one feature.

    Numeric: ``edges`` runs from -inf to +inf and ``proportions`` has one entry per bin plus a
    final "missing" entry. Categorical: ``categories`` ends with ``"__other__"`` and
    ``proportions`` has one entry per category.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    edges: list[float]
    categories: list[str]
    proportions: list[float]

    def __post_init__(self) -> None:
        if self.kind == "numeric":
            inner = np.asarray(self.edges[1:-1], dtype="float64")
            valid = (
                len(self.edges) >= 2
                and self.edges[0] == -math.inf
                and self.edges[-1] == math.inf
                and bool(np.all(np.isfinite(inner)))
                and bool(np.all(np.diff(inner) > 0))
                and not self.categories
                and len(self.proportions) == len(self.edges)
            )
            rule = "edges rising from -inf to inf, no categories, one proportion per bin + missing"
        elif self.kind == "categorical":
            valid = (
                not self.edges
                and bool(self.categories)
                and self.categories[-1] == OTHER_CATEGORY
                and len(set(self.categories)) == len(self.categories)
                and len(self.proportions) == len(self.categories)
            )
            rule = (
                f"no edges, distinct categories ending with {OTHER_CATEGORY!r}, one proportion each"
            )
        else:
            raise DriftInputError(
                f"Feature {self.name!r} has kind {self.kind!r}; use 'numeric' or 'categorical'."
            )
        if not valid:
            raise DriftInputError(
                f"Feature profile {self.name!r} ({self.kind}) is inconsistent: it needs {rule}. "
                f"Got {len(self.edges)} edges, {len(self.categories)} categories and "
                f"{len(self.proportions)} proportions; rebuild the reference with build_reference."
            )

    def bin_labels(self) -> list[str]:
        """One label per entry of ``proportions``, e.g. ``"(70, 80]"`` or ``"emergency"``."""
        if self.kind == "categorical":
            return list(self.categories)
        inner = self.edges[1:-1]
        if not inner:
            return ["all values", "missing"]
        labels = [f"≤ {inner[0]:g}"]
        labels += [f"({low:g}, {high:g}]" for low, high in pairwise(inner)]
        return [*labels, f"> {inner[-1]:g}", "missing"]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types only; infinite edges are written as the strings "-inf" and "inf"."""
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": [edge if math.isfinite(edge) else str(edge) for edge in self.edges],
            "categories": list(self.categories),
            "proportions": list(self.proportions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureProfile:
        """Inverse of :meth:`as_dict`."""
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            edges=[float(edge) for edge in data["edges"]],
            categories=[str(category) for category in data["categories"]],
            proportions=[float(value) for value in data["proportions"]],
        )


@dataclass(frozen=True)
class ReferenceProfile:
    """What the monitor needs to know about the training data; saved with the model version."""

    features: tuple[FeatureProfile, ...]
    prediction_sample: list[float]
    rows: int

    def __post_init__(self) -> None:
        names = [feature.name for feature in self.features]
        if not names or len(set(names)) != len(names):
            raise DriftInputError(
                f"A reference profile needs at least one feature and distinct names; got {names}."
            )
        if self.rows < 1 or not self.prediction_sample:
            raise DriftInputError(
                f"A reference profile needs rows and predictions; got {self.rows} rows and "
                f"{len(self.prediction_sample)} predictions."
            )

    def prediction_profile(self) -> FeatureProfile:
        """Decile bins of the reference prediction sample, used for the prediction PSI."""
        return _numeric_profile(
            PREDICTION_NAME, np.asarray(self.prediction_sample, dtype="float64")
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types only (``json.dumps(..., allow_nan=False)`` accepts it)."""
        return {
            "version": PROFILE_VERSION,
            "rows": self.rows,
            "features": [feature.as_dict() for feature in self.features],
            "prediction_sample": list(self.prediction_sample),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Inverse of :meth:`as_dict`; rejects other format versions and missing keys."""
        if data.get("version") != PROFILE_VERSION:
            raise DriftInputError(
                f"Reference profile format version {data.get('version')!r} is not supported; "
                f"this code reads version {PROFILE_VERSION}. Rebuild it with build_reference."
            )
        try:
            return cls(
                features=tuple(FeatureProfile.from_dict(item) for item in data["features"]),
                prediction_sample=[float(value) for value in data["prediction_sample"]],
                rows=int(data["rows"]),
            )
        except KeyError as error:
            raise DriftInputError(
                f"Reference profile lacks the key {error}; rebuild it with build_reference."
            ) from error


_THRESHOLD_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


@validated_dataclass(frozen=True, config=_THRESHOLD_CONFIG)
class DriftThresholds:
    """Limits of the decision rule in the module docstring, from ``configs/*/monitoring.yaml``.

    Each bound keeps its rule meaningful: a share of 1, a PSI limit above 1, a KS effect size
    above 0.5 or a huge ``min_rows`` would silently switch drift detection off.
    """

    feature_psi: Annotated[float, Field(gt=0.0, le=1.0)]
    share_of_drifted_features: Annotated[float, Field(ge=0.0, lt=1.0)]
    prediction_psi: Annotated[float, Field(gt=0.0, le=1.0)]
    prediction_ks_pvalue: Annotated[float, Field(gt=0.0, lt=1.0)]
    prediction_ks_min_statistic: Annotated[float, Field(gt=0.0, le=0.5)]
    min_rows: Annotated[int, Field(ge=1, le=100_000)]

    def share_exceeded(self, share: float) -> bool:
        """Rule 1: too large a share of the features have drifted."""
        return share > self.share_of_drifted_features

    def prediction_psi_exceeded(self, value: float) -> bool:
        """Rule 2: the predicted probabilities have shifted."""
        return value > self.prediction_psi

    def ks_exceeded(self, statistic: float, pvalue: float) -> bool:
        """Rule 3: the KS test is significant AND the shift is large enough to matter."""
        return pvalue < self.prediction_ks_pvalue and statistic > self.prediction_ks_min_statistic


def load_drift_thresholds(env: str, directory: Path | None = None) -> DriftThresholds:
    """Read the ``drift`` section of the layered ``monitoring`` config for ``env``."""
    config = load_layered(MONITORING_CONFIG, env, directory)
    unknown = sorted(set(config) - MONITORING_SECTIONS)
    section = config.get(DRIFT_SECTION)
    if unknown or not isinstance(section, Mapping):
        raise DriftConfigError(
            f"monitoring.yaml for {env!r} must hold the sections {sorted(MONITORING_SECTIONS)} "
            f"with {DRIFT_SECTION!r} a mapping; "
            f"unknown keys {unknown}, {DRIFT_SECTION!r} is {type(section).__name__}. "
            "Fix configs/base/monitoring.yaml or the environment's override."
        )
    try:
        return DriftThresholds(**section)
    except ValidationError as error:
        problems = "; ".join(validation_issues(error, DRIFT_SECTION))
        raise DriftConfigError(
            f"Drift thresholds for {env!r} are invalid: {problems}. Fix the drift section of "
            "configs/base/monitoring.yaml or the environment's override."
        ) from error


@dataclass(frozen=True)
class DriftResult:
    """Outcome of one batch. ``batch_proportions`` and ``prediction_proportions`` line up with
    the bins of the reference profile (``FeatureProfile.bin_labels``), for the report."""

    drift_detected: bool
    rows: int
    feature_psi: dict[str, float]
    drifted_features: list[str]
    share_drifted: float
    prediction_psi: float
    prediction_ks_statistic: float
    prediction_ks_pvalue: float
    reasons: list[str]
    insufficient_data: bool
    thresholds: DriftThresholds
    batch_proportions: dict[str, list[float]]
    prediction_proportions: list[float]

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow or run metadata; NaN statistics (no rows) are left out."""
        values = {
            "drift_detected": float(self.drift_detected),
            "drift_insufficient_data": float(self.insufficient_data),
            "drift_rows": float(self.rows),
            "drift_drifted_features": float(len(self.drifted_features)),
            "drift_share_drifted": self.share_drifted,
            "drift_prediction_psi": self.prediction_psi,
            "drift_prediction_ks_statistic": self.prediction_ks_statistic,
            "drift_prediction_ks_pvalue": self.prediction_ks_pvalue,
            **{f"drift_psi_{name}": value for name, value in self.feature_psi.items()},
        }
        return {key: float(value) for key, value in values.items() if math.isfinite(value)}


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of ``actual`` against ``expected`` (formula in the module doc).

    Both arrays hold one value per bin, as counts or proportions: each is divided by its sum.
    Proportions are then floored at ``epsilon`` (no renormalisation), so a bin empty on one side
    contributes about ``p * ln(p / epsilon)`` instead of infinity.
    """
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.ndim != 1 or e.shape != a.shape or e.size == 0:
        raise DriftInputError(
            f"PSI needs two 1-D arrays of the same non-zero length; got shapes {e.shape} and "
            f"{a.shape}."
        )
    for label, values in (("expected", e), ("actual", a)):
        if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
            raise DriftInputError(
                f"PSI {label} values must be finite, non-negative and not all zero; got {values}."
            )
    if not 0 < epsilon < 1:
        raise DriftInputError(f"PSI epsilon must be in (0, 1); got {epsilon}.")
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def build_reference(
    frame: pd.DataFrame,
    predictions: np.ndarray,
    numeric: Sequence[str],
    categorical: Sequence[str],
    max_categories: int = 20,
    prediction_sample: int = 5000,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile the training features and predictions; the sample is a seeded draw without
    replacement (kept in row order), so the same inputs always give the same profile."""
    names = [*numeric, *categorical]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DriftInputError(
            f"Each feature must be listed once, as numeric or categorical; {repeated} are "
            "listed more than once."
        )
    if max_categories < 1 or prediction_sample < 1:
        raise DriftInputError(
            f"max_categories and prediction_sample must be at least 1; got {max_categories} and "
            f"{prediction_sample}."
        )
    if frame.empty:
        raise DriftInputError("The reference frame has no rows; profile the training set.")
    scores = _check_batch(frame, predictions, names)
    features = [_numeric_profile(name, _numeric_values(frame, name)) for name in numeric]
    features += [_categorical_profile(frame, name, max_categories) for name in categorical]
    if scores.size > prediction_sample:
        rng = np.random.default_rng(seed)
        scores = scores[np.sort(rng.choice(scores.size, size=prediction_sample, replace=False))]
    return ReferenceProfile(
        features=tuple(features), prediction_sample=scores.tolist(), rows=len(frame)
    )


class DriftAccumulator:
    """Streams scored chunks into per-bin counts plus a bounded reservoir of predictions.

    Feature counts are exact, so any chunking gives the same PSI. The reservoir draws one random
    number per prediction beyond its capacity, in row order, so with the same seed it also ends
    up identical however the batch is chunked.
    """

    def __init__(
        self, reference: ReferenceProfile, reservoir_size: int = 5000, seed: int = 0
    ) -> None:
        if reservoir_size < 1:
            raise DriftInputError(f"reservoir_size must be at least 1; got {reservoir_size}.")
        self._reference = reference
        self._prediction_profile = reference.prediction_profile()
        self._counts = {
            feature.name: np.zeros(len(feature.proportions), dtype=np.int64)
            for feature in reference.features
        }
        self._prediction_counts = np.zeros(len(self._prediction_profile.proportions), np.int64)
        self._category_index = {
            feature.name: pd.Index(feature.categories)
            for feature in reference.features
            if feature.kind == "categorical"
        }
        self._reservoir = np.empty(reservoir_size, dtype="float64")
        self._held = 0
        self._rows = 0
        self._rng = np.random.default_rng(seed)

    @property
    def rows(self) -> int:
        """Rows seen so far."""
        return self._rows

    @property
    def sample_size(self) -> int:
        """Predictions held in the reservoir (never more than ``reservoir_size``)."""
        return self._held

    @property
    def state_nbytes(self) -> int:
        """Bytes held for the rows seen (bin counts and reservoir), all allocated up front."""
        arrays = [*self._counts.values(), self._prediction_counts, self._reservoir]
        return sum(array.nbytes for array in arrays)

    def update(self, frame: pd.DataFrame, predictions: np.ndarray) -> None:
        """Add one scored chunk. All columns are checked before any count changes."""
        names = [feature.name for feature in self._reference.features]
        scores = _check_batch(frame, predictions, names)
        bins = {feature.name: self._bins(frame, feature) for feature in self._reference.features}
        for name, codes in bins.items():
            self._counts[name] += np.bincount(codes, minlength=self._counts[name].size)
        self._prediction_counts += np.bincount(
            _numeric_bins(self._prediction_profile, scores), minlength=self._prediction_counts.size
        )
        self._sample(scores)
        self._rows += scores.size

    def result(self, thresholds: DriftThresholds) -> DriftResult:
        """Statistics and decision for everything seen so far (NaN statistics when no rows)."""
        features = self._reference.features
        if self._rows:
            feature_psi = {
                f.name: psi(np.asarray(f.proportions), self._counts[f.name]) for f in features
            }
            prediction_psi = psi(
                np.asarray(self._prediction_profile.proportions), self._prediction_counts
            )
            test = ks_2samp(self._reference.prediction_sample, self._reservoir[: self._held])
            ks_statistic, ks_pvalue = float(test.statistic), float(test.pvalue)
        else:
            feature_psi = {feature.name: math.nan for feature in features}
            prediction_psi = ks_statistic = ks_pvalue = math.nan
        drifted = sorted(
            (name for name, value in feature_psi.items() if value > thresholds.feature_psi),
            key=lambda name: -feature_psi[name],
        )
        share = len(drifted) / len(features)
        detected, reasons = _decide(
            thresholds,
            self._rows,
            feature_psi,
            drifted,
            share,
            prediction_psi,
            ks_statistic,
            ks_pvalue,
        )
        total = max(self._rows, 1)
        return DriftResult(
            drift_detected=detected,
            rows=self._rows,
            feature_psi=feature_psi,
            drifted_features=drifted,
            share_drifted=share,
            prediction_psi=prediction_psi,
            prediction_ks_statistic=ks_statistic,
            prediction_ks_pvalue=ks_pvalue,
            reasons=reasons,
            insufficient_data=self._rows < thresholds.min_rows,
            thresholds=thresholds,
            batch_proportions={name: (c / total).tolist() for name, c in self._counts.items()},
            prediction_proportions=(self._prediction_counts / total).tolist(),
        )

    def _bins(self, frame: pd.DataFrame, feature: FeatureProfile) -> np.ndarray:
        if feature.kind == "numeric":
            return _numeric_bins(feature, _numeric_values(frame, feature.name))
        codes, texts = _category_codes(frame[feature.name])
        slots = self._category_index[feature.name].get_indexer(texts)
        slots[slots < 0] = len(feature.categories) - 1
        return slots[codes]

    def _sample(self, scores: np.ndarray) -> None:
        """Algorithm R, vectorised: row ``i`` (0-based, counting all rows) past the capacity
        replaces slot ``floor(u * (i + 1))`` when that slot exists; a later row wins a slot."""
        capacity = self._reservoir.size
        fill = min(capacity - self._held, scores.size)
        self._reservoir[self._held : self._held + fill] = scores[:fill]
        self._held += fill
        rest = scores[fill:]
        if not rest.size:
            return
        position = self._rows + fill + np.arange(rest.size)
        slots = np.floor(self._rng.random(rest.size) * (position + 1)).astype(np.int64)
        kept = slots < capacity
        slots, values = slots[kept][::-1], rest[kept][::-1]
        _, last = np.unique(slots, return_index=True)
        self._reservoir[slots[last]] = values[last]


def _decide(
    thresholds: DriftThresholds,
    rows: int,
    feature_psi: Mapping[str, float],
    drifted: Sequence[str],
    share: float,
    prediction_psi: float,
    ks_statistic: float,
    ks_pvalue: float,
) -> tuple[bool, list[str]]:
    """The decision rule of the module docstring, with one sentence per finding."""
    t = thresholds
    reasons = [f"PSI of {name} {feature_psi[name]:.2f} > {t.feature_psi:g}" for name in drifted]
    if rows < t.min_rows:
        reasons.insert(
            0,
            f"Insufficient data: {rows} rows < min_rows {t.min_rows}; drift was not assessed "
            "(statistics below are indicative only).",
        )
        return False, reasons
    count = (
        f"{len(drifted)} of {len(feature_psi)} features ({share:.0%}) have PSI above "
        f"{t.feature_psi:g}"
    )
    share_rule = t.share_exceeded(share)
    prediction_rule = t.prediction_psi_exceeded(prediction_psi)
    ks_rule = t.ks_exceeded(ks_statistic, ks_pvalue)
    findings = []
    if share_rule:
        findings.append(f"{count}, more than the {t.share_of_drifted_features:.0%} allowed")
    elif drifted:
        findings.append(f"{count}, within the {t.share_of_drifted_features:.0%} allowed")
    if prediction_rule:
        findings.append(f"Prediction PSI {prediction_psi:.2f} > {t.prediction_psi:g}")
    if ks_rule:
        findings.append(
            f"Prediction KS statistic {ks_statistic:.3f} > {t.prediction_ks_min_statistic:g} with "
            f"p-value {ks_pvalue:.2g} < {t.prediction_ks_pvalue:g}"
        )
    return share_rule or prediction_rule or ks_rule, [*findings, *reasons]


def _check_batch(
    frame: pd.DataFrame, predictions: np.ndarray, columns: Sequence[str]
) -> np.ndarray:
    """Validate columns and predictions of one frame; return the predictions as float64."""
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise DriftInputError(
            f"The frame lacks feature columns {missing}; pass the same feature frame the model "
            "scored (columns named as in the reference profile)."
        )
    scores = np.asarray(predictions, dtype="float64")
    if scores.ndim != 1 or scores.size != len(frame):
        raise DriftInputError(
            f"Predictions must be a 1-D array with one value per row; got shape {scores.shape} "
            f"for {len(frame)} rows. Pass the positive-class probability column."
        )
    if not np.all(np.isfinite(scores)):
        raise DriftInputError(
            f"{int(np.sum(~np.isfinite(scores)))} predictions are NaN or infinite; every scored "
            "row needs a finite predicted probability."
        )
    return scores


def _numeric_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    try:
        return frame[name].to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise DriftInputError(
            f"Numeric feature {name!r} holds non-numeric values (dtype {frame[name].dtype}): "
            f"{error}. Profile it as categorical or convert it before monitoring."
        ) from error


def _numeric_profile(name: str, values: np.ndarray) -> FeatureProfile:
    present = values[~np.isnan(values)]
    inner = (
        np.unique(np.quantile(present, _DECILES, method="inverted_cdf")).tolist()
        if present.size
        else []
    )
    edges = [-math.inf, *(float(edge) for edge in inner), math.inf]
    counts = np.bincount(_bin_index(np.asarray(inner), values), minlength=len(edges))
    return FeatureProfile(name, "numeric", edges, [], (counts / values.size).tolist())


def _numeric_bins(feature: FeatureProfile, values: np.ndarray) -> np.ndarray:
    return _bin_index(np.asarray(feature.edges[1:-1], dtype="float64"), values)


def _bin_index(inner: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Right-closed bins over the inner edges; NaN goes to the extra last ("missing") bin."""
    index = np.searchsorted(inner, values, side="left")
    index[np.isnan(values)] = inner.size + 1
    return index


def _category_codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes into a list of distinct texts; NA becomes ``"__missing__"``, the last text.

    Factorising first keeps the per-row work in pandas' hash table; only the few distinct
    values are turned into text in Python.
    """
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    texts = [str(value) for value in uniques]
    codes = np.where(codes < 0, len(texts), codes)
    return codes, [*texts, MISSING_CATEGORY]


def _categorical_profile(frame: pd.DataFrame, name: str, max_categories: int) -> FeatureProfile:
    codes, texts = _category_codes(frame[name])
    if OTHER_CATEGORY in texts:
        raise DriftInputError(
            f"Categorical feature {name!r} holds the reserved value {OTHER_CATEGORY!r}; rename "
            "it before profiling."
        )
    counts = pd.Series(np.bincount(codes, minlength=len(texts)), index=texts).groupby(level=0).sum()
    ranked = sorted(
        ((text, int(count)) for text, count in counts.items() if count > 0),
        key=lambda item: (-item[1], item[0]),
    )
    kept = ranked[:max_categories]
    other = sum(count for _, count in ranked[max_categories:])
    categories = [text for text, _ in kept] + [OTHER_CATEGORY]
    proportions = [count / len(frame) for _, count in kept] + [other / len(frame)]
    return FeatureProfile(name, "categorical", [], categories, proportions)
