"""The one way governed pipelines are launched: CLI, tests, CI and notebooks all call `run_governed`.

It checks the environment's policy before anything runs, attaches the platform hooks, the safe model
materializer, code version and environment, opens the MLflow run that the hooks fill, and closes it.
Platform steps refuse to run without this context, so a pipeline started another way fails closed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from threadpoolctl import threadpool_limits
from zenml.config import DockerSettings
from zenml.enums import ExecutionMode, StackComponentType
from zenml.models import PipelineRunResponse
from zenml.pipelines.pipeline_definition import Pipeline
from zenml.utils import source_utils

from mlops_platform.config import CONFIG_DIR_VARIABLE, config_dir, repository_config_dir
from mlops_platform.governance.policy.models import load_policy
from mlops_platform.infra.settings import PlatformSettings, load_platform_settings
from mlops_platform.infra.stacks import (
    parse_stack_file,
    read_stack_yaml,
    registered_stack_differences,
    stack_file,
)
from mlops_platform.runtime import caching, tracking
from mlops_platform.runtime.composition import compose, refuse_unknown_upstream
from mlops_platform.runtime.console import quiet_step_failures
from mlops_platform.runtime.hooks.governance import mirror_step_to_mlflow, record_step_failure
from mlops_platform.runtime.model_versions import discard_if_never_judged
from mlops_platform.runtime.preconditions import (
    GOVERNED_ENVIRONMENTS,
    PreconditionFailed,
    RunSetting,
    config_fingerprint,
    precondition_problems,
)
from mlops_platform.runtime.provenance import code_version, snapshot_data_file, source_tree_clean
from mlops_platform.runtime.run_context import TOKEN_KEY, ExistingVersionRefused, GovernedContext
from mlops_platform.runtime.zenml_tuning import (
    activate_integrations_once,
    cache_package_lookups,
    compress_dataframes_faster,
)
from mlops_platform.trust.identity import Actor
from mlops_platform.trust.keys import signer_for, uses_local_stores
from mlops_platform.trust.outputs import (
    check_step_inputs,
    pin_run_outputs,
    record_writes,
    step_refusal,
)
from mlops_platform.trust.stored import guard_artifact_loads
from mlops_platform.workspace import state_dir, use_project_source_root

logger = logging.getLogger(__name__)

# OpenMP threads of the steps a governed run executes in this process (scoring the holdout,
# the drift reference, golden samples; training sets its own cap, `model.threads`). On this
# shared 2-core machine a 2-thread HistGradientBoosting prediction of the 22k holdout rows took
# 0.5-3.9 s (OpenMP threads spin while another process holds a core) and a 1-thread one 0.5 s.
OPENMP_THREADS = 1


OWN_MODULES = ("mlops_platform.", "mlops_cli.", "readmission.", "zenml.")


class GovernedRunFailed(RuntimeError):
    """A governed run failed; carries the failed step and the original error's class and text."""

    def __init__(
        self,
        run_name: str,
        step: str,
        error_source: str | None,
        message: str,
        error_traceback: str = "",
    ) -> None:
        super().__init__(f"Step '{step}' of run {run_name} failed: {message}")
        self.run_name = run_name
        self.step = step
        self.error_source = error_source
        self.error_message = message
        self.error_traceback = error_traceback  # as ZenML recorded it ('' if it did not)

    def error_class(self) -> type[BaseException] | None:
        """The class of the step's exception, if it can still be imported."""
        if not self.error_source:
            return None
        module = self.error_source.rpartition(".")[0]
        # Never import a module outside the project's and ZenML's because ZenML's record names it.
        if module not in sys.modules and not module.startswith(OWN_MODULES):
            return None
        try:
            loaded = source_utils.load(self.error_source)
        except Exception:
            return None
        return loaded if isinstance(loaded, type) else None


