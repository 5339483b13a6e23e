"""`mlops audit init/log/verify` on a real SQLite audit store, tampered with raw SQL, deleted,
dropped, truncated and re-sealed without the writer's key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_cli.errors import ExitCode
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.trust.audit import (
    AuditChainBroken,
    AuditEventType,
    AuditTrailMissing,
    seal_record,
)
from mlops_platform.trust.audit.chain import canonical_json
from mlops_platform.trust.events import audit_trail
from tests.integration.helpers import invoke, tamper

pytestmark = pytest.mark.usefixtures("isolated_state")

MODEL = "patient_readmission_predictor"
EVENTS = 8


@pytest.fixture
def store_url() -> Iterator[str]:
    """The local environment's audit store, filled with a short promotion story."""
    url = load_platform_settings("local").audit.url
    trail = audit_trail("local")
    for index in range(1, EVENTS + 1):
        trail.append(
            AuditEventType.APPROVAL_RECORDED if index % 2 else AuditEventType.PROMOTION,
            f"person{index}",
            model_name=MODEL if index % 4 else "another_model",
            model_version=str(index),
            stage="production",
            details={"reason": f"step {index}", "approver": "carol"},
        )
    trail.close()
    yield url


def verify_json() -> tuple[int, dict[str, object], str]:
    result = invoke("audit", "verify", "--no-anchors", "--json")
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_intact_trail_verifies_and_logs(store_url: str) -> None:
    code, payload, _ = verify_json()
    assert code == 0
    assert payload["ok"] is True
    assert payload["records_checked"] == EVENTS
    assert payload["head_seq"] == EVENTS

    result = invoke("audit", "log", "--model", MODEL, "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["records"]
    assert [r["seq"] for r in records] == [i for i in range(1, EVENTS + 1) if i % 4]
    assert records[0]["details"]["reason"] == "step 1"

    human = invoke("audit", "log")
    assert human.exit_code == 0, human.output
    assert "person4" in human.stdout


@pytest.mark.parametrize(
    "change",
    ["actor = 'mallory'", 'details = \'{"reason":"forged","approver":"carol"}\''],
)
def test_edited_row_is_named(store_url: str, change: str) -> None:
    tamper(store_url, f"UPDATE audit_events SET {change} WHERE seq = 5")

    code, payload, stderr = verify_json()

    assert code == ExitCode.AUDIT_BROKEN
    assert payload["first_bad_seq"] == 5
    assert "record 5 was edited" in stderr
    assert "at record 5" in stderr


def test_deleted_row_is_named(store_url: str) -> None:
    tamper(store_url, "DELETE FROM audit_events WHERE seq = 3")

    result = invoke("audit", "verify", "--no-anchors")

    assert result.exit_code == ExitCode.AUDIT_BROKEN
    assert "record 3 is missing (sequence jumps from 2 to 4)" in result.stderr


def test_reordered_rows_are_named(store_url: str) -> None:
    tamper(
        store_url,
        "UPDATE audit_events SET seq = -1 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 6",
        "UPDATE audit_events SET seq = 6 WHERE seq = -1",
    )

    code, payload, stderr = verify_json()

    assert code == ExitCode.AUDIT_BROKEN
    assert payload["first_bad_seq"] == 2
    assert "record 2 holds the content of record 6" in stderr


def test_dropped_newest_record_is_found_by_the_published_head(store_url: str) -> None:
    _, intact, _ = verify_json()
    tamper(store_url, f"DELETE FROM audit_events WHERE seq = {EVENTS}")

    result = invoke("audit", "verify", "--no-anchors", "--expected-head", str(intact["head_hash"]))

    assert result.exit_code == ExitCode.AUDIT_BROKEN
    assert f"records after {EVENTS - 1} were removed" in result.stderr


def test_dropped_newest_record_is_found_by_the_checkpoint(store_url: str) -> None:
    assert verify_json()[0] == 0  # saves the verified head as this checkout's checkpoint
    tamper(store_url, f"DELETE FROM audit_events WHERE seq = {EVENTS}")

    result = invoke("audit", "verify", "--no-anchors")

    assert result.exit_code == ExitCode.AUDIT_BROKEN
    assert f"trail ends at record {EVENTS - 1}: the newest records were deleted" in result.stderr


def _forge(url: str, seq: int, prev_hash: str, signature: str | None) -> None:
    """Insert an approval whose hash is right, as anyone who read chain.py could compute it."""
    forged = seal_record(
        seq=seq,
        recorded_at="2026-01-01T00:00:00.000000+00:00",
        event_type=AuditEventType.APPROVAL_RECORDED,
        actor="mallory",
        model_name=MODEL,
        model_version="1",
        stage="production",
        details={"approver": "mallory", "environment": "local"},
        prev_hash=prev_hash,
    )
    tamper(
        url,
        "INSERT INTO audit_events (seq, recorded_at, event_type, actor, model_name, "
        "model_version, stage, details, prev_hash, record_hash, key_id, signature) VALUES "
        f"({seq}, '{forged.recorded_at}', '{forged.event_type}', 'mallory', '{MODEL}', '1', "
        f"'production', '{canonical_json(forged.details)}', '{forged.prev_hash}', "
        f"'{forged.record_hash}', 'deadbeefdeadbeef', "
        f"{'NULL' if signature is None else repr(signature)})",
    )


@pytest.mark.parametrize("signature", [None, "c2lnbmF0dXJl"])
def test_forged_row_with_a_correct_hash_is_refused(store_url: str, signature: str | None) -> None:
    head = audit_trail("local").head()
    assert head is not None
    _forge(store_url, head.seq + 1, head.record_hash, signature)

    code, payload, stderr = verify_json()

    assert code == ExitCode.AUDIT_BROKEN
    assert payload["first_bad_seq"] == EVENTS + 1
    assert ("carries no signature" if signature is None else "not signed by a trusted key") in (
        stderr
    )
    # Nothing is chained on top of the forged row.
    trail = audit_trail("local")
    with pytest.raises(AuditChainBroken, match="refusing to record"):
        trail.append(AuditEventType.PROMOTION, "bob", model_name=MODEL, model_version="2")
    assert trail.count() == EVENTS + 1


def test_whole_chain_resealed_without_the_key_is_refused(store_url: str) -> None:
    """Rewrite every record with the project's own seal_record, dropping record 2, and sign
    with a key of one's own: hashes and links are perfect, the signatures are not trusted."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mlops_platform.trust.signing import Signer

    mallory = Signer(Ed25519PrivateKey.generate())
    kept = [r for r in audit_trail("local").records() if r.seq != 2]
    statements = ["DELETE FROM audit_events"]
    previous = "0" * 64
    for seq, record in enumerate(kept, start=1):
        resealed = seal_record(
            seq=seq,
            recorded_at=record.recorded_at,
            event_type=record.event_type,
            actor=record.actor,
            model_name=record.model_name,
            model_version=record.model_version,
            stage=record.stage,
            details=record.details,
            prev_hash=previous,
        )
        signature = mallory.sign(resealed.signed_bytes())
        statements.append(
            "INSERT INTO audit_events VALUES ("
            f"{seq}, '{resealed.recorded_at}', '{resealed.event_type}', '{resealed.actor}', "
            f"'{resealed.model_name}', '{resealed.model_version}', '{resealed.stage}', "
            f"'{canonical_json(resealed.details)}', '{previous}', '{resealed.record_hash}', "
            f"'{signature.key_id}', '{signature.value}')"
        )
        previous = resealed.record_hash
    tamper(store_url, *statements)

    code, _, stderr = verify_json()

    assert code == ExitCode.AUDIT_BROKEN
    assert "not signed by a trusted key" in stderr
    assert mallory.key_id in stderr


def test_deleted_file_is_not_replaced_by_an_empty_trail(store_url: str) -> None:
    Path(store_url.removeprefix("sqlite:///")).unlink()

    result = invoke("audit", "verify", "--no-anchors")

    assert result.exit_code == ExitCode.AUDIT_BROKEN
    assert "does not exist" in result.stderr
    assert "mlops audit init --env local" in result.stderr
    assert not Path(store_url.removeprefix("sqlite:///")).exists()
    with pytest.raises(AuditTrailMissing):
        audit_trail("local")


def test_dropped_table_is_not_recreated(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", store_url)  # staging and production share it
    tamper(store_url, "DROP TABLE audit_events")

    for command in (["audit", "verify", "--no-anchors"], ["audit", "log"], ["history"]):
        result = invoke(*command)
        assert result.exit_code == ExitCode.AUDIT_BROKEN, (command, result.output)
        assert "has no table audit_events" in result.stderr
    with pytest.raises(AuditTrailMissing):
        audit_trail("local").append(AuditEventType.PROMOTION, "bob")


@pytest.mark.parametrize(
    ("store", "damage"),
    [
        *((store, damage) for store in ("audit", "zenml", "mlflow") for damage in
          ("overwritten", "directory")),
        ("audit", "truncated"),  # SQLite's own error, where the command meets it
    ],
)  # fmt: skip
def test_a_damaged_store_file_is_named_with_exit_8_and_no_traceback(
    store_url: str, monkeypatch: pytest.MonkeyPatch, store: str, damage: str
) -> None:
    """The fresh-eyes review overwrote audit.db (and ZenML's and MLflow's files) with bytes that
    are no database: every command ended in a traceback and exit 1; a second review put a
    directory in their place (exit 1) and truncated them. Overwritten and replaced files are
    refused before any command opens them; a truncated one where SQLite meets the damage."""
    import shutil

    from mlops_platform.infra.store_health import store_files
    from mlops_platform.workspace import mlflow_tracking_uri

    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", store_url)
    invoke("audit", "log")  # opens ZenML's and MLflow's stores as every command does
    mlflow = Path(mlflow_tracking_uri().removeprefix("sqlite:///"))
    path = {
        "audit": Path(store_url.removeprefix("sqlite:///")),
        "zenml": next(p for p in store_files() if p.name == "zenml.db"),
        "mlflow": mlflow,
    }[store]
    if not path.is_file():  # MLflow's store is made by the first command that writes to it
        import sqlite3

        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).executescript("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
    original = path.read_bytes()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    if damage == "overwritten":
        path.write_bytes(b"not a database, overwritten by hand " * 200)
    elif damage == "truncated":
        path.write_bytes(original[: len(original) // 2 + 7])
    else:
        path.unlink()
        path.mkdir()
    try:
        for command in (["audit", "verify", "--no-anchors"], ["history"], ["versions", "--json"]):
            result = invoke(*command)
            assert result.exit_code == ExitCode.AUDIT_BROKEN, (command, result.output)
            assert str(path) in "".join(result.stderr.split()), result.stderr  # named
            assert "Traceback" not in result.output and "This is a bug" not in result.output
    finally:
        if path.is_dir():
            shutil.rmtree(path)


def test_help_and_stopping_work_beside_a_damaged_store(store_url: str) -> None:
    """A review: with a damaged mlflow.db, `--help`, `dashboard stop` and `make clean` were
    refused too, so the documented reset did not work."""
    from mlops_platform.workspace import mlflow_tracking_uri

    mlflow = Path(mlflow_tracking_uri().removeprefix("sqlite:///"))
    mlflow.parent.mkdir(parents=True, exist_ok=True)
    mlflow.write_bytes(b"GARBAGE" * 100)
    assert invoke("versions").exit_code == ExitCode.AUDIT_BROKEN
    for command in (["versions", "--help"], ["audit", "verify", "--help"], ["server", "stop"],
                    ["dashboard", "stop"]):  # fmt: skip
        result = invoke(*command)
        assert result.exit_code == 0, (command, result.output)


def test_trail_of_older_code_is_reported_unsigned(store_url: str) -> None:
    tamper(
        store_url,
        "ALTER TABLE audit_events DROP COLUMN signature",
        "ALTER TABLE audit_events DROP COLUMN key_id",
    )

    result = invoke("audit", "verify", "--no-anchors")

    assert result.exit_code == ExitCode.AUDIT_BROKEN
    assert "created by older code without record signatures" in result.stderr


def test_staging_trail_is_created_only_by_init(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLOPS_AUDIT_DB_URL", raising=False)
    monkeypatch.setenv("CI", "true")  # a runner: no local default, an unset URL is an error
    assert invoke("audit", "verify", "--env", "staging").exit_code == ExitCode.CONFIG

    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{tmp_path / 'staging-audit.db'}")
    missing = invoke("audit", "verify", "--env", "staging", "--no-anchors")
    assert missing.exit_code == ExitCode.AUDIT_BROKEN
    assert "mlops audit init --env staging" in missing.stderr

    assert invoke("audit", "init", "--env", "staging").exit_code == 0
    result = invoke("audit", "verify", "--env", "staging", "--no-anchors", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records_checked"] == 0


def test_on_a_local_checkout_staging_defaults_to_the_local_trail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_platform.infra import settings
    from mlops_platform.infra.settings import NOT_LOCAL_MARKERS

    monkeypatch.setattr(settings, "_said_local_default", set())
    monkeypatch.delenv("MLOPS_AUDIT_DB_URL", raising=False)
    for name in NOT_LOCAL_MARKERS:
        monkeypatch.delenv(name, raising=False)

    result = invoke("audit", "verify", "--env", "staging", "--json")

    assert result.exit_code == 0, result.output
    assert "on this local checkout staging and production use the local audit trail" in (
        result.stderr
    )
    local = invoke("audit", "verify", "--env", "local", "--json")
    assert (
        json.loads(result.stdout)["records_checked"] == json.loads(local.stdout)["records_checked"]
    )


def test_init_of_another_trail_than_the_model_s_records_is_not_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newcomer's slip: after records exist, MLOPS_AUDIT_DB_URL pointed at a new, empty
    store; `mlops audit init` used to say "ready" and the next command then cried tampering."""
    from zenml.client import Client

    from mlops_platform.trust.events import record_event
    from readmission.names import MODEL_NAME

    client = Client()
    client.create_model(MODEL_NAME)
    version = client.create_model_version(MODEL_NAME).name
    monkeypatch.delenv("MLOPS_AUDIT_DB_URL", raising=False)  # the local trail, as by default
    assert invoke("audit", "init", "--env", "staging").exit_code == 0
    record_event(  # a record about the model: its anchors now name this trail's head
        "staging", "approval_recorded", "carol", model_name=MODEL_NAME, model_version=version,
        stage="staging", details={"reason": "reviewed", "target_stage": "staging"},
    )  # fmt: skip
    assert invoke("audit", "init", "--env", "staging").exit_code == 0  # the same trail: ready

    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{tmp_path / 'second.db'}")
    result = invoke("audit", "init", "--env", "staging")

    assert result.exit_code == ExitCode.AUDIT_BROKEN, result.output
    assert "not the one" in result.stderr and "MLOPS_AUDIT_DB_URL" in result.stderr
    # Refused before anything is created (the fresh-eyes review found an empty trail left
    # behind, and `mlops setup` saying "ready" on one).
    assert not (tmp_path / "second.db").exists()

    # The trail the records were written to moved away: `mlops setup` refuses too.
    from mlops_platform import workspace

    monkeypatch.delenv("MLOPS_AUDIT_DB_URL")
    trail = workspace.state_dir() / "audit.db"
    kept = {p: tmp_path / f"kept-{p.name}" for p in trail.parent.glob("audit.db*")}
    for path, away in kept.items():
        path.rename(away)
    try:
        set_up = invoke("setup")
        assert set_up.exit_code == ExitCode.AUDIT_BROKEN, set_up.output
        assert "none was created" in set_up.stderr.replace("\n", " ")
        assert not trail.exists()
    finally:
        for path, away in kept.items():
            away.rename(path)
    assert invoke("setup").exit_code == 0  # the trail back: ready


_HOOK = '''
"""Data-science code that patches the platform when imported (an attack review's hook)."""
import os
from pathlib import Path

from mlops_platform.trust.audit.chain import ChainVerification
from mlops_platform.trust.audit.store import AuditTrail

Path(os.environ["HOOK_MARKER"]).write_text("imported", encoding="utf-8")
AuditTrail.verify = lambda self, *a, **k: ChainVerification(True, 1, None, None)
__path__.append(os.environ["REAL_READMISSION"])
'''


def test_verify_runs_no_data_science_code(store_url: str, tmp_path: Path) -> None:
    """The attack review: `mlops audit verify` imported the readmission package for the model's
    name, so code there (reviewed by data science only) replaced the verification and a record
    edited with raw SQL verified (exit 0). Verify learns the models from ZenML and never
    imports it: the edit is named (exit 8) and the hook never ran."""
    import os
    import subprocess
    import sys

    import readmission

    shadow = tmp_path / "shadow" / "readmission"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(_HOOK, encoding="utf-8")
    marker = tmp_path / "hook-ran"
    tamper(store_url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 5")
    env = {
        **os.environ,
        "PYTHONPATH": str(shadow.parent),
        "HOOK_MARKER": str(marker),
        "REAL_READMISSION": str(Path(readmission.__file__).parent),
    }
    hooked = [sys.executable, "-c", "import readmission.names"]
    assert subprocess.run(hooked, env=env, check=False).returncode == 0
    assert marker.exists()  # the shadow package is what `import readmission` finds
    marker.unlink()

    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "audit", "verify", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == ExitCode.AUDIT_BROKEN, done.stdout + done.stderr
    assert "record 5 was edited" in done.stderr
    assert not marker.exists()
