"""Who is acting, how we know it, and whether this environment accepts that kind of knowledge.

Three identity sources, each a provider chosen per environment in ``configs/*/platform.yaml``
(``identity.providers``, tried in order):

- ``github-oidc``: inside a GitHub Actions job, the job's OIDC ID token, verified against the
  issuer's published keys (trust/oidc.py). The actor is the token's ``actor`` claim; the evidence is
  the token id, run, repository, ref and environment. A token counts once: its id is recorded in
  the environment's audit database, and a token whose id is there already is refused (a copy
  replayed while it is still valid); each command asks the job for a new one.
- ``zenml-server``: the user or service account the ZenML client is authenticated as on a ZenML
  server (REST store). The evidence is the server URL and the account's id. A client on a local
  SQLite store has no server vouching for it, so it gives no identity. Only servers this
  environment trusts count: the URLs in ``identity.zenml_server_urls``, and the project's own
  loopback server (``mlops server start``) while the environment's audit trail is local (the same
  local-trust rule as the signing keys: on such a checkout one person owns every store anyway).
- ``asserted``: a typed name (``--actor``), else the OS user. Accepted only where the environment
  lists it (local). The OS user is recorded beside every identity.

``--actor`` is honoured only where ``asserted`` is accepted; elsewhere a typed name that differs
from the verified identity is refused. No provider giving an identity means no action: fail closed.
Environment variables such as ``GITHUB_ACTOR`` are never evidence.
"""

from __future__ import annotations

import os
import pwd
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlops_platform.text import HIDDEN_CATEGORIES
from mlops_platform.trust.oidc import (
    GithubJobClaims,
    GithubOidcSettings,
    OidcError,
    fetch_job_token,
    in_github_actions_with_token,
    verify_job_token,
)

if TYPE_CHECKING:
    from mlops_platform.infra.settings import PlatformSettings

ASSERTED = "asserted"
ZENML_SERVER = "zenml-server"
GITHUB_OIDC = "github-oidc"
IDENTITY_SOURCES: tuple[str, ...] = (ASSERTED, ZENML_SERVER, GITHUB_OIDC)
VERIFIED_SOURCES: frozenset[str] = frozenset({ZENML_SERVER, GITHUB_OIDC})

Source = Literal["asserted", "zenml-server", "github-oidc"]


class IdentityError(ValueError):
    """No acceptable identity for this action: refused (the CLI exits with DENIED)."""


class InvalidNameError(IdentityError):
    """A typed name cannot stand for anyone (blank, control or invisible characters): bad input."""


