"""Who acts: providers per environment, verified sources only in staging and production."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_platform.infra.server import RECORD, project_server_url, server_dir
from mlops_platform.infra.settings import PlatformSettings, load_platform_settings
from mlops_platform.trust.audit.chain import AuditTrailMissing
from mlops_platform.trust.audit.store import AuditTrail, AuditUrlError
from mlops_platform.trust.identity import (
    ASSERTED,
    GITHUB_OIDC,
    ZENML_SERVER,
    IdentityError,
    ServerLogin,
    resolve_actor,
)
from tests.oidc_issuer import Issuer, job_environ, rsa_key, running_issuer

SERVER = "https://zenml.example.org"
CAROL = ServerLogin(SERVER, "5b0c4c1e-0000-4000-8000-000000000001", "carol", False)


@pytest.fixture(autouse=True)
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory, and a remote (non-local) audit trail for staging and production."""
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", "postgresql+psycopg://audit@db.example.org/audit")
    return tmp_path / "state"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


def settings(env: str, issuer: Issuer | None = None, **identity: object) -> PlatformSettings:
    loaded = load_platform_settings(env)
    update: dict[str, object] = {"zenml_server_urls": (SERVER,), **identity}
    if issuer is not None:
        update["github_oidc"] = issuer.settings(environment=env)
    return loaded.model_copy(update={"identity": loaded.identity.model_copy(update=update)})


def no_server() -> None:
    return None


def test_locally_a_typed_name_is_asserted_and_the_os_user_recorded() -> None:
    actor = resolve_actor("local", "alice", {}, settings=settings("local"), login=no_server)
    assert (actor.name, actor.source, actor.verified) == ("alice", ASSERTED, False)
    assert actor.os_user
    assert actor.as_dict()["os_user"] == actor.os_user


def test_locally_without_a_name_the_os_user_acts_asserted() -> None:
    actor = resolve_actor("local", None, {}, settings=settings("local"), login=no_server)
    assert (actor.source, actor.name) == (ASSERTED, actor.os_user)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_a_typed_name_without_a_verified_identity_is_refused(env: str) -> None:
    with pytest.raises(IdentityError, match=f"no verified identity for environment {env}"):
        resolve_actor(env, "carol", {}, settings=settings(env), login=no_server)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_github_variables_alone_are_no_evidence(env: str) -> None:
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": "carol",
        "GITHUB_REPOSITORY": "acme/readmission",
        "GITHUB_RUN_ID": "1",
    }
    with pytest.raises(IdentityError, match="no verified identity"):
        resolve_actor(env, None, environ, settings=settings(env), login=no_server)


@pytest.mark.parametrize("typed", ["", "   ", "car\u200bol", "bob\x00"])
def test_blank_names_and_control_characters_are_refused(typed: str) -> None:
    with pytest.raises(IdentityError, match=r"blank|control"):
        resolve_actor("local", typed, {}, settings=settings("local"), login=no_server)


def test_the_server_account_is_the_identity_in_production(tmp_path: Path) -> None:
    chosen = with_trail(settings("production"), tmp_path)
    actor = resolve_actor("production", None, {}, settings=chosen, login=lambda: CAROL)
    assert (actor.name, actor.source) == ("carol", ZENML_SERVER)
    assert actor.evidence == {"server_url": SERVER, "user_id": CAROL.user_id, "account": "user"}
    assert "zenml-server" in actor.describe()


def test_a_typed_name_must_match_the_verified_identity(tmp_path: Path) -> None:
    chosen = with_trail(settings("production"), tmp_path)
    assert resolve_actor("production", "Carol", {}, settings=chosen, login=lambda: CAROL).name == (
        "carol"
    )
    with pytest.raises(IdentityError, match="--actor 'erin' differs from the verified identity"):
        resolve_actor("production", "erin", {}, settings=chosen, login=lambda: CAROL)


def test_an_account_on_an_untrusted_server_is_refused() -> None:
    own = ServerLogin("http://127.0.0.1:9999", "x", "carol", False)
    with pytest.raises(IdentityError, match="does not trust"):
        resolve_actor("production", None, {}, settings=settings("production"), login=lambda: own)


