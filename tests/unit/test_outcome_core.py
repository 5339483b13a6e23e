"""Outcome monitoring core: labels file checks, the join (pending, re-scoring, as-of), realised
metrics and their intervals, and the verdict."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from mlops_platform.evaluation.bootstrap import clustered_bootstrap_ci, clustered_intervals
from mlops_platform.monitoring.assess import VersionFacts, assess_versions, overall_verdict
from mlops_platform.monitoring.join import KEY, PATIENT, SCORE, join_outcomes
from mlops_platform.monitoring.labels import (
    OUTCOME,
    LabelsFileError,
    read_labels,
)
from mlops_platform.monitoring.performance import realised_metrics
from mlops_platform.monitoring.verdict import (
    Check,
    OutcomeConfigError,
    OutcomeThresholds,
    Verdict,
    judge,
    load_outcome_thresholds,
)
from mlops_platform.reporting.outcome_report import render_outcome_report

AS_OF = pd.Timestamp("2026-06-01", tz="UTC")


def contract():
    from readmission.pipelines.outcome_monitoring import readmission_outcome_contract

    return readmission_outcome_contract()


def thresholds(**changes: object) -> OutcomeThresholds:
    return dataclasses.replace(load_outcome_thresholds("local"), **changes)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- labels file ---------------------------------------------------------------------------


def test_coded_labels_become_0_1_outcomes(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "l.csv",
        "encounter_id,readmitted,race\n10,<30,Caucasian\n11,>30,?\n12,NO,Asian\n",
    )
    labels = read_labels(path, contract())
    assert labels.frame["encounter_id"].tolist() == [10, 11, 12]
    assert labels.frame[OUTCOME].tolist() == [1, 0, 0]
    assert labels.outcome_column == "readmitted"
    assert labels.frame["race"].tolist() == ["Caucasian", "?", "Asian"]
    assert len(labels.sha256) == 64


def test_gzip_and_parquet_labels_are_read(tmp_path: Path) -> None:
    gz = tmp_path / "l.csv.gz"
    gz.write_bytes(gzip.compress(b"encounter_id,readmitted_30d\n1,1\n2,0\n"))
    assert read_labels(gz, contract()).frame[OUTCOME].tolist() == [1, 0]
    parquet = tmp_path / "l.parquet"
    pq.write_table(
        pa.table({"encounter_id": [5, 6], "readmitted_30d": [0, 1], "other": ["x", "y"]}), parquet
    )
    frame = read_labels(parquet, contract()).frame
    assert frame["encounter_id"].tolist() == [5, 6]
    assert frame[OUTCOME].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("patient,readmitted\n1,NO\n", "no 'encounter_id' column"),
        ("encounter_id,outcome\n1,NO\n", "exactly one outcome column"),
        ("encounter_id,readmitted,readmitted_30d\n1,NO,0\n", "exactly one outcome column"),
        ("encounter_id,readmitted\n", "no data rows"),
        ("encounter_id,readmitted\n1,NO\n2,<30\n1,>30\n", r"appear more than once \(e.g. \[1\]"),
        ("encounter_id,readmitted\n1,NO\n2,yes\n3,\n", r"2 rows .* outside .*\['yes', ''\]"),
        ("encounter_id,readmitted_30d\n1,0\n2,2\n", "outside 0 or 1"),
        ("encounter_id,readmitted\nabc,NO\n2,NO\n", r"not a non-negative integer \(rows 1\)"),
        (
            "encounter_id,readmitted,outcome_recorded_at\n1,NO,2026-01-01\n2,NO,last week\n",
            r"not an ISO 8601 .*rows 2",
        ),
    ],
)
def test_bad_labels_files_are_refused_with_the_rule(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(LabelsFileError, match=match):
        read_labels(write_csv(tmp_path / "l.csv", text), contract())


def test_missing_empty_and_zipped_labels_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LabelsFileError, match="does not exist"):
        read_labels(tmp_path / "nope.csv", contract())
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(LabelsFileError, match="empty"):
        read_labels(empty, contract())
    archive = tmp_path / "l.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("l.csv", "encounter_id,readmitted\n1,NO\n")
    with pytest.raises(LabelsFileError, match="zip archive"):
        read_labels(archive, contract())
    garbage = tmp_path / "g.csv"
    garbage.write_bytes(b"encounter_id,readmitted\n\xff\xfe,NO\n")
    with pytest.raises(LabelsFileError):
        read_labels(garbage, contract())


# --- join ----------------------------------------------------------------------------------


def predictions(rows: list[tuple[int, int, float, str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=[KEY, PATIENT, SCORE, "model_version", "inference_run_id", "scored_at"]
    )
    frame["model_name"] = "m"
    frame["model_stage"] = "production"
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    return frame


def labels_frame(pairs: dict[int, int], recorded: dict[int, str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"encounter_id": list(pairs), OUTCOME: list(pairs.values())})
    frame[OUTCOME] = frame[OUTCOME].astype("int8")
    if recorded is not None:
        frame["outcome_recorded_at"] = pd.to_datetime([recorded[k] for k in pairs], utc=True)
    return frame


def test_unlabelled_predictions_are_pending_not_negatives() -> None:
    served = predictions(
        [
            (1, 100, 0.9, "1", "a", "2026-01-05"),
            (2, 101, 0.1, "1", "a", "2026-01-05"),
            (3, 102, 0.5, "1", "a", "2026-01-05"),
            (4, 103, 0.2, "2", "b", "2026-02-05"),
        ]
    )
    joined = join_outcomes(served, labels_frame({1: 1, 2: 0, 99: 1}), "encounter_id", AS_OF)
    assert sorted(joined.labelled[KEY]) == [1, 2]
    assert joined.pending == {"1": 1, "2": 1}
    assert joined.n_unknown == 1 and joined.unknown_examples == [99]
    assert set(joined.labelled["window"]) == {"2026-01"}


def test_an_encounter_scored_twice_counts_once_with_its_first_prediction() -> None:
    served = predictions(
        [
            (1, 100, 0.2, "2", "late", "2026-02-01"),
            (1, 100, 0.8, "1", "early", "2026-01-01"),
            (2, 101, 0.3, "1", "early", "2026-01-01"),
        ]
    )
    joined = join_outcomes(served, labels_frame({1: 1, 2: 0}), "encounter_id", AS_OF)
    first = joined.labelled.set_index(KEY).loc[1]
    assert (first[SCORE], first["model_version"], first["inference_run_id"]) == (0.8, "1", "early")
    assert joined.n_rescored == 1 and len(joined.labelled) == 2 and joined.pending == {}


def test_as_of_hides_later_predictions_and_later_outcomes() -> None:
    served = predictions(
        [
            (1, 100, 0.2, "1", "a", "2026-01-01"),
            (2, 101, 0.3, "1", "a", "2026-01-01"),
            (3, 102, 0.4, "1", "b", "2026-07-01"),
        ]
    )
    labels = labels_frame({1: 1, 2: 0, 3: 0}, {1: "2026-02-01", 2: "2026-08-01", 3: "2026-08-01"})
    joined = join_outcomes(served, labels, "encounter_id", AS_OF)
    assert joined.labelled[KEY].tolist() == [1]
    assert joined.pending == {"1": 1}  # encounter 2: outcome not known yet on the as-of date
    assert joined.n_predictions_after_as_of == 1 and joined.n_labels_after_as_of == 2
    assert joined.n_unknown == 0  # encounter 3's label is not known as of the date


# --- metrics and intervals -----------------------------------------------------------------


def synthetic_rows(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    patients = rng.integers(0, n // 2, n)
    score = np.round(rng.beta(2, 12, n), 3)  # rounded: ties between scores happen
    outcome = (rng.random(n) < np.clip(score * 1.2, 0, 1)).astype("int8")
    return pd.DataFrame({PATIENT: patients, SCORE: score, OUTCOME: outcome})


def test_fast_intervals_equal_the_clustered_bootstrap_on_the_same_draws() -> None:
    rows = synthetic_rows(4000)
    y, p, ids = rows[OUTCOME].to_numpy(), rows[SCORE].to_numpy(), rows[PATIENT].to_numpy()
    fast = clustered_intervals(y, p, ids, n_boot=60, seed=4)
    _, auc_low, auc_high = clustered_bootstrap_ci(y, p, ids, roc_auc_score, 60, 4)
    _, brier_low, brier_high = clustered_bootstrap_ci(y, p, ids, brier_score_loss, 60, 4)
    assert fast["roc_auc"] == pytest.approx((auc_low, auc_high), abs=1e-12)
    assert fast["brier"] == pytest.approx((brier_low, brier_high), abs=1e-12)


def test_realised_metrics_match_scikit_learn() -> None:
    rows = synthetic_rows(3000)
    metrics = realised_metrics(rows, n_boot=50)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(rows[OUTCOME], rows[SCORE]), abs=1e-12)
    assert metrics["brier"] == pytest.approx(
        brier_score_loss(rows[OUTCOME], rows[SCORE]), abs=1e-12
    )
    low, high = metrics["roc_auc_ci"]
    assert low < metrics["roc_auc"] < high
    assert metrics["n_labelled"] == 3000 and metrics["n_events"] == int(rows[OUTCOME].sum())


def test_one_outcome_only_leaves_ranking_metrics_undefined() -> None:
    rows = synthetic_rows(200).assign(**{OUTCOME: 0})
    metrics = realised_metrics(rows, n_boot=50)
    assert metrics["roc_auc"] is None and metrics["roc_auc_ci"] is None
    assert metrics["n_events"] == 0


# --- verdict -------------------------------------------------------------------------------


def good_performance(**changes: object) -> dict[str, object]:
    return {
        "n_labelled": 5000,
        "n_events": 550,
        "roc_auc": 0.68,
        "roc_auc_ci": [0.66, 0.70],
        "observed_rate": 0.11,
        "mean_predicted": 0.115,
    } | changes


SUBGROUPS = [
    {"feature": "race", "group": "A", "n": 900, "roc_auc": 0.66, "eligible": True},
    {"feature": "race", "group": "B", "n": 30, "roc_auc": 0.20, "eligible": False},
]


def test_a_version_like_its_validation_is_ok() -> None:
    judgement = judge(good_performance(), {"roc_auc": 0.69}, SUBGROUPS, thresholds())
    assert judgement.verdict is Verdict.OK and judgement.failed() == []


def test_ten_labelled_encounters_are_not_assessed() -> None:
    judgement = judge(
        good_performance(n_labelled=10, n_events=2), {"roc_auc": 0.69}, None, thresholds()
    )
    assert judgement.verdict is Verdict.NOT_ASSESSED
    assert [c.name for c in judgement.failed()] == [Check.MIN_LABELLED]


@pytest.mark.parametrize(
    ("performance", "validation", "subgroups", "failed"),
    [
        (
            good_performance(roc_auc=0.55, roc_auc_ci=[0.53, 0.57]),
            0.69,
            SUBGROUPS,
            {Check.ROC_AUC_FLOOR, Check.ROC_AUC_DROP},
        ),
        (
            good_performance(roc_auc=0.62, roc_auc_ci=[0.60, 0.63]),
            0.69,
            SUBGROUPS,
            {Check.ROC_AUC_DROP},
        ),
        (good_performance(observed_rate=0.20), 0.69, SUBGROUPS, {Check.CALIBRATION_IN_THE_LARGE}),
        (
            good_performance(),
            0.69,
            [{**SUBGROUPS[0], "roc_auc": 0.40}, SUBGROUPS[1]],
            {Check.SUBGROUP_ROC_AUC_FLOOR},
        ),
        (good_performance(), None, SUBGROUPS, {Check.ROC_AUC_DROP}),  # no validation value
    ],
)
def test_each_failing_check_makes_the_version_degraded(
    performance: dict[str, object],
    validation: float | None,
    subgroups: list[dict[str, object]],
    failed: set[str],
) -> None:
    judgement = judge(performance, {"roc_auc": validation}, subgroups, thresholds())
    assert judgement.verdict is Verdict.DEGRADED
    assert {c.name for c in judgement.failed()} == failed


def test_drop_is_judged_on_the_interval_not_the_point() -> None:
    # Point 0.62 is 0.07 below validation, but the interval reaches 0.66: not a proven drop.
    performance = good_performance(roc_auc=0.62, roc_auc_ci=[0.58, 0.66])
    assert judge(performance, {"roc_auc": 0.69}, SUBGROUPS, thresholds()).verdict is Verdict.OK


@pytest.mark.parametrize(
    "change",
    [
        {"roc_auc_floor": 0.5},
        {"max_roc_auc_drop": 0.5},
        {"min_labelled": 1},
        {"window": "year"},
        {"unknown_key": 1},
    ],
)
def test_thresholds_that_would_switch_a_check_off_are_refused(
    tmp_path: Path, change: dict[str, object]
) -> None:
    section = dataclasses.asdict(load_outcome_thresholds("local")) | change
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "monitoring.yaml").write_text(json.dumps({"outcomes": section}))
    with pytest.raises(OutcomeConfigError, match="invalid"):
        load_outcome_thresholds("local", tmp_path)


# --- assessment and report -----------------------------------------------------------------


def test_assessment_per_version_with_pending_and_a_report() -> None:
    rows = synthetic_rows(2400, seed=8)
    served = pd.DataFrame(
        {
            KEY: np.arange(len(rows) + 100),
            PATIENT: np.concatenate([rows[PATIENT].to_numpy(), np.arange(100) + 10**6]),
            SCORE: np.concatenate([rows[SCORE].to_numpy(), np.full(100, 0.1)]),
            "model_name": "m",
            "model_version": "3",
            "model_stage": "production",
            "inference_run_id": "run",
            "scored_at": pd.Timestamp("2026-03-01", tz="UTC"),
        }
    )
    labels = pd.DataFrame(
        {"encounter_id": np.arange(len(rows)), OUTCOME: rows[OUTCOME].astype("int8")}
    )
    joined = join_outcomes(served, labels, "encounter_id", AS_OF)
    facts = {"3": VersionFacts("m", "3", {"roc_auc": 0.7}, [], 0.2)}
    versions = assess_versions(joined, facts, thresholds(bootstrap_resamples=50), {})
    (version,) = versions
    assert version["n_pending"] == 100 and version["n_labelled"] == len(rows)
    assert version["roc_auc"] == pytest.approx(roc_auc_score(rows[OUTCOME], rows[SCORE]), 1e-12)
    assert version["subgroups"] is None and version["notes"]
    assert overall_verdict(versions) == version["verdict"]
    page = render_outcome_report(
        {
            "verdict": version["verdict"],
            "as_of": str(AS_OF),
            "environment": "local",
            "pipeline_run": "r",
            "labels": {
                "path": "l.csv",
                "sha256": "0" * 64,
                "rows": 1,
                "n_unknown": 0,
                "n_after_as_of": 0,
            },
            "predictions": {"n_served": 1, "batches": [], "n_rescored": 0},
            "thresholds": {"sha256": "1" * 64, "roc_auc_floor": 0.6},
            "versions": versions,
        }
    )
    assert "version 3" in page and "data:image/png;base64" in page


def fairlearn_subgroup_table(
    y: np.ndarray, p: np.ndarray, groups: pd.DataFrame, threshold: float
) -> pd.DataFrame:
    """The reference: fairlearn's MetricFrame with scikit-learn's metrics, group by group."""
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import recall_score

    def auc(t: np.ndarray, s: np.ndarray) -> float:
        return float(roc_auc_score(t, s)) if len(np.unique(t)) == 2 else float("nan")

    def recall(t: np.ndarray, s: np.ndarray) -> float:
        return float(recall_score(t, s >= threshold)) if t.any() else float("nan")

    def fpr(t: np.ndarray, s: np.ndarray) -> float:
        return float((s[t == 0] >= threshold).mean()) if (t == 0).any() else float("nan")

    metrics = {
        "n": lambda t, s: len(t),
        "positives": lambda t, s: int(t.sum()),
        "roc_auc": auc,
        "recall": recall,
        "false_positive_rate": fpr,
        "selection_rate": lambda t, s: float((s >= threshold).mean()),
    }
    parts = []
    for feature in groups.columns:
        labels = groups[feature].astype("string").str.strip().fillna("Unknown")
        labels = labels.mask(labels.isin(["?", ""]), "Unknown")
        frame = MetricFrame(metrics=metrics, y_true=y, y_pred=p, sensitive_features=labels)
        part = frame.by_group.reset_index(names="group")
        part.insert(0, "feature", feature)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("as_category", [False, True])
def test_the_subgroup_table_equals_fairlearns_metric_frame(as_category: bool) -> None:
    from mlops_platform.evaluation.fairness import TABLE_COLUMNS, sensitive_groups, subgroup_table

    rows = synthetic_rows(3000, seed=5)
    rng = np.random.default_rng(5)
    raw = pd.DataFrame(
        {
            "race": rng.choice(["Caucasian", "AfricanAmerican", "?", "Asian"], len(rows)),
            "gender": rng.choice(
                ["Female", "Male", "Unknown/Invalid"], len(rows), p=[0.5, 0.4995, 0.0005]
            ),
            "age": rng.choice(["[20-30)", "[50-60)", "[70-80)", "[90-100)"], len(rows)),
        }
    )
    groups = sensitive_groups(raw.astype("category") if as_category else raw)
    groups["race"] = groups["race"].where(rng.random(len(rows)) > 0.01, None)  # some missing
    y, p = rows[OUTCOME].to_numpy(dtype="int64"), rows[SCORE].to_numpy()
    table = subgroup_table(y, p, groups, 0.2, 100, min_group_events=10)
    expected = fairlearn_subgroup_table(y, p, groups, 0.2)
    columns = [c for c in TABLE_COLUMNS if c != "eligible"]
    pd.testing.assert_frame_equal(table[columns], expected[columns], check_dtype=False, atol=1e-12)
    assert table["roc_auc"].isna().any()  # a group with one outcome only is part of the check


# --- the million-row path: same results in bounded memory -----------------------------------


def test_rank_roc_auc_on_one_sort_equals_scikit_learn_with_ties() -> None:
    from mlops_platform.evaluation.metrics import sorted_roc_auc

    rows = synthetic_rows(5000, seed=8)  # scores rounded to 3 decimals: many ties
    order = np.argsort(rows[SCORE].to_numpy(), kind="stable")
    y, p = rows[OUTCOME].to_numpy()[order], rows[SCORE].to_numpy()[order]
    assert sorted_roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_rank_roc_auc_of_rows_in_any_order_equals_scikit_learn() -> None:
    from mlops_platform.evaluation.metrics import rank_roc_auc

    rows = synthetic_rows(5000, seed=11)  # scores rounded: many ties; rows not sorted
    y, p = rows[OUTCOME].to_numpy(), rows[SCORE].to_numpy()
    assert rank_roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    distinct = np.random.default_rng(11).random(5000)
    assert rank_roc_auc(y, distinct) == pytest.approx(roc_auc_score(y, distinct), abs=1e-12)


def test_groups_per_combination_equal_the_model_reports_groups() -> None:
    from mlops_platform.evaluation.fairness import sensitive_groups
    from mlops_platform.monitoring.performance import encounter_groups

    rng = np.random.default_rng(9)
    raw = pd.DataFrame(
        {
            "race": rng.choice(["Caucasian", "?", " Asian ", "AfricanAmerican"], 500),
            "gender": rng.choice(["Female", "Male", "Unknown/Invalid"], 500),
            "age": rng.choice(["[0-10)", "[50-60)", "[70-80)", "[90-100)"], 500),
        }
    ).astype("category")
    expected = sensitive_groups(raw)
    for given in (raw, raw.astype(str)):  # category codes combined, or a group-by
        fast = encounter_groups(given)
        assert list(fast.columns) == list(expected.columns)
        for column in expected.columns:
            assert fast[column].astype(str).tolist() == expected[column].astype(str).tolist()


def _labels_csv(tmp_path: Path, rows: list[str]) -> Path:
    return write_csv(
        tmp_path / "chunked.csv", "encounter_id,readmitted,race,gender,age\n" + "\n".join(rows)
    )


def test_labels_read_in_chunks_equal_one_read(tmp_path: Path) -> None:
    from mlops_platform.monitoring.labels import labels_frame

    rng = np.random.default_rng(10)
    rows = [
        f"{100 + i},{rng.choice(['<30', '>30', 'NO'])},{rng.choice(['Caucasian', '?'])},"
        f"{rng.choice(['Female', 'Male'])},{rng.choice(['[40-50)', '[80-90)'])}"
        for i in range(23)
    ]
    path = _labels_csv(tmp_path, rows)
    chunked = read_labels(path, contract(), chunk_rows=4).frame
    whole = labels_frame(
        pa_csv.read_csv(
            path, convert_options=pa_csv.ConvertOptions(strings_can_be_null=False)
        ).cast(
            pa.schema(
                [(n, pa.string()) for n in ["encounter_id", "readmitted", "race", "gender", "age"]]
            )
        ),
        contract(),
        "whole",
    )
    pd.testing.assert_frame_equal(
        chunked.astype({c: str for c in ("race", "gender", "age")}),
        whole.astype({c: str for c in ("race", "gender", "age")}),
    )
    assert chunked[OUTCOME].tolist() == [1 if r.split(",")[1] == "<30" else 0 for r in rows]


@pytest.mark.parametrize(
    ("broken", "match"),
    [
        ({13: "x13,NO,?,Male,[40-50)"}, r"1 rows have a encounter_id .*\(rows 13\)"),
        (
            {9: "108,maybe,?,Male,[40-50)", 21: "120,later,?,Male,[40-50)"},
            r"\['maybe', 'later'\]; rows 9, 21",
        ),
        ({18: "103,NO,?,Male,[40-50)"}, r"\[103\]; rows 4, 18"),
    ],
)
def test_errors_in_later_chunks_name_the_file_rows(
    tmp_path: Path, broken: dict[int, str], match: str
) -> None:
    rows = [f"{100 + i},NO,Caucasian,Female,[40-50)" for i in range(23)]
    for row, text in broken.items():
        rows[row - 1] = text
    with pytest.raises(LabelsFileError, match=match):
        read_labels(_labels_csv(tmp_path, rows), contract(), chunk_rows=4)


def test_predictions_of_several_results_keep_each_version(tmp_path: Path) -> None:
    from mlops_platform.batch.results import ResultDirectory, read_manifest
    from mlops_platform.monitoring.predictions import (
        PredictionsIntegrityError,
        load_served_predictions,
    )

    recorded = {}
    for run, version, first in (("run-a", "1", 1), ("run-b", "2", 50)):
        result = ResultDirectory(tmp_path, run)
        pd.DataFrame(
            {
                "encounter_id": np.arange(first, first + 3),
                "patient_nbr": np.arange(3),
                "readmission_risk": [0.1, 0.2, 0.3],
                "model_name": "m",
                "model_version": version,
                "model_stage": "production",
                "inference_run_id": run,
                "scored_at": pd.Timestamp("2026-03-01", tz="UTC"),
            }
        ).to_parquet(result.path("predictions.parquet"), index=False)
        recorded[run] = hashlib.sha256(result.path("predictions.parquet").read_bytes()).hexdigest()
        result.publish(
            {
                "inference_run_id": run,
                "model": {"name": "m", "version": version},
                "contract": {
                    "id_columns": ["encounter_id", "patient_nbr"],
                    "score_column": "readmission_risk",
                    "operating_threshold": 0.2,
                },
                "files": {},
                "timings": {"finished_at": f"2026-03-0{first // 50 + 1}T00:00:00+00:00"},
            }
        )
    frame, batches = load_served_predictions(tmp_path, "patient_nbr", recorded.get)
    assert frame[KEY].tolist() == [1, 2, 3, 50, 51, 52]
    assert frame["model_version"].astype(str).tolist() == ["1"] * 3 + ["2"] * 3
    assert [b.rows for b in batches] == [3, 3]
    with pytest.raises(PredictionsIntegrityError, match="changed after scoring"):
        load_served_predictions(tmp_path, "patient_nbr", lambda run: "0" * 64)

    # Which model scored and at which threshold come from the manifest the run stored in ZenML;
    # a manifest.json beside the predictions that says otherwise is refused.
    stored = {run: read_manifest(tmp_path / run) for run in recorded}
    _, batches = load_served_predictions(
        tmp_path, "patient_nbr", recorded.get, recorded_manifest=stored.get
    )
    assert [(b.model_version, b.operating_threshold) for b in batches] == [("1", 0.2), ("2", 0.2)]
    edited = json.loads((tmp_path / "run-b" / "manifest.json").read_text())
    edited["contract"]["operating_threshold"] = 0.9
    (tmp_path / "run-b" / "manifest.json").write_text(json.dumps(edited))
    with pytest.raises(PredictionsIntegrityError, match="manifest was edited after scoring"):
        load_served_predictions(tmp_path, "patient_nbr", recorded.get, recorded_manifest=stored.get)
    with pytest.raises(PredictionsIntegrityError, match="has no manifest in this ZenML store"):
        load_served_predictions(tmp_path, "patient_nbr", recorded.get, recorded_manifest={}.get)


def test_chunked_reading_gives_the_same_assessment_as_whole_frames(tmp_path: Path) -> None:
    """Labels and predictions read a few rows at a time (compact columns, several chunks and
    row groups) give the assessment of the whole files read at once."""
    from mlops_platform.batch.results import ResultDirectory, list_results
    from mlops_platform.monitoring.labels import labels_frame
    from mlops_platform.monitoring.predictions import load_served_predictions

    rng = np.random.default_rng(12)
    n = 700
    recorded: dict[str, str] = {}
    for run, version, first, day in (("run-a", "1", 0, "2026-02-03"), ("run-b", "2", 350, "03-04")):
        ids = np.arange(first, first + n // 2 + 150)  # run-b scores 150 of run-a's again
        result = ResultDirectory(tmp_path / "results", run)
        pq.write_table(
            pa.Table.from_pandas(
                pd.DataFrame(
                    {
                        "encounter_id": ids,
                        "patient_nbr": ids // 3,
                        "readmission_risk": np.round(rng.beta(2, 8, len(ids)), 3),
                        "model_name": "m",
                        "model_version": version,
                        "model_stage": "production",
                        "inference_run_id": run,
                        "scored_at": pd.Timestamp(
                            day if version == "1" else f"2026-{day}", tz="UTC"
                        ),
                    }
                ),
                preserve_index=False,
            ),
            result.path("predictions.parquet"),
            row_group_size=60,
        )
        recorded[run] = hashlib.sha256(result.path("predictions.parquet").read_bytes()).hexdigest()
        result.publish(
            {
                "inference_run_id": run,
                "model": {"name": "m", "version": version},
                "contract": {
                    "id_columns": ["encounter_id", "patient_nbr"],
                    "score_column": "readmission_risk",
                    "operating_threshold": 0.2,
                },
                "files": {},
                "timings": {"finished_at": f"{day if version == '1' else '2026-' + day}T01:00Z"},
            }
        )
    label_ids = rng.permutation(np.arange(20, 900))  # some never scored, some pending
    rows = [
        f"{i},{rng.choice(['<30', '>30', 'NO'], p=[0.3, 0.3, 0.4])},"
        f"{rng.choice(['Caucasian', '?', 'AfricanAmerican'])},{rng.choice(['Female', 'Male'])},"
        f"{rng.choice(['[40-50)', '[60-70)', '[80-90)'])},2026-0{rng.choice([3, 4, 7])}-01"
        for i in label_ids
    ]
    labels_path = write_csv(
        tmp_path / "labels.csv",
        "encounter_id,readmitted,race,gender,age,outcome_recorded_at\n" + "\n".join(rows),
    )
    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    facts = {
        "1": VersionFacts("m", "1", {"roc_auc": 0.7}, [], 0.2),
        "2": VersionFacts("m", "2", {"roc_auc": 0.7}, [], 0.2),
    }
    limits = thresholds(bootstrap_resamples=50, min_labelled=50, subgroup_min_size=20)

    chunked_labels = read_labels(labels_path, contract(), chunk_rows=7).frame
    chunked_predictions, _ = load_served_predictions(
        tmp_path / "results", "patient_nbr", recorded.get, chunk_rows=13
    )
    chunked = join_outcomes(chunked_predictions, chunked_labels, "encounter_id", as_of)

    text = pa_csv.read_csv(
        labels_path, convert_options=pa_csv.ConvertOptions(strings_can_be_null=False)
    )
    whole_labels = labels_frame(
        text.cast(pa.schema([(name, pa.string()) for name in text.column_names])),
        contract(),
        "whole",
    )
    whole_predictions = pd.concat(
        [pd.read_parquet(d / "predictions.parquet") for d in list_results(tmp_path / "results")],
        ignore_index=True,
    ).rename(columns={"encounter_id": KEY, "patient_nbr": PATIENT, "readmission_risk": SCORE})
    whole = join_outcomes(whole_predictions, whole_labels, "encounter_id", as_of)

    assert chunked.n_rescored == whole.n_rescored == 150
    assert chunked.n_unknown == whole.n_unknown > 0 and chunked.pending == whole.pending
    assert chunked.n_labels_after_as_of == whole.n_labels_after_as_of > 0
    chunked_report = assess_versions(chunked, facts, limits, {})
    whole_report = assess_versions(whole, facts, limits, {})
    assert [v["model_version"] for v in chunked_report] == ["1", "2"]
    assert chunked_report[0]["subgroups"] and chunked_report[0]["roc_auc_ci"]
    assert chunked_report == whole_report


def test_a_result_is_verified_file_by_file_and_field_by_field_against_its_run(
    tmp_path: Path,
) -> None:
    """Insider review: lineage checked a result's predictions and the model and contract of its
    manifest only, so a `finished_at` moved to 2099 made an older result "the newest", and an
    edited drift report went unnoticed."""
    import shutil

    from mlops_platform.batch.results import ResultDirectory, read_manifest
    from mlops_platform.monitoring.predictions import (
        PredictionsIntegrityError,
        verified_result_manifest,
    )

    result = ResultDirectory(tmp_path / "out", "run-a")
    pd.DataFrame({"encounter_id": [1, 2], "readmission_risk": [0.1, 0.9]}).to_parquet(
        result.path("predictions.parquet"), index=False
    )
    result.path("drift_report.html").write_text("<p>no drift</p>", encoding="utf-8")
    files = {
        name: hashlib.sha256(result.path(name).read_bytes()).hexdigest()
        for name in ("drift_report.html", "predictions.parquet")
    }
    published = result.publish(
        {
            "inference_run_id": "run-a",
            "output_dir": str(tmp_path / "out" / "run-a"),
            "model": {"name": "m", "version": "1"},
            "contract": {"id_columns": ["encounter_id"], "score_column": "readmission_risk"},
            "files": files,
            "timings": {"finished_at": "2026-03-01T00:00:00+00:00"},
        }
    )
    stored = {"run-a": read_manifest(published)}  # what the run stored in ZenML
    hashes = {"run-a": files["predictions.parquet"]}

    def verify(directory: Path) -> object:
        manifest = read_manifest(directory)
        digest = hashlib.sha256((directory / "predictions.parquet").read_bytes()).hexdigest()
        return verified_result_manifest(directory, manifest, digest, hashes.get, stored.get)

    assert verify(published) == stored["run-a"]
    moved = tmp_path / "elsewhere" / "run-a"
    shutil.copytree(published, moved)
    relocated = json.loads((moved / "manifest.json").read_text())
    relocated["output_dir"] = str(moved)
    (moved / "manifest.json").write_text(json.dumps(relocated))
    assert verify(moved) == stored["run-a"]  # a result may be moved, and says where it is now

    edited = json.loads((moved / "manifest.json").read_text())
    edited["timings"]["finished_at"] = "2099-01-01T00:00:00+00:00"
    (moved / "manifest.json").write_text(json.dumps(edited))
    with pytest.raises(PredictionsIntegrityError, match=r"says timings .*2099.*edited after"):
        verify(moved)
    (moved / "manifest.json").write_text(json.dumps(relocated))

    (moved / "drift_report.html").write_text("<p>all fine</p>", encoding="utf-8")
    with pytest.raises(PredictionsIntegrityError, match=r"drift_report\.html has SHA-256"):
        verify(moved)
    (moved / "drift_report.html").unlink()
    with pytest.raises(PredictionsIntegrityError, match=r"drift_report\.html is missing"):
        verify(moved)

    renamed = tmp_path / "renamed" / "run-b"
    shutil.copytree(published, renamed)
    with pytest.raises(PredictionsIntegrityError, match="published under its run's id"):
        verify(renamed)
