"""A self-contained HTML report of one batch's drift against the model's training reference.

No external resources (inline CSS, figures as base64 PNG), so the page can be stored as an
artifact or mailed and still render the same later. Every piece of text is HTML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mlops_platform.evaluation.drift import (
    PSI_EPSILON,
    DriftResult,
    FeatureProfile,
    ReferenceProfile,
)
from mlops_platform.reporting.html import BASE_CSS, figure_png
from mlops_platform.reporting.html import escape as _e

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SECTION_IDS: tuple[str, ...] = ("summary", "features", "predictions", "method")
# Context keys shown first in the summary, with their labels; any other keys follow.
CONTEXT_LABELS: tuple[tuple[str, str], ...] = (
    ("model_name", "Model"),
    ("model_version", "Version"),
    ("model_stage", "Stage"),
    ("inference_run_id", "Inference run"),
)
_FEATURE_CHART_LIMIT = 20

_CSS = (
    BASE_CSS
    + """
tr.drifted td { background: #ffebe9; }
.warn { color: #9a6700; font-weight: 600; }
img { max-width: 520px; }
"""
)


def render_drift_report(
    result: DriftResult, reference: ReferenceProfile, context: Mapping[str, str]
) -> str:
    """Render the drift of one batch as one HTML page.

    ``context`` names the model and the run (keys in ``CONTEXT_LABELS``; any others are shown
    too). A missing key is shown as "not given" rather than failing the inference run.
    """
    title = " ".join(
        str(context[key]) for key in ("model_name", "model_version") if context.get(key)
    )
    heading = f"Drift report: {title}" if title else "Drift report"
    body = "\n".join(
        (
            _summary(result, reference, context),
            _features(result, reference),
            _predictions(result, reference),
            _method(result, reference),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(heading)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_e(heading)}</h1>\n{body}\n</body>\n</html>\n"
    )


def _summary(result: DriftResult, reference: ReferenceProfile, context: Mapping[str, str]) -> str:
    if result.insufficient_data:
        verdict = '<span class="warn">Not assessed: insufficient data</span>'
    elif result.drift_detected:
        verdict = '<span class="fail">Drift detected</span>'
    else:
        verdict = '<span class="pass">No drift detected</span>'
    known = {key for key, _ in CONTEXT_LABELS}
    facts = {label: context.get(key) or "not given" for key, label in CONTEXT_LABELS}
    facts.update({key: value for key, value in context.items() if key not in known})
    facts["Batch rows"] = f"{result.rows:,}"
    facts["Reference rows"] = f"{reference.rows:,}"
    facts["Drifted features"] = (
        f"{len(result.drifted_features)} of {len(result.feature_psi)} ({result.share_drifted:.0%})"
    )
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in result.reasons)
    reasons_html = f"<ul>{reasons}</ul>" if reasons else '<p class="muted">No findings.</p>'
    return _section(
        "summary",
        "Summary",
        f'<p class="decision">{verdict}</p>\n{reasons_html}\n{_key_values(facts)}',
    )


def _features(result: DriftResult, reference: ReferenceProfile) -> str:
    ordered = sorted(
        reference.features,
        key=lambda feature: _sort_key(result.feature_psi.get(feature.name, math.nan)),
    )
    drifted = set(result.drifted_features)
    header = (
        "<tr><th>Feature</th><th>Type</th><th>PSI</th><th>Status</th>"
        "<th>Largest change (reference → batch)</th></tr>"
    )
    rows = []
    for feature in ordered:
        value = result.feature_psi.get(feature.name, math.nan)
        is_drifted = feature.name in drifted
        row = '<tr class="drifted">' if is_drifted else "<tr>"
        status = "drifted" if is_drifted else "stable"
        change = _largest_change(feature, result.batch_proportions.get(feature.name))
        rows.append(
            f"{row}<td>{_e(feature.name)}</td><td>{_e(feature.kind)}</td>"
            f'<td class="num">{_e(_number(value, ".3f"))}</td><td>{status}</td>'
            f"<td>{_e(change)}</td></tr>"
        )
    chart = _figure(lambda figure: _draw_feature_psi(figure, result))
    return _section(
        "features",
        "Features",
        f'<figure><img alt="Feature PSI" src="data:image/png;base64,{chart}">'
        f"<figcaption>Highest feature PSI (top {_FEATURE_CHART_LIMIT}) and the limit"
        "</figcaption></figure>\n"
        f"<table>{header}{''.join(rows)}</table>",
    )


def _predictions(result: DriftResult, reference: ReferenceProfile) -> str:
    t = result.thresholds
    profile = reference.prediction_profile()
    image = _figure(
        lambda figure: _draw_predictions(figure, profile, reference, result.prediction_proportions)
    )
    ks_flag = t.ks_exceeded(result.prediction_ks_statistic, result.prediction_ks_pvalue)
    psi_flag = t.prediction_psi_exceeded(result.prediction_psi)
    checks = (
        (
            "Prediction PSI",
            _number(result.prediction_psi, ".3f"),
            f"> {t.prediction_psi:g}",
            psi_flag,
        ),
        (
            "KS statistic",
            _number(result.prediction_ks_statistic, ".3f"),
            f"> {t.prediction_ks_min_statistic:g}, together with the p-value",
            ks_flag,
        ),
        (
            "KS p-value",
            _number(result.prediction_ks_pvalue, ".2g"),
            f"< {t.prediction_ks_pvalue:g}, together with the statistic",
            ks_flag,
        ),
    )
    rows = "".join(
        f'<tr><td>{_e(label)}</td><td class="num">{_e(value)}</td>'
        f"<td>{_e(limit)}</td><td>{_flag(flagged)}</td></tr>"
        for label, value, limit, flagged in checks
    )
    return _section(
        "predictions",
        "Predictions",
        f'<figure><img alt="Prediction distributions" src="data:image/png;base64,{image}">'
        "<figcaption>Predicted probability, reference vs batch (density over the reference "
        "decile bins)</figcaption></figure>\n"
        "<table><tr><th>Statistic</th><th>Value</th><th>Flags drift when</th><th>Result</th>"
        f"</tr>{rows}</table>",
    )


def _method(result: DriftResult, reference: ReferenceProfile) -> str:
    t = result.thresholds
    limits = {
        "Feature PSI limit (feature_psi)": f"{t.feature_psi:g}",
        "Share of drifted features allowed (share_of_drifted_features)": (
            f"{t.share_of_drifted_features:g}"
        ),
        "Prediction PSI limit (prediction_psi)": f"{t.prediction_psi:g}",
        "KS p-value limit (prediction_ks_pvalue)": f"{t.prediction_ks_pvalue:g}",
        "KS minimum statistic (prediction_ks_min_statistic)": f"{t.prediction_ks_min_statistic:g}",
        "Minimum batch rows (min_rows)": f"{t.min_rows:,}",
    }
    text = (
        "<p>The batch is compared with the reference profile saved with the model version. "
        "Numeric features are binned on the reference deciles (right-closed bins, plus a bin "
        "for missing values); categorical features keep their most frequent reference "
        "categories, and any other or unseen value counts as <code>__other__</code>.</p>\n"
        "<p>The population stability index is PSI = Σ (a − e) · ln(a / e) over the bins, with "
        f"e and a the reference and batch proportions, each floored at {PSI_EPSILON:g}. Below "
        "0.1 is usually read as stable, 0.1–0.25 as a moderate shift, above 0.25 as "
        "significant. The predicted probabilities get the same treatment on the deciles of the "
        "reference predictions, and a two-sample Kolmogorov–Smirnov test compares the "
        f"reference sample of {len(reference.prediction_sample):,} predictions with a uniform "
        "random sample (reservoir) of the batch predictions.</p>\n"
        "<p>Drift is detected when any of these holds: (1) more than the allowed share of "
        "features have PSI above the feature limit; (2) the prediction PSI is above its limit; "
        "(3) the KS p-value is below its limit <em>and</em> the KS statistic is above its "
        "minimum (with thousands of rows a p-value alone flags shifts too small to matter). "
        "A batch with fewer than the minimum rows is not assessed. The limits come from "
        "<code>configs/*/monitoring.yaml</code>.</p>"
    )
    return _section("method", "Method", f"{text}\n{_key_values(limits)}")


def _largest_change(feature: FeatureProfile, batch: Sequence[float] | None) -> str:
    """The bin whose share moved most, as 'label: 12.0% → 31.5%'."""
    if not batch or len(batch) != len(feature.proportions):
        return "–"
    gaps = np.abs(np.asarray(batch) - np.asarray(feature.proportions))
    index = int(np.argmax(gaps))
    label = feature.bin_labels()[index]
    return f"{label}: {feature.proportions[index]:.1%} → {batch[index]:.1%}"


def _draw_feature_psi(figure: Figure, result: DriftResult) -> None:
    items = sorted(result.feature_psi.items(), key=lambda item: _sort_key(item[1]))
    items = [(name, value) for name, value in items if math.isfinite(value)]
    items = items[:_FEATURE_CHART_LIMIT][::-1]
    axes = figure.add_subplot()
    limit = result.thresholds.feature_psi
    colours = ["#cf222e" if value > limit else "#0969da" for _, value in items]
    axes.barh([name for name, _ in items], [value for _, value in items], color=colours)
    axes.axvline(limit, linestyle="--", color="#8c959f", label=f"limit {limit:g}")
    axes.set(xlabel="PSI", title="Feature PSI")
    axes.tick_params(axis="y", labelsize=7)
    axes.legend(loc="lower right")


def _draw_predictions(
    figure: Figure,
    profile: FeatureProfile,
    reference: ReferenceProfile,
    batch: Sequence[float],
) -> None:
    """Both distributions as densities over the reference decile bins (what the PSI compares).

    The open outer bins are drawn up to the smallest and largest reference prediction (batch
    values beyond them are counted in those bins).
    """
    sample = np.asarray(reference.prediction_sample, dtype="float64")
    low, high = float(sample.min()), float(sample.max())
    inner = profile.edges[1:-1]
    pad = 0.05 * (high - low) or 0.05
    if inner and inner[0] <= low:
        low -= pad
    if inner and inner[-1] >= high:
        high += pad
    edges = np.asarray([low, *inner, high])
    widths = np.diff(edges)
    axes = figure.add_subplot()
    axes.stairs(
        np.asarray(profile.proportions[:-1]) / widths,
        edges,
        label="reference",
        color="#8c959f",
        fill=True,
        alpha=0.5,
    )
    if len(batch) == len(profile.proportions):
        axes.stairs(
            np.asarray(batch[:-1]) / widths, edges, label="batch", color="#cf222e", linewidth=2
        )
    axes.set(xlabel="Predicted probability of readmission", ylabel="Density", title="Predictions")
    axes.legend(loc="upper right")


def _sort_key(value: float) -> float:
    """Descending PSI with NaN last."""
    return math.inf if math.isnan(value) else -value


def _flag(flagged: bool) -> str:
    return '<span class="fail">flags drift</span>' if flagged else '<span class="pass">ok</span>'


def _key_values(values: Mapping[str, object]) -> str:
    rows = "".join(
        f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in values.items()
    )
    return f"<table>{rows}</table>"


def _section(section_id: str, heading: str, content: str) -> str:
    return f'<section id="{section_id}">\n<h2>{_e(heading)}</h2>\n{content}\n</section>'


def _number(value: float, spec: str) -> str:
    return "n/a" if math.isnan(value) else format(value, spec)


def _figure(draw: Callable[[Figure], None]) -> str:
    return figure_png(draw, (5.2, 4.2))
