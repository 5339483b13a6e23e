"""Read the GitHub workflows as the runner does, and run their steps locally, for tests.

`load_workflows()` parses `.github/workflows/*.yml`; `invocations()` finds the `mlops`, `make` and
`python -m` commands in a `run:` script; `resolve_mlops()` checks one `mlops` command line against
the real click command tree; `WorkflowRunner` executes a job's `run:` steps with bash, as GitHub
does (`bash --noprofile --norc -eo pipefail`), with `${{ }}` in `env:` evaluated from a context
and GITHUB_OUTPUT / GITHUB_PATH honoured.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml
from typer._click import Command
from typer.core import TyperGroup

from mlops_cli.app import app

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_FD_PREFIX = re.compile(r"(?<![\w$])\d+(?=>)")
_CONTROL = {";", "&&", "||", "|", "&", "(", ")"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
INTERESTING = {"mlops", "make", "python"}


@dataclass(frozen=True)
class Step:
    job: str
    index: int
    name: str
    id: str | None
    run: str | None
    uses: str | None
    env: dict[str, str]
    condition: str | None
    with_: dict[str, Any]


@dataclass(frozen=True)
class Job:
    id: str
    condition: str | None
    env: dict[str, str]
    permissions: Any
    concurrency: Any
    environment: Any
    needs: tuple[str, ...]
    outputs: dict[str, str]
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Workflow:
    path: Path
    raw: dict[str, Any]
    triggers: dict[str, Any]
    env: dict[str, str]
    jobs: dict[str, Job]

    @property
    def name(self) -> str:
        return self.path.name


def _job(job_id: str, raw: dict[str, Any]) -> Job:
    steps = tuple(
        Step(
            job=job_id,
            index=i,
            name=str(s.get("name") or s.get("uses") or s.get("run", "")[:40]),
            id=s.get("id"),
            run=s.get("run"),
            uses=s.get("uses"),
            env={k: str(v) for k, v in (s.get("env") or {}).items()},
            condition=s.get("if"),
            with_=dict(s.get("with") or {}),
        )
        for i, s in enumerate(raw.get("steps") or [])
    )
    needs = raw.get("needs") or ()
    return Job(
        id=job_id,
        condition=raw.get("if"),
        env={k: str(v) for k, v in (raw.get("env") or {}).items()},
        permissions=raw.get("permissions"),
        concurrency=raw.get("concurrency"),
        environment=raw.get("environment"),
        needs=(needs,) if isinstance(needs, str) else tuple(needs),
        outputs={k: str(v) for k, v in (raw.get("outputs") or {}).items()},
        steps=steps,
    )


def load_workflow(path: Path) -> Workflow:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    triggers = raw.get("on", raw.get(True)) or {}
    return Workflow(
        path=path,
        raw=raw,
        triggers=triggers if isinstance(triggers, dict) else {t: None for t in triggers},
        env={k: str(v) for k, v in (raw.get("env") or {}).items()},
        jobs={job_id: _job(job_id, job) for job_id, job in (raw.get("jobs") or {}).items()},
    )


def load_workflows() -> list[Workflow]:
    return [load_workflow(path) for path in sorted(WORKFLOW_DIR.glob("*.yml"))]


# --- commands in run: scripts ---------------------------------------------------------------


def _simple_commands(line: str) -> Iterator[list[str]]:
    """Simple commands of one shell line, redirections removed (the subset our workflows use)."""
    lexer = shlex.shlex(_FD_PREFIX.sub("", line), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    words: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == ">(" or token == "<(":
            depth = 1
            i += 1
            while i < len(tokens) and depth:
                depth += tokens[i].count("(") - tokens[i].count(")")
                i += 1
            continue
        if token[0] in "<>":
            target = tokens[i + 1] if i + 1 < len(tokens) else ""
            i += 1 if target in (">(", "<(") else 2
            continue
        if token in _CONTROL:
            if words:
                yield words
            words = []
        else:
            words.append(token)
        i += 1
    if words:
        yield words


def invocations(script: str) -> list[list[str]]:
    """`mlops ...`, `make ...` and `python -m ...` commands of a script, as argument lists."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        for words in _simple_commands(line):
            while words and _ASSIGNMENT.match(words[0]):
                words = words[1:]
            if words and Path(words[0]).name in INTERESTING:
                if Path(words[0]).name == "python" and words[1:2] != ["-m"]:
                    continue
                found.append(words)
    return found


# --- the mlops command tree -----------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    path: tuple[str, ...]  # subcommand names, e.g. ("stack", "setup")
    command: Command | None  # None when a subcommand does not exist
    missing: str | None  # the first name that is not a command


