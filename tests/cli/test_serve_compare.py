"""`mlops serve compare` and `mlops lineage --request-id` read only the log parts a stopped
service recorded in the verified trail.

A serving service (no ZenML deployment: its log and its stop are the real ones) logs served and
shadow rows and stops, which records each part's SHA-256 in the isolated trail. Then the attacks:
an extra part dropped into the log directory is left out; an edited shadow score is refused with
exit 8 and no figures; a directory no service recorded is not found.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mlops_cli.errors import ExitCode
from mlops_platform.serving.log import MANIFEST, parts, read_log
from mlops_platform.serving.scorer import ServedModel
from mlops_platform.serving.service import ServingGrant, ServingService
from readmission.core import uci
from readmission.names import MODEL_NAME
from readmission.pipelines.batch_inference import RISK_COLUMN
from readmission.pipelines.realtime import realtime_contract
from tests.integration.helpers import invoke

pytestmark = pytest.mark.usefixtures("isolated_state")

THRESHOLD = 0.5
SERVED = [0.1, 0.2, 0.6, 0.7]
SHADOW = [0.2, 0.1, 0.7, 0.4]  # bands agree on 3 of 4; mean difference -0.05


def _rows(service: ServingService, scores: list[float], shadow: bool) -> pa.Table:
    n = len(scores)
    version, stage = ("2", "staging") if shadow else ("1", "production")
    columns = {
        uci.ENCOUNTER_ID: pa.array(range(100, 100 + n), pa.int64()),
        uci.PATIENT_ID: pa.array(range(500, 500 + n), pa.int64()),
        RISK_COLUMN: pa.array(scores, pa.float64()),
        "risk_band": pa.array(["high" if s >= THRESHOLD else "low" for s in scores]),
        "model_name": pa.array([MODEL_NAME] * n),
        "model_version": pa.array([version] * n),
        "model_stage": pa.array([stage] * n),
        "inference_run_id": pa.array([service.inference_run_id] * n),
        "scored_at": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
        "request_id": pa.array([f"r{i}" for i in range(n)]),
        "shadow": pa.array([shadow] * n),
    }
    return pa.table(columns, schema=service.log.schema)


def _stopped_service_log(root: Path, *, trained: bool = True) -> Path:
    """A service of version 1 stopped with its log recorded; ``trained``: the version's
    `training_completed` record (the commit and data lineage shows) is in the trail."""
    from zenml.client import Client

    from mlops_platform.trust.audit import AuditEventType
    from mlops_platform.trust.events import record_version_event

    client = Client()  # the stop's audit event is mirrored to the served version
    client.create_model(MODEL_NAME)
    created = client.create_model_version(MODEL_NAME)
    version = created.name
    if trained:
        record_version_event(
            "local", AuditEventType.TRAINING_COMPLETED, "ana", created,
            details={"git_sha": "c" * 40, "git_dirty": False, "data_sha256": "d" * 64},
        )  # fmt: skip
    log_dir = (root / "log").resolve()
    grant = ServingGrant(
        "local", "ana", "asserted", "d", MODEL_NAME, str(log_dir), True, "2026-01-01"
    )
    service = ServingService(realtime_contract(THRESHOLD), grant)
    service._served = ServedModel(object(), MODEL_NAME, str(version), "production", "id-1")
    service.log.append(_rows(service, SERVED, shadow=False))
    service.log.append(_rows(service, SHADOW, shadow=True))
    service.stop()  # flushes the log and records its parts' SHA-256 in the trail
    return log_dir


def _list_in_manifest(log_dir: Path, part: Path) -> None:
    """What an attacker who can write the directory does: list the part with its new digest."""
    entries = [
        json.loads(line)
        for line in (log_dir / MANIFEST).read_text().splitlines()
        if line and json.loads(line)["part"] != part.name
    ]
    digest = hashlib.sha256(part.read_bytes()).hexdigest()
    entries.append({"part": part.name, "rows": pq.read_metadata(part).num_rows, "sha256": digest})
    (log_dir / MANIFEST).write_text("".join(json.dumps(e) + "\n" for e in entries))


def _compare(*args: str) -> tuple[int, str, str]:
    result = invoke("serve", "compare", *args, "--json")
    return result.exit_code, result.stdout, result.stderr


def test_compare_reads_only_recorded_parts_and_refuses_a_changed_one(tmp_path: Path) -> None:
    log_dir = _stopped_service_log(tmp_path)
    code, stdout, _ = _compare()
    assert code == 0, stdout
    figures = json.loads(stdout)["shadow_versions"]["2"]
    assert figures["n_encounters"] == 4 and figures["served_versions"] == ["1"]
    assert figures["agreement"] == pytest.approx(0.75)
    assert figures["mean_difference"] == pytest.approx(-0.05)

    # A part nobody recorded (with its own manifest line) counts for nothing.
    (recorded,) = parts(log_dir)
    table = pq.read_table(recorded)
    forged = table.set_column(
        table.schema.get_field_index(RISK_COLUMN),
        RISK_COLUMN,
        pc.if_else(table["shadow"], pa.scalar(0.99), table[RISK_COLUMN]),
    )
    extra = log_dir / "part-99999999-20990101T000000000000Z-deadbeef.parquet"
    pq.write_table(
        forged.set_column(
            table.schema.get_field_index("request_id"),
            "request_id",
            pa.array([f"x{i}" for i in range(table.num_rows)]),
        ),
        extra,
    )
    _list_in_manifest(log_dir, extra)
    assert len(read_log(log_dir)) == 2 * table.num_rows  # the log's own manifest accepts it
    code, stdout, _ = _compare("--log-dir", str(log_dir))
    assert code == 0
    answer = json.loads(stdout)
    assert answer["shadow_versions"]["2"]["mean_difference"] == pytest.approx(-0.05)
    assert extra.name in answer["note"] and "1 log part(s)" in answer["note"]
    extra.unlink()
    _list_in_manifest(log_dir, recorded)

    # The recorded part with its shadow scores edited (and the manifest with it): refused, and
    # no figures printed.
    pq.write_table(forged, recorded)
    _list_in_manifest(log_dir, recorded)
    assert len(read_log(log_dir)) == table.num_rows
    code, stdout, stderr = _compare()
    assert code == ExitCode.AUDIT_BROKEN
    assert "SHA-256" in stderr and recorded.name in stderr
    refusal = json.loads(stdout)  # the error object only: no figures
    assert set(refusal) == {"error", "exit_code"} and refusal["exit_code"] == code
    assert "Traceback" not in stderr


def test_compare_refuses_a_log_no_service_recorded(tmp_path: Path) -> None:
    _stopped_service_log(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    code, stdout, stderr = _compare("--log-dir", str(other))
    assert code == ExitCode.NOT_FOUND
    assert json.loads(stdout)["exit_code"] == ExitCode.NOT_FOUND  # the error object only
    assert "No stopped service recorded the prediction log" in stderr


def _lineage(request_id: str, log_dir: Path) -> tuple[int, str, str]:
    result = invoke("lineage", "--request-id", request_id, "--predictions", str(log_dir), "--json")
    return result.exit_code, result.stdout, result.stderr


def test_lineage_of_a_request_reads_only_recorded_parts(tmp_path: Path) -> None:
    log_dir = _stopped_service_log(tmp_path)
    (recorded,) = parts(log_dir)
    code, stdout, stderr = _lineage("r0", log_dir)
    assert code == 0, stderr
    traced = json.loads(stdout)
    assert [p["request_id"] for p in traced["predictions"]] == ["r0"]
    assert traced["code"]["git_sha"] == "c" * 40  # from the verified training record
    assert traced["training_data"]["sha256"] == "d" * 64
    assert traced["predictions"][0]["log_part"] == recorded.name
    shown = invoke("lineage", "--request-id", "r0", "--predictions", str(log_dir))
    assert shown.exit_code == 0 and "served: encounter 100, risk 0.100" in shown.stdout, (
        shown.output
    )

    # A part planted in the log directory (listed in the log's own manifest) with a forged
    # answer: never traced, the message says why.
    table = pq.read_table(recorded)
    forged = table.set_column(
        table.column_names.index("request_id"),
        "request_id",
        pa.array(["forged-1"] * table.num_rows),
    )
    planted = log_dir / recorded.name.replace(recorded.stem, f"{recorded.stem}9")
    pq.write_table(forged, planted)
    _list_in_manifest(log_dir, planted)
    code, stdout, stderr = _lineage("forged-1", log_dir)
    assert code == ExitCode.NOT_FOUND, stderr
    assert "no stopped service recorded" in stderr and planted.name in stderr
    assert json.loads(stdout)["exit_code"] == ExitCode.NOT_FOUND
    planted.unlink()

    # The recorded part edited (its answer changed) and the manifest with it: refused, exit 8.
    risk = table.column_names.index(RISK_COLUMN)
    pq.write_table(table.set_column(risk, RISK_COLUMN, pc.add(table[RISK_COLUMN], 0.5)), recorded)
    _list_in_manifest(log_dir, recorded)
    code, _, stderr = _lineage("r0", log_dir)
    assert code == ExitCode.AUDIT_BROKEN and "SHA-256" in stderr


def test_lineage_of_a_version_without_a_verified_training_record_is_refused(
    tmp_path: Path,
) -> None:
    """Commit, data and training run are shown from the version's verified training record;
    without one, lineage stops (exit 8) instead of showing ZenML's editable metadata."""
    log_dir = _stopped_service_log(tmp_path, trained=False)
    code, _, stderr = _lineage("r0", log_dir)
    assert code == ExitCode.AUDIT_BROKEN, stderr
    assert "no verified training record" in stderr


