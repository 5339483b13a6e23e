"""Compare the shadow model's scores with the served model's on the same encounters (pure)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def compare_scores(
    served: np.ndarray, shadow: np.ndarray, operating_threshold: float | np.ndarray
) -> dict[str, Any]:
    """Agreement of the risk bands, mean difference (shadow - served) and Spearman's rank
    correlation over the encounters both models scored. NaN when undefined (fewer than two
    encounters, or constant scores). `operating_threshold` may be one per encounter (the
    threshold the service that scored it recorded)."""
    served = np.asarray(served, dtype="float64")
    shadow = np.asarray(shadow, dtype="float64")
    if served.shape != shadow.shape or served.ndim != 1:
        raise ValueError(
            f"served and shadow scores must be 1-D of one length; got {served.shape} and "
            f"{shadow.shape}"
        )
    n = int(served.size)
    if n == 0:
        return {
            "n_encounters": 0,
            "agreement": float("nan"),
            "mean_difference": float("nan"),
            "rank_correlation": float("nan"),
        }
    agreement = float(np.mean((served >= operating_threshold) == (shadow >= operating_threshold)))
    rank = float("nan")
    if n >= 2 and np.ptp(served) > 0 and np.ptp(shadow) > 0:
        rank = float(spearmanr(served, shadow).statistic)
    return {
        "n_encounters": n,
        "agreement": agreement,
        "mean_difference": float(np.mean(shadow - served)),
        "rank_correlation": rank,
    }


def compare_by_shadow_version(
    log: pd.DataFrame, key: str, score: str, threshold_column: str
) -> dict[str, dict[str, Any]]:
    """One comparison per shadow (staging) version in a prediction-log frame, for the promotion
    review of that version. Each shadow row is paired with the served row of the same request
    and key; `threshold_column` holds the operating threshold recorded for each row's part."""
    served = log[~log["shadow"]]
    shadow = log[log["shadow"]]
    pairs = served.merge(
        shadow, on=["request_id", key], suffixes=("_served", "_shadow"), validate="one_to_one"
    )
    found: dict[str, dict[str, Any]] = {}
    for version, group in pairs.groupby(pairs["model_version_shadow"].astype(str), sort=True):
        result = compare_scores(
            group[f"{score}_served"].to_numpy(),
            group[f"{score}_shadow"].to_numpy(),
            group[f"{threshold_column}_served"].to_numpy(dtype="float64"),
        )
        result["served_versions"] = sorted(set(group["model_version_served"].astype(str)))
        result["requests"] = int(group["request_id"].nunique())
        found[str(version)] = result
    return found
