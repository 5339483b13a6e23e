"""The project's own ZenML server on loopback, with one authenticated account per person.

`mlops server start` runs the OSS ZenML server (uvicorn, as ZenML's own daemon does) on a free
loopback port, with authentication on (ZenML's `zenml login --local` daemon runs with `NO_AUTH`,
where every client is the same default user, which would make every identity the same), serving
this checkout's own SQLite ZenML store. The server's process (`infra/server_boot.py`) imports
ZenML's server app while this process creates and migrates that store, and opens the store only
once told which. It creates one service account per person in the approval policy's roles, each
with its own API key, stored under `<state>/server/accounts/` (files readable only by the
owner).

`mlops --as NAME ...` acts with NAME's key: once per command the key is exchanged for a token at
the server and the server's answer (`current-user`) is who acts (trust/identity.py, source
`zenml-server`); a key the server does not know is refused. The command's ZenML work (pipelines,
lookups, stage moves) goes straight to the SQLite database the server serves, as every command
without a server does: going through the server's REST API instead cost 2.5-3x the lifecycle's
time (about 190 REST calls per training run, 115 per promotion) for no gain in trust, since on a
checkout one OS user owns the database file and every key anyway (the local-trust rule). Another
process can still do all its work through the server as NAME (`account_environment`).

ZenML OSS has no RBAC: every account may change every resource through ZenML's own API, stage
changes included. The platform's checks run in `mlops`; changes made around it are visible only
by reconciling ZenML against the audit trail.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops_platform.infra.server_boot import KEPT
from mlops_platform.workspace import state_dir

SERVER_DIR = "server"
RECORD = "server.json"
SECRETS = "admin.json"
ACCOUNTS = "accounts"
LOG = "server.log"
ADMIN = "admin"
logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
TOKEN_EXPIRE_MINUTES = 60
API = "/api/v1"
START_TIMEOUT_SECONDS = 180.0
# How often a starting server is asked whether it answers (a request to 127.0.0.1 costs ~1 ms).
POLL_SECONDS = 0.1
# How long a token the server gave for a person's key is reused by later commands at most. The
# server checks it on every use; a login costs the server about a second of CPU (key hashing).
TOKEN_REUSE_SECONDS = 600.0
STOP_TIMEOUT_SECONDS = 20.0


class ServerError(RuntimeError):
    """The project server could not be started, reached or used; the message says what to do."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status the server answered, if it answered


@dataclass(frozen=True)
class ServerRecord:
    url: str
    port: int
    pid: int


def server_dir() -> Path:
    return state_dir() / SERVER_DIR


def accounts_dir() -> Path:
    return server_dir() / ACCOUNTS


