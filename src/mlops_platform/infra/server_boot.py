"""The project server's process: import ZenML's server app first, serve a store when told which.

`python -m mlops_platform.infra.server_boot HOST PORT` (started by `infra.server`, never by hand)
imports `zenml.zen_server.zen_server_api`, which takes about 4 s here and touches no database,
then reads one JSON line from stdin, `{"store_url": ...}`, and only then serves that store with
uvicorn, as `python -m uvicorn zenml.zen_server.zen_server_api:app` would. So the import runs
while the launching process creates and migrates the store the server will open; before this
module, the server's import started only after that. End of input without a line (the launcher
failed or exited) means serve nothing: the process exits without opening any store.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    host, port = argv[0], int(argv[1])
    from zenml.zen_server.zen_server_api import app

    line = sys.stdin.readline()
    if not line.strip():
        return 0
    os.environ["ZENML_STORE_URL"] = str(json.loads(line)["store_url"])
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
