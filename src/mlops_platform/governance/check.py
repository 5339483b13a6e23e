"""`mlops check`: the governance rules CI enforces on the code and configuration themselves.

0. Every pipeline composes, and each step runs `after=` only steps the pipeline has
   (`check_composition`); the rules below are checked on the pipelines that compose.
1. Every pipeline that produces a model validates its data with the platform's `validate_data`
   before any model is trained, judges the model with `validate_model`, and publishes it only
   through `register_model`, which must consume the gate's decision.
2. Every environment's policy defines every required threshold and loads; the approval policy and
   the monitoring thresholds load for every environment; production is at least as strict as
   staging and staging as local, threshold by threshold (`governance/policy/layers.py`).
3. Every pipeline with a platform step that changes state has its gate upstream: the gate
   decision input of `register_model` and `promote_model` is the output of `validate_model`
   (which those steps check again at run time), and `score_batch` scores only a model version
   chosen by stage, that is one a promotion gate let through (`check_gates_upstream`).
4. Where a model exists, each MLflow stage alias points at the version holding that ZenML stage.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from zenml.enums import ArtifactType
from zenml.pipelines.pipeline_definition import Pipeline

from mlops_platform.config import ENVIRONMENTS, ConfigError, load_layered
from mlops_platform.evaluation.drift import load_drift_thresholds
from mlops_platform.governance.approvals.policy import PRODUCTION, STAGING, load_approval_policy
from mlops_platform.governance.model_stages import expected_aliases, mlflow_aliases, stage_holders
from mlops_platform.governance.policy.layers import ordering_problems
from mlops_platform.governance.policy.models import POLICY_CONFIG, load_policy, missing_thresholds
from mlops_platform.governance.promotion import (
    TrainingAuthorUnknown,
    alias_mismatches,
    training_record,
)
from mlops_platform.monitoring.verdict import load_outcome_thresholds
from mlops_platform.runtime.composition import (
    PipelineCompositionError,
    compose,
    unknown_upstream_problems,
)
from mlops_platform.steps.promote_model import promote_model
from mlops_platform.steps.register_model import register_model
from mlops_platform.steps.score_batch import score_batch
from mlops_platform.steps.validate_data import validate_data
from mlops_platform.steps.validate_model import validate_model
from mlops_platform.trust.artifacts import model_file_status, pinned_link_problem
from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY
from mlops_platform.trust.events import about_version


@dataclass(frozen=True)
class Finding:
    rule: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject}: {self.message}"


def discover_pipelines(packages: Iterable[str]) -> list[Pipeline]:
    """Every ZenML pipeline defined in the given packages (all their modules) or modules."""
    found: dict[str, Pipeline] = {}
    for name in packages:
        package = importlib.import_module(name)
        modules = [package] + [
            importlib.import_module(info.name)
            for info in pkgutil.iter_modules(getattr(package, "__path__", []), f"{name}.")
        ]
        for module in modules:
            for value in vars(module).values():
                if isinstance(value, Pipeline):
                    found[value.name] = value
    return list(found.values())


def _produces_model(invocation: Any) -> bool:
    from sklearn.base import BaseEstimator

    for output in invocation.step.entrypoint_definition.outputs.values():
        config = output.artifact_config
        if config is not None and config.artifact_type == ArtifactType.MODEL:
            return True
        annotation = output.resolved_annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseEstimator):
            return True
    return False


def _ancestors(invocations: Mapping[str, Any], name: str) -> set[str]:
    """The steps upstream of ``name``; a name no step has (`after=` naming a renamed step, a
    `check_composition` finding) has no ancestors of its own."""
    seen: set[str] = set()
    pending = list(invocations[name].upstream_steps)
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            if current in invocations:
                pending.extend(invocations[current].upstream_steps)
    return seen


def graph_arguments(pipeline: Pipeline, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The `parameters` the pipeline accepts, plus a placeholder for each other required one.

    A static pipeline only composes steps, so its graph does not depend on parameter values:
    a pipeline whose own parameters (a scoring request, a promotion order) the check cannot know
    is built with unvalidated placeholders (`model_construct()` for pydantic models, the type's
    empty value otherwise).
    """
    accepted = inspect.signature(pipeline.entrypoint).parameters
    hints = typing.get_type_hints(pipeline.entrypoint)
    arguments = {k: v for k, v in parameters.items() if k in accepted}
    for name, declared in accepted.items():
        if name in arguments or declared.default is not inspect.Parameter.empty:
            continue
        kind = hints.get(name)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            arguments[name] = kind.model_construct()
        elif isinstance(kind, type):
            arguments[name] = kind()
    return arguments


