"""Docs match code: every command in the docs parses against the real CLI and Makefile, every
block marked runnable runs, and every repository path the docs mention exists."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer._click import Command
from typer._click.exceptions import UsageError
from typer.core import TyperGroup
from typer.exceptions import Exit

from mlops_cli.app import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```(\w+)?([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
SHELL = {"bash", "sh", "shell", "console"}
PATH_ROOTS = (
    "src/",
    "configs/",
    "docs/",
    "tests/",
    "scripts/",
    "benchmarks/",
    "notebooks/",
    "deploy/",
    ".github/",
    ".ci/",
)
BACKTICKED = re.compile(r"`([^`\s]+)`")
MAKE_TARGET = re.compile(r"^([a-z][a-z0-9-]*):", re.MULTILINE)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The guides that show the screenshots `make screenshots` takes (its SCREENSHOTS list).
SCREENSHOT_GUIDES = ("docs/DEVELOPER_GUIDE.md", "docs/PLATFORM_GUIDE.md")


def shell_blocks() -> Iterator[tuple[Path, str, str]]:
    for doc in DOCS:
        for language, info, body in FENCE.findall(doc.read_text(encoding="utf-8")):
            if language in SHELL:
                yield doc, info.strip(), body


def commands(body: str) -> Iterator[list[str]]:
    for raw in body.replace("\\\n", " ").splitlines():
        line = raw.split(" #", 1)[0].strip().removeprefix("$ ")
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]
        if words:
            yield words


def all_commands() -> list[tuple[str, list[str]]]:
    return [
        (f"{doc.relative_to(ROOT)}: {' '.join(words)}", words)
        for doc, _, body in shell_blocks()
        for words in commands(body)
        if Path(words[0]).name in {"mlops", "make"}
    ]


def resolve(words: list[str]) -> None:
    """Parse an `mlops ...` command line with the real command tree (raises on any mistake).

    Typer 0.29 vendors click as `typer._click`; the lock file pins it.
    """
    command: Command = typer.main.get_command(app)
    context = command.make_context("mlops", list(words[1:]), resilient_parsing=False)
    while isinstance(command, TyperGroup):
        remaining = [*getattr(context, "_protected_args", []), *context.args]
        if not remaining:
            return
        name, *rest = remaining
        sub = command.get_command(context, name)
        if sub is None:
            raise UsageError(f"no command {name!r} under {command.name!r}")
        command, context = sub, sub.make_context(name, rest, parent=context)


@pytest.mark.parametrize(
    ("where", "words"), all_commands(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_documented_command_parses(where: str, words: list[str]) -> None:
    if Path(words[0]).name == "make":
        targets = set(MAKE_TARGET.findall((ROOT / "Makefile").read_text()))
        missing = [
            w for w in words[1:] if not w.startswith("-") and "=" not in w and w not in targets
        ]
        assert not missing, f"{where}: no Makefile target {missing}"
        return
    try:
        resolve(words)
    except Exit:
        return
    except UsageError as error:
        pytest.fail(f"{where}: {error.format_message()}")


def documented_paths() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for token in BACKTICKED.findall(doc.read_text(encoding="utf-8")):
            path = token.rstrip(".,:;)").split("::")[0]
            if path.startswith(PATH_ROOTS) and not any(c in path for c in "*<>{}$"):
                found.append((str(doc.relative_to(ROOT)), path))
    return found


@pytest.mark.parametrize(("doc", "path"), documented_paths())
def test_documented_path_exists(doc: str, path: str) -> None:
    assert (ROOT / path).exists(), f"{doc} mentions {path}, which does not exist"


def runnable_blocks() -> list[tuple[str, str]]:
    return [
        (str(doc.relative_to(ROOT)), body)
        for doc, info, body in shell_blocks()
        if "runnable" in info.split()
    ]


@pytest.mark.usefixtures("isolated_state")
@pytest.mark.parametrize(("doc", "body"), runnable_blocks())
def test_runnable_block_runs(doc: str, body: str) -> None:
    bin_dir = str(Path(sys.executable).parent)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", body],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{doc} block failed:\n{body}\n{done.stdout}\n{done.stderr}"


def documented_images() -> list[tuple[str, str]]:
    return [
        (str(doc.relative_to(ROOT)), target)
        for doc in DOCS
        for target in IMAGE.findall(doc.read_text(encoding="utf-8"))
        if "://" not in target
    ]


@pytest.mark.parametrize(("doc", "target"), documented_images())
def test_documented_image_exists_and_is_a_png(doc: str, target: str) -> None:
    image = (ROOT / doc).parent / target
    assert image.is_file(), f"{doc} shows {target}, which does not exist; run make screenshots"
    assert image.read_bytes()[: len(PNG_MAGIC)] == PNG_MAGIC, f"{target} is not a PNG"


def screenshot_names() -> list[str]:
    found = re.search(r"^SCREENSHOTS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile lists no SCREENSHOTS for make screenshots"
    return found[1].split()


@pytest.mark.parametrize("guide", SCREENSHOT_GUIDES)
def test_the_guides_show_the_model_report_and_the_versions_list(guide: str) -> None:
    names = screenshot_names()
    shown = {target for doc, target in documented_images() if doc == guide}
    assert {"model_report.png", "versions.png"} <= set(names)
    assert {f"images/{name}" for name in names} <= shown, f"{guide} shows {sorted(shown)}"


def test_docs_are_checked_at_all() -> None:
    assert all_commands(), "no documented commands found"
    assert documented_paths(), "no documented paths found"
    assert documented_images(), "no documented images found"


def help_examples() -> list[tuple[str, list[str]]]:
    """Every `Example: mlops ...` line of the CLI's own help texts."""
    found = []

    def walk(command: Command, path: str) -> None:
        for line in (command.help or "").splitlines():
            text = line.strip()
            if text.startswith("Example: mlops "):
                for part in re.split(r"\|\||&&|;", text.removeprefix("Example: ")):
                    found.append((f"{path}: {part.strip()}", shlex.split(part)))
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "mlops")
    return found


@pytest.mark.parametrize(
    ("where", "words"), help_examples(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_help_examples_parse_and_act_as_verified_people(where: str, words: list[str]) -> None:
    """A help example runs as written: it parses, and one acting in staging or production names
    a verified person (`mlops --as NAME`), since a name given with --actor is refused there."""
    try:
        resolve(words)
    except Exit:
        pass
    except UsageError as error:
        pytest.fail(f"{where}: {error.format_message()}")
    outside_local = {"staging", "production"} & set(words)
    assert not (outside_local and "--actor" in words), f"{where}: --actor is refused there"


def test_help_examples_are_checked_at_all() -> None:
    assert len(help_examples()) >= 10
