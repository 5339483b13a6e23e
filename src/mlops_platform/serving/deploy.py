"""Start, stop and describe the served pipeline as a ZenML deployment on the active stack.

The deployer is the stack's (`configs/stacks/<env>.yaml`: the local deployer locally, Kubernetes in
staging and production). `start` refuses to deploy when no version holds production, signs the
serving grant, and passes the init hook, its arguments, the `/score` route, the body-size limit and
the loopback bind as pipeline options; the pipeline module itself only composes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from mlops_platform.config import ENVIRONMENTS
from mlops_platform.infra.settings import is_local_checkout, local_defaults
from mlops_platform.serving.contract import ServingContract
from mlops_platform.serving.models import load_served_model, stage_holder
from mlops_platform.serving.service import (
    DEFAULT_POLL_SECONDS,
    SCORE_ROUTE_PATH,
    SERVED_STAGE,
    BodyLimit,
    ServingGrant,
    contract_sha256,
    score_route,
    start_serving,
    stop_serving,
)
from mlops_platform.workspace import state_dir

logger = logging.getLogger(__name__)

SCORE_PATH: Final = SCORE_ROUTE_PATH
LOOPBACK: Final = "127.0.0.1"
DEPLOY_TIMEOUT_SECONDS: Final = 180
# How often the deployer asks whether the service is up (ZenML 0.98 waits 5 s between checks).
DEPLOYER_POLL_SECONDS: Final = 0.5


class ServingSetupError(RuntimeError):
    """The active stack cannot serve (no deployer component)."""


class ServingStartError(RuntimeError):
    """The deployment was created but the service did not come up (its init hook failed)."""


class ServiceNotFoundError(LookupError):
    """No deployment of the served pipeline exists for this environment."""


def deployment_name(env: str) -> str:
    return f"readmission-realtime-{env}"


def require_writable_log(directory: Path) -> None:
    """Refuse (`ServingSetupError`) a prediction log directory that cannot be made and written."""
    from mlops_platform.serving.log import check_writable

    try:
        directory.mkdir(parents=True, exist_ok=True)
        check_writable(directory)
    except OSError as error:
        raise ServingSetupError(
            f"The prediction log directory {directory} cannot be written "
            f"({error.strerror or error}): the service answers no prediction without its "
            "record, so it was not started. Choose a writable --log-dir."
        ) from error


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def start_service(
    pipeline: Any,
    contract: ServingContract,
    *,
    env: str,
    actor: Any,
    model_name: str,
    log_dir: Path,
    port: int | None,
    shadow: bool,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
) -> dict[str, Any]:
    """Deploy `pipeline` serving `model_name`'s production holder; returns `service_status`."""
    from zenml.client import Client
    from zenml.config import DeploymentSettings
    from zenml.config.deployment_settings import (
        DeploymentDefaultMiddleware,
        EndpointMethod,
        EndpointSpec,
        MiddlewareSpec,
    )
    from zenml.deployers.exceptions import DeployerError
    from zenml.enums import StackComponentType

    from mlops_platform.governance.model_stages import at_version_threshold
    from mlops_platform.trust.keys import signer_for

    holder = stage_holder(model_name, SERVED_STAGE)  # exit 6 before anything is deployed
    # The service scores at the threshold the holder was judged at (its verified training
    # record), not the one the pipeline's code passed; a holder judged at another is not served.
    contract = contract.model_copy(
        update={"batch": at_version_threshold(contract.batch, holder, env)}
    )
    # The holder passes every check the service will make (file, signature, types, golden sample,
    # context) here first: a refused model stops the command in seconds with its reason and exit
    # code, before any service starts (the service checks it again when it loads it).
    load_served_model(contract.batch, holder, SERVED_STAGE)
    poll_deployer_faster()
    stack = Client().active_stack_model
    if not stack.components.get(StackComponentType.DEPLOYER):
        raise ServingSetupError(
            f"The active stack {stack.name!r} has no deployer, so it cannot serve. Add one to "
            f"configs/stacks/{env}.yaml (the local stack declares `deployer: flavor: local`) and "
            "run `mlops setup` (or `mlops stack setup --env ...`)."
        )
    deployer = stack.components[StackComponentType.DEPLOYER][0]
    if deployer.flavor_name == "local":
        # The service writes its log on this machine: a directory it cannot write stops the
        # command here (the service would refuse to start, since it never answers unlogged).
        require_writable_log(Path(log_dir).expanduser().resolve())
    name = deployment_name(env)
    local_environment: dict[str, str] = {}
    if is_local_checkout(os.environ):
        local_environment = {"MLOPS_STATE_DIR": str(state_dir())}
        for stage_env in ENVIRONMENTS:
            local_environment.update(local_defaults(stage_env, os.environ))
    contract_json = contract.model_dump(mode="json")
    grant = ServingGrant(
        env=env,
        actor=actor.name,
        actor_source=actor.source,
        deployment=name,
        model_name=model_name,
        log_dir=str(Path(log_dir).expanduser().resolve()),
        shadow=shadow,
        issued_at=datetime.now(UTC).isoformat(timespec="seconds"),
        local_environment=local_environment,
        contract_sha256=contract_sha256(contract_json),
        poll_seconds=poll_seconds,
    ).sign(signer_for(env))
    chosen = port or free_port()
    settings = {
        "deployment": DeploymentSettings(
            app_title="readmission_realtime",
            app_description=(
                f"Readmission risk from {model_name}: the version holding production "
                f"(version {holder.name} at start), verified before it is served."
            ),
            uvicorn_host=LOOPBACK,
            # uvicorn's access log line per request was ~5 % of the service's profile samples at
            # concurrency 8; every answer is in the prediction log and every 422 of `/score` is counted
            # in `serving_stopped` (`requests_refused`).
            uvicorn_kwargs={"access_log": False},
            # No CORS: ZenML's default allows every origin, so any web page open in a browser
            # on the host could call the service. Callers are systems, not pages; the secure
            # headers stay.
            include_default_middleware=DeploymentDefaultMiddleware.SECURE_HEADERS,
            custom_endpoints=[
                EndpointSpec(
                    path=SCORE_PATH,
                    method=EndpointMethod.POST,
                    handler=score_route,
                    init_kwargs={"contract": contract_json, "grant": grant},
                    auth_required=False,
                )
            ],
            custom_middlewares=[
                MiddlewareSpec(
                    middleware=BodyLimit,
                    native=True,
                    extra_kwargs={"max_bytes": contract.max_body_bytes},
                )
            ],
        ),
        "deployer": {
            "port": chosen,
            "address": LOOPBACK,
            "allocate_port_if_busy": port is None,
        },
    }
    configured = pipeline.with_options(
        on_init=start_serving,
        on_init_kwargs={
            "contract": contract_json,
            "grant": grant,
            "poll_seconds": poll_seconds,
        },
        on_cleanup=stop_serving,
        settings=settings,
    )
    try:
        configured.deploy(deployment_name=name, timeout=DEPLOY_TIMEOUT_SECONDS)
    except DeployerError as error:
        log_file = _log_file(name)
        why = _last_error_line(log_file)  # read before the deployment (and its log) is deleted
        # Nothing half-started stays behind: the failed deployment is stopped and deleted.
        with contextlib.suppress(DeployerError, KeyError):
            Client().delete_deployment(name, force=True)
        raise ServingStartError(
            f"The service {name} did not start: {error}. "
            + (
                f"Its log said: {why}. "
                if why
                else f"The init hook (model resolution and verification, grant check) logs why "
                f"in {log_file or 'the deployment log'}. "
            )
            + "Fix that and run `mlops serve start` again."
        ) from error
    return service_status(env)


