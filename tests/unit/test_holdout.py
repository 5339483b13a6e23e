"""The platform holdout: per-patient membership, leak refusal, and a gate that others cannot move."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.dummy import DummyClassifier

from mlops_platform.evaluation.holdout import (
    HoldoutError,
    HoldoutLeakError,
    assert_no_leak,
    expected_holdout_labels,
    frame_sha256,
    holdout_file_rows,
    holdout_input_problems,
    holdout_rows_problems,
    holdout_score,
    in_holdout,
    leaked_patients,
    split_holdout,
)
from mlops_platform.evaluation.metrics import classification_metrics
from mlops_platform.governance.policy.models import load_policy
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.runtime.provenance import snapshot_data_file
from mlops_platform.runtime.run_context import GovernedContext
from mlops_platform.steps.validate_model import (
    GateRecordMismatch,
    data_source_problem,
    evaluation_data_problem,
    pinned_data_hashes,
    score_holdout,
    unapproved_data_problem,
)
from readmission.core.cohort import LABEL, build_cohort
from readmission.core.data import DataSettings
from readmission.core.model import train_baseline_model
from readmission.core.params import ModelParams
from readmission.core.uci import ENCOUNTER_ID, PATIENT_ID, TARGET_COLUMN
from readmission.pipelines.evaluation_data import readmission_contract
from tests.unit._ml_frames import raw_encounters

KEY = load_platform_settings("local").holdout.key_bytes()
FRACTION = load_policy("local").holdout.fraction
CONTRACT = readmission_contract(0.15)
patient_ids = st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=200)


@given(ids=patient_ids, others=patient_ids)
def test_membership_never_depends_on_who_else_is_in_the_file(
    ids: list[int], others: list[int]
) -> None:
    alone = in_holdout(ids, KEY, FRACTION)
    together = in_holdout([*others, *ids, *others], KEY, FRACTION)
    assert alone.tolist() == together[len(others) : len(others) + len(ids)].tolist()


def test_membership_follows_the_fraction_and_the_key() -> None:
    ids = np.arange(1, 20_001)
    share = in_holdout(ids, KEY, FRACTION).mean()
    assert abs(share - FRACTION) < 0.01
    other_key = in_holdout(ids, b"another-platform-key", FRACTION)
    assert (other_key != in_holdout(ids, KEY, FRACTION)).mean() > 0.2
    assert in_holdout(ids, KEY, 0.1).sum() < in_holdout(ids, KEY, 0.3).sum()


def test_id_spellings_of_one_patient_agree() -> None:
    assert in_holdout([42, 42.0, "42", np.int64(42)], KEY, 0.5).tolist() in (
        [True] * 4,
        [False] * 4,
    )


@given(ids=st.lists(st.integers(min_value=-(2**53), max_value=2**53), min_size=1, max_size=50))
def test_a_whole_number_column_is_judged_id_by_id_as_the_definition_says(ids: list[int]) -> None:
    """Integer and float columns take a vectorised path; each id still gets the membership of
    its own keyed hash (`holdout_score`), as an int, a float or a text spelling of it."""
    expected = [holdout_score(patient, KEY) < 0.5 for patient in ids]
    assert in_holdout(np.array(ids, dtype=np.int64), KEY, 0.5).tolist() == expected
    assert in_holdout(np.array(ids, dtype=np.float64), KEY, 0.5).tolist() == expected
    assert in_holdout(pd.Series([str(i) for i in ids]), KEY, 0.5).tolist() == expected
    assert leaked_patients(pd.Series(ids), KEY, 0.5) == sorted(
        {str(patient) for patient, member in zip(ids, expected, strict=True) if member}
    )


def test_floats_that_are_not_whole_ids_keep_their_own_spelling() -> None:
    odd = [12.5, 1e20, float("nan")]
    expected = [holdout_score(patient, KEY) < 0.5 for patient in odd]
    assert in_holdout(np.array(odd), KEY, 0.5).tolist() == expected
    assert holdout_score(1e20, KEY) == holdout_score(10**20, KEY)  # a whole float is its int


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_fraction_or_key_fails(fraction: float) -> None:
    with pytest.raises(HoldoutError, match="fraction"):
        in_holdout([1], KEY, fraction)
    with pytest.raises(HoldoutError, match="key"):
        in_holdout([1], b"", 0.2)


def test_split_keeps_every_patient_whole_and_disjoint() -> None:
    cohort = build_cohort(raw_encounters(1200, 500, seed=1))
    development, holdout = split_holdout(cohort, PATIENT_ID, KEY, FRACTION)
    assert len(development) + len(holdout) == len(cohort)
    assert not set(development[PATIENT_ID]) & set(holdout[PATIENT_ID])
    assert leaked_patients(development[PATIENT_ID], KEY, FRACTION) == []
    assert set(leaked_patients(holdout[PATIENT_ID], KEY, FRACTION)) == {
        str(p) for p in holdout[PATIENT_ID]
    }
    with pytest.raises(HoldoutError, match="no patient column 'nobody'"):
        split_holdout(cohort, "nobody", KEY, FRACTION)


def test_training_on_a_holdout_patient_is_refused_naming_the_rule() -> None:
    cohort = build_cohort(raw_encounters(1200, 500, seed=2))
    development, holdout = split_holdout(cohort, PATIENT_ID, KEY, FRACTION)
    assert assert_no_leak({"train": development}, PATIENT_ID, KEY, FRACTION) > 0

    leaky = pd.concat([development, holdout.head(1)], ignore_index=True)
    with pytest.raises(HoldoutLeakError, match=r"holds 1 patient\(s\) of the platform holdout"):
        assert_no_leak({"train": development, "validation": leaky}, PATIENT_ID, KEY, FRACTION)
    with pytest.raises(HoldoutLeakError, match="no training data"):
        assert_no_leak({}, PATIENT_ID, KEY, FRACTION)
    with pytest.raises(HoldoutLeakError, match="no patient column"):
        assert_no_leak({"train": development.drop(columns=PATIENT_ID)}, PATIENT_ID, KEY, FRACTION)


def test_frame_sha256_changes_with_any_value() -> None:
    frame = build_cohort(raw_encounters(200, 80, seed=3))
    changed = frame.copy()
    changed.loc[0, "time_in_hospital"] = changed.loc[0, "time_in_hospital"] + 1
    assert frame_sha256(frame) == frame_sha256(frame.copy())
    assert frame_sha256(frame) != frame_sha256(changed)


@pytest.fixture(scope="module")
def scored() -> tuple[object, pd.DataFrame]:
    cohort = build_cohort(raw_encounters(3000, 1200, seed=4))
    development, _ = split_holdout(cohort, PATIENT_ID, KEY, FRACTION)
    return train_baseline_model(development, ModelParams()), cohort


def _gate_roc_auc(model: object, frame: pd.DataFrame) -> float:
    _, predictions = score_holdout(model, frame, CONTRACT, KEY, FRACTION, "local")
    metrics = classification_metrics(
        predictions["y_true"].to_numpy(), predictions["y_prob"].to_numpy(), 0.15
    )
    return metrics["roc_auc"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_gate_roc_auc_is_identical_with_one_non_holdout_patient_added_or_removed(
    scored: tuple[object, pd.DataFrame], data: st.DataObject
) -> None:
    model, cohort = scored
    before = _gate_roc_auc(model, cohort)
    outside = sorted(
        set(cohort[PATIENT_ID])
        - {int(p) for p in leaked_patients(cohort[PATIENT_ID], KEY, FRACTION)}
    )
    removed = data.draw(st.sampled_from(outside))
    without = cohort.loc[cohort[PATIENT_ID] != removed]
    assert _gate_roc_auc(model, without) == before

    new_id = data.draw(st.integers(min_value=10**6, max_value=10**9))
    if in_holdout([new_id], KEY, FRACTION)[0]:
        return  # a holdout patient may change the holdout; the property is about the others
    donor = cohort.loc[cohort[PATIENT_ID] == data.draw(st.sampled_from(outside))]
    added = pd.concat([cohort, donor.assign(**{PATIENT_ID: new_id})], ignore_index=True)
    assert _gate_roc_auc(model, added) == before


def test_scores_come_from_the_model_not_from_columns_in_the_frame(
    scored: tuple[object, pd.DataFrame],
) -> None:
    model, cohort = scored
    forged = cohort.assign(y_prob=0.05 + 0.5 * cohort["readmitted_30d"])
    _, predictions = score_holdout(model, forged, CONTRACT, KEY, FRACTION, "local")
    _, honest = score_holdout(model, cohort, CONTRACT, KEY, FRACTION, "local")
    assert predictions["y_prob"].tolist() == honest["y_prob"].tolist()
    constant = DummyClassifier(strategy="prior").fit(cohort[[PATIENT_ID]], cohort["readmitted_30d"])
    _, flat = score_holdout(
        constant, cohort[[PATIENT_ID, "readmitted_30d"]], CONTRACT, KEY, FRACTION, "local"
    )
    assert flat["y_prob"].nunique() == 1


@pytest.mark.parametrize("env", ["staging", "production"])
@pytest.mark.parametrize(
    "provenance",
    [{"source": "synthetic", "sha256": "ab" * 32}, {"sha256": "ab" * 32}, {"source": "file"}],
)
def test_synthetic_or_unrecorded_data_is_refused_outside_local(env: str, provenance: dict) -> None:
    problem = data_source_problem(env, provenance)
    assert problem is not None and "never on synthetic data" in problem
    assert data_source_problem("local", provenance) is None
    assert data_source_problem(env, {"source": "file", "sha256": "ab" * 32}) is None


@pytest.mark.parametrize("env", ["staging", "production"])
def test_a_version_trained_on_synthetic_data_is_refused_outside_local_even_on_a_file(
    env: str,
) -> None:
    """Day-one review: version 4 was trained on synthetic data (recorded as such), then promoted
    with the synthetic frame written to a CSV: a "file" with the hash it was trained on."""
    as_file = {"source": "file", "sha256": "ab" * 32}
    problem = data_source_problem(env, as_file, trained_on="synthetic")
    assert problem is not None and "trained on data from source 'synthetic'" in problem
    assert data_source_problem("local", as_file, trained_on="synthetic") is None
    for honest in ("file", "download", None):  # None: a record older than the field
        assert data_source_problem(env, as_file, trained_on=honest) is None


def test_promotions_judge_on_the_registered_dataset_unless_a_refresh_is_allowed() -> None:
    pinned, other = "a" * 64, "b" * 64
    for env in ("staging", "production"):
        assert evaluation_data_problem(env, pinned, pinned, False) == (None, False)
        problem, _ = evaluation_data_problem(env, pinned, other, False)
        assert problem is not None and "pinned at training" in problem and other in problem
        assert evaluation_data_problem(env, pinned, other, True) == (None, True)
        assert evaluation_data_problem(env, None, other, False)[0] is not None
        assert evaluation_data_problem(env, pinned, None, True)[0] is not None
    assert evaluation_data_problem("local", pinned, other, False) == (None, False)
    assert load_policy("production").evaluation_data.allow_refresh is False


def test_a_refused_dataset_names_the_copy_of_the_version_s_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newcomer review: the refusal gave two hashes and no file; the platform keeps a copy
    of every run's data file by its SHA-256, and the message names it for --data."""
    pinned, other = "a" * 64, "b" * 64
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))
    problem, _ = evaluation_data_problem("staging", pinned, other, False)
    assert problem is not None and "--data" not in problem
    kept = tmp_path / "inputs" / pinned / "synthetic_encounters.csv"
    kept.parent.mkdir(parents=True)
    kept.write_text("encounter_id\n1\n", encoding="utf-8")
    problem, _ = evaluation_data_problem("staging", pinned, other, False)
    assert problem is not None and f"--data {kept}" in problem


