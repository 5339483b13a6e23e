"""The promotion transaction on a staging audit trail in PostgreSQL, attacked with raw SQL.

Staging here is configured as a real environment would be: its trail is a PostgreSQL database
(`MLOPS_AUDIT_DB_URL`), its writer's private key comes from `MLOPS_SIGNING_KEY` and only the
public key listed in its `platform.yaml` is trusted (local key files are not, because the trail
is not local). Versions are created directly in ZenML and MLflow, as in
test_promotion_transaction.py. Each attack (a forged row with a correct hash, the table dropped,
the newest record and the checkpoint deleted, the whole chain re-sealed with another key) is made
on a copy of the intact database; `mlops audit verify` must exit 8, and a promotion must be
refused with nothing moved in ZenML, MLflow or the trail. Then the intact database is put back.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mlflow.tracking import MlflowClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from zenml.client import Client

from mlops_cli.commands import ensure_stack
from mlops_cli.errors import ExitCode
from mlops_platform import workspace
from mlops_platform.governance import transaction
from mlops_platform.governance.approvals.policy import STAGING
from mlops_platform.governance.check import trail_findings
from mlops_platform.governance.model_stages import stage_holder
from mlops_platform.governance.promotion import PromotionOrder
from mlops_platform.names import REJECTED_TAG, VALIDATED_TAG
from mlops_platform.trust.audit import AuditError, AuditEventType, seal_record
from mlops_platform.trust.audit.chain import canonical_json
from mlops_platform.trust.events import audit_trail, record_version_event
from mlops_platform.trust.signing import Signer, key_id, private_pem, public_pem
from readmission.names import MODEL_NAME
from tests.conftest import postgres_database
from tests.integration.helpers import copy_configs, invoke, tamper
from tests.integration.test_promotion_transaction import new_version

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.xdist_group("promotion-postgres"),
]

AUTHOR, REQUESTER = "alice", "bob"
SOURCE = "zenml-server"  # staging accepts only verified identities, never typed names


@dataclass(frozen=True)
class Staging:
    url: str  # the trail's database
    mlflow_uri: str
    checkpoints: Path


@pytest.fixture(scope="module")
def staging(module_state: Path, postgres_server: str) -> Iterator[Staging]:
    writer = Ed25519PrivateKey.generate()
    configs = copy_configs(module_state.parent / "configs")
    platform = configs / "staging" / "platform.yaml"
    settings = yaml.safe_load(platform.read_text(encoding="utf-8"))
    settings["signing"] = {
        "private_key_env": "MLOPS_SIGNING_KEY",
        "public_keys": {key_id(writer.public_key()): public_pem(writer.public_key())},
    }
    platform.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with postgres_database(postgres_server) as url:
        os.environ |= {  # module_state restores the environment
            "MLOPS_CONFIG_DIR": str(configs),
            "MLOPS_AUDIT_DB_URL": url,
            "MLOPS_SIGNING_KEY": private_pem(writer),
        }
        created = invoke("audit", "init", "--env", STAGING)
        assert created.exit_code == 0, created.output
        ensure_stack()
        uri = workspace.mlflow_tracking_uri()
        MlflowClient(uri).create_registered_model(MODEL_NAME)
        Client().create_model(MODEL_NAME)
        for _ in range(3):
            new_version(uri, AUTHOR, env=STAGING, source=SOURCE)
        yield Staging(url, uri, module_state / "audit-checkpoints")


def gated(number: int) -> str:
    """Record what the platform gate of a promotion run records (a passed gate against today's
    holder); returns the run's id."""
    found = stage_holder(MODEL_NAME, STAGING)
    run_id = f"run-{uuid.uuid4().hex}"
    record_version_event(
        STAGING,
        AuditEventType.GATE_PASSED,
        REQUESTER,
        Client().get_model_version(MODEL_NAME, number),
        details={"pipeline_run_id": run_id, "champion_version": found.name if found else None},
    )
    return run_id


def promote(staging: Staging, number: int, run_id: str) -> dict[str, Any]:
    version = Client().get_model_version(MODEL_NAME, number)
    found = stage_holder(MODEL_NAME, STAGING)
    order = PromotionOrder(reason=f"promote {number}")
    request = transaction.PromotionRequest(
        target_stage=STAGING,
        actor=REQUESTER,
        actor_source=SOURCE,
        gate_decision={
            "environment": STAGING,
            "passed": True,
            "champion_version": found.name if found else None,
        },
        common={"reason": order.reason, "pipeline_run_id": run_id},
        mlflow_uri=staging.mlflow_uri,
    )
    return transaction.promote(version, order, request)


def rows(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text("SELECT * FROM audit_events"))]
    finally:
        engine.dispose()


def moved_state(staging: Staging) -> tuple[Any, ...]:
    """What a refused promotion must leave as it was."""
    stages = {v.name: v.stage for v in Client().list_model_versions(MODEL_NAME, size=50)}
    aliases = MlflowClient(staging.mlflow_uri).get_registered_model(MODEL_NAME).aliases or {}
    return stages, dict(aliases)


