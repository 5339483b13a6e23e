"""Pure parts of `mlops versions`, `mlops compare` and the plain `mlops train` output."""

from __future__ import annotations

from rich.console import Console

from mlops_cli.commands import print_gate_and_champion
from mlops_platform.reporting.versions import comparison, verdict, version_row

METADATA = {
    "gate_decision": {"passed": True, "checks": []},
    "gate_metrics": {"roc_auc": 0.68, "brier": 0.095, "ece": 0.01, "note": "x"},
    "registration": {"trained_by": "ana", "code": {"git_sha": "abc"}, "data": {"sha256": "d1"}},
}


def test_verdict_reads_the_gate_and_the_rejected_tag() -> None:
    assert verdict(METADATA, ["validated"]) == "passed"
    assert verdict({"gate_decision": {"passed": False}}, ["rejected"]) == "rejected"
    assert verdict({"gate_decision": {"passed": False}}, []) == "failed"
    assert verdict({}, []) == "not judged"
    # a validated version whose later promotion gate failed is still the validated one
    later_failed = {"gate_decision": {"passed": False}}
    assert verdict(later_failed, ["validated"]) == "passed; last gate failed"


def test_a_row_holds_stage_metrics_author_and_approvers() -> None:
    row = version_row("3", "production", ["validated"], METADATA, {"production": ["bo", "bo"]})

    assert row["metrics"] == {"roc_auc": 0.68, "brier": 0.095, "ece": 0.01}
    assert row["trained_by"] == "ana" and row["approved_by"] == {"production": ["bo"]}
    assert version_row("4", None, [], {}, {})["stage"] == "-"
    assert row["code"] == "abc" and row["git_dirty"] is False
    dirty = {**METADATA, "registration": {"code": {"git_sha": "f" * 40, "git_dirty": True}}}
    assert version_row("5", None, [], dirty, {})["code"] == "f" * 12 + " (uncommitted changes)"


def test_a_row_shows_the_verified_records_facts_even_for_a_rejected_version() -> None:
    """A version the training gate rejected has no `registration` metadata: its author and data
    used to show as "-"; the gate's record names them. Where records exist they win over the
    editable metadata."""
    from mlops_platform.reporting.versions import recorded_facts
    from mlops_platform.trust.audit import AuditEventType
    from tests.unit.test_training_author import record

    rejected = record(4, "cy", "6", AuditEventType.GATE_FAILED, data_sha256="d6",
                      version_identity={"model_version_id": "id-6"})  # fmt: skip
    promotion_gate = record(9, "bo", "6", AuditEventType.GATE_FAILED, data_sha256="d7",
                            version_identity={"model_version_id": "id-6"})  # fmt: skip
    trained = record(2, "ana", "3", AuditEventType.TRAINING_COMPLETED, data_sha256="d3",
                     git_sha="c" * 40, git_dirty=False, model_version_id="id-3")  # fmt: skip
    facts = recorded_facts([promotion_gate, trained, rejected])
    row = version_row("6", None, ["rejected"], {}, {}, facts[("6", "id-6")])
    assert (row["trained_by"], row["data_sha256"], row["code"]) == ("cy", "d6", "-")
    # A rejected version trained from an uncommitted tree: its gate record names the code (the
    # newcomer review saw code "-" and git_dirty false).
    dirty_gate = record(5, "cy", "7", AuditEventType.GATE_FAILED, git_sha="e" * 40,
                        git_dirty=True, version_identity={"model_version_id": "id-7"})  # fmt: skip
    row = version_row("7", None, ["rejected"], {}, {}, recorded_facts([dirty_gate])[("7", "id-7")])
    assert row["git_dirty"] is True and row["code"].endswith("(uncommitted changes)")
    edited = {**METADATA, "registration": {**METADATA["registration"], "trained_by": "mallory"}}
    row = version_row("3", None, [], edited, {}, facts[("3", "id-3")])
    assert (row["trained_by"], row["data_sha256"], row["git_sha"]) == ("ana", "d3", "c" * 40)