def test_the_project_server_is_trusted_only_while_the_trail_is_local(
    stores: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_url = "http://127.0.0.1:8311"
    server_dir().mkdir(parents=True)
    (server_dir() / RECORD).write_text(json.dumps({"url": local_url, "port": 8311, "pid": 1}))
    login = ServerLogin(local_url, "id-1", "carol", True)
    remote = settings("production", zenml_server_urls=())
    with pytest.raises(IdentityError, match="does not trust"):
        resolve_actor("production", None, {}, settings=remote, login=lambda: login)
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{stores / 'audit.db'}")
    AuditTrail.initialize(f"sqlite:///{stores / 'audit.db'}").close()
    local = settings("production", zenml_server_urls=())
    actor = resolve_actor("production", None, {}, settings=local, login=lambda found=login: found)
    assert (actor.source, actor.evidence["account"]) == (ZENML_SERVER, "service_account")


def with_trail(chosen: PlatformSettings, folder: Path) -> PlatformSettings:
    """`chosen` with its audit trail in a new SQLite file under `folder`."""
    url = f"sqlite:///{folder / 'audit.db'}"
    AuditTrail.initialize(url).close()
    return chosen.model_copy(update={"audit": chosen.audit.model_copy(update={"url": url})})


def test_a_server_account_acts_under_one_name_and_a_name_through_one_account(
    tmp_path: Path,
) -> None:
    """A ZenML user renamed itself into a role, or an admin made an account with someone's
    name: the name stays with the account that first acted under it (kept in the trail's
    database), so neither acts as that person."""
    chosen = with_trail(settings("production"), tmp_path)
    assert resolve_actor("production", None, {}, settings=chosen, login=lambda: CAROL).name == (
        "carol"
    )
    renamed = ServerLogin(SERVER, CAROL.user_id, "erin", False)  # carol's account, renamed
    with pytest.raises(IdentityError, match="is bound to 'carol'"):
        resolve_actor("production", None, {}, settings=chosen, login=lambda: renamed)
    impostor = ServerLogin(SERVER, "id-of-frank", "Carol", False)  # frank renamed to Carol
    with pytest.raises(IdentityError, match="belongs to account"):
        resolve_actor("production", None, {}, settings=chosen, login=lambda: impostor)
    # The same account under the same name, however it is written: still carol.
    shouted = ServerLogin(SERVER, CAROL.user_id, "CAROL", False)
    assert resolve_actor("production", None, {}, settings=chosen, login=lambda: shouted).name
    frank = ServerLogin(SERVER, "id-of-frank", "frank", False)
    assert resolve_actor("production", None, {}, settings=chosen, login=lambda: frank).name == (
        "frank"
    )


def test_a_ci_job_token_is_the_identity(issuer: Issuer, tmp_path: Path) -> None:
    issuer.tokens["mlops-platform-test"] = issuer.token(actor="erin")
    actor = resolve_actor(
        "production",
        None,
        job_environ(issuer),
        settings=with_trail(settings("production", issuer), tmp_path),
        login=no_server,
    )
    assert (actor.name, actor.source) == ("erin", GITHUB_OIDC)
    assert actor.evidence["run_id"] == "4242" and actor.evidence["jti"]


def test_a_job_token_counts_once(issuer: Issuer, tmp_path: Path) -> None:
    """The endpoint hands out the same token twice (a copy replayed while it is valid): the
    second identity is refused. Tokens the job asks for anew each count once."""
    chosen = with_trail(settings("production", issuer), tmp_path)
    issuer.tokens["mlops-platform-test"] = issuer.token(actor="erin")
    try:
        issuer.replay = True
        first = resolve_actor("production", None, job_environ(issuer), settings=chosen)
        with pytest.raises(IdentityError, match="accepted once") as refused:
            resolve_actor("production", None, job_environ(issuer), settings=chosen)
        assert first.evidence["jti"] in str(refused.value)
    finally:
        issuer.replay = False
    again = [resolve_actor("production", None, job_environ(issuer), settings=chosen)]
    again.append(resolve_actor("production", None, job_environ(issuer), settings=chosen))
    assert len({first.evidence["jti"], *(a.evidence["jti"] for a in again)}) == 3
    trail = AuditTrail(chosen.audit.url)
    try:
        with trail._engine.connect() as connection:  # raw SQL: the rows the check reads
            used = connection.exec_driver_sql("SELECT jti, actor FROM job_tokens").all()
    finally:
        trail.close()
    assert sorted(used) == sorted((a.evidence["jti"], "erin") for a in (first, *again))


def test_a_job_token_without_its_environments_trail_is_refused(issuer: Issuer) -> None:
    """The trail that records used tokens is unreachable: no identity (fail closed)."""
    issuer.tokens["mlops-platform-test"] = issuer.token(actor="erin")
    with pytest.raises(AuditTrailMissing):
        resolve_actor(
            "production", None, job_environ(issuer), settings=settings("production", issuer)
        )


def test_a_forged_job_token_refuses_and_never_falls_back(issuer: Issuer) -> None:
    issuer.tokens["mlops-platform-test"] = issuer.token(key=rsa_key(), actor="erin")
    with pytest.raises(IdentityError, match="Signature verification failed"):
        resolve_actor(
            "production",
            None,
            job_environ(issuer),
            settings=settings("production", issuer),
            login=lambda: CAROL,
        )


def test_only_local_accepts_typed_names_in_the_committed_configs() -> None:
    assert load_platform_settings("local").identity.accepts_asserted
    for env in ("staging", "production"):
        providers = load_platform_settings(env).identity.providers
        assert ASSERTED not in providers and ZENML_SERVER in providers, (env, providers)


def test_a_config_that_lets_production_accept_typed_names_does_not_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_platform.config import ConfigError
    from tests.integration.helpers import copy_configs

    loaded = load_platform_settings("production").identity.model_dump(mode="json")
    weakened = {"identity": {**loaded, "providers": [ZENML_SERVER, ASSERTED]}}
    configs = copy_configs(tmp_path / "configs", {"production/platform.yaml": weakened})
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(configs))
    with pytest.raises(ConfigError, match="only local may accept typed names"):
        load_platform_settings("production")


