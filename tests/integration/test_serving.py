"""The real-time service for real: a ZenML deployment on a loopback port, called over HTTP.

One module state: two versions trained on synthetic encounters (version 1 in production, version 2
in staging), one service started with `--shadow` through the CLI, then requests, a promotion while
requests are in flight, and the stop that flushes the prediction log.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from mlops_cli.errors import ExitCode
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.serving.contract import DEFAULT_MAX_BODY_BYTES
from mlops_platform.serving.log import parts, read_log
from mlops_platform.serving.service import DEFAULT_POLL_SECONDS
from mlops_platform.trust.audit import AuditTrail
from mlops_platform.trust.audit.chain import AuditEventType
from readmission.core import uci
from readmission.names import MODEL_NAME
from readmission.pipelines.batch_inference import RISK_COLUMN
from tests.conftest import isolated
from tests.integration.helpers import hold_stage, invoke, invoke_json, write_synthetic_csv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serving")]

SAMPLE_ROWS = 40


@dataclass
class Service:
    root: Path
    sample: pd.DataFrame  # raw text rows of the training file
    batch: pd.DataFrame  # batch scoring's predictions for the sample
    status: dict[str, Any]
    log_dir: Path
    versions: tuple[str, str]
    answers: list[dict[str, Any]] = field(default_factory=list)


def encounters(rows: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in rows.to_dict(orient="records"):
        out.append(
            {
                name: int(value) if name in uci.INTEGER_COLUMNS else str(value)
                for name, value in record.items()
                if name != uci.TARGET_COLUMN
            }
        )
    return out


def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("serving")
    with isolated(root / "state") as state:  # restores the environment afterwards
        os.environ["MLOPS_AUDIT_DB_URL"] = f"sqlite:///{state / 'audit.db'}"
        training_file = write_synthetic_csv(root / "encounters.csv")
        first = invoke_json("train", "--env", "local", "--data", str(training_file))[
            "model_version"
        ]
        second = invoke_json(
            "train", "--env", "local", "--data", str(training_file), "--set", "split.seed=3"
        )["model_version"]
        hold_stage(first, "production")
        hold_stage(second, "staging")
        raw = pd.read_csv(training_file, dtype=str, keep_default_na=False)
        # One encounter per patient, so each request's history is the patient's known history.
        sample = raw.drop_duplicates(uci.PATIENT_ID).sample(SAMPLE_ROWS, random_state=3)
        sample_file = root / "sample.csv"
        sample.to_csv(sample_file, index=False)
        scored = invoke_json(
            "infer", "--input", str(sample_file), "--output", str(root / "results")
        )
        batch = pd.read_parquet(Path(scored["output_dir"]) / "predictions.parquet")
        log_dir = root / "log"
        status = invoke_json("serve", "start", "--shadow", "--log-dir", str(log_dir))
        try:
            yield Service(root, sample, batch, status, log_dir, (first, second))
        finally:
            invoke("serve", "stop")


def test_status_gives_the_loopback_endpoint(service: Service) -> None:
    status = invoke_json("serve", "status")
    assert status["endpoint"] == service.status["endpoint"]
    assert status["endpoint"].startswith("http://127.0.0.1:")
    assert status["endpoint"].endswith("/score")
    assert status["status"] == "running"


def test_served_risk_equals_batch_risk(service: Service) -> None:
    url = service.status["endpoint"]
    batch = service.batch.set_index(uci.ENCOUNTER_ID)[RISK_COLUMN]
    one = service.sample.iloc[:5]
    answers = [post(url, {"encounters": encounters(one.iloc[[i]])}) for i in range(len(one))]
    code, many = post(url, {"encounters": encounters(service.sample)})
    assert code == 200, many
    assert all(code == 200 for code, _ in answers), answers
    singles = [a["predictions"][0] for _, a in answers]
    for prediction in [*singles, *many["predictions"]]:
        assert prediction["model_version"] == service.versions[0]
        assert prediction["model_stage"] == "production"
        assert abs(prediction[RISK_COLUMN] - batch[prediction[uci.ENCOUNTER_ID]]) <= 1e-12
    assert [p[uci.ENCOUNTER_ID] for p in many["predictions"]] == [
        int(e) for e in service.sample[uci.ENCOUNTER_ID]
    ]
    service.answers.extend([many, *(a for _, a in answers)])


def test_bad_requests_get_422_naming_the_field(service: Service) -> None:
    url = service.status["endpoint"]
    good = encounters(service.sample.iloc[:2])
    wrong_age = [dict(good[0], age="[200-210)"), good[1]]
    code, body = post(url, {"encounters": wrong_age})
    assert code == 422, body
    assert any(e["loc"][-1] == "age" and e["loc"][-2] == 0 for e in body["detail"]), body
    missing = [{k: v for k, v in good[0].items() if k != "num_medications"}]
    code, body = post(url, {"encounters": missing})
    assert code == 422
    assert any("num_medications" in e["loc"] for e in body["detail"]), body
    code, body = post(url, {"encounters": []})
    assert code == 422
    # An oversized body is refused from its declared length, before a byte of it is read.
    target = urlparse(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    connection.putrequest("POST", target.path)
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(DEFAULT_MAX_BODY_BYTES + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert "larger than" in json.loads(response.read())["detail"]
    connection.close()


def test_promotion_switches_version_without_failed_requests(service: Service) -> None:
    url = service.status["endpoint"]
    body = {"encounters": encounters(service.sample.iloc[:1])}
    results: list[tuple[int, dict[str, Any]]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            results.append(post(url, body))

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        hold_stage(service.versions[1], "production")
        deadline = 60.0
        waited = threading.Event()
        while deadline > 0 and not any(
            r[1].get("predictions", [{}])[0].get("model_version") == service.versions[1]
            for r in results[-5:]
        ):
            waited.wait(0.5)
            deadline -= 0.5
        for _ in range(10):
            waited.wait(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert all(code == 200 for code, _ in results), [r for r in results if r[0] != 200][:3]
    versions = [r[1]["predictions"][0]["model_version"] for r in results]
    assert versions[0] == service.versions[0]
    assert versions[-1] == service.versions[1]
    trail = AuditTrail(load_platform_settings("local").audit.url)
    switches = trail.records(
        model_name=MODEL_NAME, event_types=[AuditEventType.SERVING_MODEL_SWITCHED]
    )
    assert [(s.details["from_version"], s.details["to_version"]) for s in switches] == [
        service.versions
    ]
    service.answers.extend(body for _, body in results)


def test_a_holder_judged_at_another_threshold_is_not_served_at_this_one(
    service: Service,
) -> None:
    """The service scores at the threshold its holder was judged at. A new production holder
    trained at another threshold is refused (recorded, alerted) and the one being served stays,
    so no answer carries bands from a threshold its model was not judged at."""
    import time

    served = service.versions[1]  # production since the switch test
    other = invoke_json(
        "train", "--env", "local", "--data", str(service.root / "encounters.csv"),
        "--set", "evaluation.operating_threshold=0.13",
    )["model_version"]  # fmt: skip
    trail = AuditTrail(load_platform_settings("local").audit.url)
    hold_stage(other, "production")
    try:
        refused: list[Any] = []
        deadline = time.monotonic() + 60
        while not refused and time.monotonic() < deadline:
            time.sleep(0.5)
            refused = [
                r
                for r in trail.records(
                    model_name=MODEL_NAME, event_types=[AuditEventType.SERVING_SWITCH_REFUSED]
                )
                if r.details["refused_version"] == other
            ]
        assert refused, "the service switched to (or never looked at) the new holder"
        assert "judged at operating threshold 0.13" in refused[0].details["reason"]
        code, answer = post(
            service.status["endpoint"], {"encounters": encounters(service.sample.iloc[:1])}
        )
        assert code == 200 and answer["predictions"][0]["model_version"] == served
        service.answers.append(answer)
        # tried again at every poll, recorded and alerted once (it flooded the trail before)
        time.sleep(3 * DEFAULT_POLL_SECONDS)
        again = trail.records(
            model_name=MODEL_NAME, event_types=[AuditEventType.SERVING_SWITCH_REFUSED]
        )
        assert [r.details["refused_version"] for r in again].count(other) == 1
    finally:
        hold_stage(served, "production")


def test_stop_flushes_a_log_with_shadow_scores_never_returned(service: Service) -> None:
    # Runs last in the module: it stops the service.
    stopped = invoke_json("serve", "stop")
    assert stopped["status"] == "stopped"
    log = read_log(service.log_dir).to_pandas()
    returned = {a["request_id"] for a in service.answers}
    served = log[~log["shadow"]]
    shadow = log[log["shadow"]]
    assert returned <= set(served["request_id"])
    assert len(shadow) > 0
    assert set(shadow["model_stage"]) == {"staging"}
    assert set(shadow["model_version"]) == {service.versions[1]}
    # Shadow rows pair with served rows of the same requests, and no answer carried a shadow score.
    assert set(shadow["request_id"]) <= set(served["request_id"])
    assert all(p["model_stage"] == "production" for a in service.answers for p in a["predictions"])
    first = service.answers[0]["predictions"][0]
    logged = served[served["request_id"] == service.answers[0]["request_id"]]
    row = logged[logged[uci.ENCOUNTER_ID] == first[uci.ENCOUNTER_ID]].iloc[0]
    assert row[RISK_COLUMN] == first[RISK_COLUMN]
    assert list(log.columns)[: len(service.batch.columns)] == list(service.batch.columns)
    assert np.isfinite(log[RISK_COLUMN]).all()
    # The stop recorded every part's digest in the trail (what outcome monitoring trusts).
    trail = AuditTrail(load_platform_settings("local").audit.url)
    stops = trail.records(model_name=MODEL_NAME, event_types=[AuditEventType.SERVING_STOPPED])
    assert len(stops) == 1
    assert set(stops[0].details["log_parts"]) == {p.name for p in parts(service.log_dir)}


def test_outcomes_judge_every_recorded_answer_wherever_the_log_is_said_to_be(
    service: Service, tmp_path: Path
) -> None:
    """Runs after the stop. The attack review left the service's answers out of outcome
    monitoring by naming an empty directory with --served-log, or by moving the log away: the
    verdict said ok with no real-time answer judged. The parts judged are now the ones the
    trail records: an empty directory named changes nothing, a moved log is refused (exit 8)
    and records no verdict, and a copy named with --served-log is read."""
    from readmission.core.uci import TARGET_COLUMN

    labels = tmp_path / "labels.csv"
    service.sample[[uci.ENCOUNTER_ID, TARGET_COLUMN, "race", "gender", "age"]].to_csv(
        labels, index=False
    )
    only_log = ("--predictions", str(tmp_path / "no-batch-results"))
    honest = invoke_json("monitor", "outcomes", "--labels", str(labels), *only_log)
    answered = read_log(service.log_dir).to_pandas()
    answered = answered[~answered["shadow"]]
    assert honest["predictions"]["n_served"] == answered[uci.ENCOUNTER_ID].nunique() > 0
    assert [v["model_version"] for v in honest["versions"]] == [service.versions[0]]

    empty = tmp_path / "empty"
    empty.mkdir()
    named = invoke_json(
        "monitor", "outcomes", "--labels", str(labels), *only_log, "--served-log", str(empty)
    )
    assert named["predictions"]["n_served"] == honest["predictions"]["n_served"]

    def verdicts() -> int:
        trail = AuditTrail(load_platform_settings("local").audit.url)
        try:
            return len(trail.records(event_types=[AuditEventType.OUTCOMES_CHECKED]))
        finally:
            trail.close()

    before = verdicts()
    moved = tmp_path / "archive"
    service.log_dir.rename(moved)
    try:
        refused = invoke("monitor", "outcomes", "--labels", str(labels), *only_log)
        assert refused.exit_code == ExitCode.AUDIT_BROKEN, refused.output
        assert "not there" in refused.stderr and "--served-log" in refused.stderr
        assert verdicts() == before  # nothing judged, nothing recorded
        kept = invoke_json(
            "monitor", "outcomes", "--labels", str(labels), *only_log, "--served-log", str(moved)
        )
        assert kept["predictions"]["n_served"] == honest["predictions"]["n_served"]
    finally:
        moved.rename(service.log_dir)


def test_a_deployment_whose_stored_contract_was_rewritten_does_not_serve(
    service: Service,
) -> None:
    """Runs after the stop. ZenML's database holds a deployment's configuration, including the
    contract its init hook and its `/score` route are given. The attack review rewrote it with
    raw SQL (a request check that accepts any request) and provisioned the deployment again
    with ZenML's own client: the service used to answer with the old grant. Now the grant signs
    the contract's SHA-256 and the service does not start; nothing is served."""
    from sqlalchemy import create_engine, text
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration

    from mlops_platform.serving.deploy import _last_error_line, _log_file, deployment_name

    started = invoke_json("serve", "start", "--log-dir", str(service.root / "log-rewritten"))
    assert started["status"] == "running"
    name = deployment_name("local")
    client = Client()
    snapshot = client.get_deployment(name).snapshot.id.hex
    engine = create_engine(GlobalConfiguration().store_configuration.url)
    select = text("SELECT pipeline_configuration FROM pipeline_snapshot WHERE id = :id")
    try:
        with engine.begin() as connection:
            stored = connection.execute(select, {"id": snapshot}).scalar_one()
            rewritten, count = re.subn(
                r'"request_check":"[^"]*"', '"request_check":"builtins.len"', stored
            )
            assert count == 2  # the init hook's contract and the route's
            connection.execute(
                text("UPDATE pipeline_snapshot SET pipeline_configuration = :c WHERE id = :id"),
                {"c": rewritten, "id": snapshot},
            )
        client.deprovision_deployment(name)
        # ZenML reports the failed start in its own words; the deployment's log says why.
        with contextlib.suppress(Exception):
            client.provision_deployment(name, timeout=60)
        why = _last_error_line(_log_file(name)) or ""
        assert "not the one `mlops serve start` signed" in why, why
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            post(started["endpoint"], {"encounters": encounters(service.sample.iloc[:1])})
    finally:
        engine.dispose()
        invoke("serve", "stop")