def check_composition(pipeline: Pipeline, parameters: Mapping[str, Any]) -> list[Finding]:
    """Rule 0: the pipeline's step graph composes and each step runs after steps it has (else
    ZenML refuses to run it). A `pipeline-composition` finding means the graph rules cannot be
    checked: the other checks of this module need a composed pipeline."""
    subject = f"pipeline {pipeline.name}"
    try:
        arguments = graph_arguments(pipeline, parameters)
    except Exception as error:  # a parameter's type the check cannot make a placeholder of
        return [
            Finding(
                "pipeline-composition",
                subject,
                f"the check cannot compose pipeline {pipeline.name}: no placeholder for its "
                f"parameters ({type(error).__name__}: {error}). Give each parameter that "
                "configs/base/training.yaml does not set a default, or a pydantic model or "
                "a type that builds without arguments.",
            )
        ]
    try:
        compose(pipeline, arguments)
    except PipelineCompositionError as error:
        return [Finding("pipeline-composition", subject, str(error))]
    return [
        Finding("unknown-upstream-step", subject, problem)
        for problem in unknown_upstream_problems(pipeline)
    ]


def check_pipeline(pipeline: Pipeline, parameters: Mapping[str, Any]) -> list[Finding]:
    """Check one pipeline's step graph, built (not run) from `graph_arguments`."""
    pipeline.prepare(**graph_arguments(pipeline, parameters))
    invocations = pipeline.invocations
    subject = f"pipeline {pipeline.name}"

    def using(step: Any) -> list[str]:
        return [
            name
            for name, inv in invocations.items()
            if inv.step.source_object is step.source_object
        ]

    producers = [name for name, inv in invocations.items() if _produces_model(inv)]
    if not producers:
        return []
    from mlops_platform.runtime.runner import named_model_versions

    findings: list[Finding] = [
        Finding(
            "version-named",
            subject,
            f"produces a model, but its Model names version or stage {version!r} ({place}): "
            "a training run creates its version, so `mlops train` refuses it. Remove "
            "`version=` from the Model.",
        )
        for place, version in sorted(named_model_versions(pipeline).items())
    ]
    gates = {"validate_data": using(validate_data), "validate_model": using(validate_model)}
    registrations = using(register_model)
    for step_name, present in (*gates.items(), ("register_model", registrations)):
        if not present:
            findings.append(
                Finding(
                    "required-step",
                    subject,
                    f"produces a model ({', '.join(producers)}) but has no platform step "
                    f"`{step_name}`. Add mlops_platform.steps.{step_name} to the pipeline.",
                )
            )
    for producer in producers:
        if gates["validate_data"] and not set(gates["validate_data"]) & _ancestors(
            invocations, producer
        ):
            findings.append(
                Finding(
                    "data-before-training",
                    subject,
                    f"step `{producer}` trains on data that did not pass `validate_data`. "
                    "Feed it the output of validate_data.",
                )
            )
    for registration in registrations:
        upstream = invocations[registration].upstream_steps
        if not set(gates["validate_model"]) & set(upstream):
            findings.append(
                Finding(
                    "gate-before-registration",
                    subject,
                    f"`{registration}` does not consume the decision of `validate_model`. "
                    "Pass validate_model's output to register_model.",
                )
            )
        model_sources = set(producers) & set(upstream)
        for producer in model_sources:
            if not set(gates["validate_model"]) & (
                {n for n in invocations if producer in _ancestors(invocations, n)}
            ):
                findings.append(
                    Finding(
                        "gate-judges-model",
                        subject,
                        f"the model from `{producer}` is registered without `validate_model` "
                        "judging its predictions. Evaluate it and pass the predictions to the gate.",
                    )
                )
    return findings


# Platform steps that change state, and the input that must carry this run's gate decision.
GATED_STEPS: dict[str, str] = {"register_model": "gate_decision", "promote_model": "gate_decision"}
SCORING_STAGES: tuple[str, ...] = ("staging", "production")


def reusable_step_findings(reusable: Iterable[str], steps: Iterable[str]) -> list[Finding]:
    """Names in `caching.reusable_steps` that no pipeline has a step for (pure): a renamed step
    is no longer reused, and the old name left in the list would make a new step of that name
    reusable without review."""
    known = set(steps)
    return [
        Finding(
            "reusable-step-unknown",
            "caching.reusable_steps",
            f"{name!r} is listed as reusable, but no governed pipeline has a step of that name "
            "(renamed or removed?); list the step's new name in configs/base/platform.yaml, or "
            "remove it",
        )
        for name in reusable
        if name not in known
    ]


