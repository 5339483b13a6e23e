"""Golden sample: does today's code still give a stored model the predictions it was registered with?

At registration the platform scores a small frame of synthetic encounters (no patient data) with the
new model and keeps both: the frame as the model version's `golden_sample` artifact, its hash and the
scores in the version's registration record. Every later load (champion/challenger, promotion,
rollback, batch scoring) re-scores the stored frame with the loaded model under the current code and
refuses the model if a score moved: the feature code a model runs through is today's code, so a
change to how an existing feature is computed would otherwise silently change its predictions.

`compare` is pure; `verify_version` and `record_for_registration` are the ZenML edges. The check
is separate from the model file's integrity check (hash and signature), and runs right after it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_platform.trust.artifacts import MODEL_FILE_KEY

logger = logging.getLogger(__name__)

GOLDEN_ARTIFACT = "golden_sample"
REGISTRATION_KEY = "golden_sample"  # key inside the version's `registration` metadata
# Scores are recomputed with the same library versions (locked), so they match to the last bit on
# one machine; the tolerance only absorbs floating-point differences between CPUs.
TOLERANCE = 1e-6


class GoldenSampleMismatch(RuntimeError):
    """Today's code changes a stored model's predictions, or its golden sample is unusable."""


@dataclass(frozen=True)
class GoldenRecord:
    """What registration stores about the golden sample (JSON-safe through `as_dict`)."""

    rows: int
    inputs_sha256: str
    scores: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "inputs_sha256": self.inputs_sha256,
            "scores": list(self.scores),
            "tolerance": TOLERANCE,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> GoldenRecord:
        try:
            return cls(
                rows=int(raw["rows"]),
                inputs_sha256=str(raw["inputs_sha256"]),
                scores=tuple(float(s) for s in raw["scores"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise GoldenSampleMismatch(
                f"The golden-sample record is malformed ({type(error).__name__}: {error})."
            ) from error


def inputs_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's column names and values (row order matters, dtypes do not)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    as_text = frame.astype("string").fillna("\x00")
    digest.update(pd.util.hash_pandas_object(as_text, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class for each row (scikit-learn's `predict_proba`)."""
    return np.asarray(model.predict_proba(frame)[:, 1], dtype="float64")


def make_record(model: Any, frame: pd.DataFrame) -> GoldenRecord:
    return GoldenRecord(
        len(frame), inputs_digest(frame), tuple(float(s) for s in score(model, frame))
    )


def compare(record: GoldenRecord, frame: pd.DataFrame, scores: np.ndarray | None) -> str | None:
    """Why the recomputed `scores` on `frame` do not reproduce `record`, or None when they do."""
    if len(frame) != record.rows or inputs_digest(frame) != record.inputs_sha256:
        return "its stored golden sample is not the one registered (rows or hash differ)"
    if scores is None or len(scores) != record.rows:
        return "it no longer returns one score per golden-sample row"
    expected = np.asarray(record.scores, dtype="float64")
    difference = np.abs(np.asarray(scores, dtype="float64") - expected)
    if not np.all(np.isfinite(difference)):
        return "it returns non-finite scores on the golden sample"
    worst = float(difference.max(initial=0.0))
    if worst > TOLERANCE:
        changed = int((difference > TOLERANCE).sum())
        return (
            f"this code changes its predictions ({changed} of {record.rows} golden-sample scores "
            f"moved, by up to {worst:.3g}; tolerance {TOLERANCE:g})"
        )
    return None


def mismatch_message(model_name: str, version: str, git_sha: str | None, reason: str) -> str:
    commit = git_sha or "an unrecorded commit"
    advice = (
        ""  # the cause already says what to do (a team's own error message)
        if "retrain" in reason
        else " Score it from that commit's image, or retrain it with this code."
    )
    return (
        f"Refusing version {version} of {model_name}: it was trained at commit {commit}; "
        f"{reason.rstrip('.')}.{advice}"
    )


def check(
    model: Any, frame: pd.DataFrame, record: GoldenRecord, *, subject: tuple[str, str, str | None]
) -> None:
    """Raise GoldenSampleMismatch unless `model` reproduces `record` on `frame` under this code."""
    try:
        scores: np.ndarray | None = score(model, frame)
    except Exception as error:  # any failure to score is a refusal, reported with its cause
        reason = f"this code can no longer score it ({type(error).__name__}: {error})"
        raise GoldenSampleMismatch(mismatch_message(*subject, reason)) from error
    reason = compare(record, frame, scores)
    if reason is not None:
        raise GoldenSampleMismatch(mismatch_message(*subject, reason))


# ZenML edges --------------------------------------------------------------------------------------


def record_for_registration(model: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """Save `frame` as the run's golden-sample artifact and return the record to register."""
    from zenml import save_artifact

    saved = save_artifact(frame.reset_index(drop=True), name=GOLDEN_ARTIFACT)
    # Scored as stored: the check at load time reads the artifact back the same way.
    return make_record(model, saved.load()).as_dict()


def verify_version(version: Any, model: Any) -> None:
    """Re-score a loaded model's golden sample; call it right after loading `version`'s model.

    Versions registered before golden samples existed have no record: they are let through with
    a warning (there is nothing to compare with). A version whose model-file pin names its ZenML
    id was registered by code that always records a sample: without one it is refused, as is a
    version whose record exists but whose sample artifact is gone.
    """
    registration = (version.run_metadata or {}).get("registration") or {}
    raw = registration.get(REGISTRATION_KEY)
    git_sha = (registration.get("code") or {}).get("git_sha")
    subject = (version.model.name, str(version.name), git_sha)
    pin = registration.get(MODEL_FILE_KEY)
    if raw is None and isinstance(pin, dict) and pin.get("model_version_id"):
        raise GoldenSampleMismatch(
            f"Refusing version {version.name} of {version.model.name}: its registration record "
            "has no golden-sample record, but it was registered by code that always makes one "
            "(its signed model-file pin names its ZenML id): the record was removed. Find out "
            "who changed ZenML's metadata, and restore it."
        )
    if raw is None:
        logger.warning(
            "Version %s of %s was registered without a golden sample; whether this code changes "
            "its predictions is not checked.",
            version.name,
            version.model.name,
        )
        return
    record = GoldenRecord.from_dict(raw)
    try:
        artifact = version.get_artifact(GOLDEN_ARTIFACT)
    except (KeyError, RuntimeError):
        artifact = None
    if artifact is None:
        reason = f"its golden-sample artifact {GOLDEN_ARTIFACT!r} is missing"
        raise GoldenSampleMismatch(mismatch_message(*subject, reason))
    check(model, _load_sample(artifact, subject), record, subject=subject)


def _load_sample(artifact: Any, subject: tuple[str, str, Any]) -> pd.DataFrame:
    """The sample as its files hold it, with a materializer that runs no code from them (ZenML's
    loader would import whatever materializer its database names)."""
    from mlops_platform.trust.stored import StoredFilesError, load_stored, read_stored

    try:
        return load_stored(artifact, read_stored(str(artifact.uri)))
    except (StoredFilesError, OSError) as error:
        raise StoredFilesError(
            f"Refused to load the golden sample of {subject[0]} version {subject[1]}: {error}. "
            "ZenML's record of the sample does not fit its files; find out who wrote to ZenML's "
            "database, and restore it from backup."
        ) from error
