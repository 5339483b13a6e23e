"""The GitHub workflows call commands that exist, and their main paths run end to end, locally.

Static checks (fast): every `mlops` command line in a `run:` block resolves against the real click
command tree (subcommands, options, required options, choices), every `make` target exists,
every `python -m` module imports, actions are pinned to commit SHAs, `run:` blocks hold no
`${{ }}`, permissions are least-privilege, promotions cannot race, and no release tag reaches
`--version`.

End to end (slow): the main path of every workflow runs in order, as GitHub would run it: each
`run:` block through `bash -eo pipefail`, with GitHub's variables set, `${{ }}` in `env:`
evaluated, GITHUB_OUTPUT and GITHUB_PATH honoured, in a workspace that stands for the checkout.
PR training -> a person deploys the staging manifest naming that version (`mlops deploy`: applied,
then a no-op) -> merge (trains the merged commit, promotes it to staging) -> manual production
promotion (approval read from a local stand-in for GitHub's API) -> release (deploys the production
manifest, a no-op by then) -> batch scoring with the production model.
What is not executed, and why, is listed in NOT_EXECUTED / REMOTE_SETUP below. A command whose
subcommand is not in the CLI yet is skipped only if PENDING names it, with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer._click.exceptions import UsageError

from mlops_cli.server import people
from mlops_platform.config import config_dir
from mlops_platform.governance.approvals.policy import PRODUCTION, STAGING, load_approval_policy
from mlops_platform.infra import server
from mlops_platform.infra.deployment import load_manifest
from mlops_platform.reporting.training_comment import MARKER
from mlops_platform.trust.audit import AuditTrail
from mlops_platform.trust.signing import generate_local_keys
from tests.conftest import isolated
from tests.fake_github import FakeGitHub, approvals_path, serving
from tests.integration.helpers import (
    SYNTHETIC_BASELINE_MARGINS,
    copy_configs,
    write_synthetic_csv,
)
from tests.integration.workflows import (
    ROOT,
    Job,
    JobResult,
    Workflow,
    WorkflowRunner,
    condition_true,
    invocations,
    load_workflow,
    load_workflows,
    resolve_mlops,
)
from tests.oidc_issuer import Issuer, job_environ, running_issuer

EXPECTED_WORKFLOWS = {
    "ci.yml",
    "train-staging.yml",
    "promote-production.yml",
    "batch-inference.yml",
    "governance-audit.yml",
}
# Subcommands owned by work in flight: until they exist, their command lines are skipped (with
# this reason) instead of failing. Any other unknown subcommand fails.
PENDING: dict[str, str] = {}
# `make` targets the end-to-end run does not execute.
NOT_EXECUTED = {
    "install": "the test runs inside the .venv that `make install` builds",
    "stack-requirements": "would add remote-stack integrations to the shared .venv; "
    "tests/integration/test_stack_files.py installs the same list in its own venv",
    "lint": "runs as its own CI job and is not part of a workflow's behaviour",
    "test": "the test suite itself",
}
# Registering the staging/production stacks needs a ZenML server; the same command registers the
# local stack instead, and test_stack_files.py validates the staging/production files.
REMOTE_SETUP = re.compile(r"mlops stack (setup|use) --env (staging|production)")
SHA_PIN = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+(\.\d+)*\s*$")
REPOSITORY = "example-org/readmission-mlops"
RUN_ID = "4242"
TOKEN = "test-workflow-token"
# The CI's own account on the ZenML server (ZENML_STORE_API_KEY in the workflows).
CI_ACCOUNT = "ci"
RELEASE_REF = "refs/tags/v1.0.0"


def committed_allowed_refs(env: str) -> list[str]:
    """The refs whose jobs may act in ``env``, as the committed configs say (env over base)."""
    found = []
    for layer in ("base", env):
        raw = yaml.safe_load((config_dir() / layer / "platform.yaml").read_text())
        refs = ((raw.get("identity") or {}).get("github_oidc") or {}).get("allowed_refs")
        found = refs if refs is not None else found
    return list(found)


def workflow_ref(workflow_file: str, event: str) -> str:
    """The ref GitHub runs a workflow's event on (and signs into its jobs' tokens): a merge to
    `staging` runs on `staging`, a pull request on its merge ref, a release on its tag."""
    if event == "release":
        return RELEASE_REF
    if event == "pull_request":
        return "refs/pull/7/merge"
    if workflow_file == "train-staging.yml":
        return "refs/heads/staging"
    return "refs/heads/main"


def all_invocations() -> list[tuple[str, list[str]]]:
    found = []
    for workflow in load_workflows():
        for job in workflow.jobs.values():
            for step in job.steps:
                for words in invocations(step.run or ""):
                    found.append(
                        (f"{workflow.name}/{job.id}/{step.name}: {' '.join(words)}", words)
                    )
    return found


# --- static checks ----------------------------------------------------------------------------


def test_every_workflow_of_the_issue_exists_and_has_commands() -> None:
    assert {w.name for w in load_workflows()} == EXPECTED_WORKFLOWS
    assert len(all_invocations()) >= 20


@pytest.mark.parametrize(
    ("where", "words"), all_invocations(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_workflow_command_resolves(where: str, words: list[str]) -> None:
    program = Path(words[0]).name
    if program == "make":
        makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
        targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.MULTILINE))
        variables = [w.split("=", 1)[0] for w in words[1:] if "=" in w]
        missing = [w for w in words[1:] if "=" not in w and w not in targets]
        assert not missing, f"{where}: no Makefile target {missing}"
        for name in variables:
            assert f"$({name})" in makefile, f"{where}: the Makefile never reads {name}"
        return
    if program == "python":
        module = words[2]
        assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"
        return
    try:
        resolved = resolve_mlops(words)
    except UsageError as error:
        pytest.fail(f"{where}: {error.format_message()}")
    if resolved.missing is not None:
        if resolved.missing in PENDING:
            pytest.skip(
                f"`mlops {resolved.missing}` is not in the CLI yet: {PENDING[resolved.missing]}"
            )
        pytest.fail(f"{where}: `mlops` has no command {' '.join(resolved.path)!r}")


def test_a_renamed_option_is_caught() -> None:
    with pytest.raises(UsageError, match="--stage"):
        resolve_mlops(["mlops", "train", "--stage", "staging"])
    assert resolve_mlops(["mlops", "no-such-command"]).missing == "no-such-command"


@pytest.mark.parametrize("path", sorted((ROOT / ".github" / "workflows").glob("*.yml")))
def test_actions_are_pinned_to_commit_shas(path: Path) -> None:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if "uses:" in line]
    assert lines, f"{path.name} uses no action"
    unpinned = [line.strip() for line in lines if not SHA_PIN.match(line)]
    assert not unpinned, f"{path.name}: pin to a full SHA with a `# vX` comment: {unpinned}"


@pytest.mark.parametrize("workflow", load_workflows(), ids=lambda w: w.name)
def test_run_blocks_hold_no_expressions_and_secrets_pass_only_through_env(
    workflow: Workflow,
) -> None:
    for job in workflow.jobs.values():
        for step in job.steps:
            assert "${{" not in (step.run or ""), f"{job.id}/{step.name}: pass it through env:"
            assert "secrets." not in json.dumps(step.with_), f"{job.id}/{step.name}: with: secret"


@pytest.mark.parametrize("workflow", load_workflows(), ids=lambda w: w.name)
def test_permissions_are_least_privilege(workflow: Workflow) -> None:
    assert workflow.raw.get("permissions") == {}, "deny everything at the top, grant per job"
    allowed_writes = {("train-staging.yml", "comment"): {"pull-requests"}}
    allowed_writes[("batch-inference.yml", "report")] = {"issues"}
    allowed_writes[("governance-audit.yml", "report")] = {"issues"}
    # Jobs that promote act with their OIDC token, the verified identity of the job.
    for job_id in ("dispatch", "release"):
        allowed_writes[("promote-production.yml", job_id)] = {"id-token"}
    allowed_writes[("train-staging.yml", "promote")] = {"id-token"}
    for job in workflow.jobs.values():
        assert isinstance(job.permissions, dict), f"{job.id} must declare its permissions"
        writes = {scope for scope, level in job.permissions.items() if level == "write"}
        assert writes == allowed_writes.get((workflow.name, job.id), set()), job.id


def test_promotions_cannot_race() -> None:
    groups: dict[str, set[str]] = {}
    for workflow in load_workflows():
        for job in workflow.jobs.values():
            scripts = " ".join(step.run or "" for step in job.steps)
            if not re.search(r"mlops (promote|deploy)\b", scripts):
                continue
            concurrency = job.concurrency or workflow.raw.get("concurrency")
            assert concurrency, f"{workflow.name}/{job.id} promotes without a concurrency group"
            assert concurrency["cancel-in-progress"] is False, "never cancel a promotion halfway"
            stage = "production" if "production" in scripts else "staging"
            groups.setdefault(stage, set()).add(concurrency["group"])
    assert groups == {"staging": {"promotion-staging"}, "production": {"promotion-production"}}


def test_a_release_tag_never_reaches_a_version_option() -> None:
    tag_sources = ("github.ref", "release.tag_name", "github.event.release", "ref_name")
    for workflow in load_workflows():
        for job in workflow.jobs.values():
            env = {**workflow.env, **job.env}
            tainted = {name for name, value in env.items() if any(t in value for t in tag_sources)}
            for step in job.steps:
                for words in invocations(step.run or ""):
                    if "--version" in words:
                        value = words[words.index("--version") + 1]
                        assert not any(name in value for name in tainted), (workflow.name, words)
                        assert re.fullmatch(r"\$\{\w+\}|\d+|latest", value), (workflow.name, value)


def test_production_promotions_record_the_production_environment_reviewers() -> None:
    workflow = load_workflow(ROOT / ".github" / "workflows" / "promote-production.yml")
    assert set(workflow.triggers) == {"release", "workflow_dispatch"}
    assert workflow.triggers["workflow_dispatch"]["inputs"]["version"]["required"] is True
    for job in workflow.jobs.values():
        assert job.environment == "production", f"{job.id} must wait for the required reviewers"
        assert job.permissions.get("actions") == "read", "reading the reviewers needs actions: read"
        commands = [w for step in job.steps for w in invocations(step.run or "")]
        recorder = next(w for w in commands if w[1] in ("approve", "deploy"))
        assert recorder[recorder.index("--from-github-environment") + 1] == "production"


def test_the_release_deploys_the_committed_manifest() -> None:
    workflow = load_workflow(ROOT / ".github" / "workflows" / "promote-production.yml")
    manifest = ROOT / workflow.jobs["release"].env["DEPLOY_MANIFEST"]
    assert load_manifest(manifest).stage == PRODUCTION


def test_the_batch_issue_opens_on_failure_drift_or_degraded_outcomes_only() -> None:
    job = load_workflow(ROOT / ".github" / "workflows" / "batch-inference.yml").jobs["report"]

    def opens(result: str, drift: str, outcomes: str = "") -> bool:
        needs = {"score": {"result": result, "outputs": {"drift": drift, "outcomes": outcomes}}}
        return condition_true(job.condition, {"needs": needs})

    assert opens("failure", "")
    assert opens("success", "true")
    assert not opens("success", "false")
    assert opens("success", "false", "degraded")
    assert not opens("success", "false", "ok")
    assert not opens("success", "false", "not assessed")


def test_staging_credentials_never_reach_a_fork() -> None:
    job = load_workflow(ROOT / ".github" / "workflows" / "train-staging.yml").jobs["train"]

    def trains(head_repository: str) -> bool:
        event = {"pull_request": {"head": {"repo": {"full_name": head_repository}}}}
        github = {"event_name": "pull_request", "repository": "acme/readmission", "event": event}
        return condition_true(job.condition, {"github": github})

    assert job.environment == "staging"
    assert trains("acme/readmission")
    assert not trains("mallory/readmission")


def test_batch_inference_runs_only_from_the_protected_branch() -> None:
    job = load_workflow(ROOT / ".github" / "workflows" / "batch-inference.yml").jobs["score"]

    def scores(ref: str) -> bool:
        return condition_true(job.condition, {"github": {"ref": ref}})

    assert scores("refs/heads/main")
    assert not scores("refs/heads/feature")
    assert not scores("refs/tags/v1")


def test_the_governance_audit_reads_production_from_the_protected_branch_and_moves_nothing() -> (
    None
):
    workflow = load_workflow(ROOT / ".github" / "workflows" / "governance-audit.yml")
    verify = workflow.jobs["verify"]
    assert condition_true(verify.condition, {"github": {"ref": "refs/heads/main"}})
    assert not condition_true(verify.condition, {"github": {"ref": "refs/heads/feature"}})
    commands = [w for step in verify.steps for w in invocations(step.run or "")]
    mlops = [w[1:] for w in commands if Path(w[0]).name == "mlops"]
    # Read-only commands only: nothing it runs promotes, approves, reconciles or records.
    assert [w[0] for w in mlops] == ["stack", "audit", "check"]
    assert mlops[0][:2] == ["stack", "use"]  # activates the registered stack, registers nothing
    assert mlops[1][:2] == ["audit", "verify"] and "--all-signatures" in mlops[1]
    assert "production" in mlops[1]

    def reports(result: str) -> bool:
        return condition_true(
            workflow.jobs["report"].condition, {"needs": {"verify": {"result": result}}}
        )

    assert reports("failure") and not reports("success")


# --- end to end -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cast:
    author: str  # trains; holds no approver role
    staging_requester: str
    production_requester: str
    approver: str  # production reviewer in the GitHub environment


def pick_cast() -> Cast:
    production = load_approval_policy(PRODUCTION)
    staging = load_approval_policy(STAGING)

    def members(policy: Any, roles: tuple[str, ...]) -> list[str]:
        return [person for role in roles for person in policy.roles[role]]

    approver = members(production, production.stages.production.approvers)[0]
    requester = next(
        p for p in members(production, production.stages.production.requesters) if p != approver
    )
    staging_requester = next(
        p for p in members(staging, staging.stages.staging.requesters) if p != approver
    )
    everyone = [p for people in production.roles.values() for p in people]
    author = next(p for p in everyone if p not in (approver, requester, staging_requester))
    return Cast(author, staging_requester, requester, approver)


def logical_lines(script: str) -> list[str]:
    """Physical lines joined where they end with a backslash (shell line continuation)."""
    lines: list[str] = []
    pending = ""
    for line in script.splitlines():
        pending += line + "\n"
        if not line.endswith("\\"):
            lines.append(pending.rstrip("\n"))
            pending = ""
    return [*lines, pending.rstrip("\n")] if pending else lines


def rewrite(script: str) -> tuple[str, str | None]:
    """The script as the test runs it, and why it differs from the workflow's (None: same)."""
    lines, reasons = [], []
    for line in logical_lines(script):
        words = invocations(line)
        targets = [w[1] for w in words if Path(w[0]).name == "make" and len(w) > 1]
        if words and targets and all(t in NOT_EXECUTED for t in targets):
            reasons += [f"make {t}: {NOT_EXECUTED[t]}" for t in targets]
            continue
        if REMOTE_SETUP.search(line):
            reasons.append("remote stack setup replaced by the local stack (needs a ZenML server)")
            line = REMOTE_SETUP.sub(r"mlops stack \1 --env local", line)
        lines.append(line)
    return "\n".join(lines), "; ".join(reasons) or None