def read_record() -> ServerRecord | None:
    """The running project server as `start` recorded it; None when there is none, or when the
    record names anything but this machine's loopback server on its own port (the record is a
    file: trusting the URL it names would trust whichever server someone wrote there)."""
    try:
        raw = json.loads((server_dir() / RECORD).read_text())
        record = ServerRecord(str(raw["url"]), int(raw["port"]), int(raw["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.url.rstrip("/") != f"http://{HOST}:{record.port}":
        logger.warning(
            "Ignoring %s: it names %s, not the project's loopback server (http://%s:<port>).",
            server_dir() / RECORD, record.url, HOST,
        )  # fmt: skip
        return None
    return record


def project_server_url() -> str | None:
    """The URL of the project's loopback server if `mlops server start` recorded one."""
    record = read_record()
    return record.url if record else None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    partial.replace(path)


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, TimeoutError, OSError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _secrets() -> dict[str, str]:
    """The admin password and JWT key of the server, created once and kept under the state dir."""
    path = server_dir() / SECRETS
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        values = {"admin_password": secrets.token_urlsafe(24), "jwt_secret": secrets.token_hex(32)}
        _write_private(path, json.dumps(values))
        return values


def server_environment(port: int) -> dict[str, str]:
    """The server process's environment: its own config, authentication on. Which database it
    serves is sent later (`_Boot.serve`)."""
    root = server_dir()
    values = _secrets()
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ZENML_", "MLOPS_RUN_"))
    }
    environ.update(
        {
            "ZENML_CONFIG_PATH": str(root / "zenml"),
            "ZENML_SERVER": "true",
            "ZENML_SERVER_AUTH_SCHEME": "OAUTH2_PASSWORD_BEARER",
            "ZENML_SERVER_JWT_SECRET_KEY": values["jwt_secret"],
            # Its tokens expire (ZenML's default is never); a command reuses one for 10 minutes.
            "ZENML_SERVER_JWT_TOKEN_EXPIRE_MINUTES": str(TOKEN_EXPIRE_MINUTES),
            "ZENML_SERVER_AUTO_ACTIVATE": "true",
            "ZENML_DEFAULT_USER_NAME": ADMIN,
            "ZENML_DEFAULT_USER_PASSWORD": values["admin_password"],
            "ZENML_SERVER_ALLOW_LOCAL_FILE_ACCESS": "true",
            "ZENML_SERVER_DEPLOYMENT_TYPE": "other",
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_AUTO_OPEN_DASHBOARD": "false",
            "ZENML_LOGGING_VERBOSITY": "WARN",
        }
    )
    return environ


def local_store_url() -> str:
    """The URL of this checkout's own SQLite ZenML store, created and migrated by this process's
    client before a server opens it (the project server serves it; see `start`)."""
    from zenml.client import Client
    from zenml.enums import StoreType

    store = Client().zen_store
    url = str(store.url)
    if store.type != StoreType.SQL or not url.startswith("sqlite:"):
        raise ServerError(
            f"The project server serves this checkout's own SQLite ZenML store, but the ZenML "
            f"client uses {url}. Unset ZENML_STORE_URL (or run `zenml logout`) and run "
            "`mlops server start` again."
        )
    return url


@dataclass
class _Boot:
    """A server process that has imported ZenML's server app and waits to be told its store.

    Its listening socket was bound here and handed over at spawn, so no other process can take
    the port meanwhile. Its stdin stays open until `kept`: end of input before that (this process
    failed, was interrupted or killed) makes it exit, before or after it opened its store."""

    process: subprocess.Popen[bytes]
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _say(self, line: str, close: bool = False) -> None:
        stdin = self.process.stdin
        if stdin is None:
            return
        # A process that already exited cannot take the line: `start` reports its exit code.
        with contextlib.suppress(OSError):
            stdin.write((line + "\n").encode())
            stdin.flush()
        if close:
            with contextlib.suppress(OSError):
                stdin.close()

    def serve(self, store_url: str) -> None:
        """Hand the process its store; from here on it opens the store and serves it."""
        self._say(json.dumps({"store_url": store_url}))

    def kept(self) -> None:
        """The server is recorded: it outlives this process from now on."""
        self._say(KEPT, close=True)

    def abandon(self) -> None:
        """Let the process go: end of input makes it exit, then make sure."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        _terminate(self.process.pid)


# A server process spawned ahead of `start` by `boot_early` (this process only).
_early: _Boot | None = None


def _spawn() -> _Boot:
    root = server_dir()
    root.mkdir(parents=True, exist_ok=True)
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        port = int(listener.getsockname()[1])
        command = [
            sys.executable,
            "-m",
            "mlops_platform.infra.server_boot",
            str(listener.fileno()),
        ]
        with open(root / LOG, "ab") as log:
            process = subprocess.Popen(
                command,
                env=server_environment(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,
                start_new_session=True,
                cwd=root,
                pass_fds=(listener.fileno(),),
            )
    return _Boot(process, port, root)


def boot_early() -> None:
    """Spawn the server process now, so that its imports (about 4 s) run beside this process's
    own work; the next `start` in this process adopts it. It opens no store before `start` says
    which, and exits when this process ends without one."""
    global _early
    running = read_record()
    if _early is None and not (running and _alive(running.pid)):
        _early = _spawn()


def _adopt_early() -> _Boot | None:
    global _early
    boot, _early = _early, None
    if boot is None:
        return None
    if boot.root != server_dir() or boot.process.poll() is not None:
        boot.abandon()
        return None
    return boot


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    """One `start` at a time per state directory (two would serve one database twice)."""
    root = server_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start(
    timeout: float = START_TIMEOUT_SECONDS,
    store_url: str | Callable[[], str] | None = None,
) -> ServerRecord:
    """Start the project server (or return the running one) and wait until it answers.

    ``store_url``: serve that SQL database instead of the server's own: `mlops server start` and
    the tests serve the checkout's own store (`local_store_url`), so the server and the commands
    see the same runs, models and accounts. A callable is called once the server process is
    spawned, so that creating and migrating the store overlaps the server's imports (and is
    called too when a server already runs, for its checks); the server opens the store only after
    it returns. Whatever fails or interrupts this function stops the process it spawned.
    """
    with _starting():
        running = read_record()
        if running and _alive(running.pid) and healthy(running.url):
            early = _adopt_early()
            if early is not None:
                early.abandon()
            if callable(store_url):
                store_url()
            return running
        boot = _adopt_early() or _spawn()
        try:
            chosen = store_url() if callable(store_url) else store_url
            boot.serve(chosen or f"sqlite:///{boot.root / 'zenml.db'}")
            record = _wait_until_healthy(boot, timeout)
            _write_private(boot.root / RECORD, json.dumps(asdict(record)))
        except BaseException:
            boot.abandon()
            raise
        boot.kept()
        return record


def _wait_until_healthy(boot: _Boot, timeout: float) -> ServerRecord:
    process = boot.process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(
                f"The ZenML server exited with code {process.returncode} while starting; see "
                f"{boot.root / LOG}."
            )
        # The port is this process's socket (bound by us, handed over): whoever answers is it.
        if healthy(boot.url):
            return ServerRecord(boot.url, boot.port, process.pid)
        time.sleep(POLL_SECONDS)
    raise ServerError(
        f"The ZenML server did not answer on {boot.url} within {timeout:g} s; see "
        f"{boot.root / LOG}."
    )


def warm_up(url: str) -> None:
    """Have the server build what it builds on its first API request (FastAPI prepares its
    routes then: about 1.2 s here), with a request that needs no account (it answers 401)."""
    with contextlib.suppress(ServerError):
        _request(f"{url}{API}/current-user")


def start_with_accounts(
    names: Iterable[str], store_url: str | Callable[[], str] | None = None
) -> tuple[ServerRecord, dict[str, str]]:
    """`start`, then `create_accounts_in_store` while the server warms up (`warm_up`)."""
    record = start(store_url=store_url)
    names = list(names)
    with ThreadPoolExecutor(max_workers=1) as pool:
        warming = pool.submit(warm_up, record.url)
        retire_accounts(names)
        created = create_accounts_in_store(names)
        warming.result()
    return record, created


def _terminate(pid: int) -> None:
    """Stop the server process group we started (SIGTERM, then SIGKILL after a grace period)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def stop() -> ServerRecord | None:
    """Stop the project server if `start` recorded one; returns what was stopped."""
    record = read_record()
    if record is None:
        return None
    if _alive(record.pid):
        _terminate(record.pid)
    (server_dir() / RECORD).unlink(missing_ok=True)
    return record


def status() -> dict[str, Any]:
    record = read_record()
    accounts = sorted(path.stem for path in accounts_dir().glob("*.key"))
    if record is None:
        return {"running": False, "url": None, "accounts": accounts}
    return {
        "running": _alive(record.pid) and healthy(record.url),
        "url": record.url,
        "pid": record.pid,
        "accounts": accounts,
    }


def _request(
    url: str,
    token: str | None = None,
    payload: Mapping[str, Any] | None = None,
    form: Mapping[str, str] | None = None,
) -> Any:
    headers = {"Accept": "application/json"}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = error.read()[:300].decode(errors="replace")
        raise ServerError(
            f"The ZenML server answered {error.code} for {url}: {detail}", error.code
        ) from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise ServerError(f"Cannot reach the ZenML server at {url}: {error}") from error


def admin_token(url: str) -> str:
    values = _secrets()
    answer = _request(
        f"{url}{API}/login", form={"username": ADMIN, "password": values["admin_password"]}
    )
    return str(answer["access_token"])


def key_path(name: str) -> Path:
    return accounts_dir() / f"{name}.key"


def create_accounts_in_store(names: Iterable[str]) -> dict[str, str]:
    """One service account with its own API key per person (existing keys are kept), created
    through this process's ZenML client on the SQL store the project server serves, plus the
    dashboard's admin user. Returns the accounts created: name -> account id."""
    from zenml.client import Client
    from zenml.exceptions import EntityExistsError

    client = Client()
    with contextlib.suppress(EntityExistsError):
        # The dashboard's login (`mlops dashboard start`): the store's own default user has no
        # password, and the server does not create its admin on a database that already exists.
        client.create_user(ADMIN, password=_secrets()["admin_password"], is_admin=True)
    deactivate_default_user(client)
    created = {}
    for name in sorted(set(names)):
        if key_path(name).is_file():
            continue
        made_here = accounts_dir() / f"{name}.id"
        try:
            if made_here.is_file():
                # Retired here (`retire_accounts`) and named in a policy again: the same account
                # (its audit bindings hold its id) comes back with a new key; its old keys (a
                # copy kept elsewhere) are deleted first, so they never log in again.
                account = client.update_service_account(made_here.read_text().strip(), active=True)
                for old_key in client.list_api_keys(account.id, size=100).items:
                    client.delete_api_key(account.id, old_key.id)
            else:
                account = client.create_service_account(
                    name=name, description=f"{name} (test role)"
                )
        except EntityExistsError as error:
            raise ServerError(
                f"The project server already has an account {name!r}, but this checkout has no "
                f"key for it ({key_path(name)}); a key is shown once, when it is made. Restore "
                "the key file from a backup, or have the server's admin give that account a new "
                "API key and save it there (owner-only)."
            ) from error
        api_key = client.create_api_key(account.id, name="mlops", description=f"key of {name}")
        if not api_key.key:
            raise ServerError(f"The ZenML store returned no API key value for {name}.")
        _write_private(key_path(name), api_key.key)
        # The account made for this person, kept so that the name can be bound to it in every
        # audit database, also one created later (`trust.identity.bind_project_accounts`).
        _write_private(accounts_dir() / f"{name}.id", str(account.id))
        created[name] = str(account.id)
    return created


def retire_accounts(keep: Iterable[str]) -> list[str]:
    """Deactivate, on the store the project server serves, each account this state directory
    made for a person no longer named in any approval policy (``keep``), and remove its key
    here; returns their names. Day-one review: people removed from the roles kept working keys
    and accounts. A deactivated account's key (a copy elsewhere too) no longer logs in; the
    account and its audit bindings stay, so their records still name them. Named again in a
    policy, the same account is activated again with a new key (`create_accounts_in_store`)."""
    from zenml.client import Client

    client = Client()
    wanted = set(keep)
    retired = []
    for name, account_id in created_accounts().items():
        if name in wanted:
            continue
        with contextlib.suppress(KeyError):  # deleted on the server already: nothing logs in
            client.update_service_account(account_id, active=False)
        key_path(name).unlink(missing_ok=True)
        _token_path(name).unlink(missing_ok=True)
        retired.append(name)
    return retired


def created_accounts() -> dict[str, str]:
    """Name -> id of each account `create_accounts_in_store` made in this state directory."""
    return {
        path.stem: path.read_text().strip()
        for path in sorted(accounts_dir().glob("*.id"))
        if key_path(path.stem).is_file()
    }


def deactivate_default_user(client: Any) -> None:
    """Deactivate the admin user ZenML creates with an empty password in a store made by a
    client (`default`): the server would give anyone who reaches its port an admin token for
    it (a login with no password), and an admin can add an API key to any person's account.
    The client working on the database directly still acts as that user; a deactivated user
    cannot log in to the server."""
    from zenml.constants import DEFAULT_USERNAME, ENV_ZENML_DEFAULT_USER_NAME
    from zenml.models import UserUpdate

    name = os.getenv(ENV_ZENML_DEFAULT_USER_NAME, DEFAULT_USERNAME)
    try:
        user = client.get_user(name, allow_name_prefix_match=False)
    except KeyError:
        return
    if name != ADMIN and user.active:
        client.zen_store.update_user(user.id, UserUpdate(active=False))


def account_environment(name: str) -> dict[str, str]:
    """The variables that make a ZenML client (another process: a CI job, a shell) authenticate
    to the project server as ``name`` with ``name``'s key, all its work going through the server.

    Each person gets their own client config folder, so cached credentials never mix.
    """
    record = _running_record()
    return {
        "ZENML_CONFIG_PATH": str(accounts_dir() / name / "zenml"),
        "ZENML_STORE_URL": record.url,
        "ZENML_STORE_API_KEY": _read_key(name),
    }


def _running_record() -> ServerRecord:
    record = read_record()
    if record is None:
        raise ServerError("The project ZenML server is not running; run `mlops server start`.")
    return record


def _read_key(name: str) -> str:
    path = key_path(name)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in accounts_dir().glob("*.key"))) or "none"
        raise ServerError(
            f"No credentials for {name!r} on the project server (accounts: {known}). "
            "`mlops server start` creates one per person in configs/base/approvals.yaml."
        )
    return path.read_text().strip()


