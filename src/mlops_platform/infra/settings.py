"""Platform settings per environment (audit store, tracking experiment, alerting, base image)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlops_platform.config import ConfigError, load_layered, validation_issues
from mlops_platform.expand import expand_env
from mlops_platform.trust.identity import IdentitySettings
from mlops_platform.trust.signing import SigningSettings
from mlops_platform.workspace import state_dir


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


class TrackingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment: str


class AlertingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook_env: str | None = None


# A fully qualified Python name: dotted identifiers, no wildcard, no trailing dot.
_QUALIFIED_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"


class SerializationSettings(BaseModel):
    """``serialization:`` in platform.yaml: the exact types a stored model may contain."""

    model_config = ConfigDict(extra="forbid")
    # Fully qualified class and function names (module.Name, or module.Class.method for a bound
    # method); a stored model holding any other name is refused on save and on load.
    allowed_types: tuple[Annotated[str, Field(pattern=_QUALIFIED_NAME)], ...] = Field(min_length=1)
    # Names today's models no longer contain, kept so that stored versions which do still load
    # (a rollback target, the champion); dropped once no version that may be scored needs them.
    retained_types: tuple[Annotated[str, Field(pattern=_QUALIFIED_NAME)], ...] = ()

    def loadable(self) -> frozenset[str]:
        return frozenset(self.allowed_types) | frozenset(self.retained_types)


class GovernanceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline_packages: tuple[str, ...]


class HoldoutRows(BaseModel):
    """How the platform derives the gate's evaluation rows and outcomes from the run's data file
    (``holdout.rows`` in platform.yaml), to check the holdout the pipeline hands the gate:
    every encounter of a holdout patient, minus the ``exclude``d ones, each labelled 1 when its
    ``label_column`` is one of ``label_positive``. Values compare as text."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id_column: str
    # Whose rows are held out together: the platform's, never the pipeline's contract.
    patient_column: str
    label_column: str
    label_positive: tuple[str, ...] = Field(min_length=1)
    exclude: dict[str, tuple[str, ...]] = {}
    zip_member: str | None = None  # the CSV inside a zip data file

    def columns(self) -> list[str]:
        return list(
            dict.fromkeys([self.id_column, self.patient_column, self.label_column, *self.exclude])
        )