def test_the_platform_hashes_the_data_file_itself(tmp_path: Path) -> None:
    data = tmp_path / "encounters.csv"
    data.write_bytes(b"encounter_id,patient_nbr\n1,2\n")
    into = tmp_path / "inputs"

    def sha256(parameters: dict[str, Any]) -> str:
        return snapshot_data_file(parameters, into).sha256

    given = {"data": DataSettings(path=str(data))}
    assert sha256(given) == hashlib.sha256(data.read_bytes()).hexdigest()
    before = sha256(given)
    data.write_bytes(b"encounter_id,patient_nbr\n1,3\n")  # one byte changed
    assert sha256(given) != before
    assert sha256({"data": DataSettings(path=None)}) == ""
    assert sha256({"data": DataSettings(path=str(tmp_path / "gone.csv"))}) == ""
    assert sha256({}) == ""
    assert sha256({"data": {"path": str(data)}}) == sha256(given)


def test_the_run_reads_the_platforms_hashed_copy_of_the_data_file(tmp_path: Path) -> None:
    data = tmp_path / "given" / "encounters.csv.gz"
    data.parent.mkdir()
    data.write_bytes(b"first bytes")
    into = tmp_path / "inputs"
    taken = snapshot_data_file({"data": DataSettings(path=str(data)), "other": 1}, into)

    assert taken.sha256 == hashlib.sha256(b"first bytes").hexdigest()
    copy = Path(taken.parameters["data"].path)
    assert copy == into / taken.sha256 / "encounters.csv.gz"  # content-addressed, suffix kept
    assert taken.parameters["other"] == 1 and taken.origin == str(data.resolve())
    data.write_bytes(b"swapped after the hash")  # the requester's file changes after the launch
    assert copy.read_bytes() == b"first bytes"
    assert not copy.stat().st_mode & 0o222  # read-only

    # A leftover copy under that name that somebody edited is replaced, never trusted.
    copy.chmod(0o644)
    copy.write_bytes(b"tampered copy")
    data.write_bytes(b"first bytes")
    again = snapshot_data_file({"data": {"path": str(data)}}, into)
    assert again.parameters["data"]["path"] == str(copy) and copy.read_bytes() == b"first bytes"
    assert [p.name for p in into.iterdir()] == [taken.sha256]  # no partial file left behind

    for no_file in ({"data": DataSettings(path=None)}, {"data": {"path": str(tmp_path / "gone")}}):
        assert snapshot_data_file(no_file, into).sha256 == ""
        assert snapshot_data_file(no_file, into).parameters == no_file


