"""Audit trail: full verification throughput at 10k and 1M signed records, and what a promotion
pays for verification (the incremental check from a checkpoint plus the records it reads).

Trails are SQLite files of synthetic, signed records (a mix of events over 100 models),
built once with the platform's own `seal_record` and writer key and cached in
bench-output/audit/. Timed with `time.perf_counter`, medians over repeats, each verification on a
freshly opened `AuditTrail` (so nothing is cached in Python):

- ``verify``: `AuditTrail.verify()`, the full pass `mlops audit verify` runs (every hash and link,
  every record signed, signatures every 256th record and at the head).
- ``verify_all_signatures``: the same with every signature checked (10k only: ~0.15 ms each).
- ``promotion_reads``: one new record appended after a checkpoint, then the verified reads of a
  promotion decision (stage events and approvals of one model), as `check_promotion` does them.
- ``lock``: taking and releasing the (uncontended) promotion lock of a model.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlops_platform.trust.audit import GENESIS, AuditTrail, canonical_json, seal_record
from mlops_platform.trust.audit.store import audit_events
from mlops_platform.trust.signing import (
    Signer,
    Verifier,
    parse_private_key,
    private_pem,
)

OUTPUT = Path("bench-output") / "audit"
SIZES = (10_000, 1_000_000)
TARGET_SECONDS_1M = 60.0
_BATCH = 10_000
_EVENTS = ("gate_passed", "approval_recorded", "promotion", "batch_inference", "promotion_denied")
MODEL = "patient_readmission_predictor"
MODELS = 100  # one record in 100 is about the promoted model


def _key() -> Ed25519PrivateKey:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / "bench-key.pem"
    if not path.is_file():
        path.write_text(private_pem(Ed25519PrivateKey.generate()), encoding="ascii")
    return parse_private_key(path.read_text(encoding="ascii"), str(path))


def build(records: int, signer: Signer) -> Path:
    """A cached trail of ``records`` signed records."""
    path = OUTPUT / f"trail-{records}.db"
    if path.is_file():
        return path
    partial = path.with_suffix(".partial.db")
    partial.unlink(missing_ok=True)
    trail = AuditTrail.initialize(f"sqlite:///{partial}")
    engine = trail._engine
    previous = GENESIS
    rows: list[dict[str, Any]] = []
    for seq in range(1, records + 1):
        event = _EVENTS[seq % len(_EVENTS)]
        record = seal_record(
            seq=seq,
            recorded_at=f"2026-01-01T00:00:00.{seq % 1_000_000:06d}+00:00",
            event_type=event,
            actor=f"user{seq % 17}@hospital.example",
            model_name=MODEL if seq % MODELS == 0 else f"model_{seq % MODELS}",
            model_version=str(seq // MODELS % 50 + 1),
            stage="staging" if seq % 2 else "production",
            details={"environment": "local", "reason": f"benchmark {seq}", "auc": 0.71},
            prev_hash=previous,
        )
        signature = signer.sign(record.signed_bytes())
        rows.append(
            {
                **{k: v for k, v in record.__dict__.items() if k != "details"},
                "details": canonical_json(record.details),
                "key_id": signature.key_id,
                "signature": signature.value,
            }
        )
        previous = record.record_hash
        if len(rows) == _BATCH:
            with engine.begin() as connection:
                connection.execute(audit_events.insert(), rows)
            rows = []
    if rows:
        with engine.begin() as connection:
            connection.execute(audit_events.insert(), rows)
    trail.close()
    partial.rename(path)
    return path


def _median(function: Any, repeats: int) -> float:
    return _medians(function, repeats)[0]


def _medians(function: Any, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of this process (the CPU figure is what other
    load on a shared machine barely moves)."""
    times, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(times), statistics.median(cpu)


def run(repeats: int) -> dict[str, Any]:
    key = _key()
    signer = Signer(key)
    verifier = Verifier({signer.key_id: key.public_key()})
    sizes = []
    for size in SIZES:
        path = build(size, signer)
        url = f"sqlite:///{path}"

        def full(url: str = url, every: bool = False) -> None:
            trail = AuditTrail(url, verifier=verifier)
            result = trail.verify(all_signatures=every)
            trail.close()
            assert result.ok, result.problem

        seconds, cpu = _medians(full, repeats if size <= 100_000 else min(repeats, 3))
        entry: dict[str, Any] = {
            "records": size,
            "verify_seconds_median": seconds,
            "verify_cpu_seconds_median": cpu,
            "records_per_second": size / seconds,
        }
        if size <= 100_000:
            every = _median(lambda url=url: full(url, True), repeats)
            entry["verify_all_signatures_seconds_median"] = every
        entry["promotion_reads_seconds_median"] = _promotion_reads(path, signer, verifier, repeats)
        entry["lock_seconds_median"] = lock_seconds(path, max(repeats, 5))
        sizes.append(entry)
    return {"sizes": sizes, "target_seconds_1m": TARGET_SECONDS_1M}


def _promotion_reads(path: Path, signer: Signer, verifier: Verifier, repeats: int) -> float:
    """Verified reads of one promotion on a copy of the trail with a checkpoint at its head."""
    import shutil

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "trail.db"
        shutil.copyfile(path, copy)
        url = f"sqlite:///{copy}"
        checkpoints = Path(folder) / "checkpoints"
        trail = AuditTrail(url, signer=signer, verifier=verifier, checkpoint_dir=checkpoints)
        trail.verify()  # the checkpoint a previous command left
        trail.close()
        times = []
        for index in range(repeats):
            trail = AuditTrail(url, signer=signer, verifier=verifier, checkpoint_dir=checkpoints)
            trail.append("gate_passed", "bench", model_name=MODEL, model_version=str(index))
            started = time.perf_counter()
            trail.records(model_name=MODEL, event_types=["promotion", "rollback"], verified=True)
            trail.records(model_name=MODEL, event_types=["approval_recorded"], verified=True)
            times.append(time.perf_counter() - started)
            trail.close()
    return statistics.median(times)


def lock_seconds(path: Path, repeats: int) -> float:
    """Median time to take and release an uncontended promotion lock (SQLite lock row)."""
    trail = AuditTrail(f"sqlite:///{path}")
    times = []
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            with trail.lock(f"promotion:local:{MODEL}"):
                pass
            times.append(time.perf_counter() - started)
    finally:
        trail.close()
    return statistics.median(times)
