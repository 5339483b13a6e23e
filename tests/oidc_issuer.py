"""A fake GitHub OIDC issuer on loopback: real RSA keys, a real JWKS endpoint, a token endpoint.

Tokens are signed for real with a locally generated key pair; the verifier under test fetches the
public keys over HTTP exactly as it does from GitHub.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from mlops_platform.trust.oidc import GithubOidcSettings

AUDIENCE = "mlops-platform-test"
REPOSITORY = "acme/readmission"
KID = "test-key-1"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Issuer:
    url: str
    key: rsa.RSAPrivateKey
    tokens: dict[str, str] = field(default_factory=dict)  # audience -> token the endpoint hands out
    # As GitHub, each request gets a new token (same claims, a new `jti`); `replay` hands the
    # stored token back as it is, as an endpoint serving a copied token would.
    replay: bool = False

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token?api-version=2.0"

    def settings(self, **overrides: Any) -> GithubOidcSettings:
        values = {
            "issuer": self.url,
            "jwks_url": self.jwks_url,
            "audience": AUDIENCE,
            "repository": REPOSITORY,
            "allowed_refs": ("refs/heads/main",),
            "environment": "production",
            **overrides,
        }
        return GithubOidcSettings(**values)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.url,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            "sub": f"repo:{REPOSITORY}:environment:production",
            "repository": REPOSITORY,
            "ref": "refs/heads/main",
            "environment": "production",
            "actor": "bob",
            "run_id": "4242",
            "run_attempt": "1",
            "sha": "0" * 40,
            "job_workflow_ref": f"{REPOSITORY}/.github/workflows/promote.yml@refs/heads/main",
            **overrides,
        }

    def token(self, key: rsa.RSAPrivateKey | None = None, **overrides: Any) -> str:
        return jwt.encode(
            self.claims(**overrides), key or self.key, algorithm="RS256", headers={"kid": KID}
        )

    def handed_out(self, audience: str) -> str:
        """What the token endpoint answers for `audience`: the stored token's claims with a new
        `jti` if this issuer signed it; a token it did not sign (a forgery) as stored."""
        stored = self.tokens.get(audience, "")
        if self.replay or not stored:
            return stored
        try:
            claims = jwt.decode(
                stored,
                self.key.public_key(),
                algorithms=["RS256"],
                options={
                    "verify_signature": True,
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError:
            return stored
        if "jti" not in claims:
            return stored
        return self.token(**{**claims, "jti": str(uuid.uuid4())})


def _handler(issuer_ref: list[Issuer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = issuer_ref[0]
            if self.path.startswith("/.well-known/jwks"):
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(issuer.key.public_key()))
                self._send({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]})
            elif self.path.startswith("/token"):
                audience = self.path.split("audience=")[-1]
                if self.headers.get("Authorization") != "bearer runner-request-token":
                    self.send_error(401)
                    return
                self._send({"value": issuer.handed_out(audience)})
            else:
                self.send_error(404)

        def _send(self, payload: Mapping[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    """An issuer on 127.0.0.1 at a free port, stopped afterwards."""
    ref: list[Issuer] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    ref.append(Issuer(f"http://127.0.0.1:{server.server_port}", rsa_key()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ref[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def job_environ(issuer: Issuer) -> dict[str, str]:
    """What the Actions runtime gives a job with `id-token: write`."""
    return {
        "ACTIONS_ID_TOKEN_REQUEST_URL": issuer.token_url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token",
    }