def test_pinning_compares_the_platforms_file_hash_not_the_loaders() -> None:
    pinned_file, other_file, loader = "c" * 64, "d" * 64, "e" * 64
    governed = GovernedContext(
        env="staging", actor="bob", git_sha="f" * 40, git_dirty=False,
        data_file_sha256=other_file,
    )  # fmt: skip
    recorded = {"data_sha256": loader, "data_file_sha256": pinned_file}
    registration = {"data": {"sha256": loader, "file_sha256": pinned_file}}
    # Another file, while the data-science loader reports the registered CSV hash: refused.
    registered, given = pinned_data_hashes(recorded, registration, {"sha256": loader}, governed)
    assert (registered, given) == (pinned_file, other_file)
    problem, _ = evaluation_data_problem("staging", registered, given, False)
    assert problem is not None and other_file in problem
    # A version registered before the platform hashed files is compared on the loader's hash.
    legacy, legacy_recorded = {"data": {"sha256": loader}}, {"data_sha256": loader}
    assert pinned_data_hashes(legacy_recorded, legacy, {"sha256": loader}, governed) == (
        loader,
        loader,
    )
    # A run without a local file cannot match a version pinned to one.
    no_file = GovernedContext(env="staging", actor="bob", git_sha="f" * 40, git_dirty=False)
    assert pinned_data_hashes(recorded, registration, {"sha256": loader}, no_file) == (
        pinned_file,
        None,
    )