class HoldoutSettings(BaseModel):
    """Key of the platform's patient holdout (mlops_platform.evaluation.holdout), and how its
    rows and outcomes are derived from the data file (None: not checked)."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=8)
    rows: HoldoutRows | None = None

    def key_bytes(self) -> bytes:
        return self.key.encode("utf-8")


class CachingSettings(BaseModel):
    """``caching:`` in platform.yaml: the steps a governed run may reuse (runtime.caching)."""

    model_config = ConfigDict(extra="forbid")
    reusable_steps: tuple[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], ...] = ()

    @field_validator("reusable_steps")
    @classmethod
    def _no_decisions(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from mlops_platform.runtime.caching import NEVER_REUSED

        refused = sorted(set(names) & NEVER_REUSED)
        if refused:
            raise ValueError(
                f"{refused} decide or change governance state and always run; remove them from "
                f"caching.reusable_steps (never reusable: {sorted(NEVER_REUSED)})"
            )
        return names


# An image reference pinned by the digest of its content: `registry/name[:tag]@sha256:<64 hex>`.
_PINNED_IMAGE = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


class BaseImageError(ConfigError):
    """A stack that builds pipeline images has no governed, digest-pinned base image."""


class DockerImageSettings(BaseModel):
    """The governed parent image (Dockerfile.base) of every pipeline image a remote stack builds.

    The image reference is read from an environment variable only when a run builds images, so
    that audit, promotion and local runs of the same environment never need it.
    """

    model_config = ConfigDict(extra="forbid")
    # Name of the environment variable that holds `registry/name@sha256:<digest>`.
    parent_image_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Numeric id of the non-root account created by Dockerfile.base; pipeline containers run as it.
    user: str = Field(pattern=r"^[1-9][0-9]*$")

    def parent_image(self, environ: Mapping[str, str], builds_images: bool) -> str | None:
        """The digest-pinned base image, or None when the stack builds no image (local runs)."""
        value = (environ.get(self.parent_image_env) or "").strip()
        if not value:
            if builds_images:
                raise BaseImageError(
                    f"The active stack builds pipeline images, but {self.parent_image_env} is not "
                    "set. Build and push Dockerfile.base, then export "
                    f"{self.parent_image_env}=<registry>/<name>@sha256:<digest>."
                )
            return None
        if not _PINNED_IMAGE.match(value):
            raise BaseImageError(
                f"{self.parent_image_env}={value!r} is not pinned by digest; a tag can be moved "
                "to other content. Use the reference printed by `docker push`: "
                "<registry>/<name>@sha256:<64 hex digits>."
            )
        return value


class PlatformSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    governance: GovernanceSettings
    audit: AuditSettings
    tracking: TrackingSettings
    alerting: AlertingSettings
    serialization: SerializationSettings
    signing: SigningSettings
    identity: IdentitySettings
    holdout: HoldoutSettings
    caching: CachingSettings = CachingSettings()
    # Only environments whose stacks build container images (staging, production) set it.
    docker: DockerImageSettings | None = None


AUDIT_URL_VARIABLE = "MLOPS_AUDIT_DB_URL"
LOCAL_ENV = "local"
# Set in CI runners (GitHub Actions sets both) or when the client talks to a ZenML server: then
# the environment's stores are real ones and nothing defaults to the local state directory.
NOT_LOCAL_MARKERS: tuple[str, ...] = ("CI", "GITHUB_ACTIONS", "ZENML_STORE_URL")
_said_local_default: set[str] = set()


def is_local_checkout(environ: Mapping[str, str]) -> bool:
    """A developer's checkout: no CI runner, no ZenML server but the project's own loopback one
    (`mlops server start`, recorded in the state directory).

    ZenML itself sets ``ZENML_STORE_URL`` inside every step, to the client's store: a SQLite
    URL there is still the local store, so a step sees what the command that started it saw.
    """
    from mlops_platform.infra.server import project_server_url

    if any(environ.get(name) for name in NOT_LOCAL_MARKERS if name != "ZENML_STORE_URL"):
        return False
    store = (environ.get("ZENML_STORE_URL") or "").rstrip("/")
    if not store or store.startswith("sqlite:"):
        return True
    project = project_server_url()
    return project is not None and store == project.rstrip("/")


def local_defaults(env: str, environ: Mapping[str, str]) -> dict[str, str]:
    """On a local checkout, staging and production default to the local audit trail.

    Said once per process on stderr (not once per environment). In CI or against a ZenML server
    an unset variable stays an error (fail closed): a real environment never falls back to a
    file on somebody's disk.
    """
    if environ.get(AUDIT_URL_VARIABLE) or not is_local_checkout(environ):
        return {}
    if not _said_local_default:  # once per process, whichever environment asked first
        _said_local_default.add(env)
        sys.stderr.write(
            f"note: {AUDIT_URL_VARIABLE} is not set; on this local checkout staging and "
            f"production use the local audit trail in {state_dir()} (set "
            f"{AUDIT_URL_VARIABLE} to use a shared one).\n"
        )
    return {AUDIT_URL_VARIABLE: f"sqlite:///{state_dir() / 'audit.db'}"}


def load_platform_settings(env: str, directory: Path | None = None) -> PlatformSettings:
    environ = {"MLOPS_STATE_DIR": str(state_dir()), **os.environ}
    layered = load_layered("platform", env, directory)
    if f"${{{AUDIT_URL_VARIABLE}}}" in str(layered.get("audit", {}).get("url", "")):
        environ.update(local_defaults(env, environ))
    raw = expand_env(layered, environ, f"platform.yaml[{env}]")
    try:
        settings = PlatformSettings.model_validate(raw)
    except ValidationError as error:
        # Day-one review: pydantic's own text, with no file named, unlike the policy files.
        raise ConfigError(
            f"configs/{env}/platform.yaml (over configs/base/platform.yaml) is not valid: "
            + "; ".join(validation_issues(error))
            + ". Fix the file; `mlops check` lists every configuration problem."
        ) from None
    if env != LOCAL_ENV and settings.identity.accepts_asserted:
        # Configs may choose providers, never fall back to typed names outside a laptop.
        raise ConfigError(
            f"identity.providers of {env} lists asserted ({list(settings.identity.providers)}): "
            f"only local may accept typed names. Remove asserted from configs/{env}/platform.yaml "
            "and use zenml-server or github-oidc."
        )
    return settings


def allowed_model_types(env: str | None = None) -> frozenset[str]:
    """Exact type names a stored model may contain; outside a governed run the local list applies."""
    if env is None:
        from mlops_platform.runtime.run_context import current_environment

        env = current_environment()
    raw = load_layered("platform", env)
    return SerializationSettings.model_validate(raw["serialization"]).loadable()
