"""A command run once with a ZenML server's URL (`ZENML_STORE_URL`, as README "Using a ZenML
server" says) keeps its ZenML client config apart from the project's: ZenML writes the store it
connects to into its config file, which would otherwise send every later command to that server.
Without credentials for it, the command is refused with one message, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlops_cli.errors import ExitCode
from mlops_platform.workspace import client_config_dir

RUN_CLI = "import sys; from mlops_cli.app import main; sys.argv[0] = 'mlops'; main()"


def _mlops(
    state: Path, *args: str, store_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "ZENML_"))}
    env |= {"MLOPS_STATE_DIR": str(state), "MLOPS_AUDIT_DB_URL": f"sqlite:///{state / 'audit.db'}"}
    if store_url:
        env["ZENML_STORE_URL"] = store_url
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_server_url_never_replaces_the_project_s_store(
    module_state: Path, zenml_server: str
) -> None:
    project_config = module_state / "zenml" / "config.yaml"
    assert client_config_dir(module_state, {}) == project_config.parent
    before = project_config.read_bytes()

    refused = _mlops(module_state, "history", store_url=zenml_server)

    assert refused.returncode == ExitCode.DENIED, refused.stderr
    assert "the ZenML server refused this client" in refused.stderr
    assert "Traceback" not in refused.stderr and "mlops --as NAME" in refused.stderr
    assert project_config.read_bytes() == before  # the local store is still the project's
    elsewhere = client_config_dir(module_state, {"ZENML_STORE_URL": zenml_server})
    assert elsewhere != project_config.parent and elsewhere.is_dir()
    again = _mlops(module_state, "versions", "--json")  # no variable: the local store, as before
    assert again.returncode == 0, again.stderr


def test_only_the_project_s_own_store_uses_the_project_config(tmp_path: Path) -> None:
    own = f"sqlite:///{tmp_path / 'zenml' / 'local_stores' / 'default_zen_store' / 'zenml.db'}"
    for url in ("", own):
        assert client_config_dir(tmp_path, {"ZENML_STORE_URL": url}) == tmp_path / "zenml"
    other = client_config_dir(tmp_path, {"ZENML_STORE_URL": "sqlite:////tmp/other/zenml.db"})
    assert other.parent == tmp_path / "zenml-stores"


def test_another_database_url_never_replaces_the_project_s_store(isolated_state: Path) -> None:
    """The second review's variant: a SQLite URL (not a server) in ZENML_STORE_URL rewrote the
    project's config for good, and later commands silently listed that other, empty store."""
    first = _mlops(isolated_state, "versions", "--json")  # the project's own store, as usual
    assert first.returncode == 0, first.stderr
    project_config = isolated_state / "zenml" / "config.yaml"
    before = project_config.read_bytes()
    other = f"sqlite:///{isolated_state.parent / 'elsewhere.db'}"

    assert _mlops(isolated_state, "versions", "--json", store_url=other).returncode == 0

    assert project_config.read_bytes() == before
    assert b"elsewhere.db" not in before