def test_the_pin_is_the_verified_training_record_s_not_the_editable_metadata_s() -> None:
    pinned_file, doctored, loader = "c" * 64, "d" * 64, "e" * 64
    governed = GovernedContext(
        env="staging", actor="bob", git_sha="f" * 40, git_dirty=False, data_file_sha256=doctored
    )
    recorded = {"data_sha256": loader, "data_file_sha256": pinned_file}
    # ZenML's metadata rewritten to name the doctored file the requester evaluates on
    rewritten = {"model_version": "4", "data": {"sha256": loader, "file_sha256": doctored}}
    with pytest.raises(GateRecordMismatch, match="edited outside the platform") as refused:
        pinned_data_hashes(recorded, rewritten, {"sha256": loader}, governed)
    assert doctored in str(refused.value) and pinned_file in str(refused.value)
    # a legacy record without the file hash does not accept metadata that adds one
    with pytest.raises(GateRecordMismatch):
        pinned_data_hashes({"data_sha256": loader}, rewritten, {"sha256": loader}, governed)


def test_the_expected_holdout_is_the_file_s_rows_of_holdout_patients_minus_exclusions() -> None:
    key, fraction = b"unit-test-key-123", 0.5
    raw = pd.DataFrame(
        {
            "id": [str(i) for i in range(400)],
            "patient": [str(i // 2) for i in range(400)],
            "outcome": ["<30" if i % 3 == 0 else "NO" for i in range(400)],
            "disposition": ["11" if i % 7 == 0 else "1" for i in range(400)],
        }
    )
    expected = expected_holdout_labels(
        raw, "patient", key, fraction, id_column="id", label_column="outcome",
        label_positive=["<30"], exclude={"disposition": [11]},
    )  # fmt: skip
    held = in_holdout(raw["patient"], key, fraction)
    kept = raw[held & (raw["disposition"] != "11")]
    assert list(expected.index) == list(kept["id"])
    assert list(expected) == [int(o == "<30") for o in kept["outcome"]]
    assert holdout_rows_problems(expected.copy(), expected) == []

    flipped = expected.copy()
    flipped.iloc[:3] = 1 - flipped.iloc[:3]
    (changed,) = holdout_rows_problems(flipped, expected)
    assert changed.startswith("3 rows carry another outcome")
    (missing,) = holdout_rows_problems(expected.iloc[5:], expected)
    assert missing.startswith("5 rows of holdout patients in the data file are missing")
    extra = pd.concat([expected, pd.Series([0], index=["not-a-holdout-row"])])
    (added,) = holdout_rows_problems(extra, expected)
    assert "not-a-holdout-row" in added


# The gate's model input is the data file's own row without its outcome (the fresh-eyes review's
# attack: the cohort or the contract handed the model the outcome, and the gate scored 1.000).
OUTCOMES = {TARGET_COLUMN, LABEL}


def _file_and_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = raw_encounters(400, 150, seed=11)
    return raw.astype(str), build_cohort(raw)  # the file as text; what the loader makes of it


def test_the_honest_cohort_is_the_file_s_own_values() -> None:
    text, cohort = _file_and_cohort()
    assert holdout_input_problems(cohort, text, id_column=ENCOUNTER_ID, hidden=OUTCOMES) == []


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda c: c.assign(max_glu_serum=c[LABEL].astype(str)), "'max_glu_serum' differs"),
        (lambda c: c.assign(followup_flag=c[LABEL]), "lacks: 'followup_flag'"),
        (
            lambda c: c.assign(number_inpatient=c["number_inpatient"] + c[LABEL]),
            "'number_inpatient' differs",
        ),
        (lambda c: c.assign(race=c["race"].where(c[LABEL] == 0, "?")), "'race' differs"),
        (
            lambda c: c.assign(max_glu_serum=c["max_glu_serum"].where(c[LABEL] == 0, None)),
            "'max_glu_serum' differs",
        ),
    ],
    ids=[
        "outcome-in-a-file-column",
        "outcome-as-a-new-column",
        "outcome-added",
        "text-recoded",
        "missing-for-readmitted",
    ],
)
def test_an_input_made_from_the_outcome_is_named(tamper: Any, named: str) -> None:
    text, cohort = _file_and_cohort()
    cohort = cohort[cohort["race"] != "?"].reset_index(drop=True)  # recoding to "?" shows
    problems = holdout_input_problems(
        tamper(cohort.copy()), text, id_column=ENCOUNTER_ID, hidden=OUTCOMES
    )
    assert len(problems) == 1 and named in problems[0], problems


