"""The serving process: one verified production model, optional shadow, the log, the switch.

`ServingService` lives in the ZenML deployment's process. The pipeline's init hook (`start_serving`)
builds it once, before the app takes requests, and ZenML keeps it as the pipeline state: the
pipeline's own step (`/invoke`, one ZenML run per request) and the deployment's `/score` route (no
run per request) both call `ServingService.score`, so both answer with the same model, rules and log.

Switch: a watcher thread asks the store which version holds the stage every `poll_seconds`. When it
moved, the new version is loaded and verified beside the old one, then the service swaps one
reference: a request in flight finishes with the model it started with, the next one gets the new
model, and none is refused. The switch is an audit event (`serving_model_switched`); a new holder
that fails verification is not served (`serving_switch_refused`, alerted) and the old one stays.

Who started the service is not taken from the deployment's configuration as typed: `mlops serve
start` signs a grant (environment, actor, deployment, log directory, the contract's SHA-256, the
poll interval) with the environment's key, and the init hook and the `/score` route refuse to serve
unless it verifies with a key the environment trusts and names the contract they were given.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from mlops_platform.governance.model_stages import StageChangedOutsideError
from mlops_platform.serving.batching import MicroBatcher
from mlops_platform.serving.contract import ServingContract
from mlops_platform.serving.log import PredictionLog, PredictionLogError
from mlops_platform.serving.models import load_served_model, stage_holder
from mlops_platform.serving.scorer import (
    RealtimeScorer,
    RequestRejected,
    ServedModel,
    log_columns,
)

logger = logging.getLogger(__name__)

SERVED_STAGE: Final = "production"
SHADOW_STAGE: Final = "staging"
DEFAULT_POLL_SECONDS: Final = 2.0
SHADOW_QUEUE_REQUESTS: Final = 1024
SCORE_ROUTE_PATH: Final = "/score"


class ServingGrantError(RuntimeError):
    """The service was not started by the platform (grant missing, altered or untrusted)."""


@dataclass(frozen=True)
class ServingGrant:
    """What `mlops serve start` signs and the init hook verifies."""

    env: str
    actor: str
    actor_source: str
    deployment: str
    model_name: str
    log_dir: str
    shadow: bool
    issued_at: str
    # On a local checkout: the local defaults the CLI resolved (the local audit trail). ZenML runs
    # the deployment with ZENML_STORE_URL set, which would make the service look like a real
    # environment and refuse; signed here, so nobody can point the service at another trail.
    local_environment: dict[str, str] = field(default_factory=dict)
    # What the service decides with: the contract (request rules, feature context, threshold,
    # bands) by its SHA-256 (`contract_sha256`), and how often it follows the stage. The
    # deployment's stored configuration can be rewritten with ZenML's database; a service whose
    # configuration is not the one signed here does not start.
    contract_sha256: str = ""
    poll_seconds: float = DEFAULT_POLL_SECONDS

    def payload(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    def sign(self, signer: Any) -> dict[str, Any]:
        signature = signer.sign(self.payload())
        return {"grant": asdict(self), "key_id": signature.key_id, "signature": signature.value}

    @classmethod
    def verify(cls, token: Any, verifier_for: Any) -> ServingGrant:
        from mlops_platform.trust.signing import Signature, SigningError

        if not isinstance(token, dict) or not isinstance(token.get("grant"), dict):
            raise ServingGrantError(
                "The deployment carries no serving grant: start it with `mlops serve start`, "
                "which signs who started it."
            )
        try:
            grant = cls(**token["grant"])
            verifier_for(grant.env).verify(
                grant.payload(),
                Signature(str(token.get("key_id", "")), str(token.get("signature", ""))),
            )
        except (TypeError, SigningError) as error:
            raise ServingGrantError(
                f"The deployment's serving grant does not verify: {error}. Start the service "
                "with `mlops serve start`, which holds the environment's signing key."
            ) from error
        return grant

    def contract(self, given: Any) -> ServingContract:
        """``given`` (the contract the deployment passed) if it is the one this grant signed,
        else `ServingGrantError`."""
        digest = contract_sha256(given) if isinstance(given, dict) else None
        if not self.contract_sha256 or digest != self.contract_sha256:
            raise ServingGrantError(
                f"The deployment's serving contract (SHA-256 {digest}) is not the one `mlops "
                f"serve start` signed ({self.contract_sha256 or 'none'}): its stored "
                "configuration was changed after the start. Nothing is served; stop it and "
                "start it again with `mlops serve start`."
            )
        return ServingContract.model_validate(given)


def contract_sha256(contract: dict[str, Any]) -> str:
    """SHA-256 of a serving contract as JSON (sorted keys): what a grant signs."""
    import hashlib

    text = json.dumps(contract, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ScoredRequest:
    request_id: str
    predictions: list[dict[str, Any]]


class ServingService:
    """State of one running service; `score` is safe to call from many threads."""

    def __init__(
        self,
        contract: ServingContract,
        grant: ServingGrant,
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        batch_rows: int | None = None,
        flush_seconds: float | None = None,
    ) -> None:
        self.contract = contract
        self.grant = grant
        self.poll_seconds = poll_seconds
        self.scorer = RealtimeScorer(contract)
        self.inference_run_id = f"serve-{uuid.uuid4()}"
        self._served: ServedModel | None = None
        self._shadow: ServedModel | None = None
        self._schema = _log_schema(contract)
        options: dict[str, Any] = {}
        if batch_rows is not None:
            options["batch_rows"] = batch_rows
        if flush_seconds is not None:
            options["flush_seconds"] = flush_seconds
        self.log = PredictionLog(Path(grant.log_dir), self._schema, **options)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._switch_lock = threading.Lock()
        self.requests = 0
        self.shadow_failures = 0
        self.shadow_skipped = 0
        self.requests_refused = 0  # 422s, counted by the route (on the event loop's thread)
        self.requests_unlogged = 0  # 503s: refused because the prediction log cannot be written
        # Holders (ZenML version ids) whose switch was refused: tried again at every poll, but
        # recorded and alerted once each.
        self._refused_holders: set[str] = set()
        # Shadow scoring runs on its own thread after the caller has its answer: a bounded queue
        # of (model, frame, request id); when it is full, the request is not shadow-scored.
        self._shadow_queue: queue.Queue[_ShadowItem | None] = queue.Queue(
            maxsize=SHADOW_QUEUE_REQUESTS
        )
        self._batcher: MicroBatcher[list[dict[str, Any]], ScoredRequest] = MicroBatcher(
            self._score_batch,
            max_rows=contract.max_batch_rows,
            linger_seconds=contract.batch_linger_seconds,
        )
        self._shadow_worker: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Load the production holder (and the staging holder with shadow), record, watch."""
        version = stage_holder(self.grant.model_name, SERVED_STAGE)
        self._served = load_served_model(self.contract.batch, version, SERVED_STAGE)
        if self.grant.shadow:
            self._shadow = self._load_shadow()
        self._record(
            "serving_started",
            self._served,
            {
                "shadow_version": self._shadow.model_version if self._shadow else None,
                "log_dir": self.grant.log_dir,
                "contract_sha256": self.grant.contract_sha256,
                # Which process answers, so that a stop recorded for it later can tell whether
                # it still runs (`serving.ended`), whatever ZenML's deployment row says.
                "pid": os.getpid(),
                "host": socket.gethostname(),
            },
        )
        _freeze_heap()
        self._watcher = threading.Thread(target=self._watch, name="stage-watcher", daemon=True)
        self._watcher.start()
        if self.grant.shadow:
            self.start_shadow_scorer()

    def start_shadow_scorer(self) -> None:
        self._shadow_worker = threading.Thread(
            target=self._score_shadows, name="shadow-scorer", daemon=True
        )
        self._shadow_worker.start()

    def stop(self) -> None:
        """Flush the log and record the stop (a normal stop loses nothing)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        self.stop_shadow_scorer()
        log_error = None
        try:
            self.log.close()
        except PredictionLogError as error:
            log_error = str(error)  # recorded below, with the rows it could not write
        if self._served is not None:
            # The parts' digests go to the verified trail: outcome monitoring and lineage judge
            # a part only if its bytes still hash to what the service recorded here.
            self._record(
                "serving_stopped",
                self._served,
                {
                    "requests": self.requests,
                    "shadow_failures": self.shadow_failures,
                    "shadow_skipped": self.shadow_skipped,
                    "requests_refused": self.requests_refused,
                    "requests_unlogged": self.requests_unlogged,
                    "batches": self._batcher.stats.batches,
                    "largest_batch": self._batcher.stats.largest,
                    "log_dir": self.grant.log_dir,
                    "operating_threshold": self.contract.batch.operating_threshold,
                    "log_parts": {p.path.name: p.sha256 for p in self.log.written},
                    "rows_logged": sum(p.rows for p in self.log.written),
                    "rows_not_logged": self.log.unwritten_rows,
                    "log_error": log_error,
                },
            )
        if log_error is not None:
            from mlops_platform.infra.settings import load_platform_settings
            from mlops_platform.runtime.alerting import send_alert

            send_alert(
                f"[{self.grant.env}] serving of {self.grant.model_name} stopped with "
                f"{self.log.unwritten_rows} rows (answers and shadow scores) its prediction log "
                f"({self.grant.log_dir}) could not write: {log_error}",
                load_platform_settings(self.grant.env).alerting.webhook_env,
            )
            raise PredictionLogError(log_error)

    @property
    def served(self) -> ServedModel:
        if self._served is None:
            raise RuntimeError("the serving service has not started")
        return self._served

    @property
    def shadow(self) -> ServedModel | None:
        return self._shadow

    # -- requests -------------------------------------------------------------------------

    def score(self, encounters: list[dict[str, Any]]) -> ScoredRequest:
        """Validate and score one request and log it; `RequestRejected` for a request that
        breaks a rule.

        Requests that arrive while others are being scored are scored with them in one batch
        (`MicroBatcher`); each caller gets its own request's predictions, and a lone request is
        scored at once. With a shadow, the batch is queued for the shadow scorer thread (never
        on the callers' time)."""
        return self._batcher.submit(list(encounters), rows=len(encounters))

    def _score_batch(
        self, requests: Sequence[list[dict[str, Any]]]
    ) -> list[ScoredRequest | RequestRejected]:
        """Score a batch of requests in one read, one check and one model call (per group of
        requests that may be scored together); one result per request, in order."""
        served, shadow = self.served, self._shadow  # one read each: a switch cannot split them
        read = self.scorer.read_requests(requests)
        # Refused requests get their refusal; every other slot is filled below.
        results: list[Any] = [read.rejections.get(i) for i in range(len(requests))]
        accepted = [(i, span) for i, span in enumerate(read.spans) if span is not None]
        if not accepted:
            return results
        frame, spans = read.frame, [span for _, span in accepted]
        _one_openmp_thread()
        scores = self.scorer.score_apart(served, frame, spans)
        predictions = self.scorer.predictions(served, frame, scores)
        request_ids = [str(uuid.uuid4()) for _ in accepted]
        row_ids = np.empty(len(frame), dtype=object)
        for (a, b), request_id in zip(spans, request_ids, strict=True):
            row_ids[a:b] = request_id
        self.log.append(
            self.scorer.log_table(
                served,
                frame,
                scores,
                request_id=row_ids.tolist(),
                inference_run_id=self.inference_run_id,
                shadow=False,
            )
        )
        if shadow is not None and self._shadow_worker is not None:
            try:
                self._shadow_queue.put_nowait((shadow, frame, row_ids.tolist(), spans, read.text))
            except queue.Full:
                self.shadow_skipped += len(accepted)
        self.requests += len(accepted)
        for (i, (a, b)), request_id in zip(accepted, request_ids, strict=True):
            results[i] = ScoredRequest(request_id, predictions[a:b])
        return results

    def stop_shadow_scorer(self) -> None:
        """Score what is queued, then end the shadow scorer thread."""
        if self._shadow_worker is not None:
            self._shadow_queue.put(None)  # after the requests already queued: all are scored
            self._shadow_worker.join()
            self._shadow_worker = None

    def _score_shadows(self) -> None:
        """The shadow scorer thread: gather queued batches, score them with the shadow model in
        calls of at most `shadow_batch_rows` rows, log the rows; until the stop marker."""
        _one_openmp_thread()
        stopping = False
        while not stopping:
            items, stopping = self._gather_shadow_items()
            for group in _same_model_runs(items):
                for chunk in _chunks(group, self.contract.shadow_batch_rows):
                    try:
                        # Between request batches, not beside one (see `MicroBatcher.turn`).
                        with self._batcher.turn():
                            table = self._shadow_scores(*_joined(chunk, self.scorer.read_text))
                        if table is not None:
                            self.log.append(table)
                    except Exception:
                        # Counted and logged; the thread lives on, so a stop still ends it.
                        self.shadow_failures += 1
                        logger.exception("Shadow rows of %d requests were not logged", len(chunk))

    def _gather_shadow_items(self) -> tuple[list[_ShadowItem], bool]:
        """Wait for a queued batch, then take what arrives for up to `shadow_gather_seconds`
        (or until `shadow_batch_rows` rows are taken); True once the stop marker was taken (all
        queued before it is in the list: a stop scores everything queued)."""
        first = self._shadow_queue.get()
        if first is None:
            return [], True
        items, rows = [first], len(first[1])
        deadline = time.monotonic() + self.contract.shadow_gather_seconds
        while rows < self.contract.shadow_batch_rows:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._shadow_queue.get(timeout=remaining)
                    if remaining > 0
                    else self._shadow_queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is None:
                return items, True
            items.append(item)
            rows += len(item[1])
        return items, False

    def _shadow_scores(
        self,
        shadow: ServedModel,
        frame: Any,
        request_ids: list[str],
        spans: list[tuple[int, int]],
    ) -> pa.Table | None:
        """The shadow's rows for the log; a shadow failure never reaches the caller."""
        try:
            scores = self.scorer.score_apart(shadow, frame, spans)
        except Exception:
            self.shadow_failures += 1
            logger.exception("Shadow version %s failed to score a request", shadow.model_version)
            return None
        return self.scorer.log_table(
            shadow,
            frame,
            np.asarray(scores),
            request_id=request_ids,
            inference_run_id=self.inference_run_id,
            shadow=True,
        )

    # -- switching ------------------------------------------------------------------------

    def check_switch(self) -> bool:
        """Serve the version that now holds production, if it moved; True when it switched."""
        with self._switch_lock:
            current = self.served
            try:
                holder = stage_holder(self.grant.model_name, SERVED_STAGE)
            except (LookupError, StageChangedOutsideError) as error:
                # Production emptied: keep answering with the last verified holder, and say so.
                logger.error(
                    "No version holds production (%s); still serving %s",
                    error,
                    current.model_version,
                )
                return False
            if str(holder.id) == current.model_version_id:
                self._refresh_shadow()
                return False
            try:
                new = load_served_model(self.contract.batch, holder, SERVED_STAGE)
            except Exception as error:
                if str(holder.id) not in self._refused_holders:  # tried again at every poll
                    self._refused_holders.add(str(holder.id))
                    self._refuse_switch(current, holder, error)
                return False
            self._served = new
            self._record(
                "serving_model_switched",
                new,
                {
                    "from_version": current.model_version,
                    "to_version": new.model_version,
                    "requests_before_switch": self.requests,
                },
            )
            self._refresh_shadow()
            return True

    def _refresh_shadow(self) -> None:
        if not self.grant.shadow:
            return
        try:
            holder = stage_holder(self.grant.model_name, SHADOW_STAGE)
        except (LookupError, StageChangedOutsideError):
            self._shadow = None
            return
        if self._shadow is not None and self._shadow.model_version_id == str(holder.id):
            return
        try:
            self._shadow = load_served_model(self.contract.batch, holder, SHADOW_STAGE, shadow=True)
        except Exception:
            logger.exception("Shadow version %s refused; shadow scoring paused", holder.name)
            self._shadow = None

    def _load_shadow(self) -> ServedModel | None:
        try:
            holder = stage_holder(self.grant.model_name, SHADOW_STAGE)
        except LookupError:
            logger.warning(
                "--shadow: no version holds staging; shadow scoring starts when one does"
            )
            return None
        return load_served_model(self.contract.batch, holder, SHADOW_STAGE, shadow=True)

    def _refuse_switch(self, current: ServedModel, holder: Any, error: Exception) -> None:
        from mlops_platform.infra.settings import load_platform_settings
        from mlops_platform.runtime.alerting import send_alert

        message = (
            f"[{self.grant.env}] serving kept version {current.model_version} of "
            f"{current.model_name}: the new production holder {holder.name} failed "
            f"verification ({error})"
        )
        self._record(
            "serving_switch_refused",
            current,
            {"refused_version": str(holder.name), "reason": str(error)[:500]},
        )
        send_alert(message, load_platform_settings(self.grant.env).alerting.webhook_env)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                if self.check_switch():
                    # Here, not inside the switch, where the old version is still referenced.
                    _freeze_heap()
            except Exception:
                logger.exception("Checking the production holder failed; retrying")

    def _record(self, event: str, served: ServedModel, details: dict[str, Any]) -> None:
        from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY, VersionIdentity
        from mlops_platform.trust.events import record_event

        record_event(
            self.grant.env,
            event,
            self.grant.actor,
            model_name=served.model_name,
            model_version=served.model_version,
            stage=served.model_stage,
            details={
                "deployment": self.grant.deployment,
                "inference_run_id": self.inference_run_id,
                "actor_source": self.grant.actor_source,
                # Which version answered, beyond its number (reused after a deletion).
                VERSION_IDENTITY_KEY: VersionIdentity(served.model_version_id).as_dict(),
                **details,
            },
        )


# (shadow model, frame, request id per row, each request's rows, the frame's text rows or None)
_ShadowItem = tuple[ServedModel, Any, list[str], list[tuple[int, int]], pa.Table | None]


def _same_model_runs(items: list[_ShadowItem]) -> list[list[_ShadowItem]]:
    """Consecutive queued batches grouped by the shadow model that is to score them."""
    runs: list[list[_ShadowItem]] = []
    for item in items:
        if runs and runs[-1][0][0] is item[0]:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _chunks(items: list[_ShadowItem], max_rows: int) -> list[list[_ShadowItem]]:
    """Consecutive batches in runs of at most `max_rows` rows (a larger batch is a run alone)."""
    chunks: list[list[_ShadowItem]] = []
    rows = 0
    for item in items:
        if chunks and rows + len(item[1]) <= max_rows:
            chunks[-1].append(item)
            rows += len(item[1])
        else:
            chunks.append([item])
            rows = len(item[1])
    return chunks


def _joined(
    items: list[_ShadowItem], read_text: Callable[[pa.Table], Any]
) -> tuple[ServedModel, Any, list[str], list[tuple[int, int]]]:
    """Several queued batches as one frame, request ids and spans shifted.

    When every batch kept the text rows its frame was read from (same columns), the texts are
    joined (no copy) and read in one call of the same reader: ~5 ms for 64 rows, where stacking
    the frames cost ~7 ms for 25 one-row frames and grows with their number."""
    if len(items) == 1:
        return items[0][:4]
    request_ids: list[str] = []
    spans: list[tuple[int, int]] = []
    start = 0
    for _, frame, ids, item_spans, _text in items:
        request_ids += ids
        spans += [(a + start, b + start) for a, b in item_spans]
        start += len(frame)
    texts = [item[4] for item in items]
    if all(t is not None and t.schema == texts[0].schema for t in texts):
        frame = read_text(pa.concat_tables(texts))
    else:
        import pandas as pd

        frame = pd.concat([item[1] for item in items], ignore_index=True)
    return items[0][0], frame, request_ids, spans


_THREAD_STATE = threading.local()


def _freeze_heap() -> None:
    """Keep the loaded libraries and models out of the cyclic garbage collector's full passes.

    After start the process holds ZenML, pandas, scikit-learn and the models: a full (oldest
    generation) collection walked them all and held the interpreter for ~300 ms (measured with
    `gc.callbacks` in the serving process), stalling every request in flight; requests allocate
    enough that one came every few hundred requests, more often with a shadow. Collected once,
    then frozen (`gc.freeze`), those objects are never walked again; what requests allocate
    is still collected as before. Each freeze first unfreezes, so after a switch the version
    served before is collected once nothing refers to it.
    """
    gc.unfreeze()  # what an earlier freeze kept (a switched-out version) is judged again
    gc.collect()
    gc.freeze()


def _one_openmp_thread() -> None:
    """Limit the calling thread's OpenMP pool to one thread, once per thread.

    OpenMP's thread count is per calling thread, and the app scores on a pool of worker threads:
    each request's model evaluation uses one thread, as batch scoring's workers do (measured:
    915 -> 400 ms per request on the loaded 2-core machine without it, the other OpenMP thread
    spin-waiting for a busy core). Setting it costs ~4 ms (threadpoolctl inspects the loaded
    libraries), so it is set on a thread's first request and left in place, not per request.
    """
    if getattr(_THREAD_STATE, "openmp_limited", False):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")
    _THREAD_STATE.openmp_limited = True


def _log_schema(contract: ServingContract) -> pa.Schema:
    batch = contract.batch
    fields = [pa.field(name, pa.int64()) for name in batch.id_columns]
    fields += [pa.field(batch.score_column, pa.float64()), pa.field("risk_band", pa.string())]
    fields += [
        pa.field(name, pa.string())
        for name in ("model_name", "model_version", "model_stage", "inference_run_id")
    ]
    fields += [
        pa.field("scored_at", pa.timestamp("us", tz="UTC")),
        pa.field("request_id", pa.string()),
        pa.field("shadow", pa.bool_()),
    ]
    schema = pa.schema(fields)
    assert tuple(schema.names) == log_columns(contract)
    return schema


# -- ZenML wiring: init/cleanup hooks and the /score route -------------------------------------


def start_serving(contract: dict[str, Any], grant: dict[str, Any], poll_seconds: float) -> Any:
    """The pipeline's init hook: verify the grant, load and verify the models, start watching.

    Its return value is ZenML's pipeline state, which steps read with
    `get_step_context().pipeline_state` and the `/score` route with the run context.
    """
    from mlops_platform.trust.keys import verifier_for

    verified = ServingGrant.verify(grant, verifier_for)
    served_contract = verified.contract(contract)
    if poll_seconds != verified.poll_seconds:
        raise ServingGrantError(
            f"The deployment polls the stage every {poll_seconds} s, but `mlops serve start` "
            f"signed {verified.poll_seconds} s: its stored configuration was changed after the "
            "start. Nothing is served; start it again with `mlops serve start`."
        )
    os.environ.update(verified.local_environment)  # for the watcher thread too, not only the hook
    service = ServingService(served_contract, verified, poll_seconds=poll_seconds)
    service.start()
    return service


def stop_serving() -> None:
    """The pipeline's cleanup hook: flush the log and record the stop."""
    service = current_service(required=False)
    if service is not None:
        service.stop()


def current_service(required: bool = True) -> ServingService | None:
    from zenml.steps.step_context import get_or_create_run_context

    context = get_or_create_run_context()
    state = context.state if context.initialized else None
    if isinstance(state, ServingService):
        return state
    if required:
        raise RuntimeError(
            "This process serves no model: the pipeline's init hook (start_serving) did not run."
        )
    return None


def score_route(app_runner: Any, contract: dict[str, Any], grant: dict[str, Any]) -> Any:
    """Builder of the deployment's `POST /score` route (a ZenML `EndpointSpec` handler).

    The request and response models come from the contract, so the route has an OpenAPI schema;
    a body that breaks them gets 422 naming each field, as FastAPI words it, and the team's
    validator's failures are answered the same way.

    The route does FastAPI's body work itself, cheaper (measured in the serving process: the
    HTTP layer took ~40 % of its CPU at concurrency 8): the raw body is validated by the request
    model in one call (`model_validate_json`, pydantic's parser, not `json.loads` and then a
    validation of the parsed dicts), and the answer is written as JSON bytes by the standard
    encoder from values the platform computed, not validated again against the response model.
    The models still describe the route in `/docs` (`_describe_route`).
    """
    from fastapi import HTTPException, Request, Response
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError
    from starlette.concurrency import run_in_threadpool

    from mlops_platform.serving.contract import request_model, response_model
    from mlops_platform.serving.scorer import RequestRejected
    from mlops_platform.trust.keys import verifier_for

    # The route validates requests with its own copy of the contract: it must be the signed one
    # too (`ServingGrant.contract`), or a rewritten copy would let through what the rules refuse.
    parsed = ServingGrant.verify(grant, verifier_for).contract(contract)
    request_type = request_model(parsed)
    response_type = response_model(parsed)

    async def score(request: Request) -> Response:
        body = await request.body()
        try:
            encounters = request_type.model_validate_json(body).encounters  # type: ignore[attr-defined]
        except ValidationError as error:
            _count_refusal()
            # FastAPI's own 422 (each `loc` starts with "body", as for a typed parameter), less
            # the `input` FastAPI echoes: an answer never carries the patient data it refused.
            raise RequestValidationError(
                [
                    {**{k: v for k, v in e.items() if k != "input"}, "loc": ("body", *e["loc"])}
                    for e in error.errors(include_url=False)
                ]
            ) from None
        service = current_service()
        assert service is not None
        try:
            scored = await run_in_threadpool(service.score, [e.model_dump() for e in encounters])
        except RequestRejected as error:
            service.requests_refused += 1
            raise HTTPException(status_code=422, detail=error.errors) from None
        except PredictionLogError as error:
            # Fail closed: no answer without its record in the prediction log.
            service.requests_unlogged += 1
            raise HTTPException(status_code=503, detail=str(error)) from None
        answer = {"request_id": scored.request_id, "predictions": scored.predictions}
        return Response(json.dumps(answer).encode(), media_type="application/json")

    # This module postpones annotations: give FastAPI the classes, not strings it cannot resolve.
    score.__annotations__ = {"request": Request, "return": Response}
    _describe_route(app_runner, request_type, response_type)
    return score


def _count_refusal() -> None:
    service = current_service(required=False)
    if service is not None:
        service.requests_refused += 1


def _describe_route(app_runner: Any, request_type: Any, response_type: Any) -> None:
    """Put the request and response models of `POST /score` into the app's OpenAPI schema (the
    route reads the raw body itself, so FastAPI does not see them in its signature)."""
    app = getattr(app_runner, "asgi_app", None)
    if app is None or not hasattr(app, "openapi"):
        return
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema  # type: ignore[no-any-return]
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        refs = "#/components/schemas/{model}"
        for model in (request_type, response_type):
            described = model.model_json_schema(ref_template=refs)
            components.update(described.pop("$defs", {}))
            components[model.__name__] = described
        operation = schema.get("paths", {}).get(SCORE_ROUTE_PATH, {}).get("post")
        if operation is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": refs.format(model=request_type.__name__)}
                    }
                },
            }
            ok = operation.setdefault("responses", {}).setdefault("200", {})
            ok["content"] = {
                "application/json": {"schema": {"$ref": refs.format(model=response_type.__name__)}}
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


class BodyLimit:
    """ASGI middleware: a request body above `max_bytes` is refused with 413 before parsing."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _refuse(send, self.max_bytes)
            return
        received = 0

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _refuse(send, self.max_bytes)


class _TooLarge(Exception):
    pass


async def _refuse(send: Any, max_bytes: int) -> None:
    body = json.dumps(
        {"detail": f"request body is larger than {max_bytes} bytes; send fewer encounters"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