class IdentitySettings(BaseModel):
    """``identity`` in platform.yaml: which providers establish who acts in this environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Tried in order; the first that applies gives the identity. Only these sources are accepted.
    providers: tuple[Source, ...] = Field(min_length=1)
    # ZenML servers whose accounts count as verified identities here (exact URLs).
    zenml_server_urls: tuple[str, ...] = ()

    @field_validator("zenml_server_urls")
    @classmethod
    def _server_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        """Absolute http(s) URLs with a host and nothing around them (day-one review: a URL
        without a scheme, or with a trailing space, loaded and matched no server ever)."""
        for url in urls:
            parts = urlsplit(url)
            if url != url.strip() or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"{url!r} is not a server URL: write it as ZenML's client shows it, with "
                    "https:// (or http:// for loopback) and the host, and no spaces"
                )
        return urls

    github_oidc: GithubOidcSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> IdentitySettings:
        if len(set(self.providers)) != len(self.providers):
            raise ValueError(f"identity.providers lists a provider twice: {list(self.providers)}")
        if GITHUB_OIDC in self.providers and self.github_oidc is None:
            raise ValueError(
                "identity.providers lists github-oidc but identity.github_oidc (issuer, audience, "
                "repository) is not configured"
            )
        return self

    @property
    def accepts_asserted(self) -> bool:
        return ASSERTED in self.providers


@dataclass(frozen=True)
class Actor:
    """Who acts: a name, the source that established it, its evidence, and the OS user."""

    name: str
    source: str
    evidence: Mapping[str, str] = field(default_factory=dict)
    os_user: str = ""
    run_url: str | None = None

    def __post_init__(self) -> None:
        if self.source not in IDENTITY_SOURCES:
            raise ValueError(
                f"identity source {self.source!r} is unknown; use one of {list(IDENTITY_SOURCES)}"
            )

    @property
    def verified(self) -> bool:
        return self.source in VERIFIED_SOURCES

    def as_dict(self) -> dict[str, Any]:
        """The identity as audit records store it under ``details["identity"]``."""
        return {
            "name": self.name,
            "source": self.source,
            "evidence": dict(self.evidence),
            "os_user": self.os_user,
            "run_url": self.run_url,
        }

    def describe(self) -> str:
        """One line for people: ``carol (zenml-server: user 1f2e… on http://127.0.0.1:8301)``."""
        if self.source == ZENML_SERVER:
            return (
                f"{self.name} (zenml-server: {self.evidence.get('account', 'account')} "
                f"{self.evidence.get('user_id', '?')} on {self.evidence.get('server_url', '?')})"
            )
        if self.source == GITHUB_OIDC:
            return (
                f"{self.name} (github-oidc: run {self.evidence.get('run_id', '?')} of "
                f"{self.evidence.get('repository', '?')}, environment "
                f"{self.evidence.get('environment') or 'none'})"
            )
        return f"{self.name} (asserted, typed by OS user {self.os_user or '?'})"


def os_user() -> str:
    """The operating system's account of this process (its effective user id), as recorded
    beside a typed name. Not `getpass.getuser()`: that reads LOGNAME and USER first, which any
    caller sets, so one person could record two actions under two accounts' names."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OSError):
        return f"uid {uid}"


# Controls, invisible formatting, separators, surrogates, private-use and unassigned code points.
_REFUSED_CATEGORIES = HIDDEN_CATEGORIES


def check_name(name: str, what: str = "--actor") -> str:
    """``name`` trimmed; a blank name or one with control or invisible characters is refused."""
    if not name.strip():
        raise InvalidNameError(
            f"{what} is blank; name the person responsible (their login). A blank name is "
            "never replaced by the OS user."
        )
    hidden = sorted(
        {f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in _REFUSED_CATEGORIES}
    )
    if hidden:
        raise InvalidNameError(
            f"{what} {name!r} contains control or invisible characters ({', '.join(hidden)}); "
            "type the name in plain letters"
        )
    return name.strip()


checked_name = check_name


def identity_details(
    name: str, source: str, evidence: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Who acted, as audit records store it: the name, its source, the OS user beside it, and
    the evidence the source rests on."""
    return {"name": name, "source": source, "os_user": os_user(), "evidence": dict(evidence or {})}


@dataclass(frozen=True)
class ServerLogin:
    """What the ZenML client reports about its store and its authenticated account."""

    url: str
    user_id: str
    user_name: str
    service_account: bool


def zenml_server_login() -> ServerLogin | None:
    """The account this process is authenticated as on a ZenML server; None without one.

    With `mlops --as NAME`, the project server's answer for NAME's key (infra/server.py); else the
    account of the ZenML client's REST store (`zenml login <server>`, ZENML_STORE_API_KEY); a
    client on a local SQL store has no server vouching for it.
    """
    from mlops_platform.infra.server import ServerError, account_login

    try:
        account = account_login()
    except ServerError as error:
        raise IdentityError(
            f"the project ZenML server did not vouch for this key ({error}); check "
            "`mlops server status`, and act with your own key (`mlops --as NAME ...`)"
        ) from error
    if account is not None:
        return ServerLogin(account.url, account.user_id, account.user_name, account.service_account)
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration
    from zenml.enums import StoreType

    # The configured store type tells REST from SQL without opening (or creating) a SQL store.
    if GlobalConfiguration().store_configuration.type != StoreType.REST:
        return None
    from zenml.exceptions import AuthorizationException, CredentialsNotValid

    try:
        client = Client()
        store = client.zen_store
        if store.type != StoreType.REST:
            return None
        user = client.active_user
    except (AuthorizationException, CredentialsNotValid) as error:
        raise IdentityError(
            f"the ZenML server refused this client's credentials ({error}); log in again "
            "(`mlops --as NAME ...` with your own key, or `zenml login <server>`)"
        ) from error
    return ServerLogin(
        url=str(store.url).rstrip("/"),
        user_id=str(user.id),
        user_name=user.name,
        service_account=bool(user.is_service_account),
    )


def trusted_server_urls(env: str, settings: PlatformSettings) -> frozenset[str]:
    """The ZenML server URLs whose accounts count as verified identities in ``env``."""
    from mlops_platform.infra.server import project_server_url
    from mlops_platform.trust.keys import LOCAL, uses_local_stores

    urls = {url.rstrip("/") for url in settings.identity.zenml_server_urls}
    if env == LOCAL or uses_local_stores(settings):
        local = project_server_url()
        if local:
            urls.add(local.rstrip("/"))
    return frozenset(urls)


def server_actor(
    env: str, settings: PlatformSettings, login: ServerLogin | None, user: str
) -> Actor | None:
    """The zenml-server identity, None without a server; a server ``env`` does not trust refuses."""
    if login is None:
        return None
    trusted = trusted_server_urls(env, settings)
    if login.url not in trusted and settings.identity.accepts_asserted:
        # An untrusted server vouches for no one: where typed names count, the next provider
        # (asserted, with the OS user) says who acts, never `zenml-server`.
        return None
    if login.url not in trusted:
        listed = ", ".join(sorted(trusted)) or "none"
        raise IdentityError(
            f"the ZenML client is logged in to {login.url}, which environment {env} does not "
            f"trust for identities (trusted: {listed}); log in to the environment's server "
            "(`zenml login <url>`), or add it to identity.zenml_server_urls in "
            f"configs/{env}/platform.yaml"
        )
    evidence = {
        "server_url": login.url,
        "user_id": login.user_id,
        "account": "service_account" if login.service_account else "user",
    }
    return Actor(login.user_name, ZENML_SERVER, evidence, user)


def oidc_actor(
    settings: GithubOidcSettings,
    environ: Mapping[str, str],
    user: str,
    spend: Callable[[GithubJobClaims], None] | None = None,
) -> Actor | None:
    """The github-oidc identity of this job, None outside a job that may request a token.
    `spend` records the verified token as used (`spend_job_token`) before it is relied on."""
    if not in_github_actions_with_token(environ):
        return None
    try:
        token = fetch_job_token(settings.audience, environ, settings.timeout_seconds)
        claims = verify_job_token(token, settings)
    except OidcError as error:
        raise IdentityError(str(error)) from error
    if spend is not None:
        spend(claims)
    run_url = f"https://github.com/{claims.repository}/actions/runs/{claims.run_id}"
    return Actor(claims.actor, GITHUB_OIDC, claims.evidence(), user, run_url)


def spend_job_token(env: str, settings: PlatformSettings, claims: GithubJobClaims) -> None:
    """Accept a job token once: record its id in `env`'s audit database, refused if it is there
    already. A missing trail fails closed (as every write to it does)."""
    from mlops_platform.trust.audit.store import AuditTrail, JobTokenUsed

    trail = AuditTrail(settings.audit.url, env=env)
    try:
        trail.use_job_token(claims.jti, claims.actor)
    except JobTokenUsed as error:
        raise IdentityError(
            f"the GitHub job token of {claims.repository} run {claims.run_id} (actor "
            f"{claims.actor}) was refused: {error}. A job token is accepted once, and every mlops "
            "command asks the job for a new one, so this is a copy being replayed; find out "
            "where the token leaked (job logs, artifacts, a step that printed it)"
        ) from error
    finally:
        trail.close()


# How bindings name the project's own loopback server (`mlops server start`), whatever its port.
PROJECT_SERVER_KEY = "project-server"


def bind_server_account(env: str, settings: PlatformSettings, actor: Actor) -> None:
    """Hold a zenml-server identity to the account that first acted under its name: one name
    per account id and one account per name, recorded in ``env``'s audit database. A ZenML user
    may rename itself, and an admin may create an account with someone's name; neither makes it
    that person. A missing trail fails closed (as every write to it does)."""
    from mlops_platform.governance.approvals.policy import normalize_name
    from mlops_platform.infra.server import project_server_url
    from mlops_platform.trust.audit.store import AccountRebound, AuditTrail

    url, user_id = str(actor.evidence["server_url"]), str(actor.evidence["user_id"])
    # The project's loopback server takes a new port each time it starts: its accounts are one
    # server's, whatever the port (lookalike names are refused by the policy, with a record).
    local = project_server_url()
    server = PROJECT_SERVER_KEY if local and url == local.rstrip("/") else url
    trail = AuditTrail(settings.audit.url, env=env)
    try:
        trail.bind_account(server, user_id, actor.name, normalize_name(actor.name))
    except AccountRebound as error:
        raise IdentityError(
            f"the ZenML server names this account {actor.name!r}, but refused: {error}. A name "
            "acts through the account that first acted under it, and an account under one name "
            "(a ZenML user can rename itself). Act with your own account; if a person's account "
            "was re-created, the audit database's owner must release the old binding "
            "(docs/SECURITY.md)"
        ) from error
    finally:
        trail.close()


def bind_project_accounts() -> list[str]:
    """`bind_created_accounts` for every account the project server's `mlops server start`
    made in this state directory (`infra.server.created_accounts`): run by `mlops server start`
    and by the creation of a trail (`mlops setup`, `mlops audit init`), whichever comes last."""
    from mlops_platform.infra.server import created_accounts

    accounts = created_accounts()
    return bind_created_accounts(accounts) if accounts else []


def bind_created_accounts(accounts: Mapping[str, str]) -> list[str]:
    """Bind each account `mlops server start` created (name -> account id) to its name in
    every audit database whose environment trusts the project server, before anyone acts: a
    name is then held by the account made for it, not by whichever account first acts under it
    (an account renamed by raw SQL before its person's first act took the name). A trail not
    created yet is skipped (bound when it is created). Returns the databases bound."""
    from mlops_platform.config import ENVIRONMENTS, ConfigError
    from mlops_platform.expand import UnsetVariableError
    from mlops_platform.governance.approvals.policy import normalize_name
    from mlops_platform.infra.settings import load_platform_settings
    from mlops_platform.trust.audit.chain import AuditTrailMissing
    from mlops_platform.trust.audit.store import AccountRebound, AuditTrail
    from mlops_platform.trust.keys import LOCAL, uses_local_stores

    urls: dict[str, str] = {}
    for env in ENVIRONMENTS:
        try:
            settings = load_platform_settings(env)
        except (ConfigError, UnsetVariableError):
            continue
        if env == LOCAL or uses_local_stores(settings):
            urls.setdefault(settings.audit.url, env)
    bound = []
    for url, env in urls.items():
        try:
            trail = AuditTrail(url, env=env)
        except AuditTrailMissing:
            continue
        try:
            for name, user_id in sorted(accounts.items()):
                trail.bind_account(PROJECT_SERVER_KEY, user_id, name, normalize_name(name))
        except AccountRebound as error:
            raise IdentityError(
                f"a new account of the project server cannot take its name: {error}. The "
                "audit database already binds that name to another account; find out who "
                "created or renamed accounts, and act with the bound one"
            ) from error
        finally:
            trail.close()
        bound.append(url)
    return bound


def resolve_actor(
    env: str,
    typed: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    settings: PlatformSettings | None = None,
    login: Callable[[], ServerLogin | None] = zenml_server_login,
) -> Actor:
    """Who acts in ``env``: see the module docstring. Raises ``IdentityError`` when refused."""
    from mlops_platform.governance.approvals.policy import normalize_name
    from mlops_platform.infra.settings import load_platform_settings

    values = os.environ if environ is None else environ
    chosen = settings if settings is not None else load_platform_settings(env)
    identity = chosen.identity
    name = None if typed is None else checked_name(typed)
    user = os_user()
    if name is not None and identity.accepts_asserted:
        return Actor(name, ASSERTED, {}, user)
    verified = None
    for source in identity.providers:
        if source == GITHUB_OIDC and identity.github_oidc is not None:
            verified = oidc_actor(
                identity.github_oidc,
                values,
                user,
                spend=lambda claims: spend_job_token(env, chosen, claims),
            )
        elif source == ZENML_SERVER:
            verified = server_actor(env, chosen, login(), user)
            if verified is not None:
                bind_server_account(env, chosen, verified)
        elif source == ASSERTED:
            verified = Actor(user, ASSERTED, {}, user)
        if verified is not None:
            break
    if verified is None:
        raise IdentityError(
            f"no verified identity for environment {env}: it accepts only "
            f"{', '.join(identity.providers)}, and none applies here (the ZenML client is not "
            "logged in to a trusted ZenML server, and this is not a GitHub Actions job with "
            "`id-token: write`). Act as a person with `mlops --as NAME ...` against the project server "
            "(`mlops server start`) or `zenml login <server>`; a typed --actor is not accepted "
            f"in {env}"
        )
    if name is not None and normalize_name(name) != normalize_name(verified.name):
        raise IdentityError(
            f"--actor {name!r} differs from the verified identity {verified.describe()}; "
            f"environment {env} does not accept asserted names. Leave --actor out, or "
            "authenticate as that person"
        )
    return verified