def test_the_gate_checks_against_the_file_s_holdout_rows_only_and_misses_nothing() -> None:
    """`holdout_file_rows` keeps exactly the holdout patients' rows (remembered per file), and a
    holdout judged against them is refused for the same reasons as against the whole file."""
    text, cohort = _file_and_cohort()
    rows = holdout_file_rows(text, ("unit-file", None), PATIENT_ID, KEY, FRACTION)
    held = in_holdout(text[PATIENT_ID], KEY, FRACTION)
    assert 0 < len(rows) < len(text)
    assert list(rows[ENCOUNTER_ID]) == list(text.loc[held, ENCOUNTER_ID])
    assert holdout_file_rows(text, ("unit-file", None), PATIENT_ID, KEY, FRACTION) is rows
    holdout = cohort[in_holdout(cohort[PATIENT_ID], KEY, FRACTION)].reset_index(drop=True)
    assert holdout_input_problems(holdout, rows, id_column=ENCOUNTER_ID, hidden=OUTCOMES) == []
    tampered = holdout.assign(race=holdout["race"].where(holdout[LABEL] == 0, "?"))
    assert holdout_input_problems(tampered, rows, id_column=ENCOUNTER_ID, hidden=OUTCOMES) == (
        holdout_input_problems(tampered, text, id_column=ENCOUNTER_ID, hidden=OUTCOMES)
    )
    # a development patient's row handed in as holdout is still named, by the rows check
    other = cohort[~in_holdout(cohort[PATIENT_ID], KEY, FRACTION)].head(1)
    given = pd.concat([holdout, other])
    labels = pd.Series(given[LABEL].to_numpy(), index=given[ENCOUNTER_ID].astype(str))
    expected = expected_holdout_labels(
        rows, PATIENT_ID, KEY, FRACTION, id_column=ENCOUNTER_ID, label_column=TARGET_COLUMN,
        label_positive=["<30"], exclude={},
    )  # fmt: skip
    named = " ".join(holdout_rows_problems(labels, expected))
    assert "not rows of holdout patients" in named and str(other[ENCOUNTER_ID].iloc[0]) in named