@dataclass(frozen=True)
class AccountLogin:
    """What the project server said about the key this process acts with."""

    url: str
    user_id: str
    user_name: str
    service_account: bool


def is_plain_name(name: str) -> bool:
    """Whether `mlops --as NAME` may use ``name``: a person's name (any script, spaces and
    apostrophes included; lookalikes are the approval policy's to refuse), never a path, since
    it names the person's key file."""
    return (
        bool(name)
        and not name.startswith((".", " "))
        and not any(c in "/\\" or not c.isprintable() for c in name)
    )


# The account this process acts as (`mlops --as NAME`), and what the server said about its key.
_acting: str | None = None
_login: AccountLogin | None = None


def use_account(name: str) -> None:
    """Act as ``name`` from now on in this process: who acts is what the project server says
    about ``name``'s API key (`account_login`), asked once per command.

    The ZenML client keeps working on the SQLite database the project server serves (the server
    and this process share it; see `start`), so pipelines and lookups cost what they cost without
    a server. Fails (ServerError) when the server is not running or ``name`` has no key here.
    """
    global _acting, _login
    if not is_plain_name(name):
        raise ServerError(
            f"--as {name!r} is not a person's name: a name has no '/', '\\' or control "
            "characters and does not start with '.' or a space (it names the person's key "
            "file), as in configs/base/approvals.yaml."
        )
    _running_record()
    _read_key(name)
    _acting, _login = name, None


