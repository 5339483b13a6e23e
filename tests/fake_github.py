"""A loopback server that answers like GitHub's run-approvals API, for the approval tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlops_platform.governance.approvals.github import API_VERSION


def approvals_path(repository: str, run_id: str) -> str:
    return f"/repos/{repository}/actions/runs/{run_id}/approvals"


@dataclass
class FakeGitHub:
    """What the server answers on `path` to a request bearing `token`, and the requests it saw
    (header names lower-cased). Other paths get 404; a wrong token or API version gets 401."""

    path: str
    token: str
    body: Any = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    seen: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@contextmanager
def serving(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    """Serve `fake` on a free loopback port for the duration of the block; sets `fake.url`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            time.sleep(fake.delay)
            authorised = self.headers.get("Authorization") == f"Bearer {fake.token}"
            versioned = self.headers.get("X-GitHub-Api-Version") == API_VERSION
            if self.path != fake.path:
                status, body = 404, {"message": "Not Found"}
            elif not (authorised and versioned):
                status, body = 401, {"message": "Bad credentials"}
            else:
                status, body = fake.status, fake.body
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output clean."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