def check_gates_upstream(pipeline: Pipeline, parameters: Mapping[str, Any]) -> list[Finding]:
    """Rule 3: no state-changing platform step runs without the platform gate upstream of it.

    Covers every pipeline, whether or not it trains a model (a promotion pipeline trains none).
    """
    pipeline.prepare(**graph_arguments(pipeline, parameters))
    invocations = pipeline.invocations
    subject = f"pipeline {pipeline.name}"
    gates = {
        name
        for name, inv in invocations.items()
        if inv.step.source_object is validate_model.source_object
    }
    changing = {
        "register_model": register_model,
        "promote_model": promote_model,
        "score_batch": score_batch,
    }
    findings: list[Finding] = []
    for name, inv in invocations.items():
        kind = next(
            (k for k, s in changing.items() if inv.step.source_object is s.source_object), None
        )
        if kind is None:
            continue
        if kind == "score_batch":
            model = pipeline.configuration.model
            stage = str(model.version) if model is not None and model.version else None
            if stage not in SCORING_STAGES:
                findings.append(
                    Finding(
                        "gate-before-scoring",
                        subject,
                        f"`{name}` scores model version {stage!r}, not one chosen by stage; "
                        "configure the pipeline with Model(name=..., version='production' or "
                        "'staging') so that only a version a promotion gate passed is scored.",
                    )
                )
            continue
        source = inv.input_artifacts.get(GATED_STEPS[kind])
        producer = getattr(source, "invocation_id", None)
        if producer not in gates or not gates & _ancestors(invocations, name):
            findings.append(
                Finding(
                    "gate-upstream",
                    subject,
                    f"`{name}` changes state, but its {GATED_STEPS[kind]!r} input is not the "
                    "output of the platform gate `validate_model` in the same pipeline. Judge "
                    f"the model with validate_model and pass its output to {kind}.",
                )
            )
    return findings


def check_data_schemas(pipeline: Pipeline, parameters: Mapping[str, Any]) -> list[Finding]:
    """Every `validate_data` in the pipeline names a strict pandera schema (not any callable)."""
    from mlops_platform.steps.validate_data import SchemaRefused, load_schema

    pipeline.prepare(**graph_arguments(pipeline, parameters))
    findings = []
    for name, inv in pipeline.invocations.items():
        if inv.step.source_object is not validate_data.source_object:
            continue
        try:
            load_schema(str(inv.parameters.get("schema_source")))
        except SchemaRefused as error:
            findings.append(
                Finding("data-schema", f"pipeline {pipeline.name}", f"`{name}`: {error}")
            )
    return findings


def check_configs(directory: Path | None = None) -> list[Finding]:
    """Every environment defines every required threshold, and every platform config loads."""
    loaders: dict[str, Callable[[str], object]] = {
        "policy": lambda env: load_policy(env, directory),
        "approvals": lambda env: load_approval_policy(env, directory),
        "monitoring": lambda env: load_drift_thresholds(env, directory),
        "outcome monitoring": lambda env: load_outcome_thresholds(env, directory),
    }
    findings: list[Finding] = []
    for env in ENVIRONMENTS:
        try:
            missing = missing_thresholds(load_layered(POLICY_CONFIG, env, directory))
        except ConfigError as error:
            findings.append(Finding("policy", env, str(error)))
            continue
        if missing:
            findings.append(
                Finding(
                    "required-threshold",
                    env,
                    f"policy does not define {', '.join(missing)}. Set them in "
                    f"configs/base/{POLICY_CONFIG}.yaml or configs/{env}/{POLICY_CONFIG}.yaml.",
                )
            )
        for name, load in loaders.items():
            try:
                load(env)
            except (ConfigError, ValueError) as error:
                findings.append(Finding(name, env, str(error)))
        findings.extend(platform_findings(env, directory))
    try:
        problems = ordering_problems(directory)
    except ConfigError:
        problems = []  # an unreadable policy file is already a finding above
    findings.extend(Finding("policy-strictness", p.env, str(p)) for p in problems)
    return findings


def platform_findings(env: str, directory: Path | None = None) -> list[Finding]:
    """``env``'s platform.yaml loads (a variable this shell does not set is not a finding: the
    environment's own jobs set it), and the alert webhook it names, when set here, is usable."""
    import os

    from mlops_platform.expand import UnsetVariableError
    from mlops_platform.infra.settings import load_platform_settings
    from mlops_platform.runtime.alerting import webhook_url_problem

    try:
        settings = load_platform_settings(env, directory)
    except UnsetVariableError:
        return []
    except (ConfigError, ValueError) as error:
        return [Finding("platform", env, str(error))]
    variable = settings.alerting.webhook_env
    url = os.environ.get(variable) if variable else None
    problem = webhook_url_problem(url) if url else None
    if problem is None:
        return []
    return [
        Finding(
            "alert-webhook",
            env,
            f"{variable}: {problem}. Alerts would go to the log only; set it to the webhook's "
            "https URL.",
        )
    ]


def stage_mirror_findings(
    model_name: str,
    holders: Mapping[str, str | None],
    expected: Mapping[str, str | None],
    actual: Mapping[str, str | None] | None,
) -> list[Finding]:
    """Stages whose MLflow alias disagrees with ZenML's holder (ZenML is the source of truth).

    ``holders`` maps each stage to the ZenML version holding it, ``expected`` to that version's
    MLflow registry version, ``actual`` to where the MLflow alias points (None: MLflow does not
    know the model at all).
    """
    subject = f"model {model_name}"
    if actual is None:
        if not any(expected.values()):
            return []
        return [
            Finding(
                "mlflow-mirror",
                subject,
                "ZenML stages are held by versions registered in MLflow, but the MLflow registry "
                "has no such model; check the stack's MLflow tracking URI.",
            )
        ]
    findings = []
    for stage, wanted, got in alias_mismatches(expected, actual):
        holder = holders.get(stage)
        zenml_side = (
            f"ZenML's {stage} holder is version {holder} (MLflow version {wanted or 'none'})"
            if holder
            else f"no ZenML version holds {stage}"
        )
        mlflow_side = (
            f"MLflow alias '{stage}' points at MLflow version {got}"
            if got
            else f"MLflow has no '{stage}' alias"
        )
        fix = (
            f"MlflowClient().set_registered_model_alias({model_name!r}, {stage!r}, {wanted!r})"
            if wanted
            else f"MlflowClient().delete_registered_model_alias({model_name!r}, {stage!r})"
        )
        findings.append(
            Finding(
                "mlflow-mirror",
                subject,
                f"{zenml_side}, but {mlflow_side}. ZenML is the source of truth: find out who "
                f"changed the alias, then restore it with {fix}.",
            )
        )
    return findings