def test_each_file_value_has_one_loaded_form() -> None:
    """The second review carried the outcome in how a value was written: "None" turned into a
    missing value for readmitted patients (the gate scored 0.99999); -0.0 for 0, 41.00000002
    for 41 and the int 41 for the text "41" are other forms of one file value."""
    text = pd.DataFrame({"id": ["1", "2", "3"], "a": ["?", "2.50", "0"], "b": ["None", "41", "x"]})
    loaded = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "a": [np.nan, 2.5, 0.0],
            "b": pd.Series(["None", "41", "x"], dtype=object),
        }
    )
    assert holdout_input_problems(loaded, text, id_column="id", hidden=()) == []
    for column, forms in {
        "a": ([np.nan, 2.5, -0.0], [np.nan, 2.5000000001, 0.0]),
        "b": (
            pd.Series([None, "41", "x"], dtype=object),
            pd.Series(["None", 41, "x"], dtype=object),
        ),
        "id": (pd.Series([1, "2", 3], dtype=object),),
    }.items():
        for form in forms:
            problems = holdout_input_problems(
                loaded.assign(**{column: form}), text, id_column="id", hidden=()
            )
            assert f"{column!r} differs from the data file in" in " ".join(problems), (
                column,
                form,
                problems,
            )


class _ReadsTheOutcome:
    """A model whose risk is the outcome when it is handed one (what the attack's features did)."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        risk = frame[LABEL].to_numpy(float) if LABEL in frame else np.full(len(frame), 0.3)
        return np.column_stack([1 - risk, risk])


def test_the_gate_never_hands_a_model_the_outcome_whatever_the_contract_lists() -> None:
    cohort = build_cohort(raw_encounters(3000, 1200, seed=5))
    contract = CONTRACT.model_copy(update={"label_columns": (TARGET_COLUMN,)})  # LABEL left out
    _, predictions = score_holdout(_ReadsTheOutcome(), cohort, contract, KEY, FRACTION, "local")
    assert predictions["y_prob"].nunique() == 1  # no outcome reached the model


def test_a_model_fitted_with_the_outcome_is_refused() -> None:
    from sklearn.linear_model import LogisticRegression

    cohort = build_cohort(raw_encounters(3000, 1200, seed=5))
    leaky = LogisticRegression().fit(cohort[["time_in_hospital", LABEL]], cohort[LABEL])
    with pytest.raises(
        HoldoutLeakError, match=r"fitted with the outcome column\(s\) \['readmitted_30d'\]"
    ):
        score_holdout(leaky, cohort, CONTRACT, KEY, FRACTION, "local")


def test_approved_data_files_bind_outside_local_only_when_listed() -> None:
    """evaluation_data.approved_file_sha256: every file a staging or production gate trains or
    judges on must be listed (a run without a hashed file is not); local and an empty list
    accept any file."""
    approved, other = ("ab" * 32,), "cd" * 32
    files = {"this run's data file": other}
    for env in ("staging", "production"):
        problem = unapproved_data_problem(env, approved, files)
        assert problem is not None
        assert other in problem and "evaluation_data.approved_file_sha256" in problem
        assert f"configs/{env}/policy.yaml" in problem
        assert unapproved_data_problem(env, approved, {"the run's file": approved[0]}) is None
        assert unapproved_data_problem(env, (), files) is None
        unhashed = unapproved_data_problem(env, approved, {"this run's data file": None})
        assert unhashed is not None and "not a file the platform hashed" in unhashed
        # Each file is judged: the first listed, the second (the training file) is not.
        both = {"this run's data file": approved[0], "the training file": other}
        assert "the training file" in (unapproved_data_problem(env, approved, both) or "")
    assert unapproved_data_problem("local", approved, files) is None
