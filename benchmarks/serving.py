"""Real-time scoring on loopback: latency, throughput and memory of the served pipeline.

A fresh state directory gets two versions trained on synthetic encounters (one in production, one
in staging); `mlops serve start` deploys `readmission_realtime` with the stack's local deployer.
A bounded load generator (threads, one keep-alive HTTP connection each, a fixed number of requests)
sends one-encounter requests, each about another patient (it cycles through 400 bodies), to the
`endpoint` (`/score`): p50 and p99 latency at concurrency 1 and 8, requests per second at 8, the
service process's CPU time per request and peak resident set size (`VmHWM`), without and then with
`--shadow`. ZenML's own per-invocation cost is measured on the deployment's
`/invoke` route (one pipeline run per request, same service and model) at concurrency 1.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

TARGET_P50_MS = 30.0
TARGET_P99_MS = 100.0
TARGET_RPS_AT_8 = 100.0
REQUESTS_AT_1 = 100
REQUESTS_AT_8 = 400
WARMUP = 10
INVOKE_REQUESTS = 10
BODIES = 400  # distinct one-encounter requests (different patients) the load cycles through
_SET_STAGES = """
import sys
from mlops_platform import workspace
workspace.activate()
from zenml.client import Client
from readmission.names import MODEL_NAME
Client().update_model_version(MODEL_NAME, sys.argv[1], stage="production", force=True)
Client().update_model_version(MODEL_NAME, sys.argv[2], stage="staging", force=True)
"""
# What the stopped service recorded (`serving_stopped` in the verified trail) and what its log
# holds: requests answered, shadow-scored, skipped (shadow queue full) and failed.
_STOP_RECORD = """
import json
from pathlib import Path
from mlops_platform import workspace
workspace.activate()
import pyarrow.compute as pc
from mlops_platform.monitoring.predictions import stopped_services
from mlops_platform.serving.log import read_log
details = stopped_services("local")[-1].details
table = read_log(Path(details["log_dir"]))
table = table.filter(pc.equal(table["inference_run_id"], details["inference_run_id"]))
shadow = table.filter(table["shadow"])
print(json.dumps({
    "requests": details["requests"],
    "shadow_skipped": details["shadow_skipped"],
    "shadow_failures": details["shadow_failures"],
    "shadow_requests_logged": len(set(shadow["request_id"].to_pylist())),
}))
"""


def _stop_record(environ: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _STOP_RECORD], env=environ, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"reading the stop record failed: {done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mlops(environ: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), *args, "--json"],
        env=environ,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mlops {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout)


def _encounters(path: Path, count: int = BODIES) -> list[dict[str, Any]]:
    """`count` encounters of different patients, as a client sends them."""
    import pandas as pd

    from readmission.core import uci

    rows = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=20 * count)
    rows = rows.drop_duplicates(uci.PATIENT_ID).head(count)
    return [
        {
            k: int(v) if k in uci.INTEGER_COLUMNS else str(v)
            for k, v in row.items()
            if k != uci.TARGET_COLUMN
        }
        for row in rows.to_dict(orient="records")
    ]


def one_encounter_bodies(path: Path) -> list[bytes]:
    """One-encounter request bodies, each about another patient (as discharges arrive)."""
    return [json.dumps({"encounters": [e]}).encode() for e in _encounters(path)]


def load(url: str, bodies: list[bytes], concurrency: int, total: int) -> dict[str, Any]:
    """`total` requests from `concurrency` threads, cycling through `bodies` (thread i sends
    bodies i, i + concurrency, ...); latencies of the successful ones."""
    target = urlparse(url)
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    per_thread = total // concurrency

    def worker(offset: int) -> None:
        nonlocal failures
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        mine: list[float] = []
        bad = 0
        for k in range(per_thread):
            body = bodies[(offset + k * concurrency) % len(bodies)]
            started = time.perf_counter()
            connection.request("POST", target.path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            bad += response.status != 200
        connection.close()
        with lock:
            latencies.extend(mine)
            failures += bad

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "concurrency": concurrency,
        "requests": len(ordered),
        "failed": failures,
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "requests_per_second": len(ordered) / wall,
    }


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time the service process has used so far (`/proc/<pid>/stat`)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_load(
    url: str, bodies: list[bytes], concurrency: int, total: int, pid: int | None
) -> dict[str, Any]:
    """`load`, plus the service's CPU time per request and the load average meanwhile: on a
    shared machine the CPU time says what a request costs, whatever else runs."""
    before = _cpu_seconds(pid)
    result = load(url, bodies, concurrency, total)
    after = _cpu_seconds(pid)
    result["cpu_ms_per_request"] = (
        1000 * (after - before) / result["requests"]
        if before is not None and after is not None and result["requests"]
        else None
    )
    result["load_average_1m"] = os.getloadavg()[0]
    return result


def _measure(environ: dict[str, str], bodies: list[bytes], shadow: bool) -> dict[str, Any]:
    args = ["serve", "start", *(["--shadow"] if shadow else [])]
    started = time.perf_counter()
    status = _mlops(environ, *args)
    start_seconds = time.perf_counter() - started
    try:
        url = status["endpoint"]
        pid = int(status["pid"]) if status.get("pid") else None
        load(url, bodies, 1, WARMUP)
        one = _timed_load(url, bodies, 1, REQUESTS_AT_1, pid)
        eight = _timed_load(url, bodies, 8, REQUESTS_AT_8, pid)
        invoke = _invoke_cost(status["invoke_endpoint"], bodies[0]) if not shadow else None
        peak = _peak_rss_mib(pid) if pid else None
    finally:
        _mlops(environ, "serve", "stop")
    return {
        "shadow": shadow,
        "stopped": _stop_record(environ),
        "start_seconds": start_seconds,
        "concurrency_1": one,
        "concurrency_8": eight,
        "peak_rss_mib": peak,
        "zenml_invoke": invoke,
    }


def _invoke_cost(url: str, body: bytes) -> dict[str, Any]:
    encounters = json.loads(body)["encounters"]
    invoke_body = json.dumps({"parameters": {"encounters": encounters}}).encode()
    result = load(url, [invoke_body], 1, INVOKE_REQUESTS)
    return {"p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "failed": result["failed"]}


def run(repeats: int = 1) -> dict[str, Any]:
    del repeats  # one service start per variant: a start costs ~40 s on this machine
    from readmission.core.synthetic import generate_encounters

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        state = Path(os.environ.get("MLOPS_BENCH_SERVING_STATE") or Path(tmp) / "state")
        environ = {**os.environ, "MLOPS_STATE_DIR": str(state)}
        environ.pop("ZENML_CONFIG_PATH", None)
        data = state.parent / "encounters.csv"
        if not (state / "trained").is_file():  # a kept state (MLOPS_BENCH_SERVING_STATE) is reused
            state.mkdir(parents=True, exist_ok=True)
            generate_encounters(15_000, 11).to_csv(data, index=False)
            subprocess.run(
                [str(Path(sys.executable).parent / "mlops"), "setup"],
                env=environ,
                check=True,
                capture_output=True,
            )
            first = _mlops(environ, "train", "--data", str(data))["model_version"]
            second = _mlops(environ, "train", "--data", str(data), "--set", "split.seed=3")[
                "model_version"
            ]
            subprocess.run(
                [sys.executable, "-c", _SET_STAGES, first, second], env=environ, check=True
            )
            (state / "trained").write_text(f"{first} {second}\n")
        if not data.is_file():
            generate_encounters(15_000, 11).to_csv(data, index=False)
        bodies = one_encounter_bodies(data)
        variants = [
            _measure(environ, bodies, shadow=False),
            _measure(environ, bodies, shadow=True),
        ]
    return {
        "variants": variants,
        "cpus": os.cpu_count(),
        "targets": {
            "p50_ms_at_1": TARGET_P50_MS,
            "p99_ms_at_1": TARGET_P99_MS,
            "requests_per_second_at_8": TARGET_RPS_AT_8,
        },
    }


def main() -> None:
    print(json.dumps(run(), indent=2))


if __name__ == "__main__":
    main()
