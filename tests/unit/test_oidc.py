"""GitHub OIDC job tokens: real RS256 signatures checked against a loopback JWKS endpoint."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import jwt
import pytest

from mlops_platform.trust.oidc import (
    GithubOidcSettings,
    OidcError,
    check_url,
    fetch_job_token,
    verify_job_token,
)
from tests.oidc_issuer import AUDIENCE, REPOSITORY, Issuer, job_environ, rsa_key, running_issuer


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


def test_a_valid_token_is_accepted_with_its_claims_as_evidence(issuer: Issuer) -> None:
    claims = verify_job_token(issuer.token(), issuer.settings())
    assert (claims.actor, claims.repository, claims.environment, claims.run_id) == (
        "bob",
        REPOSITORY,
        "production",
        "4242",
    )
    evidence = claims.evidence()
    assert evidence["jti"] and evidence["issuer"] == issuer.url


@pytest.mark.parametrize(
    ("claims", "match"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://token.actions.githubusercontent.com"}, "issuer"),
        ({"repository": "mallory/fork"}, "repository 'mallory/fork'"),
        ({"environment": "staging"}, "environment 'staging', not 'production'"),
        ({"ref": "refs/heads/feature"}, "ref 'refs/heads/feature'"),
        ({"run_id": "not-a-run"}, "run id"),
        # a re-run: GitHub signs it, but its actor is the first attempt's, not the re-runner
        ({"run_attempt": "2"}, "attempt '2' of run 4242"),
    ],
)
def test_tokens_with_a_wrong_claim_are_refused(
    issuer: Issuer, claims: dict[str, object], match: str
) -> None:
    with pytest.raises(OidcError, match=match):
        verify_job_token(issuer.token(**claims), issuer.settings())


def test_allowed_refs_are_patterns(issuer: Issuer) -> None:
    settings = issuer.settings(allowed_refs=("refs/heads/main", "refs/tags/v*"))
    assert verify_job_token(issuer.token(ref="refs/tags/v1.2"), settings).ref == "refs/tags/v1.2"
    with pytest.raises(OidcError, match="refs/tags/x1"):
        verify_job_token(issuer.token(ref="refs/tags/x1"), settings)


def test_a_token_without_an_environment_claim_is_refused_where_one_is_required(
    issuer: Issuer,
) -> None:
    payload = issuer.claims()
    del payload["environment"]
    token = jwt.encode(payload, issuer.key, algorithm="RS256", headers={"kid": "test-key-1"})
    with pytest.raises(OidcError, match="environment None"):
        verify_job_token(token, issuer.settings())


def test_a_token_missing_a_required_claim_is_refused(issuer: Issuer) -> None:
    payload = issuer.claims()
    del payload["jti"]
    token = jwt.encode(payload, issuer.key, algorithm="RS256", headers={"kid": "test-key-1"})
    with pytest.raises(OidcError, match="jti"):
        verify_job_token(token, issuer.settings())


def test_a_token_signed_with_another_key_is_refused(issuer: Issuer) -> None:
    forged = issuer.token(key=rsa_key())
    with pytest.raises(OidcError, match="Signature verification failed"):
        verify_job_token(forged, issuer.settings())


def _segment(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_an_unsigned_token_is_refused(issuer: Issuer) -> None:
    unsigned = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(issuer.claims())}."
    with pytest.raises(OidcError, match="algorithm 'none' is not accepted"):
        verify_job_token(unsigned, issuer.settings())


def test_an_hmac_token_keyed_with_the_public_key_is_refused(issuer: Issuer) -> None:
    forged = jwt.encode(issuer.claims(), "a shared secret anyone could pick", algorithm="HS256")
    with pytest.raises(OidcError, match="algorithm 'HS256' is not accepted"):
        verify_job_token(forged, issuer.settings())


def test_garbage_is_refused(issuer: Issuer) -> None:
    with pytest.raises(OidcError, match="not a JWT"):
        verify_job_token("not.a.token", issuer.settings())


def test_the_job_token_is_fetched_from_the_actions_runtime(issuer: Issuer) -> None:
    issuer.tokens[AUDIENCE] = issuer.token()
    token = fetch_job_token(AUDIENCE, job_environ(issuer))
    assert verify_job_token(token, issuer.settings()).actor == "bob"


def test_no_token_request_variables_means_no_token() -> None:
    with pytest.raises(OidcError, match="id-token: write"):
        fetch_job_token(AUDIENCE, {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "carol"})


@pytest.mark.parametrize(
    "url", ["file:///tmp/jwks.json", "http://issuer.example.com/jwks", "ftp://x/y", "/tmp/jwks"]
)
def test_evidence_is_read_over_tls_only(url: str) -> None:
    with pytest.raises(OidcError, match="not an https"):
        check_url(url, "JWKS URL")
    with pytest.raises(ValueError, match="not an https"):
        GithubOidcSettings(audience=AUDIENCE, repository=REPOSITORY, jwks_url=url)