@contextmanager
def attacked(staging: Staging) -> Iterator[None]:
    """Run an attack on the live database, then put back the intact one and the checkpoints."""
    server = make_url(staging.url)
    live, copy = server.database, f"{server.database}_intact"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    kept = staging.checkpoints.with_name("checkpoints-intact")
    shutil.copytree(staging.checkpoints, kept, dirs_exist_ok=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{copy}" TEMPLATE "{live}"'))
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{live}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{live}" TEMPLATE "{copy}"'))
            connection.execute(text(f'DROP DATABASE "{copy}"'))
        admin.dispose()
        shutil.rmtree(staging.checkpoints, ignore_errors=True)
        kept.rename(staging.checkpoints)


def forge_row(url: str) -> None:
    head = audit_trail(STAGING, write=False).head()
    assert head is not None
    forged = seal_record(
        seq=head.seq + 1,
        recorded_at="2026-01-01T00:00:00.000000+00:00",
        event_type=AuditEventType.PROMOTION,
        actor="mallory",
        model_name=MODEL_NAME,
        model_version="3",
        stage=STAGING,
        details={"environment": STAGING},
        prev_hash=head.record_hash,
    )
    tamper(
        url,
        "INSERT INTO audit_events (seq, recorded_at, event_type, actor, model_name, "
        "model_version, stage, details, prev_hash, record_hash, key_id, signature) VALUES "
        f"({forged.seq}, '{forged.recorded_at}', '{forged.event_type}', 'mallory', "
        f"'{MODEL_NAME}', '3', '{STAGING}', '{canonical_json(forged.details)}', "
        f"'{forged.prev_hash}', '{forged.record_hash}', 'deadbeefdeadbeef', NULL)",
    )


def drop_table(url: str) -> None:
    tamper(url, "DROP TABLE audit_events")


def delete_newest(url: str) -> None:
    """The newest record and this machine's checkpoint go; the MLflow and ZenML anchors stay."""
    tamper(url, "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    shutil.rmtree(Path(os.environ["MLOPS_STATE_DIR"]) / "audit-checkpoints")


def reseal_without_the_key(url: str) -> None:
    """Every record signed again, content unchanged, with a key of one's own, and this
    machine's checkpoint gone: hashes, links and anchors all still match; only the signatures'
    key is not the listed one."""
    mallory = Signer(Ed25519PrivateKey.generate())
    engine = create_engine(url)
    with engine.begin() as connection:
        for record in audit_trail(STAGING, write=False).records():
            signature = mallory.sign(record.signed_bytes())
            connection.execute(
                text("UPDATE audit_events SET key_id = :key, signature = :value WHERE seq = :seq"),
                {"key": signature.key_id, "value": signature.value, "seq": record.seq},
            )
    engine.dispose()
    shutil.rmtree(Path(os.environ["MLOPS_STATE_DIR"]) / "audit-checkpoints")


def test_a_promotion_on_the_intact_postgres_trail_moves(staging: Staging) -> None:
    details = promote(staging, 1, gated(1))
    assert stage_holder(MODEL_NAME, STAGING).name == "1"
    assert details["previous_holder"] is None
    verified = invoke("audit", "verify", "--env", STAGING)
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        (forge_row, "carries no signature"),
        (drop_table, "has no table audit_events"),
        (delete_newest, "were deleted"),
        (reseal_without_the_key, "not signed by a trusted key"),
    ],
    ids=["forged_row", "dropped_table", "deleted_newest", "resealed_without_the_key"],
)
def test_a_broken_postgres_trail_stops_the_promotion_and_nothing_moves(
    staging: Staging, attack: Any, reason: str
) -> None:
    if stage_holder(MODEL_NAME, STAGING) is None:
        promote(staging, 1, gated(1))
    run_id = gated(2)  # version 2's gate passed before the trail was attacked
    before = moved_state(staging)
    with attacked(staging):
        attack(staging.url)
        after_attack = rows(staging.url) if attack is not drop_table else None

        verified = invoke("audit", "verify", "--env", STAGING)
        assert verified.exit_code == ExitCode.AUDIT_BROKEN, verified.output
        assert reason in verified.stderr, verified.stderr
        with pytest.raises(AuditError, match=reason):
            promote(staging, 2, run_id)

        assert moved_state(staging) == before
        if after_attack is not None:  # nothing appended, not even a denial
            assert rows(staging.url) == after_attack
    assert invoke("audit", "verify", "--env", STAGING).exit_code == 0


def test_an_edited_tag_is_a_finding(staging: Staging) -> None:
    """A version the trail never saw pass a gate, tagged `validated` by a ZenML writer."""
    version = Client().create_model_version(MODEL_NAME, tags=[REJECTED_TAG])
    Client().update_model_version(
        MODEL_NAME, version.id, add_tags=[VALIDATED_TAG], remove_tags=[REJECTED_TAG]
    )
    findings = [f for f in trail_findings(MODEL_NAME) if f.rule == "tag-vs-trail"]
    assert [f.subject for f in findings] == [f"model {MODEL_NAME} version {version.name}"]
    result = invoke("check")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    assert "tag-vs-trail" in result.output