class Chain:
    """Runs the workflows' main paths in order, in one workspace and one local state."""

    def __init__(self, root: Path, cast: Cast, api_url: str, issuer: Issuer, zenml: str) -> None:
        self.root = root
        self.cast = cast
        self.issuer = issuer
        self.zenml_url = zenml
        self.workspace = root / "checkout"
        self.workspace.mkdir()
        (self.workspace / ".venv").symlink_to(ROOT / ".venv")
        shutil.copytree(ROOT / "deploy", self.workspace / "deploy")
        self.data = write_synthetic_csv(root / "encounters.csv")
        self.batch = write_synthetic_csv(root / "batch.csv", patients=2000, seed=23)
        local_policy = yaml.safe_load((config_dir() / "local" / "policy.yaml").read_text())
        local_policy["baseline"] = SYNTHETIC_BASELINE_MARGINS
        # Local too, so that production >= staging >= local strictness still holds.
        overrides: dict[str, dict[str, Any]] = {
            "local/policy.yaml": local_policy,
            "staging/policy.yaml": local_policy,
            "production/policy.yaml": local_policy,
        }
        # Who acts: the CI's account on this ZenML server, or a job's OIDC token from the issuer.
        # The refs a token may come from are the environment's own (`configs`), as committed.
        for env in (STAGING, PRODUCTION):
            platform = yaml.safe_load((config_dir() / env / "platform.yaml").read_text())
            platform["identity"]["zenml_server_urls"] = [zenml]
            oidc = issuer.settings(repository=REPOSITORY, environment=env, api_url=api_url)
            platform["identity"]["github_oidc"] = {
                **oidc.model_dump(mode="json"),
                "allowed_refs": committed_allowed_refs(env),
            }
            overrides[f"{env}/platform.yaml"] = platform
        self.configs = copy_configs(root / "configs", overrides)
        state = root / "state"
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "ZENML_", "MLFLOW_", "MLOPS_", "READMISSION_"))
        }
        keep.pop("PYTHONDONTWRITEBYTECODE", None)
        self.base_env = {
            **keep,
            "MLOPS_STATE_DIR": str(state),
            "ZENML_CONFIG_PATH": str(state / "zenml"),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "MLOPS_CONFIG_DIR": str(self.configs),
            "GITHUB_ACTIONS": "true",
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": api_url,
            "GITHUB_RUN_ID": RUN_ID,
            "GITHUB_SHA": sha or "0" * 40,
            "GITHUB_WORKSPACE": str(self.workspace),
        }
        self.results: dict[str, dict[str, JobResult | None]] = {}
        self.log: list[str] = []
        self.staging_promotion: dict[str, Any] | None = None
        self.staging_deployments: list[dict[str, Any]] | None = None
        # Inside the state directory: this is a local checkout standing in for GitHub, so the
        # local approval policy applies (the only one that accepts GITHUB_ACTOR's source,
        # github-actions, which is a variable and no evidence), and so does the local trust rule
        # of the staging/production launch checks (runtime/preconditions.py).
        self.audit_url = f"sqlite:///{state / 'audit.db'}"
        # The platform team creates each environment's trail once (`mlops audit init`).
        AuditTrail.initialize(self.audit_url).close()
        # ...and the local writer key, as `mlops setup` makes it on a checkout.
        generate_local_keys(state / "keys")

    def context(self, event: str, inputs: dict[str, str]) -> dict[str, Any]:
        """What `${{ }}` may read. Unset vars and secrets point at remote infrastructure (ZenML
        server, registry, cluster, Slack, GitHub code repository); empty, they are left unset
        and the local stack is used."""
        return {
            "github": {
                "event_name": event,
                "ref": "refs/heads/main",
                "event": {"pull_request": {"head": {"repo": {"full_name": REPOSITORY}}}},
                "server_url": "https://github.com",
                "repository": REPOSITORY,
                "run_id": RUN_ID,
                "token": TOKEN,
            },
            "inputs": _Blank(**inputs),
            "vars": _Blank(
                ZENML_STORE_URL=self.zenml_url,
                READMISSION_DATA_STAGING=str(self.data),
                READMISSION_DATA_PRODUCTION=str(self.data),
                MLOPS_BATCH_INPUT=str(self.batch),
                MLOPS_BATCH_OUTPUT=str(self.root / "batch-results"),
            ),
            "secrets": _Blank(
                MLOPS_AUDIT_DB_URL=self.audit_url,
                ZENML_STORE_API_KEY=server.key_path(CI_ACCOUNT).read_text().strip(),
            ),
        }

    def run(self, workflow_file: str, event: str, actor: str, **inputs: str) -> dict[str, Any]:
        key = f"{workflow_file}:{event}"
        if key not in self.results:
            workflow = load_workflow(ROOT / ".github" / "workflows" / workflow_file)
            skip_if_pending(workflow)
            env = {**self.base_env, "GITHUB_ACTOR": actor, "GITHUB_EVENT_NAME": event}
            runner = WorkflowRunner(
                self.workspace,
                env,
                self.context(event, inputs),
                rewrite,
                lambda job: self.job_token(job, event, actor, workflow_ref(workflow_file, event)),
            )
            self.results[key] = runner.run_workflow(workflow)
            self.log += runner.log
        return self.results[key]

    def job_token(self, job: Job, event: str, actor: str, ref: str) -> dict[str, str]:
        """What GitHub gives a job with `id-token: write`: a token endpoint, here the issuer's,
        handing out a token for this repository, run, ref, environment and actor."""
        if (job.permissions or {}).get("id-token") != "write":
            return {}
        environment = job.environment
        if isinstance(environment, dict):
            environment = environment.get("name")
        self.issuer.tokens[self.issuer.settings().audience] = self.issuer.token(
            actor=actor,
            repository=REPOSITORY,
            run_id=RUN_ID,
            environment=environment,
            ref=ref,
        )
        return job_environ(self.issuer)

    def output(self, name: str) -> dict[str, Any]:
        return json.loads((self.workspace / name).read_text().strip().splitlines()[-1])

    def mlops(self, *args: str, actor: str) -> subprocess.CompletedProcess[str]:
        """A person's `mlops` command in the checkout, authenticated with their own account."""
        env = {
            **self.base_env,
            "MLOPS_AUDIT_DB_URL": self.audit_url,
            "READMISSION_DATA": str(self.data),
        }
        env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
        return subprocess.run(
            ["mlops", "--as", actor, *args],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def deploy_staging(self) -> list[dict[str, Any]]:
        """After the pull request's training: the staging manifest asks for that version, and
        `mlops deploy` runs twice (apply, then nothing to do)."""
        if self.staging_deployments is None:
            assert_succeeded(
                self.run("train-staging.yml", "pull_request", self.cast.author), "train"
            )
            manifest = self.workspace / "deploy" / "staging.yaml"
            raw = yaml.safe_load(manifest.read_text())
            raw["model"]["version"] = str(self.output("training-summary.json")["model_version"])
            manifest.write_text(yaml.safe_dump(raw))
            self.staging_deployments = []
            for _ in range(2):
                done = self.mlops(
                    "deploy",
                    "--manifest",
                    "deploy/staging.yaml",
                    "--json",
                    actor=self.cast.staging_requester,
                )
                assert done.returncode == 0, done.stderr[-5000:]
                self.staging_deployments.append(json.loads(done.stdout))
        return self.staging_deployments

    def merge_to_staging(self) -> dict[str, Any]:
        """Pull request, staging manifest, then the merge job of train-staging (which trains
        the merged commit again); the merge job's promotion record, kept because the production
        promotion writes promotion.json again."""
        if self.staging_promotion is None:
            self.deploy_staging()
            results = self.run("train-staging.yml", "push", self.cast.staging_requester)
            assert_succeeded(results, "promote")
            self.staging_promotion = self.output("promotion.json")
        return self.staging_promotion


class _Blank(dict[str, str]):
    """`vars`, `secrets` and `inputs` as GitHub has them: any name, empty unless set."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return self.get(key, "")


def skip_if_pending(workflow: Workflow) -> None:
    for job in workflow.jobs.values():
        for step in job.steps:
            for words in invocations(step.run or ""):
                if Path(words[0]).name != "mlops":
                    continue
                missing = resolve_mlops(words).missing
                if missing is not None and missing in PENDING:
                    pytest.skip(f"`mlops {missing}` is not in the CLI yet: {PENDING[missing]}")


def assert_succeeded(results: dict[str, JobResult | None], *jobs: str) -> None:
    for name in jobs:
        job = results[name]
        assert job is not None, f"job {name} did not run"
        for step in job.steps:
            assert step.outcome != "failure", (
                f"{name}/{step.step.name} failed:\n{step.stdout[-3000:]}\n{step.stderr[-5000:]}"
            )
            assert "missing paths" not in step.note, f"{name}/{step.step.name}: {step.note}"


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    cast = pick_cast()
    review = {
        "user": {"login": cast.approver},
        "state": "approved",
        "comment": "Model report and subgroup table reviewed",
        "environments": [{"name": "production"}],
    }
    api = FakeGitHub(approvals_path(REPOSITORY, RUN_ID), TOKEN, body=[review])
    root = tmp_path_factory.mktemp("workflows")
    with serving(api), running_issuer() as issuer, isolated(root / "state"):
        # The code behind `mlops server start`: the server serves the checkout's own store (created
        # here while the server imports), where people's commands (`mlops --as NAME`) work; the
        # jobs reach the same database through the server.
        record, _ = server.start_with_accounts(
            [*people(), CI_ACCOUNT], store_url=server.local_store_url
        )
        try:
            yield Chain(root, cast, api.url, issuer, record.url)
        finally:
            server.stop()


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_ci_runs_the_governance_check(chain: Chain) -> None:
    results = chain.run("ci.yml", "pull_request", chain.cast.author)
    assert_succeeded(results, "lint", "test")
    check = next(s for s in results["lint"].steps if s.step.name == "Governance check")
    assert not check.note.startswith("not executed")
    assert "Governance check passed" in check.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_pull_request_to_staging_trains_and_renders_the_comment(chain: Chain) -> None:
    results = chain.run("train-staging.yml", "pull_request", chain.cast.author)
    assert_succeeded(results, "train", "comment")
    assert results["promote"] is None
    summary = chain.output("training-summary.json")
    assert summary["environment"] == "staging"
    assert summary["gates"]["passed"] is True
    assert summary["code"]["git_sha"] == chain.base_env["GITHUB_SHA"], "the checkout's commit"
    assert isinstance(summary["code"]["git_dirty"], bool)
    comment = (chain.workspace / "pr-comment.md").read_text()
    assert comment.startswith(MARKER)
    assert f"version {summary['model_version']}" in comment
    for check in summary["gates"]["checks"]:
        assert f"| {check['name']} |" in comment


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_a_staging_manifest_change_is_applied_once(chain: Chain) -> None:
    first, second = chain.deploy_staging()
    assert first["needed"] is True and first["applied"] is True
    assert first["differences"] == [
        {"field": "model_version", "current": None, "desired": first["desired_version"]}
    ]
    assert first["promotion"]["target_stage"] == STAGING
    assert second["in_place"] is True and second["applied"] is False
    assert second["current_version"] == first["desired_version"]


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_merge_to_staging_promotes_the_validated_version(chain: Chain) -> None:
    promotion = chain.merge_to_staging()
    assert promotion["promoted"] is True
    assert promotion["model_version"] != chain.deploy_staging()[0]["desired_version"]
    assert promotion["target_stage"] == STAGING
    assert promotion["model_version"] == chain.output("training-summary.json")["model_version"]


def promote_to_production(chain: Chain) -> dict[str, JobResult | None]:
    """The chain up to a manual production promotion of the version merged to staging."""
    return chain.run(
        "promote-production.yml",
        "workflow_dispatch",
        chain.cast.production_requester,
        version=str(chain.merge_to_staging()["model_version"]),
        reason="Quarterly refresh after staging review",
        ticket="CHG-1234",
    )


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_manual_production_promotion_records_the_github_reviewers(chain: Chain) -> None:
    results = promote_to_production(chain)
    version = str(chain.merge_to_staging()["model_version"])
    assert_succeeded(results, "dispatch")
    assert results["release"] is None
    approval = chain.output("approval.json")
    assert [(a["approver"], a["source"]) for a in approval["approvals"]] == [
        (chain.cast.approver, "github-environment")
    ]
    promotion = chain.output("promotion.json")
    assert (promotion["promoted"], promotion["target_stage"]) == (True, PRODUCTION)
    assert promotion["model_version"] == version


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_release_applies_the_manifest_idempotently(chain: Chain) -> None:
    assert_succeeded(promote_to_production(chain), "dispatch")
    served = str(chain.merge_to_staging()["model_version"])
    manifest = chain.workspace / "deploy" / "production.yaml"
    raw = yaml.safe_load(manifest.read_text())
    raw["model"]["version"] = served
    manifest.write_text(yaml.safe_dump(raw))
    results = chain.run("promote-production.yml", "release", chain.cast.production_requester)
    assert_succeeded(results, "release")
    deployment = chain.output("deployment.json")
    assert deployment["in_place"] is True
    assert deployment["applied"] is False
    assert deployment["current_version"] == served


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_batch_inference_scores_with_the_production_model(chain: Chain) -> None:
    assert_succeeded(promote_to_production(chain), "dispatch")
    results = chain.run("batch-inference.yml", "schedule", chain.cast.production_requester)
    assert_succeeded(results, "score")
    summary = chain.output("inference-summary.json")
    assert summary["model_stage"] == PRODUCTION
    assert summary["model_version"] == str(chain.merge_to_staging()["model_version"])
    evidence = sorted(p.name for p in (chain.workspace / "batch-evidence").iterdir())
    assert evidence == ["drift_report.html", "inference-summary.json", "manifest.json"]
    assert not list((chain.workspace / "batch-evidence").glob("*.parquet")), "no patient rows"
    if summary["drift_detected"]:
        assert results["report"] is not None
    else:
        assert results["report"] is None


@pytest.mark.slow
@pytest.mark.xdist_group("workflows")
def test_the_daily_governance_audit_names_an_edited_production_record(chain: Chain) -> None:
    """The daily audit passes on the record the workflows wrote, records nothing itself, and
    fails (opening its issue) once the production approval is rewritten with raw SQL."""
    assert_succeeded(promote_to_production(chain), "dispatch")
    trail = Path(chain.audit_url.removeprefix("sqlite:///"))

    def count() -> int:
        with sqlite3.connect(trail) as connection:
            return int(connection.execute("SELECT count(*) FROM audit_events").fetchone()[0])

    before = count()
    passed = chain.run("governance-audit.yml", "schedule", chain.cast.production_requester)
    assert_succeeded(passed, "verify")
    assert passed["report"] is None
    assert chain.output("audit-verify.json")["ok"] is True
    assert count() == before  # the audit decides and records nothing

    kept = trail.read_bytes()
    try:
        with sqlite3.connect(trail) as connection:
            changed = connection.execute(
                "UPDATE audit_events SET details = replace(details, ?, ?) "
                "WHERE event_type = 'approval_recorded' AND stage = 'production'",
                (chain.cast.approver, chain.cast.production_requester),
            ).rowcount
        assert changed >= 1
        del chain.results["governance-audit.yml:schedule"]
        failed = chain.run("governance-audit.yml", "schedule", chain.cast.production_requester)
    finally:
        trail.write_bytes(kept)  # the module's later tests read the real record
        chain.results.pop("governance-audit.yml:schedule", None)
    verify = failed["verify"]
    assert verify is not None and verify.result == "failure"
    step = next(s for s in verify.steps if s.step.name.startswith("Verify every record"))
    assert step.outcome == "failure"
    written = (chain.workspace / "audit-verify.json").read_text()
    printed = [json.loads(line) for line in written.splitlines() if line.strip()]
    assert any(entry.get("ok") is False and entry.get("first_bad_seq") for entry in printed)
    check = next(s for s in verify.steps if s.step.name.startswith("Replay production"))
    assert check.outcome != "skipped", "the check runs even after the verification failed"
    assert failed["report"] is not None  # the issue is opened