def check_stage_mirror(model_name: str, tracking_uri: str) -> list[Finding]:
    """Compare each ZenML stage holder of ``model_name`` with the MLflow alias of that stage."""
    holders = stage_holders(model_name)
    return stage_mirror_findings(
        model_name,
        {stage: holder.name if holder is not None else None for stage, holder in holders.items()},
        expected_aliases(holders),
        mlflow_aliases(tracking_uri, model_name),
    )


def _readable_environments() -> dict[str, str]:
    """url -> first environment using it, for every environment whose settings resolve."""
    from mlops_platform.config import ConfigError
    from mlops_platform.expand import UnsetVariableError
    from mlops_platform.infra.settings import load_platform_settings
    from mlops_platform.trust.events import ENVIRONMENTS

    found: dict[str, str] = {}
    for env in ENVIRONMENTS:
        try:
            found.setdefault(load_platform_settings(env).audit.url, env)
        except (ConfigError, UnsetVariableError):
            continue
    return found


def version_record_findings(
    subject: str,
    tags: Iterable[str],
    claimed_author: str | None,
    training: Iterable[Any],
    rejected_seq: int | None,
    version: tuple[str, str, str],
) -> list[Finding]:
    """One version's ZenML tags and claimed author compared with its verified records (pure).

    ``claimed_author`` is ZenML's ``registration.trained_by``; ``training`` the verified
    `training_completed` records; ``rejected_seq`` the gate record that tagged it `rejected`;
    ``version`` is (model name, number, ZenML id).
    """
    from mlops_platform.governance.promotion import TrainingAuthorUnknown, training_author
    from mlops_platform.names import REJECTED_TAG

    findings = []
    if rejected_seq is not None and REJECTED_TAG not in set(tags):
        findings.append(
            Finding(
                "rejected-tag-vs-trail",
                subject,
                f"audit record {rejected_seq} shows a gate rejected it, but ZenML no longer tags "
                f"it '{REJECTED_TAG}': the tag was removed outside the platform; add it back and "
                "find out who removed it",
            )
        )
    trained = [r for r in training if r.event_type == "training_completed"]
    try:
        recorded: str | None = training_author(trained, *version).name
    except TrainingAuthorUnknown as error:
        recorded = None
        if any(r.model_version == version[1] for r in trained):  # records that disagree
            findings.append(Finding("author-vs-trail", subject, str(error)))
            return findings
    if recorded is not None and recorded != claimed_author:
        findings.append(
            Finding(
                "author-vs-trail",
                subject,
                f"ZenML metadata registration.trained_by says {claimed_author!r}, but the audit "
                f"trail records that {recorded!r} trained it: the metadata was edited outside the "
                "platform (decisions use the trail); restore it and find out who changed it",
            )
        )
    elif recorded is None and claimed_author:
        findings.append(
            Finding(
                "author-vs-trail",
                subject,
                f"ZenML metadata registration.trained_by says {claimed_author!r}, but the audit "
                "trail has no training_completed record of this version: the metadata was "
                "written outside the platform; promotions of this version fail until it is "
                "retrained through the platform",
            )
        )
    return findings