def resolve_mlops(words: list[str]) -> Resolved:
    """Walk `mlops` subcommands, then parse the rest with the real command (raises UsageError).

    Shell variables (`"${VERSION}"`) stand in for values, so only names are checked here; click
    rejects unknown options, missing required options and bad choices (UsageError), and `--help`
    would exit (typer.Exit).
    """
    command: Command = typer.main.get_command(app)
    args = list(words[1:])
    path: list[str] = []
    while isinstance(command, TyperGroup):
        if not args or args[0].startswith("-"):
            break
        name = args.pop(0)
        sub = command.commands.get(name)
        if sub is None:
            return Resolved(tuple([*path, name]), None, name)
        path.append(name)
        command = sub
    command.make_context(" ".join(["mlops", *path]), args, resilient_parsing=False)
    return Resolved(tuple(path), command, None)


# --- running jobs -----------------------------------------------------------------------------


class ExpressionError(LookupError):
    """A `${{ }}` expression the test does not know how to evaluate (teach it, do not guess)."""


def lookup(name: str, context: Mapping[str, Any], where: str) -> Any:
    """The value of a dotted name, as GitHub resolves it.

    An output a step or job did not set (it was skipped, or chose not to write it) is an empty
    string on GitHub, so it is here. Any other unknown name is an error: a typo in a workflow
    should fail the test rather than read as empty.
    """
    value: Any = context
    parent = ""
    for key in name.split("."):
        if isinstance(value, Mapping) and key in value:
            value, parent = value[key], key
        elif parent == "outputs" and isinstance(value, Mapping):
            return ""
        else:
            raise ExpressionError(f"cannot evaluate {name!r} in {where!r}")
    return value


def evaluate(expression: str, context: Mapping[str, Any]) -> str:
    """Evaluate `a.b.c` names joined by `||` (GitHub's "first truthy" operator)."""
    for alternative in (part.strip() for part in expression.split("||")):
        if alternative.startswith("'") and alternative.endswith("'"):
            value: Any = alternative[1:-1]
        else:
            value = lookup(alternative, context, expression)
        if value not in (None, "", False):
            return str(value)
    return ""


def substitute(text: str, context: Mapping[str, Any]) -> str:
    return EXPRESSION.sub(lambda m: evaluate(m.group(1), context), text)


_CONDITION_TOKEN = re.compile(r"\s*(\|\||&&|==|!=|\(|\)|'[^']*'|[A-Za-z_][\w.\-]*\(\)|[\w.\-]+)")


def condition_true(condition: str | None, context: Mapping[str, Any]) -> bool:
    """Evaluate a job `if:` built from names, 'strings', ==, !=, &&, ||, () and status calls.

    `always()` is true and `success()` true unless context["failed"]; a bare name is truthy
    when its value is a non-empty string.
    """
    if condition is None:
        return not context.get("failed", False)
    tokens = _CONDITION_TOKEN.findall(EXPRESSION.sub(lambda m: m.group(1), condition).strip())
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def atom() -> Any:
        token = take()
        if token == "(":
            value = disjunction()
            if take() != ")":
                raise ExpressionError(f"unbalanced parentheses in {condition!r}")
            return value
        if token.startswith("'"):
            return token[1:-1]
        if token == "always()":
            return True
        if token == "success()":
            return not context.get("failed", False)
        if token == "failure()":
            return bool(context.get("failed", False))
        return lookup(token, context, condition)

    def comparison() -> Any:
        left = atom()
        while peek() in ("==", "!="):
            operator = take()
            right = atom()
            left = (left == right) if operator == "==" else (left != right)
        return left

    def conjunction() -> bool:
        value = bool(comparison())
        while peek() == "&&":
            take()
            value = bool(comparison()) and value
        return value

    def disjunction() -> bool:
        value = conjunction()
        while peek() == "||":
            take()
            value = conjunction() or value
        return value

    result = disjunction()
    if position != len(tokens):
        raise ExpressionError(f"cannot parse {condition!r} after {tokens[position]!r}")
    return result


@dataclass
class StepResult:
    step: Step
    outcome: str  # success, failure, skipped
    note: str = ""
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    job: Job
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def result(self) -> str:
        return "failure" if any(s.outcome == "failure" for s in self.steps) else "success"


Rewrite = Callable[[str], tuple[str, str | None]]


