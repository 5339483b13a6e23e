"""Outcome performance report: one self-contained HTML file per outcome check (pure function).

Per model version: the verdict and its checks, realised metrics beside the validation values,
realised ROC-AUC and Brier over scoring windows with their intervals, the calibration plot of
the latest window and the subgroup table.
"""

from __future__ import annotations

from typing import Any, Final

from mlops_platform.reporting.html import BASE_CSS, figure_png
from mlops_platform.reporting.html import escape as _e

REPORT_FILE: Final = "outcome_report.html"
_VERDICT_CLASS: Final = {"ok": "pass", "degraded": "fail", "not assessed": "muted"}
_METRICS: Final = (
    ("n_labelled", "Labelled encounters", ",d"),
    ("n_pending", "Pending (no outcome yet)", ",d"),
    ("n_events", "Readmitted within 30 days", ",d"),
    ("roc_auc", "ROC-AUC", ".3f"),
    ("brier", "Brier score", ".4f"),
    ("calibration_intercept", "Calibration intercept", ".3f"),
    ("calibration_slope", "Calibration slope", ".3f"),
    ("ece", "ECE", ".4f"),
    ("observed_rate", "Observed rate", ".3f"),
    ("mean_predicted", "Mean predicted risk", ".3f"),
)


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "n/a"
    try:
        return format(int(value) if spec.endswith("d") else float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def _interval(values: Any, spec: str = ".3f") -> str:
    return f"[{_fmt(values[0], spec)}, {_fmt(values[1], spec)}]" if values else ""


def render_outcome_report(assessment: dict[str, Any]) -> str:
    """The report as one HTML string; figures are inline PNG."""
    verdict = assessment["verdict"]
    labels, predictions = assessment["labels"], assessment["predictions"]
    summary = (
        f'<p class="decision">Overall: <span class="{_VERDICT_CLASS.get(verdict, "")}">'
        f"{_e(verdict)}</span></p>"
        f"<p>As of {_e(assessment['as_of'])}, environment {_e(assessment['environment'])}, "
        f"pipeline run {_e(assessment['pipeline_run'])}.</p>"
        f"<p>Labels {_e(labels['path'])} (sha256 {_e(labels['sha256'][:16])}…): "
        f"{labels['rows']:,} rows, {labels['n_unknown']:,} for encounters never served, "
        f"{labels['n_after_as_of']:,} recorded after the as-of date. Served predictions: "
        f"{predictions['n_served']:,} from {len(predictions['batches'])} batch result(s); "
        f"{predictions['n_rescored']:,} later re-scorings of the same encounter ignored (the "
        "earliest prediction counts).</p>"
    )
    sections = [f"<section id='summary'><h2>Summary</h2>{summary}</section>"]
    for version in assessment["versions"]:
        sections.append(_version(version))
    sections.append(_method(assessment["thresholds"]))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Outcome monitoring report</title><style>{BASE_CSS}</style></head><body>"
        "<h1>Outcome monitoring: realised performance on true outcomes</h1>"
        + "\n".join(sections)
        + "</body></html>"
    )


def _version(version: dict[str, Any]) -> str:
    name = f"{version['model_name']} version {version['model_version']}"
    verdict = version["verdict"]
    checks = "".join(
        f"<tr><td>{_e(c['name'])}</td><td class='{'pass' if c['passed'] else 'fail'}'>"
        f"{'passed' if c['passed'] else 'failed'}</td><td>{_e(c['detail'])}</td></tr>"
        for c in version["checks"]
    )
    validation = version.get("validation") or {}
    metrics = "".join(
        f"<tr><td>{_e(label)}</td><td class='num'>{_fmt(version.get(key), spec)}"
        + (
            f" {_interval(version.get(key + '_ci'), spec)}"
            if version.get(key + "_ci") is not None
            else ""
        )
        + f"</td><td class='num'>{_fmt(validation.get(key), spec)}</td></tr>"
        for key, label, spec in _METRICS
    )
    parts = [
        f"<section id='version-{_e(version['model_version'])}'><h2>{_e(name)}: "
        f"<span class='{_VERDICT_CLASS.get(verdict, '')}'>{_e(verdict)}</span></h2>",
        f"<p>Stages when scored: {_e(', '.join(version['stages_at_scoring']) or '-')}; "
        f"inference runs: {len(version['inference_runs'])}.</p>",
        f"<table><tr><th>Check</th><th>Result</th><th>Detail</th></tr>{checks}</table>",
    ]
    parts += [f"<p class='muted'>{_e(note)}</p>" for note in version["notes"]]
    if version.get("recommendation"):
        parts.append(f"<p class='fail'>{_e(version['recommendation'])}</p>")
    parts.append(
        "<h3>Realised vs validation</h3><table><tr><th>Measure</th><th>Realised (95% "
        f"interval)</th><th>At validation</th></tr>{metrics}</table>"
    )
    parts.append(_windows(version["windows"]))
    if version.get("calibration_curve"):
        parts.append(_calibration(version))
    parts.append(_subgroups(version.get("subgroups")))
    parts.append("</section>")
    return "\n".join(parts)


