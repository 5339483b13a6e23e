"""The HTML drift report: sections, embedded figures, drifted features, escaping."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import pytest
from test_drift import CATEGORICAL, NUMERIC, accumulate, population, score, shifted_batch

from mlops_platform.evaluation.drift import (
    DriftAccumulator,
    ReferenceProfile,
    build_reference,
    load_drift_thresholds,
)
from mlops_platform.reporting.drift_report import SECTION_IDS, render_drift_report

CONTEXT = {
    "model_name": "readmission",
    "model_version": "7",
    "model_stage": "production",
    "inference_run_id": "run-<b>42</b>",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Collects section ids, the heading of each section, images, table rows and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.headings: dict[str, str] = {}
        self.images: list[str] = []
        self.drifted_rows: list[str] = []
        self.text: list[str] = []
        self._in_h2 = False
        self._in_drifted_row = False
        self._first_cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section":
            self.sections.append(values.get("id") or "")
        elif tag == "h2":
            self._in_h2 = True
        elif tag == "img":
            self.images.append(values.get("src") or "")
        elif tag == "tr":
            self._in_drifted_row = values.get("class") == "drifted"
            self._first_cell = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False
        elif tag == "tr" and self._in_drifted_row and self._first_cell is not None:
            self.drifted_rows.append(self._first_cell)

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_h2:
            self.headings[self.sections[-1]] = data
        if self._in_drifted_row and self._first_cell is None and data.strip():
            self._first_cell = data.strip()


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    frame = population(20_000, seed=0)
    return build_reference(frame, score(frame), NUMERIC, CATEGORICAL)


def test_a_drifted_batch_report_has_every_section_figures_and_the_drifted_features(
    reference: ReferenceProfile,
) -> None:
    result = accumulate(reference, shifted_batch(5000))
    page = parse(render_drift_report(result, reference, CONTEXT))

    assert page.sections == list(SECTION_IDS)
    assert set(page.headings) == set(SECTION_IDS)
    assert len(page.images) == 2
    for source in page.images:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        assert base64.b64decode(source.removeprefix(prefix)).startswith(PNG_SIGNATURE)
    assert result.drift_detected
    assert page.drifted_rows == result.drifted_features
    assert "age_years" in page.drifted_rows
    text = "".join(page.text)
    assert "Drift detected" in text
    assert all(reason in text for reason in result.reasons)


def test_context_is_shown_and_escaped(reference: ReferenceProfile) -> None:
    result = accumulate(reference, population(3000, seed=1))
    html_text = render_drift_report(result, reference, CONTEXT)
    text = "".join(parse(html_text).text)

    assert "<b>42</b>" not in html_text
    assert "run-<b>42</b>" in text
    for value in ("readmission", "7", "production"):
        assert value in text
    assert "No drift detected" in text


def test_small_and_empty_batches_render_as_not_assessed(reference: ReferenceProfile) -> None:
    thresholds = load_drift_thresholds("production")
    small = accumulate(reference, shifted_batch(thresholds.min_rows // 2))
    empty = DriftAccumulator(reference).result(thresholds)

    for result in (small, empty):
        page = parse(render_drift_report(result, reference, {}))
        text = "".join(page.text)
        assert page.sections == list(SECTION_IDS)
        assert "insufficient data" in text
        assert "not given" in text


def test_the_command_says_a_small_batch_was_not_assessed_not_that_it_has_no_drift(
    reference: ReferenceProfile,
) -> None:
    """One shard of a large drifted file can hold fewer rows than drift needs: the command said
    "No drift detected." for it. It says "not assessed" with the reason now."""
    from io import StringIO

    from rich.console import Console

    from mlops_cli.inference import print_inference_summary
    from mlops_platform.steps.score_batch import drift_summary

    thresholds = load_drift_thresholds("production")
    small = accumulate(reference, shifted_batch(thresholds.min_rows // 2))
    drift = drift_summary(small)
    summary = {
        "rows_scored": small.rows, "rows_read": small.rows, "model_name": "m",
        "model_version": "1", "model_stage": "production", "rows_high_risk": 0,
        "output_dir": "out", "rows_rejected": 0,
        "drift_detected": drift["detected"], "drift_assessed": not drift["insufficient_data"],
        "drift_reasons": drift["reasons"],
    }  # fmt: skip
    shown = StringIO()
    print_inference_summary(Console(file=shown, width=200), summary)
    assert "Drift not assessed" in shown.getvalue() and "No drift detected" not in shown.getvalue()
