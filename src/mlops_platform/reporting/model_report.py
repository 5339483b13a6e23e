"""A self-contained HTML report of one evaluated model: metrics, curves, subgroups, gates, card.

The page has no external resources (inline CSS, figures as base64 PNG), so it can be stored as
an artifact, attached to a review or mailed, and still render the same years later. Every piece
of text is HTML-escaped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from mlops_platform.evaluation.bootstrap import BootstrapError, clustered_intervals
from mlops_platform.evaluation.calibration import (
    CalibrationCurve,
    calibration_curve_points,
    calibration_intercept_slope,
)
from mlops_platform.reporting.html import BASE_CSS, figure_png
from mlops_platform.reporting.html import escape as _e

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mlops_platform.evaluation.fairness import FairnessSummary
    from mlops_platform.governance.policy.evaluate import GateDecision

SECTION_IDS: tuple[str, ...] = (
    "summary",
    "metrics",
    "curves",
    "subgroups",
    "gates",
    "provenance",
    "model-card",
)
# TRIPOD-style model card headings (Collins et al., BMJ 2015; TRIPOD+AI, BMJ 2024).
MODEL_CARD_HEADINGS: tuple[str, ...] = (
    "Intended use",
    "Population / Source of data",
    "Outcome",
    "Predictors",
    "Sample size",
    "Missing data",
    "Model development",
    "Performance",
    "Limitations",
    "Ethical considerations",
)
# (label, metrics key, decimals): what the metrics table shows, in order.
_METRIC_ROWS: tuple[tuple[str, str, int], ...] = (
    ("ROC-AUC", "roc_auc", 3),
    ("PR-AUC (average precision)", "pr_auc", 3),
    ("Brier score", "brier", 4),
    ("Expected calibration error", "ece", 4),
    ("Recall at threshold", "recall", 3),
    ("Precision at threshold", "precision", 3),
)

_CSS = (
    BASE_CSS
    + """
img { max-width: 480px; }
dt { font-weight: 600; margin-top: 0.6rem; } dd { margin-left: 1rem; }
"""
)


class ReportError(ValueError):
    """The inputs of a model report are inconsistent."""


@dataclass(frozen=True)
class ModelReportContext:
    """Everything the report shows; arrays are the held-out test set the gate judged.

    ``metrics`` and ``baseline_metrics`` use the keys of ``mlops_platform.evaluation.metrics``;
    ``provenance`` describes the data (source, sha256, rows, patients, ...), ``code_version``
    the code (git_sha, git_dirty, ...). ``model_card`` may replace the default text of any
    heading in ``MODEL_CARD_HEADINGS``.
    """

    model_name: str
    model_version: str
    environment: str
    y_true: np.ndarray
    y_prob: np.ndarray
    patient_ids: np.ndarray
    operating_threshold: float
    metrics: Mapping[str, float]
    fairness: FairnessSummary
    decision: GateDecision
    provenance: Mapping[str, object]
    code_version: Mapping[str, object]
    training_run_id: str
    baseline_metrics: Mapping[str, float] | None = None
    baseline_name: str = "Baseline"
    predictors: Sequence[str] = ()
    model_card: Mapping[str, str] = field(default_factory=dict)
    n_boot: int = 200
    seed: int = 0


def roc_auc_interval(
    y: np.ndarray, p: np.ndarray, patients: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """(ROC-AUC, lower, upper): scikit-learn's point estimate and the patient-clustered interval."""
    interval = clustered_intervals(y, p, patients, n_boot=n_boot, seed=seed)["roc_auc"]
    if interval is None:
        raise BootstrapError(
            f"ROC-AUC was undefined in more than 10% of {n_boot} patient resamples; the "
            "evaluation set is too small or has too few events."
        )
    return float(roc_auc_score(y, p)), interval[0], interval[1]


