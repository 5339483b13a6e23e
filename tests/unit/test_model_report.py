"""The HTML model report: every section, embedded figures, escaped text, no outside resources."""

from __future__ import annotations

import base64
import dataclasses
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from mlops_platform.evaluation.fairness import sensitive_groups, summarize_fairness
from mlops_platform.governance.policy.evaluate import evaluate
from mlops_platform.governance.policy.models import load_policy
from mlops_platform.reporting.model_report import (
    MODEL_CARD_HEADINGS,
    SECTION_IDS,
    ModelReportContext,
    ReportError,
    render_model_report,
)

THRESHOLD = 0.2
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<script>alert('x')</script>"


class _ReportParser(HTMLParser):
    """Collects section ids, each section's h2, images, links and text per section."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.headings: dict[str, str] = {}
        self.images: dict[str, list[str]] = {}
        self.text: dict[str, str] = {}
        self.tags: set[str] = set()
        self.urls: list[str] = []
        self._section: str | None = None
        self._in_h2 = False
        self.gate_rows = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self._section = values.get("id") or ""
            self.sections.append(self._section)
        elif tag == "h2":
            self._in_h2 = True
        elif tag == "img" and self._section is not None:
            self.images.setdefault(self._section, []).append(values.get("src") or "")
        elif tag == "tr" and self._section == "gates":
            self.gate_rows += 1
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append(values[name] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        elif tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._section is None:
            return
        if self._in_h2:
            self.headings[self._section] = self.headings.get(self._section, "") + data
        self.text[self._section] = self.text.get(self._section, "") + data


def _context(**overrides: object) -> ModelReportContext:
    rng = np.random.default_rng(5)
    n = 3000
    patients = rng.integers(0, 2200, n)
    raw = pd.DataFrame(
        {
            "race": rng.choice(
                ["Caucasian", "AfricanAmerican", "?", "Asian"], n, p=[0.6, 0.3, 0.08, 0.02]
            ),
            "gender": rng.choice(["Female", "Male"], n),
            "age": rng.choice(["[40-50)", "[60-70)", "[80-90)"], n),
        }
    )
    risk = rng.normal(-1.7, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    p = 1 / (1 + np.exp(-(risk + rng.normal(0, 0.7, n))))
    policy = load_policy("local")
    fairness = summarize_fairness(
        y,
        p,
        sensitive_groups(raw),
        THRESHOLD,
        policy.fairness.min_group_size,
        min_group_events=policy.fairness.min_group_events,
    )
    metrics = {"roc_auc": 0.71, "pr_auc": 0.33, "brier": 0.101, "ece": 0.012, "recall": 0.55}
    values: dict[str, object] = {
        "model_name": "readmission-model",
        "model_version": "7",
        "environment": "local",
        "y_true": y,
        "y_prob": p,
        "patient_ids": patients,
        "operating_threshold": THRESHOLD,
        "metrics": metrics,
        "fairness": fairness,
        "decision": evaluate(metrics, fairness, None, policy, "local"),
        "provenance": {"source": "synthetic", "sha256": "ab" * 32, "rows": n, "patients": 2200},
        "code_version": {"git_sha": "0123abc", "git_dirty": True},
        "training_run_id": "run-42",
        "baseline_metrics": {"roc_auc": 0.66, "brier": 0.104},
        "predictors": ("number_inpatient", "age"),
        "n_boot": 60,
    }
    values.update(overrides)
    return ModelReportContext(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def report() -> tuple[str, _ReportParser]:
    page = render_model_report(_context())
    parser = _ReportParser()
    parser.feed(page)
    parser.close()
    return page, parser


def test_every_section_is_present_once_with_a_heading(report) -> None:
    _, parsed = report
    assert parsed.sections == list(SECTION_IDS)
    for section in SECTION_IDS:
        assert parsed.headings.get(section, "").strip(), section


def test_curves_are_embedded_png_images(report) -> None:
    _, parsed = report
    images = parsed.images["curves"]
    assert len(images) == 2
    for src in images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :]).startswith(PNG_MAGIC)


def test_page_is_self_contained(report) -> None:
    page, parsed = report
    assert all(url.startswith("data:") for url in parsed.urls), parsed.urls
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert "<style>" in page


def test_sections_show_what_the_reviewer_needs(report) -> None:
    _, parsed = report
    context = _context()
    summary = parsed.text["summary"]
    assert "readmission-model" in summary and "local" in summary
    assert ("PASSED" if context.decision.passed else "FAILED") in summary
    metrics = parsed.text["metrics"]
    for label in (
        "ROC-AUC",
        "95% CI",
        "PR-AUC",
        "Brier",
        "calibration error",
        "Recall",
        "Precision",
        "Calibration intercept",
        "Calibration slope",
        "Baseline",
        "0.660",
    ):
        assert label in metrics, label
    subgroups = parsed.text["subgroups"]
    assert "AfricanAmerican" in subgroups and "Unknown" in subgroups
    assert "no (too few to compare)" in subgroups
    assert parsed.gate_rows == len(context.decision.checks) + 1
    for check in context.decision.checks:
        assert check.name in parsed.text["gates"]
    provenance = parsed.text["provenance"]
    for value in ("synthetic", "ab" * 32, "0123abc", "yes", "run-42"):
        assert value in provenance, value
    for heading in MODEL_CARD_HEADINGS:
        assert heading in parsed.text["model-card"], heading
    assert "number_inpatient" in parsed.text["model-card"]


def test_text_is_escaped() -> None:
    context = _context(
        model_name=HOSTILE,
        provenance={"source": HOSTILE},
        model_card={"Limitations": HOSTILE},
    )
    page = render_model_report(context)
    parsed = _ReportParser()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert HOSTILE not in page
    assert "&lt;script&gt;" in page
    assert HOSTILE in parsed.text["model-card"]


def test_report_without_baseline_has_no_baseline_column() -> None:
    page = render_model_report(_context(baseline_metrics=None))
    assert "<th>Baseline</th>" not in page


def test_missing_metric_is_shown_as_missing() -> None:
    page = render_model_report(_context(metrics={"roc_auc": 0.7}))
    parsed = _ReportParser()
    parsed.feed(page)
    assert "missing" in parsed.text["metrics"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_card": {"Secret sauce": "x"}}, "Unknown model card headings"),
        ({"patient_ids": np.arange(10)}, "same test rows"),
    ],
)
def test_inconsistent_context_is_rejected(overrides: dict, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        render_model_report(_context(**overrides))


def test_context_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _context().model_name = "other"  # type: ignore[misc]


def test_the_same_outcomes_and_risks_draw_their_curves_once_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_platform.reporting import model_report

    drawn: list[int] = []
    draw = model_report._draw_curves

    def counting(y: np.ndarray, p: np.ndarray, curve: object) -> str:
        drawn.append(len(p))
        return draw(y, p, curve)  # type: ignore[arg-type]

    monkeypatch.setattr(model_report, "_CURVES", {})
    monkeypatch.setattr(model_report, "_draw_curves", counting)
    context = _context()
    first = render_model_report(context)
    again = render_model_report(dataclasses.replace(context, environment="production"))
    assert len(drawn) == 1  # the second report (another environment) reused the figures
    assert _curve_images(first) == _curve_images(again)

    nudged = np.asarray(context.y_prob, dtype=float).copy()
    nudged[0] = min(nudged[0] + 1e-9, 1.0)  # one risk changed in the ninth decimal
    render_model_report(dataclasses.replace(context, y_prob=nudged))
    assert len(drawn) == 2  # other risks, other figures


def _curve_images(page: str) -> list[str]:
    parser = _ReportParser()
    parser.feed(page)
    return parser.images["curves"]