def test_the_store_s_passwordless_default_user_cannot_log_in(zenml_server: str) -> None:
    """The attack review: ZenML creates a store's `default` admin with an empty password; a
    login with no password gave anyone who reached the server's port an admin token, which can
    add an API key to any person's account. The project server deactivates it; the dashboard's
    own admin (a password in an owner-only file) still logs in."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from zenml.constants import DEFAULT_USERNAME

    from mlops_platform.infra import server

    form = urllib.parse.urlencode({"username": DEFAULT_USERNAME, "password": ""}).encode()
    request = urllib.request.Request(f"{zenml_server}/api/v1/login", data=form)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    assert status == 401
    assert server.admin_token(zenml_server)  # the dashboard's login still works


def test_the_server_s_tokens_expire(module_state: Path, zenml_server: str) -> None:
    """The attack review: the project server's tokens had no expiry (ZenML's default), so a
    token copied once worked for good. They expire after `TOKEN_EXPIRE_MINUTES`."""
    import base64
    import json
    import urllib.parse
    import urllib.request

    from mlops_platform.infra.server import TOKEN_EXPIRE_MINUTES

    key = sorted((module_state / "server" / "accounts").glob("*.key"))[0].read_text().strip()
    form = urllib.parse.urlencode({"grant_type": "zenml-api-key", "password": key}).encode()
    request = urllib.request.Request(f"{zenml_server}/api/v1/login", data=form)
    with urllib.request.urlopen(request, timeout=60) as answer:
        token = json.loads(answer.read())["access_token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert 0 < claims["exp"] - claims["iat"] <= TOKEN_EXPIRE_MINUTES * 60 + 5


def test_accounts_made_before_the_trail_are_bound_when_it_is_created(isolated_state: Path) -> None:
    """The second review: `mlops server start` run before `mlops setup` found no audit database,
    bound nothing, and never bound later (the keys existed), so an account renamed by raw SQL
    took a person's name at its first act. The trail's creation binds them now."""
    from sqlalchemy import create_engine, text

    from mlops_cli.server import people
    from mlops_platform.infra import server
    from mlops_platform.infra.settings import load_platform_settings
    from tests.integration.helpers import invoke

    url = load_platform_settings("local").audit.url
    (isolated_state / "audit.db").unlink()  # no trail yet: `mlops server start` comes first
    try:
        started = invoke("server", "start", "--json")
        assert started.exit_code == 0, started.output
        made = server.created_accounts()
        assert sorted(made) == people()
        initialized = invoke("audit", "init", "--env", "local")
        assert initialized.exit_code == 0, initialized.output
    finally:
        server.stop()
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            bound = dict(
                connection.execute(text("SELECT name, user_id FROM server_accounts")).all()
            )
    finally:
        engine.dispose()
    assert bound == made


def test_a_lost_key_file_gets_a_new_key_and_the_lost_one_dies(
    module_state: Path, zenml_server: str
) -> None:
    """The second review: a person's key file deleted while their account exists made
    `mlops server start` fail with ZenML's EntityExistsError traceback. For an account this
    checkout made (its id is kept beside the keys), start now gives it a new key and deletes
    the old ones on the server (a copy of the lost file no longer logs in); the other accounts
    are untouched."""
    from tests.integration.helpers import invoke

    accounts = module_state / "server" / "accounts"
    key = sorted(accounts.glob("*.key"))[-1]
    others = {k.name: k.read_bytes() for k in accounts.glob("*.key") if k != key}
    lost = key.read_bytes()
    key.unlink()
    started = invoke("server", "start")
    assert started.exit_code == 0, started.output
    assert "Traceback" not in started.output
    assert key.is_file() and key.read_bytes() != lost
    assert {k.name: k.read_bytes() for k in accounts.glob("*.key") if k != key} == others


def test_a_person_taken_out_of_the_policy_loses_the_account_until_named_again(
    zenml_server: str,
) -> None:
    """Day-one review: people removed from every role kept their accounts and keys, and acted.
    `mlops server start` deactivates an account this checkout made for someone no longer named
    (a kept copy of the key no longer logs in) and removes the key here; named again, the same
    account comes back with a new key and the old one stays dead."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from mlops_cli.server import people
    from mlops_platform.infra import server

    def login(key: str) -> int:
        form = urllib.parse.urlencode({"grant_type": "zenml-api-key", "password": key}).encode()
        try:
            with urllib.request.urlopen(
                urllib.request.Request(f"{zenml_server}/api/v1/login", data=form), timeout=60
            ) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    everyone = people()
    leaver, staying = everyone[0], everyone[1:]
    copied = server.key_path(leaver).read_text().strip()  # the copy an insider keeps
    assert login(copied) == 200
    assert server.retire_accounts(staying) == [leaver]
    assert not server.key_path(leaver).exists() and login(copied) in (401, 403)
    assert server.retire_accounts(staying) == []  # once
    server.create_accounts_in_store(everyone)  # named again
    fresh = server.key_path(leaver).read_text().strip()
    assert fresh != copied and login(fresh) == 200 and login(copied) in (401, 403)