def _error_text(message: str | None, traceback: str) -> str:
    if message and message.strip():
        return message.strip()
    lines = [line for line in traceback.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no error message; see the step logs"


def _failure_of(run_name: str) -> GovernedRunFailed | None:
    """What failed in the run (and clean up an empty model version), or None if it never started."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    try:
        run = Client().get_pipeline_run(run_name)
    except KeyError:
        return None
    if run.model_version is not None:
        discard_if_never_judged(run.model_version.model.id, run.model_version.id, run.id)
    for step_name, step_run in run.steps.items():
        if step_run.status == ExecutionStatus.FAILED:
            refused = step_refusal(step_run.id)  # refused loading or storing: no ZenML error
            if refused is not None:
                source = f"{type(refused).__module__}.{type(refused).__qualname__}"
                return GovernedRunFailed(run_name, step_name, source, str(refused))
            info = step_run.exception_info
            message = _error_text(info.message if info else None, info.traceback if info else "")
            return GovernedRunFailed(
                run_name,
                step_name,
                info.source if info else None,
                message,
                info.traceback if info else "",
            )
    return GovernedRunFailed(run_name, "unknown", None, f"run ended with status {run.status}")


def use_safe_model_serialization() -> None:
    """Every scikit-learn estimator is stored with skops, whatever the step declares."""
    from sklearn.base import BaseEstimator
    from zenml.integrations.registry import integration_registry
    from zenml.materializers.materializer_registry import materializer_registry

    from mlops_platform.materializers.skops_model import SkopsModelMaterializer

    activate_integrations_once(integration_registry)
    materializer_registry.register_and_overwrite_type(BaseEstimator, SkopsModelMaterializer)


def pipeline_settings(settings: PlatformSettings, builds_images: bool) -> dict[str, Any]:
    """ZenML settings of a governed run: images a stack builds derive from the platform base image."""
    if settings.docker is None:
        return {}
    parent = settings.docker.parent_image(os.environ, builds_images)
    if parent is None:
        return {}
    return {
        "docker": DockerSettings(parent_image=parent, user=settings.docker.user, skip_build=False)
    }


def _stack_builds_images() -> bool:
    """Stacks that run steps in containers have a container registry (ZenML requires one)."""
    from zenml.client import Client

    components = Client().active_stack_model.components
    return StackComponentType.CONTAINER_REGISTRY in components


def refuse_unsafe_launch(env: str, tracking_uri: str, git_dirty: bool) -> None:
    """Raise `PreconditionFailed` when a staging/production launch breaks a rule."""
    from zenml.client import Client

    if env not in GOVERNED_ENVIRONMENTS:
        return
    repository = load_platform_settings(env, repository_config_dir())
    path = stack_file(env, repository_config_dir())
    expected = str(read_stack_yaml(path)["name"])
    local_trust = uses_local_stores(repository)
    active = Client().active_stack_model.name
    differences: tuple[str, ...] = ()
    if not local_trust and active == expected:
        # Every setting, component and attachment, not just the name (a stack file variable
        # that is unset here stops the launch: StackFileError, exit 7).
        differences = tuple(registered_stack_differences(parse_stack_file(path)))
    setting = RunSetting(
        env=env,
        local_trust=local_trust,
        config_override=os.environ.get(CONFIG_DIR_VARIABLE) or None,
        active_stack=active,
        expected_stack=expected,
        has_tracker=bool(tracking_uri),
        git_dirty=git_dirty,
        stack_differences=differences,
    )
    problems = precondition_problems(setting)
    if problems:
        raise PreconditionFailed(
            f"Refused to start a {env} run: " + "; ".join(problems) + ". Nothing ran."
        )


def _composed(pipeline: Pipeline, parameters: Mapping[str, Any]) -> Pipeline:
    """A copy of `pipeline` composed with `parameters` (nothing runs). A pipeline that cannot be
    composed, or whose step runs `after=` a step it does not have, raises
    `PipelineCompositionError` (exit 7) before anything runs."""
    probe = compose(pipeline.copy(), parameters)
    refuse_unknown_upstream(probe)
    return probe


def named_model_versions(composed: Pipeline) -> dict[str, str]:
    """Where a composed pipeline names a model version or stage ('pipeline' or the step's
    invocation id) -> the version or stage it names; a Model without one creates a new version."""
    named = {}
    pipeline_model = composed.configuration.model
    if pipeline_model is not None and pipeline_model.version is not None:
        named["pipeline"] = str(pipeline_model.version)
    for invocation_id, invocation in composed.invocations.items():
        model = invocation.step.configuration.model
        if model is not None and model.version is not None:
            named[invocation_id] = str(model.version)
    return named


def registers_a_model(composed: Pipeline) -> bool:
    """Whether a composed pipeline has the platform's `register_model` step (a training run)."""
    from mlops_platform.steps.register_model import register_model

    return any(
        invocation.step.source_object is register_model.source_object
        for invocation in composed.invocations.values()
    )


def refuse_existing_versions(composed: Pipeline) -> None:
    """A training run creates its version: ZenML links every output of a run to the version its
    Model names, so a run naming an existing version (or a stage) would link a new model file
    to the version that holds production. Refused before anything runs."""
    named = named_model_versions(composed)
    if named:
        where = ", ".join(f"{place}: {version!r}" for place, version in sorted(named.items()))
        raise ExistingVersionRefused(
            f"Pipeline {composed.name} must create a new model version, but its Model names an "
            f"existing version or stage ({where}). Remove `version=` from the Model of the "
            "pipeline and its steps; each training run registers the version ZenML creates."
        )


def run_governed(
    pipeline: Pipeline,
    env: str,
    actor: Actor,
    parameters: Mapping[str, Any],
    run_tags: Mapping[str, str] | None = None,
) -> PipelineRunResponse:
    """Run `pipeline` under the platform's governance for environment `env`.

    A pipeline that registers a model (a training run) creates its version: it is refused
    before it runs if it or a step names an existing version or stage
    (`refuse_existing_versions`), and its steps know it (`GovernedContext.creates_version`).
    """
    composed = _composed(pipeline, parameters)
    creates_version = registers_a_model(composed)
    if creates_version:
        refuse_existing_versions(composed)
    policy = load_policy(env)
    settings = load_platform_settings(env)
    use_project_source_root()
    docker = pipeline_settings(settings, _stack_builds_images())
    code = code_version()
    uri = tracking.stack_tracking_uri() or ""
    refuse_unsafe_launch(env, uri, bool(code["git_dirty"]))
    config_sha256 = config_fingerprint(env)
    # From here on the run reads the platform's hashed copy of its data file, never the original.
    snapshot = snapshot_data_file(parameters, state_dir() / "inputs")
    parameters = snapshot.parameters
    use_safe_model_serialization()
    cache_package_lookups()
    compress_dataframes_faster()
    record_writes()  # each output hashed as its step stores it (`trust.outputs`)
    check_step_inputs()  # and each input loaded from checked bytes, not by ZenML's loader
    guard_artifact_loads()  # any other load: no materializer that runs code from the files
    run_name = f"{pipeline.name}-{env}-{uuid.uuid4().hex[:12]}"
    tags = {
        "environment": env,
        "pipeline": pipeline.name,
        "git_sha": str(code["git_sha"]),
        "git_dirty": str(code["git_dirty"]),
        "actor": actor.name,
        "config_sha256": config_sha256,
        **(run_tags or {}),
    }
    mlflow_run_id = (
        tracking.start_run(uri, settings.tracking.experiment, pipeline.name, tags) if uri else ""
    )
    if not uri:
        logger.warning(
            "The active stack has no MLflow experiment tracker; MLflow mirroring is off."
        )
    content = caching.LaunchContent(
        git_sha=str(code["git_sha"]),
        git_dirty=not source_tree_clean(),
        data_file_sha256=snapshot.sha256,
        holdout_key_sha256=caching.holdout_key_digest(settings.holdout.key_bytes()),
        holdout_fraction=policy.holdout.fraction,
    )
    governed = GovernedContext(
        env=env,
        actor=actor.name,
        git_sha=str(code["git_sha"]),
        git_dirty=bool(code["git_dirty"]),
        mlflow_uri=uri,
        mlflow_run_id=mlflow_run_id,
        actor_source=actor.source,
        run_name=run_name,
        config_sha256=config_sha256,
        data_file_sha256=snapshot.sha256,
        identity=json.dumps(actor.as_dict(), sort_keys=True),
        launch_sha256=content.digest(),
        data_file_path=snapshot.path,
        creates_version=creates_version,
    )
    signer = signer_for(env)
    token = governed.to_token(signer)
    launch = caching.launch_key_for(content, signer)
    configured = pipeline.with_options(
        run_name=run_name,
        parameters=dict(parameters),
        enable_cache=False,
        steps=caching.step_options(
            set(settings.caching.reusable_steps) & set(composed.invocations)
        ),
        execution_mode=ExecutionMode.FAIL_FAST,
        on_success=mirror_step_to_mlflow,
        on_failure=record_step_failure,
        settings=docker,
        tags=[f"env:{env}", f"git:{str(code['git_sha'])[:12]}"],
        extra={
            "governed": True,
            "environment": env,
            "code": code,
            "actor": actor.as_dict(),
            "config_sha256": config_sha256,
            "config_dir": str(config_dir()),
            "data_origin": snapshot.origin,
            TOKEN_KEY: token,
        },
    )
    try:
        with (
            quiet_step_failures(),
            caching.launching(launch),
            threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"),
        ):
            run = configured()
    except RuntimeError as error:
        if mlflow_run_id:
            tracking.finish_run(uri, mlflow_run_id, failed=True)
        pin_run_outputs(run_name, env, content.digest())  # its data steps may be reused too
        failure = _failure_of(run_name)
        if failure is None:
            raise
        raise failure from error
    # Signed, so that a later run reads what this one stored checked (`trust.outputs`).
    pin_run_outputs(run.id, env, content.digest())
    reused = record_reuse(run)
    if mlflow_run_id:
        tags = {"zenml_run_id": str(run.id), "reused_steps": ",".join(reused) or "none"}
        tracking.log_values(uri, mlflow_run_id, tags=tags)
        tracking.finish_run(uri, mlflow_run_id, failed=False)
    return run


def record_reuse(run: PipelineRunResponse) -> dict[str, str]:
    """Record on the run which steps ZenML served from earlier runs (and which step runs)."""
    from zenml import log_metadata
    from zenml.client import Client

    hydrated = Client().get_pipeline_run(run.id)
    reused = caching.reused_steps(hydrated.steps)
    log_metadata(metadata={"reused_steps": reused}, run_id_name_or_prefix=run.id)
    return reused