def test_a_row_shows_the_newest_gate_record_s_metrics_not_zenml_s_copy() -> None:
    """The second review: `mlops versions` and `mlops compare`, which approvers read, showed
    ZenML's `gate_metrics` after `mlops check` had found them edited. The newest gate record's
    metrics are shown; a passing gate's record is not taken for the trainer."""
    from mlops_platform.reporting.versions import recorded_facts
    from mlops_platform.trust.audit import AuditEventType
    from tests.unit.test_training_author import record

    identity = {"model_version_id": "id-3"}
    trained = record(2, "ana", "3", AuditEventType.TRAINING_COMPLETED, model_version_id="id-3")
    training_gate = record(1, "ana", "3", AuditEventType.GATE_PASSED, version_identity=identity,
                           metrics={"roc_auc": 0.68, "brier": 0.095})  # fmt: skip
    promotion_gate = record(5, "bo", "3", AuditEventType.GATE_PASSED, version_identity=identity,
                            metrics={"roc_auc": 0.681, "brier": 0.094})  # fmt: skip
    facts = recorded_facts([promotion_gate, trained, training_gate])
    edited = {**METADATA, "gate_metrics": {"roc_auc": 0.95, "brier": 0.01}}
    row = version_row("3", None, [], edited, {}, facts[("3", "id-3")])
    assert row["metrics"] == {"roc_auc": 0.681, "brier": 0.094}
    assert row["trained_by"] == "ana"


def test_comparison_subtracts_first_from_second_and_flags_differences() -> None:
    first = version_row("3", "production", [], METADATA, {})
    second_metadata = {**METADATA, "gate_metrics": {"roc_auc": 0.70, "brier": 0.094, "ece": 0.01}}
    second = version_row("4", None, [], second_metadata, {})

    result = comparison(first, second)

    roc = next(m for m in result["metrics"] if m["metric"] == "roc_auc")
    assert round(roc["difference"], 6) == 0.02
    stage = next(f for f in result["facts"] if f["fact"] == "stage")
    assert stage["same"] is False
    assert result["same_holdout"] is False  # neither recorded its holdout rows


def test_comparison_says_whether_both_were_measured_on_the_same_holdout_rows() -> None:
    def measured(on: str, rows: int) -> dict[str, object]:
        return {**METADATA, "gate_evaluation": {"sha256": on * 64, "rows": rows}}

    same = comparison(
        version_row("3", None, [], measured("a", 900), {}),
        version_row("4", None, [], measured("a", 900), {}),
    )
    other = comparison(
        version_row("3", None, [], measured("a", 900), {}),
        version_row("4", None, [], measured("b", 950), {}),
    )

    assert same["same_holdout"] is True and other["same_holdout"] is False
    holdout = next(f for f in other["facts"] if f["fact"] == "holdout")
    assert holdout["3"] == "a" * 12 + " (900 rows)" and holdout["same"] is False
    # without gate metrics the registration's evaluation is the one the metrics came from
    registered = {"registration": {"metrics": {"roc_auc": 0.7}, "evaluation": {"sha256": "c" * 64}}}
    assert version_row("5", None, [], registered, {})["holdout"].startswith("c" * 12)


def test_plain_train_output_shows_the_gate_and_the_champion_comparison() -> None:
    console = Console(record=True, width=200)
    summary = {
        "model_version": "4",
        "environment": "local",
        "metrics": {"roc_auc": 0.70, "brier": 0.094},
        "gates": {
            "passed": True,
            "environment": "local",
            "checks": [
                {
                    "name": "roc_auc",
                    "passed": True,
                    "value": 0.7,
                    "limit": 0.6,
                    "comparison": ">=",
                    "detail": "within limit",
                }
            ],
        },
        "champion": {"model_version": "3", "stage": "production", "roc_auc": 0.68, "brier": 0.095},
    }

    print_gate_and_champion(console, summary)

    text = console.export_text()
    assert "Gate (local): passed" in text and ">= 0.6" in text
    assert "Compared with version 3 (production)" in text and "+0.0200" in text