def _last_error_line(log_file: Any) -> str | None:
    """The last line of the deployment's log that names an error, if the log can be read."""
    try:
        lines = Path(str(log_file)).read_text(encoding="utf-8", errors="replace").splitlines()
    except (OSError, TypeError):
        return None
    found = [line.strip() for line in lines if "Error" in line or "refused" in line.lower()]
    return found[-1][:800] if found else None


class _CappedSleep:
    """The `time` module as ZenML's deployer module sees it, with each sleep capped."""

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.cap))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def poll_deployer_faster(cap: float = DEPLOYER_POLL_SECONDS) -> bool:
    """Make ZenML's deployer check a starting or stopping service every `cap` seconds.

    ZenML 0.98's `BaseDeployer._poll_deployment` sleeps a fixed 5 s between checks of the
    daemon's state and health, the only sleep in that module: a service up after 7 s was reported
    after 10 s, one of up to 5 s lost per start and stop. A measured workaround in this process
    only, like `runtime.zenml_tuning`'s; False (and nothing changed) if ZenML's module changed.
    """
    from zenml.deployers import base_deployer

    current = getattr(base_deployer, "time", None)
    if isinstance(current, _CappedSleep):
        current.cap = cap
        return True
    if current is not time:
        logger.debug("zenml.deployers.base_deployer no longer uses the time module; unchanged.")
        return False
    base_deployer.time = _CappedSleep(cap)  # type: ignore[attr-defined]
    return True


def _log_file(name: str) -> str | None:
    from zenml.client import Client

    try:
        metadata = Client().get_deployment(name).deployment_metadata or {}
    except KeyError:
        return None
    value = metadata.get("log_file")
    return str(value) if value else None


def stop_service(env: str) -> dict[str, Any]:
    """Stop the deployment (SIGTERM: the cleanup hook flushes the log) and delete it."""
    from zenml.client import Client

    status = service_status(env)
    poll_deployer_faster()
    Client().delete_deployment(deployment_name(env))  # deprovisions first
    return {**status, "status": "stopped"}


def service_status(env: str) -> dict[str, Any]:
    from zenml.client import Client

    name = deployment_name(env)
    try:
        deployment = Client().get_deployment(name)
    except KeyError as error:
        raise ServiceNotFoundError(
            f"No real-time service runs for {env} (deployment {name!r}); start one with "
            "`mlops serve start`."
        ) from error
    url = (deployment.url or "").rstrip("/")
    metadata = deployment.deployment_metadata or {}
    return {
        "deployment": name,
        "status": str(deployment.status.value if deployment.status else "unknown"),
        "url": url or None,
        "endpoint": f"{url}{SCORE_PATH}" if url else None,
        "invoke_endpoint": f"{url}/invoke" if url else None,
        "docs": f"{url}/docs" if url else None,
        "pid": metadata.get("pid"),
        "log_file": metadata.get("log_file"),
        "snapshot_id": str(deployment.snapshot.id) if deployment.snapshot else None,
    }