def registration_findings(
    subject: str, registration: Mapping[str, Any], recorded: Mapping[str, Any]
) -> list[Finding]:
    """ZenML's ``registration`` metadata of a version compared with the details of its verified
    `training_completed` record (pure): the data it was trained on (the pin promotions judge
    on), its commit and training run (what lineage shows) and the MLflow registry version its
    stage aliases point at. Decisions read the record;
    metadata that differs was edited outside the platform."""
    from mlops_platform.governance.promotion import (
        MLFLOW_REGISTERED_VERSION_KEY,
        recorded_training_facts,
    )

    findings = []
    data = registration.get("data") or {}
    claimed = (data.get("file_sha256") or None, data.get("sha256") or None)
    pinned = (recorded.get("data_file_sha256") or None, recorded.get("data_sha256") or None)
    if claimed != pinned:
        findings.append(
            Finding(
                "data-vs-trail",
                subject,
                f"ZenML metadata registration.data names data sha256 {claimed[0] or claimed[1]}, "
                f"but the audit trail records training on {pinned[0] or pinned[1]}: the metadata "
                "was edited outside the platform (promotions refuse until it is restored); "
                "restore it and find out who changed it",
            )
        )
    _, _, _, disagreements = recorded_training_facts(dict(registration), dict(recorded))
    for field, code in (
        ("registration.code", "code-vs-trail"),
        ("registration.pipeline_run_id", "run-vs-trail"),
    ):
        for problem in disagreements:
            if problem.startswith(field):
                findings.append(
                    Finding(
                        code,
                        subject,
                        f"ZenML metadata {problem} (its verified training_completed): the metadata "
                        "was edited outside the platform (lineage shows the record's); restore "
                        "it and find out who changed it",
                    )
                )
    if MLFLOW_REGISTERED_VERSION_KEY in recorded:
        mlflow_info = registration.get("mlflow") or {}
        said = mlflow_info.get("registered_version") if isinstance(mlflow_info, Mapping) else None
        wanted = recorded.get(MLFLOW_REGISTERED_VERSION_KEY)
        if str(said or "") != str(wanted or ""):
            findings.append(
                Finding(
                    "mlflow-version-vs-trail",
                    subject,
                    f"ZenML metadata registration.mlflow.registered_version says {said!r}, but "
                    f"the audit trail records MLflow registry version {wanted!r}: the metadata "
                    "was edited outside the platform (stage aliases follow the trail); restore "
                    "it and find out who changed it",
                )
            )
    return findings


def missing_model_finding(model_name: str) -> Finding | None:
    """A finding when ZenML has no model ``model_name`` although the verified trail records it
    (trained, or holding a stage); None when ZenML has it or no trail names it.

    Any ZenML user can rename or delete a model (the CLI, the dashboard, the REST API): batch
    scoring and serving then find no holder, and every comparison of ZenML with the trail would
    have nothing to compare. The trail decides what must exist, not ZenML. A version the trail
    names that ZenML now lists under another model's name is named with it (a rename).
    A trail that does not verify raises `AuditError` (exit 8)."""
    from zenml.client import Client

    from mlops_platform.governance.approvals.policy import STAGES
    from mlops_platform.governance.model_stages import _records, read_history
    from mlops_platform.trust.audit import AuditEventType

    client = Client()
    if client.list_models(name=model_name, size=1).total:
        return None
    # Only trails that exist: a fresh checkout (no trail, no model) has nothing to compare; a
    # deleted trail stops every decision that reads it and `mlops audit verify` (exit 8).
    urls = {
        url: env for url, env in _readable_environments().items() if trail_exists(env, model_name)
    }
    stages = [s for s in STAGES if _same_url(s, urls)]
    history = read_history(model_name, stages) if stages else {}
    trained = [
        record
        for env in urls.values()
        for record in _records(env, model_name, [AuditEventType.TRAINING_COMPLETED])
    ]
    if not trained and not any(history.values()):
        return None
    holders = {
        stage: tenure
        for stage, tenures in history.items()
        for tenure in tenures
        if tenure.until is None
    }
    held = "; ".join(
        f"it records version {tenure.model_version} holding {stage} (record {tenure.seq})"
        for stage, tenure in sorted(holders.items())
    )
    identities = [t.identity for t in holders.values() if t.identity] + [
        r.details.get("model_version_id") for r in trained if r.details.get("model_version_id")
    ]
    renamed = sorted(
        {
            found.model.name
            for found in (_version_by_id(client, identity) for identity in identities)
            if found is not None
        }
    )
    where = (
        f"ZenML lists its recorded versions under {', '.join(map(repr, renamed))}: the model "
        f"was renamed. Rename it back (`zenml model update {renamed[0]} -n {model_name}`)"
        if renamed
        else "The model was deleted or renamed in ZenML, moved to another ZenML project, or "
        "this checkout's ZenML store is not the one the trail's records were made with "
        "(ZENML_STORE_URL, the stack's server). Restore it from a backup of the ZenML store, or "
        "point the client at the trail's own store"
    )
    return Finding(
        "model-missing",
        f"model {model_name}",
        f"ZenML has no model named {model_name}, but the verified audit trail records "
        f"{len(trained)} training run(s) of it"
        + (f" and {held}" if held else "")
        + f". Batch scoring and serving find nothing to score with while it is missing. {where}, "
        "then run `mlops check` again, and find out who changed it (ZenML keeps no history)",
    )


def trail_exists(env: str, model_name: str) -> bool:
    """Whether ``env``'s audit trail exists (read-only; nothing is created). A missing trail
    that held records (``model_name``'s anchors, or this machine's checkpoint, name one) raises
    `AuditTrailMissing` (exit 8): it was deleted, not never made."""
    from mlops_platform.trust.audit import AuditTrailMissing
    from mlops_platform.trust.events import audit_trail, missing_trail_was_written

    try:
        audit_trail(env, write=False).close()
    except AuditTrailMissing as error:
        held = missing_trail_was_written(env, model_name)
        if held is not None:
            raise AuditTrailMissing(
                f"{error}; it held records ({held}), so it was deleted or moved, not never made"
            ) from error
        return False
    return True


