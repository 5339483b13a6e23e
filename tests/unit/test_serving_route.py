"""The `/score` route on a real FastAPI app, called through ASGI without a server or ZenML run.

The route parses the raw body with the request model and writes its answer itself (cheaper than
FastAPI's typed parameter and response validation); these tests hold it to what FastAPI's typed
route gave: the same 422 entries for a body that breaks the models (less the refused values, which FastAPI
echoes and the platform does not), the models in the OpenAPI
schema, and answers equal to the batch scorer's scores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from _raw_frames import raw_frame
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from test_serving_core import CONTRACT, _grant, as_request
from zenml.steps.step_context import get_or_create_run_context

from mlops_platform.serving.contract import request_model, response_model
from mlops_platform.serving.log import read_log
from mlops_platform.serving.scorer import RealtimeScorer, ServedModel
from mlops_platform.serving.service import (
    ServingGrantError,
    ServingService,
    contract_sha256,
    score_route,
)
from mlops_platform.trust.signing import Signer, Verifier
from readmission.core import uci
from readmission.core.cohort import build_cohort, split_by_patient
from readmission.core.model import predict_risk, train_readmission_model
from readmission.core.params import ModelParams, SplitParams
from readmission.pipelines.batch_inference import RISK_COLUMN

CONTRACT_JSON = CONTRACT.model_dump(mode="json")


@pytest.fixture(scope="module")
def model() -> Any:
    train, validation, _ = split_by_patient(
        build_cohort(raw_frame(2500, seed=3)), SplitParams(seed=1)
    )
    return train_readmission_model(train, validation, ModelParams(max_iter=25))


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A grant signed by a key the local environment trusts (here, one made for the test)."""
    key = Ed25519PrivateKey.generate()
    signer = Signer(key)
    trusted = Verifier({signer.key_id: key.public_key()})
    monkeypatch.setattr("mlops_platform.trust.keys.verifier_for", lambda env: trusted)

    def sign(contract: dict[str, Any]) -> dict[str, Any]:
        grant = dataclasses.replace(_grant(), contract_sha256=contract_sha256(contract))
        return grant.sign(signer)

    return sign


def test_the_route_serves_only_the_contract_its_grant_signed(signed: Any) -> None:
    """The deployment's stored configuration gives the route its own copy of the contract:
    rewritten (a request check that accepts anything, here), the route does not build."""
    app = FastAPI()
    token = signed(CONTRACT_JSON)
    score_route(SimpleNamespace(asgi_app=app), CONTRACT_JSON, token)  # the signed one builds
    loosened = json.loads(json.dumps(CONTRACT_JSON))
    loosened["request_check"] = "builtins.len"
    with pytest.raises(ServingGrantError, match="not the one `mlops serve start` signed"):
        score_route(SimpleNamespace(asgi_app=app), loosened, token)


@pytest.fixture
def app(model: Any, tmp_path: Path, signed: Any) -> Any:
    """The route as ZenML registers it, plus FastAPI's typed route of the same models."""
    service = ServingService(CONTRACT, dataclasses.replace(_grant(), log_dir=str(tmp_path)))
    service._served = ServedModel(model, "readmission", "7", "production", "id-7")
    context = get_or_create_run_context()
    before = (context.initialized, context._state)
    context.initialize(service)
    app = FastAPI()
    app.post("/score")(
        score_route(SimpleNamespace(asgi_app=app), CONTRACT_JSON, signed(CONTRACT_JSON))
    )
    request_type = request_model(CONTRACT)

    def typed(request: request_type) -> dict[str, Any]:  # type: ignore[valid-type]
        return {}

    typed.__annotations__ = {"request": request_type, "return": dict[str, Any]}
    app.post("/typed")(typed)
    yield SimpleNamespace(app=app, service=service, log_dir=tmp_path)
    service.log.close()
    context.initialized, context._state = before


def call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    """One HTTP request through the ASGI app; the status and the JSON answer."""
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "scheme": "http",
            "root_path": "",
        }
        await app(scope, receive, send)

    asyncio.run(run())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(payload)


def encounters(n: int, seed: int = 51) -> list[dict[str, Any]]:
    frame = raw_frame(40, seed=seed).drop_duplicates(uci.PATIENT_ID).head(n)
    return as_request(frame)


def test_the_answer_is_the_models_scores_under_the_response_model(app: Any, model: Any) -> None:
    sent = encounters(3)
    status, answer = call(app.app, "POST", "/score", json.dumps({"encounters": sent}).encode())
    assert status == 200, answer
    response_model(CONTRACT).model_validate(answer)
    expected = predict_risk(model, RealtimeScorer(CONTRACT).frame(sent))
    assert [p[uci.ENCOUNTER_ID] for p in answer["predictions"]] == [
        e[uci.ENCOUNTER_ID] for e in sent
    ]
    # JSON carries each float exactly: the caller gets the model's score bit for bit.
    assert np.array_equal([p[RISK_COLUMN] for p in answer["predictions"]], expected)
    assert {p["model_stage"] for p in answer["predictions"]} == {"production"}


