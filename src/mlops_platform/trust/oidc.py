"""GitHub Actions OIDC ID tokens: fetch the job's token and verify it against the issuer's JWKS.

A GitHub Actions job with `permissions: id-token: write` can ask GitHub for a short-lived JWT that
GitHub signs with its own key. The token names the repository, the ref, the GitHub environment the
job runs in, the actor who started the run and the run id. Nothing in the job's environment
variables is evidence of any of that: variables can be set by anyone who runs a command. The token
is, once its signature is checked against the keys the issuer publishes (JWKS, fetched from the
URL in the committed config) and its claims against the committed expectations.

Only RS256 is accepted (what GitHub signs with); `alg: none` and HMAC tokens never verify.
"""

from __future__ import annotations

import fnmatch
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, field_validator

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_JWKS_URL = f"{GITHUB_ISSUER}/.well-known/jwks"
REQUEST_URL_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
ALGORITHMS: tuple[str, ...] = ("RS256",)
# Claims a GitHub job token always carries; a token without one of them is refused.
REQUIRED_CLAIMS: tuple[str, ...] = (
    "exp",
    "iat",
    "nbf",
    "iss",
    "aud",
    "jti",
    "repository",
    "ref",
    "actor",
    "run_id",
    "run_attempt",
)
# A re-run's token names the first attempt's actor (GitHub: `actor` is who started the run, and
# a re-run keeps it), not who re-ran it: only a run's first attempt says who acts.
FIRST_ATTEMPT = "1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class OidcError(RuntimeError):
    """A token could not be fetched, or it does not prove what it must; the message says why."""