def _version_by_id(client: Any, identity: Any) -> Any:
    """The ZenML model version with the recorded id (a `VersionIdentity`, its dict or an id)."""
    from uuid import UUID

    value = getattr(identity, "version_id", None) or (
        identity.get("model_version_id") if isinstance(identity, dict) else identity
    )
    try:
        return client.get_model_version(model_version_name_or_number_or_id=UUID(str(value)))
    except (KeyError, ValueError, TypeError):
        return None


def trail_findings(model_name: str) -> list[Finding]:
    """Out-of-band changes and unfinished promotions: ZenML stages, `validated` and `rejected`
    tags, gate metadata and `registration.trained_by` compared with the verified audit trails,
    and started promotions without an end.
    A trail that does not verify raises `AuditError` (exit 8) rather than becoming a finding."""
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate_stream

    from mlops_platform.governance import transaction
    from mlops_platform.governance.approvals.policy import STAGES
    from mlops_platform.governance.model_stages import (
        _records,
        metadata_author,
        read_history,
        stage_problems,
    )
    from mlops_platform.governance.promotion import stage_environment
    from mlops_platform.names import REJECTED_KEY, VALIDATED_TAG
    from mlops_platform.trust.audit import AuditEventType, AuditRecord

    urls = _readable_environments()
    stages = [s for s in STAGES if _same_url(s, urls)]
    findings: list[Finding] = []
    subject = f"model {model_name}"
    history = read_history(model_name, stages) if stages else {}
    for stage, problem in stage_problems(model_name, stages, history).items():
        findings.append(
            Finding(
                "stage-vs-trail",
                subject,
                f"{problem}; run `mlops --as NAME audit reconcile --env "
                f"{stage_environment(stage)}` (it gives the stage back to the recorded holder, "
                "and records who did; outside local NAME is your verified account) and find out "
                "who changed it",
            )
        )
    gates: dict[str, dict[str, str]] = {}  # version -> environment -> last gate event
    gate_records: dict[str, list[AuditRecord]] = {}  # version -> its gate records
    rejections: dict[str, int] = {}  # version -> seq of the gate record that rejected it
    trained: list[AuditRecord] = []
    for env in urls.values():
        for open_one in transaction.unfinished_promotions(env, model_name):
            findings.append(
                Finding(
                    "unfinished-promotion",
                    subject,
                    f"{open_one.kind} of version {open_one.model_version} to {open_one.stage} "
                    f"started (record {open_one.started.seq}) and never finished; run "
                    f"`mlops audit reconcile --env {stage_environment(open_one.stage)}`",
                )
            )
        events = [
            AuditEventType.GATE_PASSED,
            AuditEventType.GATE_FAILED,
            AuditEventType.TRAINING_COMPLETED,
        ]
        for record in _records(env, model_name, events):
            if record.event_type == AuditEventType.TRAINING_COMPLETED:
                trained.append(record)
                continue
            judged = str(record.details.get("environment") or env)
            gates.setdefault(str(record.model_version), {})[judged] = record.event_type
            gate_records.setdefault(str(record.model_version), []).append(record)
            if record.details.get(REJECTED_KEY) is True:
                rejections.setdefault(str(record.model_version), record.seq)
    findings += serving_findings(urls.values())
    if PRODUCTION in stages:
        findings += production_move_findings(model_name, trained, history.get(STAGING), set(urls))
    client = Client()
    for version in depaginate_stream(client.list_model_versions, model=model_name):
        tags = {tag.name for tag in version.tags}
        recorded = gates.get(version.name, {})
        findings += version_record_findings(
            f"{subject} version {version.name}",
            tags,
            metadata_author(version),
            trained,
            rejections.get(version.name),
            (model_name, version.name, str(version.id)),
        )
        registration = (version.run_metadata or {}).get("registration")
        training_run = None
        if isinstance(registration, Mapping):
            try:
                record = training_record(trained, model_name, version.name, str(version.id))
            except TrainingAuthorUnknown:
                pass  # reported above (author-vs-trail)
            else:
                training_run = record.details.get("pipeline_run_id")
                findings += registration_findings(
                    f"{subject} version {version.name}", registration, record.details
                )
        findings += gate_metadata_findings(
            f"{subject} version {version.name}",
            version.run_metadata or {},
            [r for r in gate_records.get(version.name, []) if about_version(r, str(version.id))],
            training_run,
        )
        if version.stage and (problem := pinned_link_problem(version)):
            findings.append(
                Finding("model-link-vs-pin", f"{subject} version {version.name}", problem)
            )
        if version.stage in SCORING_STAGES and (
            problem := holder_data_problem(version.stage, trained, version)
        ):
            findings.append(
                Finding("holder-data-vs-policy", f"{subject} version {version.name}", problem)
            )
        if version.stage in SCORING_STAGES:
            from mlops_platform.governance.promotion import stage_environment

            status = model_file_status(version, stage_environment(version.stage))
            if status["status"] != "verified":
                findings.append(
                    Finding(
                        "model-file-vs-pin",
                        f"{subject} version {version.name}",
                        f"the {version.stage} holder's model file does not pass its signed pin "
                        f"({status.get('problem')}): scoring and promotions refuse it (exit 8). "
                        "Restore the file from a backup, or roll the stage back",
                    )
                )
        if VALIDATED_TAG in tags and AuditEventType.GATE_PASSED not in recorded.values():
            findings.append(
                Finding(
                    "tag-vs-trail",
                    f"{subject} version {version.name}",
                    f"tagged '{VALIDATED_TAG}', but the audit trail records no passed gate for "
                    "it: the tag was edited outside the platform; remove it and find out who "
                    "added it",
                )
            )
        for key, value in version.run_metadata.items():
            if not key.startswith("gate_decision_") or not isinstance(value, dict):
                continue
            env = key.removeprefix("gate_decision_")
            event = recorded.get(env)
            passed = value.get("passed")
            claimed = AuditEventType.GATE_PASSED if passed else AuditEventType.GATE_FAILED
            if event is not None and event != claimed:
                findings.append(
                    Finding(
                        "gate-metadata-vs-trail",
                        f"{subject} version {version.name}",
                        f"ZenML metadata {key} says passed={value.get('passed')}, but the audit "
                        f"trail's last {env} gate event is {event}: the metadata was edited",
                    )
                )
    return findings


