"""`mlops versions` and `mlops compare`: every version's results in one place (read-only)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlops_cli.common import JsonOption, emit, out, reports_errors
from mlops_cli.errors import CliError, ExitCode


def _rows(numbers: list[str] | None = None) -> list[dict[str, Any]]:
    from mlops_cli.commands import ensure_stack
    from mlops_platform.reporting.versions import read_versions
    from readmission.names import MODEL_NAME

    ensure_stack()
    try:
        return read_versions(MODEL_NAME, numbers)
    except KeyError as error:
        missing = error.args[0] if error.args else ", ".join(numbers or [])
        raise CliError(
            f"model {MODEL_NAME} has no version {missing}; list them with `mlops versions`.",
            ExitCode.NOT_FOUND,
        ) from error


@reports_errors
def versions(as_json: JsonOption = False) -> None:
    """List every model version: stage, tags, key metrics, gate verdict, trained by, approved by.

    Rejected versions are listed too. Example: mlops versions
    """
    from mlops_platform.reporting.versions import KEY_METRICS
    from readmission.names import MODEL_NAME

    rows = _rows()

    def human() -> None:
        table = Table(title=f"{MODEL_NAME}: versions, newest first")
        for column in (
            "version",
            "stage",
            "verdict",
            *KEY_METRICS[:4],
            "trained by",
            "approved by",
            "code",
            "data",
        ):
            table.add_column(column)
        for row in rows:
            approved = "; ".join(f"{s}: {', '.join(p)}" for s, p in row["approved_by"].items())
            table.add_row(
                row["model_version"],
                row["stage"],
                row["verdict"],
                *(_number(row["metrics"].get(k)) for k in KEY_METRICS[:4]),
                escape(row["trained_by"]),
                escape(approved or "-"),
                escape(row["code"]),
                escape(row["data"]),
            )
        out.print(table)

    emit({"model_name": MODEL_NAME, "versions": rows}, as_json, human)


@reports_errors
def compare(
    first: Annotated[str, typer.Argument(help="A model version number.")],
    second: Annotated[str, typer.Argument(help="Another model version number.")],
    as_json: JsonOption = False,
) -> None:
    """Compare two model versions: metrics side by side, and stage, verdict, author, code, data.

    Example: mlops compare 3 4
    """
    from mlops_platform.governance.model_stages import version_number
    from mlops_platform.reporting.versions import comparison

    first, second = version_number(first), version_number(second)  # "01" is 1; "abc" exit 3
    a, b = _rows([first, second])
    result = comparison(a, b)

    def human() -> None:
        metrics = Table(
            title=f"Version {first} vs version {second} (difference: {second} - {first})"
        )
        for column in ("metric", first, second, "difference"):
            metrics.add_column(column, justify="right")
        for row in result["metrics"]:
            metrics.add_row(
                row["metric"],
                _number(row[first]),
                _number(row[second]),
                "-" if row["difference"] is None else f"{row['difference']:+.4f}",
            )
        out.print(metrics)
        facts = Table()
        for column in ("", first, second):
            facts.add_column(column)
        for row in result["facts"]:
            facts.add_row(row["fact"], escape(str(row[first])), escape(str(row[second])))
        out.print(facts)
        if not result["same_holdout"]:
            out.print(
                f"[yellow]Versions {first} and {second} were measured on different holdout rows "
                "(or one is not recorded), so a difference mixes the models with the data. A "
                "like-for-like comparison scores both models on the same rows: `mlops gate "
                "--version N --env ENV` compares N with the holder of the stage ENV promotes "
                "to, as training and promotions do.[/]",
                highlight=False,
            )

    emit(result, as_json, human)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
