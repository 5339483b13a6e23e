"""The project server's process: import ZenML's server app first, serve a store when told which.

`python -m mlops_platform.infra.server_boot FD` (started by `infra.server`, never by hand) imports
`zenml.zen_server.zen_server_api`, which takes about 4 s here and touches no database, then reads
one JSON line from stdin, `{"store_url": ...}`, and only then serves that store with uvicorn on
the listening socket FD (bound on loopback by the launcher, so the port was never free for
another process meanwhile), as `python -m uvicorn zenml.zen_server.zen_server_api:app` would.
So the import runs while the launching process creates and migrates the store the server will
open.

The launcher keeps stdin open until it has recorded the server and says `kept`. End of input
before that (the launcher failed, was interrupted or killed) means: serve nothing, or stop
serving; the process exits, so no server runs that nobody recorded.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

# What the launcher says once it has recorded the server (`infra.server._Boot.kept`).
KEPT = "kept"


def _exit_unless_kept() -> None:
    if sys.stdin.readline().strip() != KEPT:
        os._exit(0)


def main(argv: list[str]) -> int:
    listener = socket.socket(fileno=int(argv[0]))
    from zenml.zen_server.zen_server_api import app

    line = sys.stdin.readline()
    if not line.strip():
        return 0
    os.environ["ZENML_STORE_URL"] = str(json.loads(line)["store_url"])
    threading.Thread(target=_exit_unless_kept, name="launcher-watch", daemon=True).start()
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", server_header=False))
    server.run(sockets=[listener])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