def serving_findings(environments: Iterable[str]) -> list[Finding]:
    """A real-time service the trail records as started and never as stopped, and that no
    longer runs (killed or crashed): its last answers are in no recorded log part."""
    import socket
    from functools import partial

    from mlops_platform.config import ENVIRONMENTS
    from mlops_platform.serving.deploy import deployment_name
    from mlops_platform.serving.ended import (
        not_running,
        recorded_starts,
        service_runs,
        start_alive,
        unstopped,
    )

    findings = []
    for trail_env in set(environments):
        records = recorded_starts(trail_env)
        for env in ENVIRONMENTS:  # a shared trail holds every environment's services
            own = [r for r in records if r.details.get("deployment") == deployment_name(env)]
            starts = unstopped(own)
            if not starts:
                continue
            alive = partial(start_alive, host=socket.gethostname())
            for start in not_running(starts, service_runs(env), alive):
                findings.append(
                    Finding(
                        "serving-not-stopped",
                        f"real-time service of {env}",
                        f"started (record {start.seq}, version {start.model_version}, log "
                        f"{start.details.get('log_dir')}) and never recorded its stop: it was "
                        "killed or crashed, so its last buffered rows are lost and its log parts "
                        "are not in the trail (outcome monitoring and lineage skip them). Find "
                        f"out why it stopped; `mlops serve stop --env {env}` records its end",
                    )
                )
    return findings


def holder_data_problem(stage: str, trained: Sequence[Any], version: Any) -> str | None:
    """Why the holder of ``stage`` may not hold it under today's approved data files of the
    stage's environment (`policy.evaluate.unapproved_data_problem`), or None. A promotion's
    gate and a rollback refuse such a version; a list tightened after the move, or a move
    decided by code that skipped the rule, leaves it holding the stage: this names it."""
    from mlops_platform.governance.policy.evaluate import unapproved_data_problem
    from mlops_platform.governance.promotion import stage_environment

    env = stage_environment(stage)
    try:
        approved = load_policy(env).evaluation_data.approved_file_sha256
    except ConfigError:
        return None  # `check_configs` names the policy that does not load
    if env == "local" or not approved:
        return None
    try:
        record = training_record(trained, version.model.name, version.name, str(version.id))
    except TrainingAuthorUnknown:
        trained_on = None  # no single verified training record: no hashed file to show
    else:
        trained_on = record.details.get("data_file_sha256") or None
    what = f"the file the {stage} holder was trained on (its verified training record)"
    problem = unapproved_data_problem(env, approved, {what: trained_on})
    if problem is None:
        return None
    return (
        f"{problem}. It holds {stage} all the same (the list changed after it moved, or the move "
        "skipped the rule): promote a version trained on an approved file, or restore one with "
        f"`mlops rollback --to {stage}`"
    )