@pytest.mark.parametrize(
    "change",
    [
        lambda e: dict(e, num_medications="many"),  # not an integer
        lambda e: {k: v for k, v in e.items() if k != "num_medications"},  # missing
        lambda e: dict(e, agee="[70-80)"),  # unknown key
        lambda e: dict(e, age=70),  # a number where text is expected
    ],
)
def test_a_body_that_breaks_the_models_gets_fastapis_own_422(app: Any, change: Any) -> None:
    body = json.dumps({"encounters": [encounters(1)[0], change(encounters(1)[0])]}).encode()
    status, answer = call(app.app, "POST", "/score", body)
    typed_status, typed = call(app.app, "POST", "/typed", body)
    assert (status, typed_status) == (422, 422)
    # The typed route's entries, field and rule named, without the refused values it echoes.
    assert answer["detail"] == [
        {k: v for k, v in e.items() if k != "input"} for e in typed["detail"]
    ]
    assert all("input" in e for e in typed["detail"])
    assert all(e["loc"][:3] == ["body", "encounters", 1] for e in answer["detail"])


@pytest.mark.parametrize("body", [b"", b"{not json", b'{"encounters": []}', b"[]"])
def test_an_empty_or_malformed_body_gets_422(app: Any, body: bytes) -> None:
    status, answer = call(app.app, "POST", "/score", body)
    assert status == 422, answer
    assert answer["detail"] and all(e["loc"][0] == "body" for e in answer["detail"])
    assert not any("input" in e for e in answer["detail"])  # the body is not echoed


def test_refusals_are_counted_and_never_logged(app: Any) -> None:
    good = encounters(2)
    bodies = [
        {"encounters": [dict(good[0], age="[200-210)")]},  # the team's rules (RequestRejected)
        {"encounters": [dict(good[0], num_medications="x")]},  # the request model
    ]
    for body in bodies:
        status, answer = call(app.app, "POST", "/score", json.dumps(body).encode())
        assert status == 422
    assert answer["detail"][0]["loc"] == ["body", "encounters", 0, "num_medications"]
    status, answer = call(app.app, "POST", "/score", json.dumps({"encounters": good}).encode())
    assert status == 200
    assert app.service.requests_refused == 2
    app.service.log.close()
    assert set(read_log(app.log_dir).to_pandas()["request_id"]) == {answer["request_id"]}


def test_the_openapi_schema_describes_request_and_response(app: Any) -> None:
    status, schema = call(app.app, "GET", "/openapi.json")
    assert status == 200
    operation = schema["paths"]["/score"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    components = schema["components"]["schemas"]
    assert components[body["$ref"].rsplit("/", 1)[1]]["required"] == ["encounters"]
    assert set(components["Encounter"]["properties"]) == set(uci.COLUMNS)
    assert "predictions" in components[ok["$ref"].rsplit("/", 1)[1]]["properties"]


def test_no_answer_is_given_while_the_log_cannot_be_written(
    model: Any, tmp_path: Path, signed: Any
) -> None:
    """Insider review: the service kept answering (200) after its log writer died. Once a write
    fails the route answers 503 until the log can be written again; every answer is logged."""
    directory = tmp_path / "log"
    grant = dataclasses.replace(_grant(), log_dir=str(directory))
    service = ServingService(CONTRACT, grant, batch_rows=2, flush_seconds=60)
    service._served = ServedModel(model, "readmission", "7", "production", "id-7")
    context = get_or_create_run_context()
    before = (context.initialized, context._state)
    context.initialize(service)
    try:
        app = FastAPI()
        app.post("/score")(
            score_route(SimpleNamespace(asgi_app=app), CONTRACT_JSON, signed(CONTRACT_JSON))
        )

        def post(n: int, seed: int) -> tuple[int, Any]:
            return call(
                app, "POST", "/score", json.dumps({"encounters": encounters(n, seed)}).encode()
            )

        assert post(2, 61)[0] == 200
        deadline = time.monotonic() + 10
        while not service.log.written and time.monotonic() < deadline:
            time.sleep(0.02)  # the writer thread wrote the first part
        assert service.log.written
        directory.rename(tmp_path / "away")
        directory.write_text("in the way")
        kept_status, kept = post(2, 62)  # buffered, then the writer fails on it
        assert kept_status == 200
        deadline = time.monotonic() + 10
        while service.log.failure is None and time.monotonic() < deadline:
            time.sleep(0.02)
        status, answer = post(1, 63)
        assert status == 503 and "cannot be written" in answer["detail"]
        assert service.requests_unlogged == 1
        directory.unlink()
        (tmp_path / "away").rename(directory)
        status, last = post(1, 64)
        assert status == 200
    finally:
        service.log.close()
        context.initialized, context._state = before
    logged = set(read_log(directory).to_pandas()["request_id"])
    assert {kept["request_id"], last["request_id"]} <= logged
    assert answer.get("request_id") not in logged