def stop_acting() -> None:
    """Forget `use_account`: later commands in this process act as nobody in particular."""
    global _acting, _login
    _acting, _login = None, None


def acting_as() -> str | None:
    return _acting


def _token_path(name: str) -> Path:
    return accounts_dir() / f"{name}.token"


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _cached_token(name: str, key: str, url: str) -> str | None:
    """A token the server gave earlier for this very key on this server, while still fresh."""
    try:
        raw = json.loads(_token_path(name).read_text())
        fresh = float(raw["until"]) > time.time()
        same = (raw["key_sha256"], raw["url"]) == (_key_digest(key), url)
        return str(raw["token"]) if fresh and same else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cache_token(name: str, key: str, url: str, token: str, expires_in: Any) -> None:
    """Keep the token next to the key (owner-only file), tied to the key's digest."""
    reuse = TOKEN_REUSE_SECONDS
    if isinstance(expires_in, int | float) and expires_in > 0:
        reuse = min(reuse, float(expires_in) - 60)
    if reuse > 0:
        record = {"key_sha256": _key_digest(key), "url": url, "token": token}
        _write_private(_token_path(name), json.dumps({**record, "until": time.time() + reuse}))


def account_login() -> AccountLogin | None:
    """The account the server says this process's key belongs to; None without `--as`.

    The key is exchanged for a token at the server (ZenML's API-key grant), and the server's
    `current-user` answer is the identity: a key the server does not know is refused there. The
    token is reused by later commands for up to TOKEN_REUSE_SECONDS while the key file is the
    same (the server still checks it, and the account, on every `current-user`).
    """
    global _login
    if _acting is None:
        return None
    if _login is not None:
        return _login
    record = _running_record()
    key = _read_key(_acting)
    user = None
    cached = _cached_token(_acting, key, record.url)
    if cached is not None:
        try:
            user = _request(f"{record.url}{API}/current-user", cached)
        except ServerError as error:
            if error.status != 401:
                raise
    if user is None:
        answer = _request(
            f"{record.url}{API}/login", form={"grant_type": "zenml-api-key", "password": key}
        )
        token = str(answer["access_token"])
        user = _request(f"{record.url}{API}/current-user", token)
        _cache_token(_acting, key, record.url, token, answer.get("expires_in"))
    body = user.get("body") or {}
    if str(user["name"]) != _acting:
        raise ServerError(
            f"The key in {key_path(_acting)} belongs to account {user['name']!r} on the project "
            f"server, not to {_acting!r}: acting as {_acting!r} with it would record another "
            "person. Someone changed the key file or the server's accounts; nothing was done. "
            "Find out who, and act with your own key."
        )
    _login = AccountLogin(
        url=record.url.rstrip("/"),
        user_id=str(user["id"]),
        user_name=str(user["name"]),
        service_account=bool(body.get("is_service_account", user.get("is_service_account"))),
    )
    return _login