def production_move_findings(
    model_name: str,
    trained: Sequence[Any],
    staging: Sequence[Any] | None,
    readable: Iterable[str] = (),
) -> list[Finding]:
    """Every recorded move to production replayed against the rules no policy relaxes
    (`replay.production_move_problems`): a record that no valid decision could have written
    was written by code that changed the decision, or by a key holder. The outcome verdicts a
    move had to name are read from the stages' trails among the ``readable`` audit URLs."""
    from mlops_platform.governance.approvals.policy import STAGES, normalize_name
    from mlops_platform.governance.model_stages import _records, audit_url
    from mlops_platform.governance.promotion import STAGE_EVENTS, stage_environment
    from mlops_platform.governance.replay import production_move_problems
    from mlops_platform.trust.audit import AuditEventType

    events = [
        *STAGE_EVENTS,
        AuditEventType.PROMOTION_STARTED,
        AuditEventType.ROLLBACK_STARTED,
        AuditEventType.APPROVAL_RECORDED,
        AuditEventType.COUNTERSIGNATURE,
        AuditEventType.APPROVAL_WITHDRAWN,
    ]
    # Read as `read_history` reads a trail: with the keys of the first stage's environment
    # that uses it (staging and production may share one).
    url = audit_url(PRODUCTION)
    env = next(stage_environment(s) for s in STAGES if audit_url(s) == url)
    records = _records(env, model_name, events)
    readable = set(readable)
    trails = {audit_url(s): stage_environment(s) for s in STAGES if audit_url(s) in readable}
    outcomes = [
        record
        for trail_env in trails.values()
        for record in _records(trail_env, model_name, [AuditEventType.OUTCOMES_CHECKED])
    ]

    def author_of(move: Any) -> str | None:
        identity = move.details.get(VERSION_IDENTITY_KEY)
        version_id = identity.get("model_version_id") if isinstance(identity, Mapping) else None
        authors = {
            normalize_name(r.actor): r.actor
            for r in trained
            if r.model_version == move.model_version
            and str(r.details.get("model_version_id") or version_id) == str(version_id)
        }
        return next(iter(authors.values())) if len(authors) == 1 else None

    return [
        Finding(
            "promotion-vs-rules",
            f"model {model_name} version {move.model_version}",
            f"the production move of record {move.seq} could not have been decided by the "
            f"platform ({problem}). Find out who ran it and with which code, and give "
            "production back to a properly promoted version",
        )
        for move, problem in production_move_problems(records, author_of, staging, outcomes)
    ]


def _differing(claimed: Any, recorded: Mapping[str, float]) -> list[str]:
    """The recorded metrics that ``claimed`` (ZenML metadata) names with another value; a value
    that is not a number (a metric rewritten as text) differs too."""
    if not isinstance(claimed, Mapping):
        return []

    def same(value: Any, wanted: float) -> bool:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and abs(float(value) - wanted) <= 1e-9 * max(1.0, abs(wanted))

    return [
        f"{name} {claimed[name]!r} (recorded {value!r})"
        for name, value in sorted(recorded.items())
        if name in claimed and not same(claimed[name], value)
    ]


def gate_metadata_findings(
    subject: str,
    metadata: Mapping[str, Any],
    gate_records: Sequence[Any],
    training_run: str | None,
) -> list[Finding]:
    """ZenML's gate metadata of a version (what reports and people read) compared with its
    verified gate records (pure): the last verdict (`gate_decision`) and its metrics
    (`gate_metrics`) with the newest gate record of the verdict's environment, and
    `registration.metrics` with the gate record of the training run."""
    from mlops_platform.governance.promotion import recorded_gate_metrics
    from mlops_platform.trust.audit import AuditEventType

    findings = []
    decision = metadata.get("gate_decision")
    env = decision.get("environment") if isinstance(decision, Mapping) else None
    judged = [r for r in gate_records if r.details.get("environment") == env]
    if env and judged:
        last = max(judged, key=lambda r: r.seq)
        claimed = (
            AuditEventType.GATE_PASSED if decision.get("passed") else AuditEventType.GATE_FAILED
        )
        if last.event_type != claimed:
            findings.append(
                Finding(
                    "gate-metadata-vs-trail",
                    subject,
                    f"ZenML metadata gate_decision says passed={decision.get('passed')!r}, but "
                    f"the audit trail's last {env} gate event is {last.event_type} (record "
                    f"{last.seq}): the metadata was edited; restore it and find out who",
                )
            )
        for key in ("gate_metrics", "gate_decision"):
            value = metadata.get(key)
            claimed_metrics = value.get("metrics") if key == "gate_decision" else value
            wrong = _differing(claimed_metrics, recorded_gate_metrics(last.details))
            if wrong:
                findings.append(_metrics_finding(subject, key, wrong, last.seq))
    registration = metadata.get("registration")
    trained = [
        r for r in gate_records if training_run and r.details.get("pipeline_run_id") == training_run
    ]
    if isinstance(registration, Mapping) and trained:
        first = min(trained, key=lambda r: r.seq)
        wrong = _differing(registration.get("metrics"), recorded_gate_metrics(first.details))
        if wrong:
            findings.append(_metrics_finding(subject, "registration.metrics", wrong, first.seq))
    return findings


def _metrics_finding(subject: str, key: str, wrong: list[str], seq: int) -> Finding:
    return Finding(
        "metrics-vs-trail",
        subject,
        f"ZenML metadata {key} says {'; '.join(wrong)} in the verified gate record {seq}: the "
        "metadata was edited outside the platform (reports show the record's); restore it and "
        "find out who changed it",
    )


def _same_url(stage: str, urls: dict[str, str]) -> bool:
    from mlops_platform.config import ConfigError
    from mlops_platform.expand import UnsetVariableError
    from mlops_platform.governance.model_stages import audit_url

    try:
        return audit_url(stage) in urls
    except (ConfigError, UnsetVariableError):
        return False