def render_model_report(context: ModelReportContext) -> str:
    """Render the report as one self-contained HTML page."""
    _check_context(context)
    y = np.asarray(context.y_true).astype(int)
    p = np.asarray(context.y_prob, dtype=float)
    auc_ci = roc_auc_interval(y, p, np.asarray(context.patient_ids), context.n_boot, context.seed)
    intercept, slope = calibration_intercept_slope(y, p)
    curve = calibration_curve_points(y, p)
    title = f"{context.model_name} {context.model_version} ({context.environment})"
    body = "\n".join(
        (
            _summary(context),
            _metrics(context, auc_ci, intercept, slope),
            _curves(y, p, curve),
            _subgroups(context.fairness),
            _gates(context.decision),
            _provenance(context),
            _model_card(context, y, auc_ci, intercept, slope),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Model report: {_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>Model report: {_e(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def _check_context(context: ModelReportContext) -> None:
    sizes = {len(context.y_true), len(context.y_prob), len(context.patient_ids)}
    if len(sizes) != 1:
        raise ReportError(
            f"y_true ({len(context.y_true)}), y_prob ({len(context.y_prob)}) and patient_ids "
            f"({len(context.patient_ids)}) must describe the same test rows."
        )
    unknown = sorted(set(context.model_card) - set(MODEL_CARD_HEADINGS))
    if unknown:
        raise ReportError(
            f"Unknown model card headings {unknown}; use one of {list(MODEL_CARD_HEADINGS)}."
        )


def _section(section_id: str, heading: str, content: str) -> str:
    return f'<section id="{section_id}">\n<h2>{_e(heading)}</h2>\n{content}\n</section>'


def _summary(context: ModelReportContext) -> str:
    decision = context.decision
    verdict = "PASSED" if decision.passed else "FAILED"
    css = "pass" if decision.passed else "fail"
    rows = _key_values(
        {
            "Model": context.model_name,
            "Version": context.model_version,
            "Environment": context.environment,
            "Operating threshold": _number(context.operating_threshold, 3),
        }
    )
    return _section(
        "summary",
        "Summary",
        f'<p class="decision">Gate decision: <span class="{css}">{verdict}</span></p>\n'
        f"<pre>{_e(decision.message())}</pre>\n{rows}",
    )


def _metrics(
    context: ModelReportContext,
    auc_ci: tuple[float, float, float],
    intercept: float,
    slope: float,
) -> str:
    baseline = context.baseline_metrics
    header = "<tr><th>Metric</th><th>Model</th>"
    header += f"<th>{_e(context.baseline_name)}</th></tr>" if baseline is not None else "</tr>"
    rows = []
    for label, key, decimals in _METRIC_ROWS:
        shown = _number(context.metrics.get(key), decimals)
        if key == "roc_auc":
            shown += f" (95% CI {auc_ci[1]:.3f}–{auc_ci[2]:.3f})"
        cells = [f"<td>{_e(label)}</td>", f'<td class="num">{_e(shown)}</td>']
        if baseline is not None:
            cells.append(f'<td class="num">{_e(_number(baseline.get(key), decimals))}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    for label, value in (("Calibration intercept", intercept), ("Calibration slope", slope)):
        cells = [f"<td>{_e(label)}</td>", f'<td class="num">{_e(_number(value, 3))}</td>']
        if baseline is not None:
            cells.append('<td class="num">–</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    note = (
        f'<p class="muted">Held-out test set. Recall and precision at the operating threshold '
        f"{context.operating_threshold:.3f}. The ROC-AUC interval resamples patients "
        f"({context.n_boot} resamples), so repeated encounters of one patient stay together. "
        "Calibration intercept 0 and slope 1 are ideal.</p>"
    )
    return _section("metrics", "Metrics", f"<table>{header}{''.join(rows)}</table>\n{note}")


# Rendered curve sections by the SHA-256 of the outcomes and risks they draw (this process only):
# a promotion judged in the process that trained the version draws the same two figures again.
_CURVES: dict[str, str] = {}
_CURVES_KEPT = 16


def _curves(y: np.ndarray, p: np.ndarray, curve: CalibrationCurve) -> str:
    digest = hashlib.sha256()
    for values in (y.astype("int64"), p.astype("float64")):
        digest.update(str(values.shape).encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    key = digest.hexdigest()
    if key not in _CURVES:
        if len(_CURVES) >= _CURVES_KEPT:
            _CURVES.clear()
        _CURVES[key] = _draw_curves(y, p, curve)
    return _CURVES[key]


def _draw_curves(y: np.ndarray, p: np.ndarray, curve: CalibrationCurve) -> str:
    roc = _figure(lambda figure: _draw_roc(figure, y, p))
    calibration = _figure(lambda figure: _draw_calibration(figure, curve))
    return _section(
        "curves",
        "Curves",
        f'<figure><img alt="ROC curve" src="data:image/png;base64,{roc}">'
        "<figcaption>ROC curve</figcaption></figure>\n"
        f'<figure><img alt="Calibration curve" src="data:image/png;base64,{calibration}">'
        "<figcaption>Calibration (10 equal-count bins)</figcaption></figure>",
    )


def _draw_roc(figure: Figure, y: np.ndarray, p: np.ndarray) -> None:
    false_positive, true_positive, _ = roc_curve(y, p)
    axes = figure.add_subplot()
    axes.plot(false_positive, true_positive, color="#0969da", label="model")
    axes.plot([0, 1], [0, 1], linestyle="--", color="#8c959f", label="chance")
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    axes.legend(loc="lower right")


def _draw_calibration(figure: Figure, curve: CalibrationCurve) -> None:
    axes = figure.add_subplot()
    upper = float(max(curve.mean_predicted.max(), curve.observed_rate.max(), 0.05)) * 1.1
    axes.plot([0, upper], [0, upper], linestyle="--", color="#8c959f", label="ideal")
    axes.plot(curve.mean_predicted, curve.observed_rate, marker="o", color="#0969da", label="model")
    axes.set(
        xlim=(0, upper),
        ylim=(0, upper),
        xlabel="Mean predicted probability",
        ylabel="Observed readmission rate",
        title="Calibration",
    )
    axes.legend(loc="upper left")


def _subgroups(summary: FairnessSummary) -> str:
    header = (
        "<tr><th>Feature</th><th>Group</th><th>n</th><th>Readmitted</th><th>ROC-AUC</th>"
        "<th>Recall</th><th>False positive rate</th><th>Selection rate</th><th>Compared</th></tr>"
    )
    rows = []
    for record in summary.table.to_dict("records"):
        cells = [
            f"<td>{_e(record['feature'])}</td>",
            f"<td>{_e(record['group'])}</td>",
            f'<td class="num">{int(record["n"])}</td>',
            f'<td class="num">{int(record["positives"])}</td>',
            *(
                f'<td class="num">{_e(_number(record[key], 3))}</td>'
                for key in ("roc_auc", "recall", "false_positive_rate", "selection_rate")
            ),
            f"<td>{'yes' if record['eligible'] else 'no (too few to compare)'}</td>",
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    unassessed = (
        f" Not assessable: {', '.join(summary.unassessed_features)}."
        if summary.unassessed_features
        else ""
    )
    note = (
        f"<p>Lowest compared-group ROC-AUC: {_e(_number(summary.min_subgroup_roc_auc, 3))} "
        f"({_e(summary.worst_group or 'n/a')}). Largest ROC-AUC gap: "
        f"{_e(_number(summary.max_roc_auc_gap, 3))} ({_e(summary.worst_feature)}). "
        f"Equalized-odds difference: {_e(_number(summary.equalized_odds_difference, 3))} at "
        f"threshold {summary.threshold:.3f}.{_e(unassessed)}</p>\n"
        f'<p class="muted">A group is compared when it has at least {summary.min_group_size} '
        f"encounters and at least {summary.min_group_events} of each outcome; smaller groups "
        "are shown but their estimates are too noisy to gate on.</p>"
    )
    return _section("subgroups", "Subgroups", f"{note}\n<table>{header}{''.join(rows)}</table>")


def _gates(decision: GateDecision) -> str:
    header = "<tr><th>Check</th><th>Value</th><th>Limit</th><th>Result</th><th>Detail</th></tr>"
    rows = []
    for check in decision.checks:
        limit = "–" if check.limit is None else f"{check.comparison} {check.limit:.4g}"
        if check.value is None:
            value = "–" if check.limit is None else "missing"
        else:
            value = f"{check.value:.4g}"
        css, verdict = ("pass", "PASS") if check.passed else ("fail", "FAIL")
        rows.append(
            f'<tr><td>{_e(check.name)}</td><td class="num">{_e(value)}</td>'
            f'<td class="num">{_e(limit)}</td><td class="{css}">{verdict}</td>'
            f"<td>{_e(check.detail)}</td></tr>"
        )
    return _section("gates", "Gates", f"<table>{header}{''.join(rows)}</table>")


def _provenance(context: ModelReportContext) -> str:
    return _section(
        "provenance",
        "Provenance",
        "<h3>Data</h3>\n"
        + _key_values(context.provenance)
        + "\n<h3>Code</h3>\n"
        + _key_values(context.code_version)
        + "\n<h3>Training run</h3>\n"
        + _key_values({"Run id": context.training_run_id}),
    )


def _model_card(
    context: ModelReportContext,
    y: np.ndarray,
    auc_ci: tuple[float, float, float],
    intercept: float,
    slope: float,
) -> str:
    metrics = context.metrics
    provenance = context.provenance
    small = context.fairness.table.loc[~context.fairness.table["eligible"]]
    small_groups = ", ".join(
        f"{f}={g}" for f, g in zip(small["feature"], small["group"], strict=True)
    )
    defaults = {
        "Intended use": (
            "Decision support at discharge: flag adult inpatients with diabetes at high risk of "
            "readmission within 30 days so that care teams can prioritise discharge planning and "
            "follow-up. Not for denying, delaying or rationing care, and not for populations "
            "unlike the one below."
        ),
        "Population / Source of data": (
            f"Source: {provenance.get('source', 'not recorded')}. Encounters of patients with "
            "diabetes in US hospitals (UCI 'Diabetes 130-US hospitals', 1999-2008); encounters "
            "ending in death or hospice are excluded."
        ),
        "Outcome": (
            "Readmission within 30 days of discharge (readmitted == '<30'); observed rate in the "
            f"test set {y.mean():.1%}."
        ),
        "Predictors": (
            ", ".join(context.predictors) if context.predictors else "Not recorded for this run."
        ),
        "Sample size": (
            f"Data: {provenance.get('rows', 'n/a')} encounters of "
            f"{provenance.get('patients', 'n/a')} patients. Test set: {len(y)} encounters of "
            f"{len(np.unique(np.asarray(context.patient_ids)))} patients, {int(y.sum())} "
            "readmitted within 30 days. Train and test are split by patient."
        ),
        "Missing data": (
            "Missing values are coded '?' in the source. Weight, payer code and medical "
            "specialty are mostly missing; a missing race is kept as its own group, 'Unknown', "
            "and audited like any other group."
        ),
        "Model development": (
            f"{context.model_name} version {context.model_version}, training run "
            f"{context.training_run_id}; operating threshold {context.operating_threshold:.3f}."
        ),
        "Performance": (
            f"ROC-AUC {_number(metrics.get('roc_auc'), 3)} (95% patient-clustered bootstrap CI "
            f"{auc_ci[1]:.3f}–{auc_ci[2]:.3f}), Brier {_number(metrics.get('brier'), 4)}, ECE "
            f"{_number(metrics.get('ece'), 4)}, calibration intercept {_number(intercept, 3)} "
            f"and slope {_number(slope, 3)}, recall {_number(metrics.get('recall'), 3)} at the "
            "operating threshold."
        ),
        "Limitations": (
            "Retrospective data from 1999-2008, before current care pathways and coding "
            "practice; readmissions to other hospitals are not observed. Validate locally "
            "before use, and monitor calibration after deployment."
        ),
        "Ethical considerations": (
            "Performance is audited by race, gender and age band (see Subgroups). Groups too "
            f"small to compare: {small_groups or 'none'}; their performance is unknown and needs "
            "monitoring. Predictions must not be used to withhold care."
        ),
    }
    texts = {**defaults, **context.model_card}
    items = "\n".join(
        f"<dt>{_e(heading)}</dt><dd>{_e(texts[heading])}</dd>" for heading in MODEL_CARD_HEADINGS
    )
    return _section("model-card", "Model card", f"<dl>\n{items}\n</dl>")


def _key_values(values: Mapping[str, object]) -> str:
    rows = "".join(
        f"<tr><th>{_e(key)}</th><td>{_e(_text(value))}</td></tr>" for key, value in values.items()
    )
    return f"<table>{rows}</table>"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "not recorded" if value is None else str(value)


def _number(value: object, decimals: int) -> str:
    if value is None:
        return "missing"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return "n/a" if math.isnan(number) else f"{number:.{decimals}f}"


def _figure(draw: Callable[[Figure], None]) -> str:
    return figure_png(draw, (4.8, 4.2))
