"""The signing key and trusted keys of one environment, from its platform settings.

Local keys (the key file and public-key folder under the state directory) are trusted by the local
environment, and by staging and production only on a laptop checkout (`uses_local_stores`: their
audit trail is a SQLite file inside the local state directory and ZenML runs on its own SQLite
database): there one person owns every store and every key anyway. Against a ZenML server, or
with a trail elsewhere (PostgreSQL in a real staging or production), only keys listed under
``signing.public_keys`` in the committed config are trusted and the writer's private key must come
from ``signing.private_key_env``.
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
    """True on a laptop checkout: the environment's audit trail is a SQLite file inside the local
    state directory and the ZenML client works on its own SQLite database (no server).

    The one test of "local" for keys, launch checks and the approval policy: a shared ZenML
    server never counts as local, whatever audit URL a variable names.
    """
    return _trail_is_local(settings) and zenml_store_is_local()


def _trail_is_local(settings: PlatformSettings) -> bool:
    try:
        url = make_url(settings.audit.url)
    except ArgumentError:
        return False
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return False
    return Path(url.database).resolve().is_relative_to(state_dir())


def zenml_store_is_local() -> bool:
    """The ZenML client works on its own SQLite database, or on the project's loopback server
    (`mlops server start`, recorded in this state directory), rather than on a shared server."""
    from zenml.client import Client
    from zenml.enums import StoreType

    from mlops_platform.infra.server import project_server_url

    store = Client().zen_store
    if store.type == StoreType.SQL:
        return str(store.url).startswith("sqlite:")
    project = project_server_url()
    return project is not None and str(store.url).rstrip("/") == project.rstrip("/")


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
