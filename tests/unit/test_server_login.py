"""`mlops --as NAME`: the project server names the holder of NAME's key; its token is reused only
for that very key. A loopback stand-in answers ZenML's two endpoints (login, current-user)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlops_platform.infra import server

GOOD_KEY = "ZENKEY_carol"
CAROL_ID = "5b0c4c1e-0000-4000-8000-000000000003"


@dataclass
class FakeServer:
    url: str
    logins: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> user name


def _handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            key = form.get("password", [""])[0]
            fake.logins.append(key)
            if self.path != f"{server.API}/login" or key != GOOD_KEY:
                self._send(401, {"detail": "invalid API key"})
                return
            token = f"token-{len(fake.logins)}"
            fake.tokens[token] = "carol"
            self._send(200, {"access_token": token, "token_type": "bearer", "expires_in": None})

        def do_GET(self) -> None:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if self.path != f"{server.API}/current-user" or token not in fake.tokens:
                self._send(401, {"detail": "not authenticated"})
                return
            body = {"is_service_account": True}
            self._send(200, {"id": CAROL_ID, "name": fake.tokens[token], "body": body})

        def _send(self, status: int, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    holder: list[FakeServer] = [FakeServer("")]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(holder[0]))
    holder[0].url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    record = {"url": holder[0].url, "port": httpd.server_address[1], "pid": 1}
    server._write_private(server.server_dir() / server.RECORD, json.dumps(record))
    server._write_private(server.key_path("carol"), GOOD_KEY)
    try:
        yield holder[0]
    finally:
        server.stop_acting()
        httpd.shutdown()
        httpd.server_close()


def test_the_server_names_the_key_holder_and_later_commands_reuse_its_token(
    fake: FakeServer,
) -> None:
    server.use_account("carol")
    login = server.account_login()
    assert login == server.AccountLogin(fake.url, CAROL_ID, "carol", True)
    server.use_account("carol")  # the next command
    assert server.account_login() == login
    assert fake.logins == [GOOD_KEY]  # one login for both commands


def test_a_swapped_key_file_never_uses_the_token_of_the_real_key(fake: FakeServer) -> None:
    server.use_account("carol")
    server.account_login()
    server.key_path("carol").write_text("ZENKEY_forged")
    server.use_account("carol")
    with pytest.raises(server.ServerError, match="401") as refused:
        server.account_login()
    assert refused.value.status == 401
    assert fake.logins == [GOOD_KEY, "ZENKEY_forged"]


def test_a_token_the_server_no_longer_accepts_means_a_new_login(fake: FakeServer) -> None:
    server.use_account("carol")
    server.account_login()
    fake.tokens.clear()  # e.g. the server restarted with a new JWT secret
    server.use_account("carol")
    assert server.account_login().user_name == "carol"
    assert fake.logins == [GOOD_KEY, GOOD_KEY]


def test_without_as_nobody_is_named() -> None:
    server.stop_acting()
    assert server.account_login() is None
