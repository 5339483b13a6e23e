"""Record a governance event: append it to the hash-chained, signed audit trail and mirror it onto
the model version's metadata, so the ZenML dashboard shows the same history the auditor verifies.

The mirror doubles as an anchor outside the database: each mirrored event keeps its (seq, hash),
and the newest one is also kept as a tag of the MLflow registered model (`anchor_after_event`),
which `mlops audit verify` compares with the trail to find deleted newest records, a rewritten
chain or a trail that was removed (`zenml_anchors`, `mlflow_anchors`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.trust.audit import AuditChainBroken, AuditError, AuditRecord, AuditTrail
from mlops_platform.trust.audit.chain import VERSION_IDENTITY_KEY, VersionIdentity
from mlops_platform.trust.audit.store import Anchor
from mlops_platform.trust.identity import identity_details
from mlops_platform.trust.signing import SigningError
from mlops_platform.workspace import sqlite_path

logger = logging.getLogger(__name__)

ENVIRONMENTS = ("local", "staging", "production")
ANCHOR_PREFIX = "audit_"


def _checkpoints() -> Any:
    from mlops_platform.workspace import state_dir

    return state_dir() / "audit-checkpoints"


def _keys(env: str, write: bool) -> dict[str, Any]:
    from mlops_platform.trust.keys import signer_for, verifier_for

    try:
        keys: dict[str, Any] = {"verifier": verifier_for(env)}
        if write:
            keys["signer"] = signer_for(env)
    except SigningError as error:
        raise AuditError(f"the {env} audit trail cannot be used: {error}") from error
    return keys


def audit_trail(env: str, *, write: bool = True) -> AuditTrail:
    """The environment's trail with its writer key (``write``) and trusted keys; raises
    `AuditTrailMissing` if the trail was never created (`mlops audit init`) or was removed."""
    url = load_platform_settings(env).audit.url
    return AuditTrail(url, env=env, checkpoint_dir=_checkpoints(), **_keys(env, write))


def init_trail(env: str) -> AuditTrail:
    """Create the environment's trail if it does not exist yet (`mlops audit init`)."""
    url = load_platform_settings(env).audit.url
    return AuditTrail.initialize(url, env=env, checkpoint_dir=_checkpoints(), **_keys(env, False))


def missing_trail_was_written(env: str, model_name: str) -> str | None:
    """Where a record of ``env``'s trail is kept outside it, for a trail that does not exist
    now: ``model_name``'s anchors (its MLflow tag, its ZenML metadata) or this machine's last
    verified checkpoint of that trail; None when nothing says it ever held a record (a new
    checkout). A trail deleted together with the model must not look like a new checkout."""
    from mlops_platform.trust.audit.store import checkpoint_file

    url = load_platform_settings(env).audit.url
    checkpoint = checkpoint_file(_checkpoints(), url)
    if checkpoint.is_file():
        return f"this machine's checkpoint {checkpoint}"
    anchors = decision_anchors(env, model_name)
    if anchors:
        newest = max(anchors, key=lambda anchor: anchor.seq)
        return f"record {newest.seq}, anchored in {newest.source}"
    return None


def open_or_init_trail(env: str, model_name: str) -> AuditTrail:
    """The environment's trail, created only where none was ever written to for ``model_name``
    (`mlops audit init`, `mlops setup`); either way compared with the model's anchors first.

    A trail that is missing while the model's records are anchored in ZenML or MLflow was moved
    or deleted: a new, empty one would hide them, so nothing is created (`AuditChainBroken`).
    An existing trail that is not the one the records were written to is refused the same way.
    """
    from mlops_platform.trust.audit import AuditTrailMissing

    anchors = decision_anchors(env, model_name)
    try:
        trail = audit_trail(env, write=False)
    except AuditTrailMissing as error:
        if anchors:
            newest = max(anchors, key=lambda anchor: anchor.seq)
            raise AuditChainBroken(
                f"the audit trail of {env} is not the one {model_name}'s records were written "
                f"to: there is no audit trail of {env} at {load_platform_settings(env).audit.url}, "
                f"but {model_name}'s records were written to one (its record {newest.seq} is "
                f"anchored in {newest.source}): it was moved or deleted, or MLOPS_AUDIT_DB_URL "
                "(or audit.url in platform.yaml) names another place. Point it at that trail, or "
                "restore the trail from a backup; a new, empty trail would hide those records, "
                "so none was created"
            ) from error
        trail = init_trail(env)
    try:
        trail.check_anchors(anchors)
    except AuditChainBroken as error:
        trail.close()
        raise AuditChainBroken(
            f"the audit trail of {env} is not the one {model_name}'s records were written to: "
            f"{error}"
        ) from error
    return trail