def check_url(url: str, what: str) -> str:
    """``url`` if it is https (or http on loopback, for tests); never file:// or other schemes."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url
    raise OidcError(
        f"{what} {url!r} is not an https:// URL (http:// is accepted only on loopback). "
        "Identity evidence is read only from the issuer over TLS, never from files."
    )


class GithubOidcSettings(BaseModel):
    """What a GitHub job token must show to be accepted (`identity.github_oidc` in platform.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    issuer: str = GITHUB_ISSUER
    jwks_url: str = GITHUB_JWKS_URL
    # The `aud` the job requests and the verifier demands; unique to this platform.
    audience: str = Field(min_length=1)
    # `owner/name` of the repository whose workflows may act; a token of any other one is refused.
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    # Refs whose workflows may act, as shell patterns (`refs/heads/main`, `refs/tags/v*`); empty
    # means any ref.
    allowed_refs: tuple[str, ...] = ()
    # GitHub environment the job must run in to act in this platform environment; None: any.
    environment: str | None = None
    # GitHub REST API of the approvals read by `mlops approve --from-github-environment`.
    api_url: str = "https://api.github.com"
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @field_validator("jwks_url", "api_url")
    @classmethod
    def _tls_only(cls, value: str) -> str:
        try:
            return check_url(value, "URL")
        except OidcError as error:
            raise ValueError(str(error)) from error


@dataclass(frozen=True)
class GithubJobClaims:
    """The verified claims of one job token that identity and approvals rely on."""

    actor: str
    repository: str
    ref: str
    environment: str | None
    run_id: str
    run_attempt: str
    jti: str
    sha: str
    workflow_ref: str
    issuer: str

    def evidence(self) -> dict[str, str]:
        return {
            "issuer": self.issuer,
            "jti": self.jti,
            "repository": self.repository,
            "ref": self.ref,
            "environment": self.environment or "",
            "run_id": self.run_id,
            "run_attempt": self.run_attempt,
            "sha": self.sha,
            "workflow_ref": self.workflow_ref,
        }


def in_github_actions_with_token(environ: Mapping[str, str]) -> bool:
    """Whether this process can ask GitHub for a job token (the job has `id-token: write`)."""
    return bool(environ.get(REQUEST_URL_VARIABLE) and environ.get(REQUEST_TOKEN_VARIABLE))


def fetch_job_token(audience: str, environ: Mapping[str, str], timeout: float = 10.0) -> str:
    """The job's OIDC ID token for ``audience``, from the Actions runtime's token endpoint.

    The endpoint comes from the job's environment, which proves nothing: what comes back is
    verified by `verify_job_token` against the configured issuer keys before anything uses it.
    """
    base, bearer = environ.get(REQUEST_URL_VARIABLE), environ.get(REQUEST_TOKEN_VARIABLE)
    if not base or not bearer:
        raise OidcError(
            f"{REQUEST_URL_VARIABLE} / {REQUEST_TOKEN_VARIABLE} are not set: this is not a GitHub "
            "Actions job allowed to request an ID token. Give the job `permissions: id-token: "
            "write`."
        )
    check_url(base, REQUEST_URL_VARIABLE)
    separator = "&" if urllib.parse.urlsplit(base).query else "?"
    url = f"{base}{separator}{urllib.parse.urlencode({'audience': audience})}"
    request = urllib.request.Request(url, headers={"Authorization": f"bearer {bearer}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, ValueError) as error:
        raise OidcError(f"Could not fetch the job's OIDC token from {base}: {error}") from error
    token = body.get("value") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise OidcError(f"The OIDC token endpoint {base} returned no token ('value').")
    return token


def verify_job_token(
    token: str, settings: GithubOidcSettings, environment: str | None = None
) -> GithubJobClaims:
    """The token's claims, once its signature, time window, issuer, audience and scope check out.

    ``environment`` (else ``settings.environment``) is the GitHub environment the job must run in.
    """
    claims = _decode(token, settings)
    problems = []
    if claims["repository"] != settings.repository:
        problems.append(
            f"the token is for repository {claims['repository']!r}, not {settings.repository!r}"
        )
    ref = str(claims["ref"])
    if settings.allowed_refs and not any(
        fnmatch.fnmatchcase(ref, pattern) for pattern in settings.allowed_refs
    ):
        problems.append(
            f"the token is for ref {claims['ref']!r}, not one of {list(settings.allowed_refs)}"
        )
    wanted = environment if environment is not None else settings.environment
    if wanted is not None and claims.get("environment") != wanted:
        problems.append(
            f"the job runs in GitHub environment {claims.get('environment')!r}, not {wanted!r}"
        )
    actor, run_id = str(claims["actor"]).strip(), str(claims["run_id"]).strip()
    if not actor or not run_id.isdigit():
        problems.append(f"the token names no usable actor / run id ({actor!r}, {run_id!r})")
    attempt = str(claims["run_attempt"]).strip()
    if attempt != FIRST_ATTEMPT:
        problems.append(
            f"the token is from attempt {attempt!r} of run {run_id}: a re-run's token still names "
            f"the first attempt's actor ({actor!r}), not who re-ran it, so it cannot say who "
            "acts; start a new run (workflow dispatch) instead of re-running this one"
        )
    if problems:
        raise OidcError("GitHub OIDC token refused: " + "; ".join(problems) + ".")
    return GithubJobClaims(
        actor=actor,
        repository=str(claims["repository"]),
        ref=str(claims["ref"]),
        environment=claims.get("environment"),
        run_id=run_id,
        run_attempt=attempt,
        jti=str(claims["jti"]),
        sha=str(claims.get("sha", "")),
        workflow_ref=str(claims.get("job_workflow_ref") or claims.get("workflow_ref", "")),
        issuer=str(claims["iss"]),
    )


def _decode(token: str, settings: GithubOidcSettings) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise OidcError(f"GitHub OIDC token refused: it is not a JWT ({error}).") from error
    if header.get("alg") not in ALGORITHMS:
        raise OidcError(
            f"GitHub OIDC token refused: algorithm {header.get('alg')!r} is not accepted; "
            f"only {list(ALGORITHMS)} signed by the issuer's published keys are."
        )
    try:
        key = jwt.PyJWKClient(
            settings.jwks_url, cache_keys=True, timeout=int(settings.timeout_seconds)
        ).get_signing_key_from_jwt(token)
    except jwt.PyJWKClientError as error:
        raise OidcError(
            f"GitHub OIDC token refused: no key of {settings.jwks_url} matches it ({error})."
        ) from error
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=list(ALGORITHMS),
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS), "verify_signature": True},
        )
    except jwt.PyJWTError as error:
        raise OidcError(
            f"GitHub OIDC token refused: {error} (issuer {settings.issuer}, audience "
            f"{settings.audience})."
        ) from error