def test_recorded_parts_removed_are_refused_not_left_out(tmp_path: Path) -> None:
    """The second review: the recorded part moved away made lineage say "No prediction log"
    (exit 6), as if nothing had been served, and `serve compare` left it out unseen; a junk part
    crashed the lookup with a traceback."""
    log_dir = _stopped_service_log(tmp_path)
    (recorded,) = parts(log_dir)
    junk = log_dir / recorded.name.replace(recorded.stem, f"{recorded.stem}7")
    junk.write_bytes(b"not parquet")
    code, _, stderr = _lineage("nobody", log_dir)
    assert code == ExitCode.NOT_FOUND and "Traceback" not in stderr, stderr  # junk names nothing
    junk.unlink()

    recorded.rename(tmp_path / recorded.name)  # the evidence moved away
    code, stdout, stderr = _lineage("r0", log_dir)
    assert code == ExitCode.AUDIT_BROKEN, stderr
    assert recorded.name in stderr and "no longer there" in stderr
    assert json.loads(stdout)["exit_code"] == ExitCode.AUDIT_BROKEN
    # The same class in `serve compare` (and outcome monitoring, which reads the same way): the
    # recorded answers are not silently left out.
    code, stdout, stderr = _compare()
    assert code == ExitCode.AUDIT_BROKEN and "no longer there" in stderr, stderr


def test_compare_with_nothing_recorded_says_why() -> None:
    """Day-one review: run beside a running service, compare answered an empty object."""
    code, out, _ = _compare()
    answer = json.loads(out)
    assert code == 0 and answer["shadow_versions"] == {}
    assert "when it stops" in answer["note"]