def environments_sharing(url: str) -> list[str]:
    """Environments whose trail is at ``url`` (a local checkout may point all three at one file)."""
    from mlops_platform.config import ConfigError
    from mlops_platform.expand import UnsetVariableError

    sharing = []
    for env in ENVIRONMENTS:
        try:
            if load_platform_settings(env).audit.url == url:
                sharing.append(env)
        except (ConfigError, UnsetVariableError):
            continue
    return sharing


def zenml_anchors(envs: Sequence[str], model_name: str | None = None) -> list[Anchor]:
    """(seq, hash) of every event of ``envs`` mirrored onto a ZenML model version (of
    ``model_name`` only, when given): the newest one per environment is what a truncation or a
    rewrite of the trail cannot hide."""
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate_stream

    client = Client()
    if model_name is None:
        models = list(depaginate_stream(client.list_models))
    else:
        try:
            models = [client.get_model(model_name)]
        except KeyError:
            return []
    anchors: list[Anchor] = []
    for model in models:
        versions = depaginate_stream(client.list_model_versions, model=model.id, hydrate=True)
        for version in versions:
            anchors.extend(_version_anchors(model.name, version, envs))
    return anchors


ANCHOR_KEY = re.compile(rf"^{ANCHOR_PREFIX}(\d{{6,}})_([a-z_]+)$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


def parse_anchor(key: str, value: Any, model_name: str, version_name: str) -> Anchor | None:
    """The anchor a ZenML metadata entry holds, None if the key is not an anchor's (pure).

    An entry under an anchor's key (``audit_<seq>_<event type>``, as `mirror_to_model_version`
    writes it) that is not a well-formed anchor of a known environment raises `AuditChainBroken`:
    editing or re-labelling an anchor must not make it disappear from the cross-check.
    """
    found = ANCHOR_KEY.match(key)
    if found is None:
        return None
    source = f"ZenML metadata {key!r} of {model_name} version {version_name}"
    details = value.get("details") if isinstance(value, dict) else None
    env = details.get("environment") if isinstance(details, dict) else None
    seq = value.get("seq") if isinstance(value, dict) else None
    digest = value.get("record_hash") if isinstance(value, dict) else None
    problems = [
        problem
        for problem, broken in (
            ("it is not a mapping", not isinstance(value, dict)),
            (f"its seq {seq!r} is not the key's {int(found.group(1))}",
             not isinstance(seq, int) or isinstance(seq, bool) or seq != int(found.group(1))),
            (f"its event type is not the key's {found.group(2)!r}",
             isinstance(value, dict) and value.get("event_type") != found.group(2)),
            ("its record_hash is not a SHA-256", not isinstance(digest, str) or not _HASH.match(digest)),
            (f"its environment {env!r} is not one of {list(ENVIRONMENTS)}", env not in ENVIRONMENTS),
        )
        if broken
    ]  # fmt: skip
    if problems:
        raise AuditChainBroken(
            f"{source} is not a well-formed audit anchor: {'; '.join(problems)}. Anchors are "
            "written by the platform only, so it was edited; compare it with the audit trail "
            "(`mlops audit verify`) before anything moves."
        )
    return Anchor(int(seq), str(digest), source)


def _version_anchors(model_name: str, version: Any, envs: Sequence[str]) -> list[Anchor]:
    anchors = []
    for key, value in version.run_metadata.items():
        anchor = parse_anchor(key, value, model_name, version.name)
        if anchor is not None and value["details"]["environment"] in envs:
            anchors.append(anchor)
    return anchors


def record_event(
    env: str,
    event_type: str,
    actor: str,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    stage: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """Append an event to ``env``'s trail, mirrored onto the model version and anchored.

    An event about a model first compares the trail with the model's anchors, as a decision
    does: written on a cut or replaced trail, it would move the anchors onto it and hide the cut.
    """
    trail = audit_trail(env)
    try:
        if model_name:
            check_trail_anchors(trail, env, model_name)
        full = {"environment": env, **(details or {})}
        full.setdefault("identity", _run_identity(actor))
        record = trail.append(
            event_type,
            actor,
            model_name=model_name,
            model_version=model_version,
            stage=stage,
            details=full,
        )
    finally:
        trail.close()
    if model_name and model_version:
        mirror_to_model_version(record)
        anchor_after_event(record, env)
    shared = _ONE_DECISION.get()
    if model_name and shared is not None:  # this decision's own record: its chain was compared
        shared[(trail.url, model_name)] = (record.seq, record.record_hash)
    return record


def check_trail_anchors(trail: AuditTrail, env: str, model_name: str) -> None:
    """Compare ``trail`` with ``model_name``'s anchors in MLflow and ZenML (`decision_anchors`);
    raise `AuditChainBroken` if they name records it no longer has.

    Inside `one_decision`, once per trail head: the reads and the appends of one decision
    (history, approvals, training record, outcome checks, its own records) share the comparison
    made at that head. Outside one, every call compares: a memory that outlived a decision could
    be fooled by a trail restored to a head seen earlier (the attack reviews did it in a
    long-lived process, for a read and for an append)."""
    shared = _ONE_DECISION.get()
    if shared is None:
        trail.check_anchors(decision_anchors(env, model_name))
        return
    head = trail.head()
    key = (trail.url, model_name)
    if head is not None and shared.get(key) == (head.seq, head.record_hash):
        return
    # The head remembered is the one the anchors were compared with (read with them), not the
    # one read above: a trail cut between the two reads must not be remembered as compared.
    compared = trail.check_anchors(decision_anchors(env, model_name))
    if compared is not None:
        shared[key] = (compared.seq, compared.record_hash)


# Within one decision: (trail URL, model) -> the head its anchors were compared at (or the
# decision's own record, appended on it).
_ONE_DECISION: ContextVar[dict[tuple[str, str], tuple[int, str]] | None] = ContextVar(
    "one_decision", default=None
)


@contextmanager
def one_decision() -> Iterator[None]:
    """The scope of one decision (the policy check before a promotion runs, a gate verdict, the
    locked part of a promotion or rollback): its verified reads and its appends compare the trail
    with the anchors once per head (`check_trail_anchors`). Nested scopes share the outer one."""
    token = _ONE_DECISION.set({}) if _ONE_DECISION.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _ONE_DECISION.reset(token)


def _run_identity(actor: str) -> dict[str, Any]:
    """Identity details for an event whose caller gave none: inside a governed run, the source
    its signed run token records for its actor (never an environment variable); otherwise
    "unrecorded". The OS user is always beside it."""
    from mlops_platform.runtime.run_context import GovernedContext, UngovernedRunError

    try:
        governed = GovernedContext.current()
    except UngovernedRunError:
        return identity_details(actor, "unrecorded")
    if governed.actor == actor:
        return dict(governed.identity_details())
    return identity_details(actor, "unrecorded")


class _Named(Protocol):
    name: str


class ModelVersionLike(Protocol):
    """A ZenML model version (`ModelVersionResponse`): its id, its number and its model's name."""

    id: Any
    name: str
    model: _Named


def version_identity(version: Any) -> VersionIdentity:
    """What tells ``version`` apart from another that had its number: its ZenML id and, once
    registered, its model file's SHA-256 as its model-file pin states it. The pin's signature is
    checked where the model is loaded (a promotion's gate, a rollback), not here."""
    from mlops_platform.trust.artifacts import ModelFileIntegrityError, registered_pin

    try:
        sha: str | None = registered_pin(version).sha256
    except (ModelFileIntegrityError, AttributeError):
        sha = None  # not registered (a refused or rejected version): its id alone
    return VersionIdentity(str(version.id), sha)


def record_version_event(
    env: str,
    event_type: str,
    actor: str,
    version: ModelVersionLike,
    *,
    stage: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """`record_event` about one ZenML model version, naming it by number and by identity
    (`version_identity`), so that a record never counts for a later version given its number."""
    return record_event(
        env,
        event_type,
        actor,
        model_name=version.model.name,
        model_version=version.name,
        stage=stage,
        details={**(details or {}), VERSION_IDENTITY_KEY: version_identity(version).as_dict()},
    )


def mirror_to_model_version(record: AuditRecord) -> None:
    """Write the event under a key unique to its sequence number, so earlier events stay visible.

    Only on the version the record is about: a record about a deleted version (reconcile's
    `stage_restored` leaving its stage empty) is not mirrored, neither onto nothing (the record
    stands; an error here came after it was written) nor onto a later version given its number.
    """
    from zenml import log_metadata
    from zenml.client import Client

    try:
        version = Client().get_model_version(record.model_name, record.model_version)
    except KeyError:
        version = None
    if version is None or not about_version(record, str(version.id)):
        gone = "is no longer in ZenML" if version is None else "was deleted (its number reused)"
        logger.warning(
            "Audit record %s is about %s version %s, which %s; it is not mirrored onto ZenML "
            "(the record is in the trail).",
            record.seq, record.model_name, record.model_version, gone,
        )  # fmt: skip
        return
    key = f"{ANCHOR_PREFIX}{record.seq:06d}_{record.event_type}"
    value = mirror_value(record)
    _require_anchor(key, value, record)
    log_metadata(metadata={key: value}, model_version_id=version.id)


# Largest JSON size of a record's details mirrored in full onto ZenML; larger details are
# mirrored as their SHA-256 (ZenML skips, with a warning only, a value over 65,535 characters).
MIRROR_DETAILS_MAX_CHARS = 16_000


def mirror_value(record: AuditRecord) -> dict[str, Any]:
    """The ZenML metadata value mirroring ``record`` (pure): the anchor (seq, event type, record
    hash, environment) and who, when and what. Details whose JSON is over
    `MIRROR_DETAILS_MAX_CHARS` are replaced by their environment and SHA-256, so the anchor
    always fits what ZenML stores; the record in the trail keeps them in full."""
    details = dict(record.details)
    encoded = json.dumps(details, sort_keys=True, default=str)
    if len(encoded) > MIRROR_DETAILS_MAX_CHARS:
        details = {
            "environment": details.get("environment"),
            "details_sha256": hashlib.sha256(encoded.encode()).hexdigest(),
            "details_omitted": f"{len(encoded):,} characters; the full record is in the audit "
            f"trail (`mlops audit log`, seq {record.seq})",
        }
    return {
        "seq": record.seq,
        "event_type": record.event_type,
        "actor": _bounded(record.actor),
        "stage": _bounded(record.stage or ""),
        "recorded_at": record.recorded_at,
        "record_hash": record.record_hash,
        "details": details,
    }


def _bounded(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _require_anchor(key: str, value: dict[str, Any], record: AuditRecord) -> None:
    """Fail closed where ZenML would skip the anchor with a warning only (a key or value too
    large, a type it does not store): its own rule (`validate_metadata`), asked before writing.
    The record is written; nothing outside the trail would anchor it."""
    from zenml.metadata.metadata_types import validate_metadata

    if key not in validate_metadata({key: value}):
        raise AuditError(
            f"audit record {record.seq} is written, but ZenML refuses its anchor {key!r} on "
            f"{record.model_name} version {record.model_version}, so nothing outside the trail "
            "would anchor it; report this as a bug and run `mlops audit verify`."
        )


MLFLOW_ANCHOR_TAG = "mlops.audit_head.{env}"


def anchor_in_mlflow(tracking_uri: str, record: AuditRecord, env: str) -> None:
    """Keep the trail's head after an event as a tag of the MLflow registered model: a second
    anchor, in a store the audit database's writer does not control (one tag set, no read)."""
    from mlflow.tracking import MlflowClient

    if not record.model_name:
        return
    MlflowClient(tracking_uri).set_registered_model_tag(
        record.model_name, MLFLOW_ANCHOR_TAG.format(env=env), f"{record.seq}:{record.record_hash}"
    )


def _anchor_uri() -> str | None:
    """The MLflow tracking URI of this governed run, else of the active stack (None: no MLflow)."""
    from mlops_platform.runtime import tracking
    from mlops_platform.runtime.run_context import GovernedContext, UngovernedRunError

    try:
        return GovernedContext.current().mlflow_uri or None
    except UngovernedRunError:
        return tracking.stack_tracking_uri()


def anchor_after_event(record: AuditRecord, env: str) -> None:
    """`anchor_in_mlflow` after every event about a model version. The record is already
    committed, so a failure here is logged, not raised: the ZenML metadata anchor is written and
    the next event moves the MLflow anchor on. A model MLflow does not know (a version rejected
    before anything was registered) has no MLflow anchor."""
    from mlflow.exceptions import MlflowException

    try:
        uri = _anchor_uri()
        if uri:
            anchor_in_mlflow(uri, record, env)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            logger.warning(
                "audit record %d is written, but its head could not be kept as an MLflow tag "
                "of %s: %s",
                record.seq,
                record.model_name,
                error,
            )


def trail_anchors(
    env: str, url: str, model_names: Iterable[str], tracking_uri: str | None = None
) -> list[Anchor]:
    """Every anchor outside the database of the trail at ``url`` (``env``'s): the ZenML metadata
    anchors of every environment sharing that trail, and each of ``model_names``' MLflow head
    tags (in ``tracking_uri``, else the active stack's tracker). What a full verification
    (`mlops audit verify`, the governance report) compares the trail with."""
    from mlops_platform.runtime import tracking

    sharing = environments_sharing(url) or [env]
    found = zenml_anchors(sharing)
    uri = tracking_uri or tracking.stack_tracking_uri()
    if uri:
        for name in sorted(set(model_names)):
            found += mlflow_anchors(uri, name, sharing)
    return found


def all_trail_anchors(env: str, url: str) -> list[Anchor]:
    """`trail_anchors` for every model ZenML or MLflow knows: what `mlops audit verify`
    compares with, without importing any model's own (data-science) code to learn its name.
    Deleting a model from one store (ZenML has no access control) must not take its anchors in
    the other out of the comparison."""
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate

    from mlops_platform.runtime import tracking

    names = {model.name for model in depaginate(Client().list_models)}
    uri = tracking.stack_tracking_uri()
    return trail_anchors(env, url, names | (_mlflow_model_names(uri) if uri else set()), uri)


def _mlflow_model_names(tracking_uri: str) -> set[str]:
    from mlflow.tracking import MlflowClient

    client, names, token = MlflowClient(tracking_uri), set(), None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        names |= {model.name for model in page}
        token = page.token
        if not token:
            return names


def mlflow_anchors(tracking_uri: str, model_name: str, envs: Sequence[str]) -> list[Anchor]:
    """The heads `anchor_in_mlflow` left for ``envs`` on ``model_name`` (none if MLflow lacks it).

    A local SQLite tracking store whose file does not exist holds no tag: it is not created
    (and MLflow not imported) to learn that, which on a new checkout's `mlops setup` took 2-3 s
    of MLflow's own migrations (the store is created later, by the first command that writes).
    """
    local = sqlite_path(tracking_uri)
    if local is not None and not local.is_file():
        return []
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        tags = MlflowClient(tracking_uri).get_registered_model(model_name).tags or {}
    except MlflowException:
        return []
    anchors = []
    for env in envs:
        value = tags.get(MLFLOW_ANCHOR_TAG.format(env=env))
        seq, _, digest = (value or "").partition(":")
        if seq.isdigit() and digest:
            source = f"MLflow tag {MLFLOW_ANCHOR_TAG.format(env=env)!r} of {model_name}"
            anchors.append(Anchor(int(seq), digest, source))
    return anchors


def decision_anchors(env: str, model_name: str) -> list[Anchor]:
    """The anchors a decision about ``model_name`` in ``env`` compares the trail with: the heads
    left by every environment sharing ``env``'s trail in MLflow (none without MLflow) and in the
    metadata of the model's ZenML versions. Someone who can rewrite two of the three stores
    (trail, MLflow, ZenML) still leaves the third naming records the trail no longer has."""
    sharing = environments_sharing(load_platform_settings(env).audit.url)
    uri = _anchor_uri()
    found = mlflow_anchors(uri, model_name, sharing) if uri else []
    in_zenml = zenml_anchors(sharing, model_name)
    # One chain per trail: its newest anchor shows any truncation below it (and check_anchors
    # compares that record's hash); older anchors are covered by the chain check.
    return found + ([max(in_zenml, key=lambda anchor: anchor.seq)] if in_zenml else [])


def about_version(record: Any, version_id: str) -> bool:
    """Whether a record about a version number is about the ZenML version ``version_id``: a
    number reused after a deletion is another version. Records written before versions were
    named by identity name no id and match by number (SECURITY, What remains)."""
    identity = record.details.get(VERSION_IDENTITY_KEY) or {}
    recorded = identity.get("model_version_id") if isinstance(identity, Mapping) else None
    if recorded in (None, ""):
        # `training_completed` names its version's id in its own details.
        recorded = record.details.get("model_version_id")
    return recorded in (None, "", version_id)