def test_locally_an_untrusted_server_vouches_for_no_one() -> None:
    elsewhere = ServerLogin("http://127.0.0.1:9999", "x", "carol", False)
    actor = resolve_actor("local", None, {}, settings=settings("local"), login=lambda: elsewhere)
    assert (actor.source, actor.name) == (ASSERTED, actor.os_user)


def test_a_typed_name_is_compared_with_the_verified_one_after_nfkc(tmp_path: Path) -> None:
    chosen = with_trail(settings("production"), tmp_path)
    full_width = "\uff43\uff41\uff52\uff4f\uff4c"  # ｃａｒｏｌ
    assert resolve_actor(
        "production", full_width, {}, settings=chosen, login=lambda: CAROL
    ).name == ("carol")


def test_a_server_record_naming_another_server_is_ignored(stores: Path) -> None:
    """The record of the project server is a file: one edited to name a shared server must not
    make that server trusted as the local loopback one."""
    server_dir().mkdir(parents=True)
    record = server_dir() / RECORD
    record.write_text(json.dumps({"url": "https://zenml.example.org", "port": 443, "pid": 1}))
    assert project_server_url() is None
    record.write_text(json.dumps({"url": "http://127.0.0.1:9001", "port": 8311, "pid": 1}))
    assert project_server_url() is None  # loopback, but not the port it was started on
    record.write_text(json.dumps({"url": "http://127.0.0.1:8311", "port": 8311, "pid": 1}))
    assert project_server_url() == "http://127.0.0.1:8311"


@pytest.mark.parametrize("url", ["garbage://x", "not a url", "mysql+nodriver://u@h/db"])
def test_an_audit_url_nothing_can_open_is_a_configuration_error(url: str) -> None:
    with pytest.raises(AuditUrlError, match="cannot be opened"):
        AuditTrail(url)


def test_a_plain_postgresql_url_uses_the_installed_driver() -> None:
    """`postgresql://` means psycopg 3 here (SQLAlchemy's default is psycopg2, not installed):
    a server that is not there is a missing trail (exit 8), not an import error."""
    engine = AuditTrail._make_engine("postgresql://audit@127.0.0.1:1/audit")
    assert engine.dialect.driver == "psycopg"
    with pytest.raises(AuditTrailMissing, match="cannot open"):
        AuditTrail("postgres://audit@127.0.0.1:1/audit")


def test_the_project_server_keeps_its_bindings_when_it_restarts_on_another_port(
    stores: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loopback server takes a new port on each start: a name bound to an account stays
    bound to it, so an account renamed into that name after a restart is still refused."""
    url = f"sqlite:///{stores / 'audit.db'}"
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", url)
    AuditTrail.initialize(url).close()
    local = settings("production", zenml_server_urls=())
    server_dir().mkdir(parents=True)
    for port, user_id in ((8311, "id-of-carol"), (8422, "id-of-alice")):
        first = f"http://127.0.0.1:{port}"
        (server_dir() / RECORD).write_text(json.dumps({"url": first, "port": port, "pid": 1}))
        login = ServerLogin(first, user_id, "carol", False)
        if user_id == "id-of-carol":
            assert resolve_actor(
                "production", None, {}, settings=local, login=lambda found=login: found
            )
        else:
            with pytest.raises(IdentityError, match="belongs to account id-of-carol"):
                resolve_actor(
                    "production", None, {}, settings=local, login=lambda found=login: found
                )