def test_approvers_are_read_per_version_and_stage() -> None:
    from types import SimpleNamespace

    from mlops_platform.reporting.versions import approvers

    records = [
        SimpleNamespace(
            model_version="3", stage="production", actor="x", details={"approver": "bo"}
        ),
        SimpleNamespace(model_version="3", stage="staging", actor="x", details={"approver": "cy"}),
        SimpleNamespace(
            model_version="4", stage="production", actor="x", details={"approver": "di"}
        ),
    ]

    assert approvers(records, "3", "production", "id-3") == ["bo"]
    assert approvers(records, "5", "production", "id-5") == []
    # An override release is approved by its countersigner (the newcomer review saw "-").
    signed = SimpleNamespace(
        model_version="6",
        stage="production",
        actor="erin",
        event_type="countersignature",
        details={"countersigner": "erin"},
    )
    assert approvers([signed], "6", "production", "id-6") == ["erin (countersigned override)"]


def test_an_approval_of_a_deleted_version_is_not_shown_for_its_number_s_successor() -> None:
    """The fresh-eyes review: carol approved version 5, it was deleted, a new training run got
    number 5, and `mlops versions` showed "production: carol" for a version nobody approved."""
    from types import SimpleNamespace

    from mlops_platform.reporting.versions import approvers

    def approval(version_id: str | None) -> SimpleNamespace:
        identity = {"version_identity": {"model_version_id": version_id}} if version_id else {}
        return SimpleNamespace(
            model_version="5", stage="production", actor="carol", details=identity
        )

    records = [approval("deleted-5"), approval(None)]  # the second: written before ids
    assert approvers(records, "5", "production", "new-5") == ["carol"]  # by number alone
    assert approvers(records[:1], "5", "production", "new-5") == []
    assert approvers(records[:1], "5", "production", "deleted-5") == ["carol"]


def test_an_approval_no_promotion_used_is_marked_not_used() -> None:
    """Day-one review: `mlops versions` showed "production: carol" for versions whose
    promotions were denied, and an approval an earlier stint had already used."""
    from types import SimpleNamespace

    from mlops_platform.governance.promotion import consumed_seqs
    from mlops_platform.reporting.versions import approvers

    def record(seq: int, event_type: str, **details: object) -> SimpleNamespace:
        return SimpleNamespace(
            seq=seq, model_version="7", stage="production", actor="bob",
            event_type=event_type, details=details, model_name="m",
        )  # fmt: skip

    approval = record(10, "approval_recorded", approver="carol")
    again = record(14, "approval_recorded", approver="dan")
    signed = record(15, "countersignature", countersigner="erin")
    moved = record(16, "promotion", approvals=[{"seq": 10}], override={"seq": 15})
    records = [approval, again, signed, moved]
    used = consumed_seqs(records, "m")
    assert used == {10, 15}
    assert approvers(records, "7", "production", "id-7", used) == [
        "carol",
        "dan (not used)",
        "erin (countersigned override)",
    ]
    assert approvers(records, "7", "production", "id-7", set()) == [
        "carol (not used)",
        "dan (not used)",
        "erin (countersigned override) (not used)",
    ]
    # Withdrawn by the person who gave it (`mlops withdraw`): shown so, not as merely unused.
    withdrawn = record(17, "approval_withdrawn", withdrawn=[14])
    assert approvers([*records, withdrawn], "7", "production", "id-7", used) == [
        "carol",
        "dan (withdrawn)",
        "erin (countersigned override)",
    ]


def test_a_row_names_the_data_its_verified_training_record_names() -> None:
    """Day-one review: nothing in `mlops versions` said a version was trained on synthetic data
    (AUC 0.79 beside 0.67 on real data, no data column)."""
    from mlops_platform.reporting.versions import version_row

    claimed = {"registration": {"data": {"source": "file", "file_sha256": "f" * 64}}}
    synthetic = version_row("4", None, [], claimed, {}, {"data_source": "synthetic"})
    assert synthetic["data_source"] == "synthetic" and "(not real data)" in synthetic["data"]
    real = version_row(
        "5", None, [], {}, {}, {"data_source": "file", "data_file_sha256": "ab12" * 16}
    )
    assert real["data"] == "file ab12ab12ab12" and real["data_file_sha256"] == "ab12" * 16
    assert version_row("6", None, [], claimed, {})["data"] == "file ffffffffffff"  # no record