def _windows(windows: list[dict[str, Any]]) -> str:
    if not windows:
        return "<p class='muted'>No labelled encounters yet.</p>"
    rows = "".join(
        f"<tr><td>{_e(w['window'])}</td><td class='num'>{w['n_labelled']:,}</td>"
        f"<td class='num'>{_fmt(w['roc_auc'], '.3f')} {_interval(w['roc_auc_ci'])}</td>"
        f"<td class='num'>{_fmt(w['brier'], '.4f')} {_interval(w['brier_ci'], '.4f')}</td>"
        f"<td class='num'>{_fmt(w['observed_rate'], '.3f')} / "
        f"{_fmt(w['mean_predicted'], '.3f')}</td></tr>"
        for w in windows
    )
    image = figure_png(lambda figure: _draw_windows(figure, windows), (6.0, 3.2))
    return (
        "<h3>Over time (scoring windows)</h3>"
        f"<figure><img alt='Realised ROC-AUC per window' src='data:image/png;base64,{image}'>"
        "<figcaption>Realised ROC-AUC per scoring window with its 95% patient-clustered "
        "bootstrap interval</figcaption></figure>"
        "<table><tr><th>Window</th><th>Labelled</th><th>ROC-AUC</th><th>Brier</th>"
        f"<th>Observed / predicted rate</th></tr>{rows}</table>"
    )


def _draw_windows(figure: Any, windows: list[dict[str, Any]]) -> None:
    axis = figure.add_subplot(1, 1, 1)
    points = [(i, w) for i, w in enumerate(windows) if w["roc_auc"] is not None]
    xs = [i for i, _ in points]
    ys = [w["roc_auc"] for _, w in points]
    low = [w["roc_auc"] - (w["roc_auc_ci"] or [w["roc_auc"]] * 2)[0] for _, w in points]
    high = [(w["roc_auc_ci"] or [w["roc_auc"]] * 2)[1] - w["roc_auc"] for _, w in points]
    axis.errorbar(xs, ys, yerr=[low, high], fmt="o-", capsize=4)
    axis.set_xticks(range(len(windows)), [w["window"] for w in windows])
    axis.set_ylabel("ROC-AUC")
    axis.set_ylim(0.4, 1.0)


def _calibration(version: dict[str, Any]) -> str:
    latest = version.get("calibration_window") or "all"
    curve = version["calibration_curve"]
    image = figure_png(lambda figure: _draw_calibration(figure, curve), (4.0, 4.0))
    return (
        f"<h3>Calibration (window {_e(latest)})</h3>"
        f"<figure><img alt='Calibration plot' src='data:image/png;base64,{image}'>"
        "<figcaption>Observed readmission rate against mean predicted risk, equal-count bins"
        "</figcaption></figure>"
    )


def _draw_calibration(figure: Any, curve: dict[str, list[float]]) -> None:
    axis = figure.add_subplot(1, 1, 1)
    top = max(max(curve["mean_predicted"]), max(curve["observed_rate"]), 0.05) * 1.1
    axis.plot([0, top], [0, top], linestyle="--", color="grey")
    axis.plot(curve["mean_predicted"], curve["observed_rate"], "o-")
    axis.set_xlabel("Mean predicted risk")
    axis.set_ylabel("Observed rate")


def _subgroups(rows: list[dict[str, Any]] | None) -> str:
    if rows is None:
        return (
            "<h3>Subgroups</h3><p class='muted'>Not assessed: the labels carry no race, gender "
            "and age columns.</p>"
        )
    body = "".join(
        f"<tr><td>{_e(r['feature'])}</td><td>{_e(r['group'])}</td>"
        f"<td class='num'>{r['n']:,}</td><td class='num'>{r['positives']:,}</td>"
        f"<td class='num'>{_fmt(r['roc_auc'], '.3f')}</td>"
        f"<td class='num'>{_fmt(r.get('validation_roc_auc'), '.3f')}</td>"
        f"<td>{'yes' if r['eligible'] else 'no (too small)'}</td></tr>"
        for r in rows
    )
    return (
        "<h3>Subgroups (race, gender, age band)</h3><table><tr><th>Feature</th><th>Group</th>"
        "<th>n</th><th>Readmitted</th><th>ROC-AUC</th><th>At validation</th><th>Judged</th>"
        f"</tr>{body}</table>"
    )


def _method(thresholds: dict[str, Any]) -> str:
    items = "".join(
        f"<li><code>{_e(k)}</code>: {_e(v)}</li>" for k, v in thresholds.items() if k != "sha256"
    )
    return (
        "<section id='method'><h2>Method</h2><p>Each labelled encounter is matched to the "
        "prediction that was served first; predictions without a known outcome are pending, not "
        "negatives. Intervals are 95% percentile bootstrap intervals that resample patients. "
        "The rule and thresholds are in <code>configs/base/monitoring.yaml</code> (section "
        f"<code>outcomes</code>; sha256 {_e(thresholds.get('sha256', '')[:16])}…):</p>"
        f"<ul>{items}</ul></section>"
    )
