"""The signing key and trusted keys of one environment, from its platform settings.

Local keys (the key file and public-key folder under the state directory) are trusted by the local
environment, and by staging and production only while their audit trail is a SQLite file inside
the local state directory: on such a checkout one person owns every store and every key anyway.
As soon as an environment's trail lives elsewhere (PostgreSQL in a real staging or production),
only keys listed under ``signing.public_keys`` in the committed config are trusted and the writer's
private key must come from ``signing.private_key_env``: a variable or a file chosen on somebody's
laptop can never make a record or a model verify there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mlops_platform.infra.settings import PlatformSettings, load_platform_settings
from mlops_platform.trust.signing import (
    Signer,
    SigningSettings,
    Verifier,
    load_signer,
    load_verifier,
)
from mlops_platform.workspace import state_dir

LOCAL = "local"


def uses_local_stores(settings: PlatformSettings) -> bool:
    """True when the environment's audit trail is a SQLite file inside the local state directory."""
    try:
        url = make_url(settings.audit.url)
    except ArgumentError:
        return False
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return False
    return Path(url.database).resolve().is_relative_to(state_dir())


def effective_signing(env: str, settings: PlatformSettings) -> SigningSettings:
    """The signing settings that apply: local key files only where local trust applies."""
    if env == LOCAL or uses_local_stores(settings):
        return settings.signing
    return settings.signing.model_copy(update={"private_key_file": None, "public_keys_dir": None})


def signer_for(env: str, environ: Mapping[str, str] | None = None) -> Signer:
    """The writer key of ``env``; raises ``SigningError`` (fail closed) when there is none."""
    settings = load_platform_settings(env)
    return load_signer(effective_signing(env, settings), environ)


def verifier_for(env: str) -> Verifier:
    """The public keys ``env`` trusts."""
    settings = load_platform_settings(env)
    return load_verifier(effective_signing(env, settings))