class WorkflowRunner:
    """Runs `run:` steps of workflow jobs in one workspace, with GitHub-like variables."""

    def __init__(
        self,
        workspace: Path,
        base_env: Mapping[str, str],
        context: Mapping[str, Any],
        rewrite: Rewrite,
        job_env: Callable[[Job], Mapping[str, str]] | None = None,
    ) -> None:
        self.workspace = workspace
        self.base_env = dict(base_env)
        self.context = dict(context)
        self.rewrite = rewrite
        # What the runner itself gives a job (e.g. the OIDC token endpoint for `id-token: write`).
        self.job_env = job_env
        self.runner_env: dict[str, str] = {}
        self.extra_path: list[str] = []
        self.log: list[str] = []

    def run_workflow(self, workflow: Workflow) -> dict[str, JobResult | None]:
        """Every job whose `if:` holds, in `needs` order; a skipped job maps to None."""
        results: dict[str, JobResult | None] = {}
        pending = list(workflow.jobs.values())
        while pending:
            ready = [j for j in pending if all(n in results for n in j.needs)]
            if not ready:
                raise ExpressionError(f"{workflow.name}: circular or unknown `needs`")
            for job in ready:
                pending.remove(job)
                needs = {name: _needs_entry(results[name]) for name in job.needs}
                failed = any(n["result"] == "failure" for n in needs.values())
                context = {**self.context, "needs": needs, "failed": failed}
                run = condition_true(job.condition, context)
                results[job.id] = self.run_job(workflow, job, needs) if run else None
        return results

    def run_job(
        self, workflow: Workflow, job: Job, needs: Mapping[str, Mapping[str, Any]]
    ) -> JobResult:
        result = JobResult(job)
        steps: dict[str, dict[str, Any]] = {}
        job_env = {**workflow.env, **job.env}
        self.runner_env = dict(self.job_env(job)) if self.job_env else {}
        self.extra_path = []  # GITHUB_PATH lasts for one job
        for step in job.steps:
            context = {
                **self.context,
                "steps": steps,
                "needs": needs,
                "failed": result.result == "failure",
            }
            if condition_true(step.condition, context):
                outcome = self._run_step(step, job_env, context)
            else:
                outcome = StepResult(step, "skipped", "condition false")
            result.steps.append(outcome)
            if step.id:
                steps[step.id] = {"outcome": outcome.outcome, "outputs": outcome.outputs}
        context = {**self.context, "steps": steps, "needs": needs}
        result.outputs = {k: substitute(v, context) for k, v in job.outputs.items()}
        return result

    def missing_artifact_paths(self, step: Step) -> list[str]:
        """Paths an upload-artifact step names that the job did not produce (unless optional)."""
        if step.with_.get("if-no-files-found") == "ignore":
            return []
        paths = str(step.with_.get("path", "")).split()
        return [p for p in paths if not list(self.workspace.glob(p.rstrip("/")))]

    def _run_step(
        self, step: Step, job_env: Mapping[str, str], context: Mapping[str, Any]
    ) -> StepResult:
        if step.run is None:
            note = f"action {step.uses} not executed"
            if step.uses and step.uses.startswith("actions/upload-artifact@"):
                missing = self.missing_artifact_paths(step)
                note += f"; missing paths: {missing}" if missing else "; all paths present"
            return StepResult(step, "success", note)
        script, reason = self.rewrite(step.run)
        if reason is not None and not script.strip():
            self.log.append(f"{step.job}/{step.name}: not executed ({reason})")
            return StepResult(step, "success", f"not executed: {reason}")
        env = {**self.base_env, **self.runner_env}
        for name, value in {**job_env, **step.env}.items():
            resolved = substitute(value, context)
            if resolved:
                env[name] = resolved
            else:
                env.pop(name, None)
        files = {
            name: self.workspace / f".github-{name.lower()}"
            for name in ("GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")
        }
        for name, path in files.items():
            path.write_text("", encoding="utf-8")
            env[name] = str(path)
        env["PATH"] = os.pathsep.join([*self.extra_path, env["PATH"]])
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        added = [line for line in files["GITHUB_PATH"].read_text().splitlines() if line]
        self.extra_path = added + self.extra_path
        outcome = StepResult(
            step,
            "success" if done.returncode == 0 else "failure",
            reason or "",
            done.stdout,
            done.stderr,
            parse_output_file(files["GITHUB_OUTPUT"].read_text()),
        )
        self.log.append(f"{step.job}/{step.name}: exit {done.returncode}")
        return outcome


def _needs_entry(result: JobResult | None) -> dict[str, Any]:
    if result is None:
        return {"result": "skipped", "outputs": {}}
    return {"result": result.result, "outputs": result.outputs}


def parse_output_file(text: str) -> dict[str, str]:
    """`name=value` lines and `name<<DELIMITER` blocks, as GitHub reads GITHUB_OUTPUT."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs
