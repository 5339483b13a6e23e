"""A ZenML server URL that cannot be reached stops a command at once with one message naming
it (a day-one review: a host that does not resolve gave half a minute of retries, then a
traceback called "a bug in mlops", and with --json the retry lines on stdout)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from mlops_cli.errors import ExitCode, as_cli_error
from mlops_platform.workspace import client_config_dir
from tests.integration.helpers import invoke

pytestmark = pytest.mark.usefixtures("isolated_state")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the probe closes


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://zenml.nonexistent.example", "does not resolve"),
        ("http://127.0.0.1:{closed_port}", "nothing accepts a connection"),
    ],
)
def test_an_unreachable_server_is_named_at_once_and_json_stays_json(
    url: str, why: str, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The port is taken at run time: every xdist worker must collect the same test ids.
    url = url.format(closed_port=_closed_port())
    monkeypatch.setenv("ZENML_STORE_URL", url)
    monkeypatch.setenv("ZENML_STORE_API_KEY", "x")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    started = time.monotonic()
    result = invoke("versions", "--json")
    assert time.monotonic() - started < 20, "ZenML's retries ran"
    assert result.exit_code == ExitCode.CONFIG, result.output
    answer = json.loads(result.stdout)  # the one JSON object, no retry lines
    assert answer["exit_code"] == ExitCode.CONFIG
    assert f"ZENML_STORE_URL={url}" in answer["error"] and why in answer["error"]
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    # Nothing was written: no client config for that server.
    assert not client_config_dir(isolated_state, {"ZENML_STORE_URL": url}).exists()


def test_a_server_lost_after_the_first_check_is_named_not_called_a_bug() -> None:
    """ZenML's own words after its retries, for a server that stopped answering later."""
    error = RuntimeError(
        "Error connecting to URL 'https://zenml.example': HTTPSConnectionPool(host="
        "'zenml.example', port=443): Max retries exceeded with url: /api/v1/info"
    )
    reported = as_cli_error(error)
    assert reported is not None and reported.code is ExitCode.CONFIG
    assert "ZENML_STORE_URL=https://zenml.example cannot be reached" in str(reported)
