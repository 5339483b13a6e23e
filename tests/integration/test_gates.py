"""Each model gate blocks a real ZenML training run of a deliberately flawed model."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from zenml.client import Client
from zenml.enums import ModelStages

from mlops_cli.commands import training_config
from mlops_platform.config import config_dir
from mlops_platform.governance.policy.evaluate import GateFailedError
from mlops_platform.infra.settings import load_platform_settings
from mlops_platform.names import REJECTED_TAG, VALIDATED_TAG, PlatformArtifact
from mlops_platform.reporting.model_report import SECTION_IDS
from mlops_platform.runtime.runner import GovernedRunFailed, run_governed
from mlops_platform.trust.audit import AuditTrail
from mlops_platform.trust.identity import Actor
from readmission.names import MODEL_NAME
from tests.integration.gate_probes import gate_probe_training
from tests.integration.helpers import copy_configs, invoke_json, write_synthetic_csv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gates")]

TESTER = Actor("gate-tester", "asserted")


@pytest.fixture(scope="module")
def champion(
    module_state: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, object]]:
    """A validated model trained on the real pipeline, holding the production stage."""
    base = tmp_path_factory.mktemp("gates")
    platform = yaml.safe_load((config_dir() / "base" / "platform.yaml").read_text())
    platform["serialization"]["allowed_types"].append("tests.integration.gate_probes.UnfairModel")
    configs = copy_configs(base / "configs", {"base/platform.yaml": platform})
    data = write_synthetic_csv(base / "encounters.csv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_CONFIG_DIR", str(configs))
        summary = invoke_json("train", "--env", "local", "--data", str(data))
        Client().update_model_version(
            MODEL_NAME, summary["model_version"], stage=ModelStages.PRODUCTION, force=True
        )
        yield {"summary": summary, "data": data}


def run_probe(kind: str, data: Path) -> GovernedRunFailed:
    parameters = {**training_config("local", data).pipeline_parameters(), "kind": kind}
    with pytest.raises(GovernedRunFailed) as failure:
        run_governed(gate_probe_training, "local", TESTER, parameters)
    error = failure.value
    assert error.step == "validate_model"
    assert error.error_class() is GateFailedError
    return error


def failed_checks(error: GovernedRunFailed) -> set[str]:
    return {line.split("=")[0].strip(" -") for line in error.error_message.splitlines()[1:]}


def latest_version() -> object:
    return Client().list_model_versions(MODEL_NAME, sort_by="desc:number", size=1).items[0]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("shuffled_labels", {"roc_auc"}),
        ("unbalanced_weights", {"ece", "brier"}),
        ("unfair", {"subgroup_roc_auc_min", "equalized_odds_difference"}),
        ("subsample", {"roc_auc_drop_vs_champion"}),
    ],
)
def test_flawed_model_is_blocked_and_rejected(
    champion: dict[str, object], kind: str, expected: set[str]
) -> None:
    error = run_probe(kind, champion["data"])

    assert expected <= failed_checks(error), error.error_message
    version = latest_version()
    tags = {tag.name for tag in version.tags}
    assert REJECTED_TAG in tags and VALIDATED_TAG not in tags
    assert version.run_metadata["gate_decision"]["passed"] is False
    trail = AuditTrail(load_platform_settings("local").audit.url)
    events = [r for r in trail.records(model_name=MODEL_NAME) if r.model_version == version.name]
    assert [e.event_type for e in events] == ["gate_failed", "pipeline_failed"]
    assert set(events[0].details["failed_checks"]) >= expected


def test_champion_comparison_uses_the_production_model(champion: dict[str, object]) -> None:
    version = latest_version()
    recorded = version.run_metadata["champion"]
    assert recorded["model_version"] == champion["summary"]["model_version"]
    assert recorded["stage"] == "production"


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section" and values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "img" and (values.get("src") or "").startswith("data:image/png;base64,"):
            self.images += 1


def test_model_report_is_linked_to_the_version_and_complete(
    champion: dict[str, object], output_dir: Path
) -> None:
    version = Client().get_model_version(MODEL_NAME, champion["summary"]["model_version"])
    report = version.get_artifact(PlatformArtifact.MODEL_REPORT)
    html = str(report.load())
    (output_dir / "model_report.html").write_text(html, encoding="utf-8")

    parsed = _Sections()
    parsed.feed(html)
    assert set(SECTION_IDS) <= parsed.ids
    assert parsed.images >= 2
    assert version.get_artifact(PlatformArtifact.SUBGROUP_TABLE).load().shape[0] > 0
