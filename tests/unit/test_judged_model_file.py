"""Registration and promotion use only the model file the gate scored (its SHA-256)."""

from __future__ import annotations

import hashlib

from mlops_platform.trust.artifacts import (
    judged_file_problem,
    loaded_digest,
    loads_model,
    model_types,
)

SCORED = "a" * 64
OTHER = "b" * 64


def test_the_same_bytes_pass_and_other_bytes_are_named() -> None:
    assert judged_file_problem(SCORED, SCORED, "Registration") is None
    problem = judged_file_problem(SCORED, OTHER, "Registration")
    assert problem is not None and problem.startswith("Registration refused")
    assert SCORED[:16] in problem and OTHER[:16] in problem and "replaced after the gate" in problem


def test_a_decision_that_names_no_file_is_refused() -> None:
    for judged in (None, ""):
        problem = judged_file_problem(judged, OTHER, "Promotion")
        assert problem is not None and "does not name the model file it scored" in problem


def test_the_gate_learns_the_digest_of_the_bytes_it_loaded() -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression

    data = skops.io.dumps(LogisticRegression())
    allowed = model_types(data)  # every name in the file, as an allow-list would hold them
    model = loads_model(data, allowed)
    assert loaded_digest(model) == hashlib.sha256(data).hexdigest()
    assert loaded_digest(LogisticRegression()) is None  # not built from a file: no digest
