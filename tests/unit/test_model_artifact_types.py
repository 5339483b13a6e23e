"""Model files that cannot run code or be swapped (trust/artifacts.py), with real payloads and keys.

The crafted models use only modules the old prefix rule trusted (``numpy.``, ``sklearn.`` and
``functools.partial``) and carry a NumPy helper that executes a string. Each attack test first
shows the payload really runs when its types are trusted, then that the platform refuses it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import skops.io
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.testing._private.utils import runstring
from pydantic import ValidationError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mlops_platform.infra.settings import SerializationSettings, allowed_model_types
from mlops_platform.trust.artifacts import (
    ModelFileIntegrityError,
    ModelFilePin,
    UntrustedModelError,
    check_model_file,
    dumps_model,
    file_digest,
    loads_model,
    model_types,
    refused_types,
    sign_model_file,
)
from mlops_platform.trust.keys import verifier_for
from mlops_platform.trust.signing import Signer

RUNSTRING = "numpy.testing._private.utils.runstring"


def _partial_payload() -> Any:
    return FunctionTransformer(func=functools.partial(runstring, dict={}), validate=False)


def _direct_payload() -> Any:
    return FunctionTransformer(func=runstring, kw_args={"dict": {}}, validate=False)


def _payload_in_pipeline() -> Any:
    return Pipeline([("run", _partial_payload()), ("scale", StandardScaler())])


PAYLOADS: dict[str, Callable[[], Any]] = {
    "partial": _partial_payload,
    "direct": _direct_payload,
    "pipeline": _payload_in_pipeline,
}


def _trigger(model: Any, marker: Path) -> None:
    """Score the model the way the attack does: the 'input' is the code to run."""
    code = f"open({str(marker)!r}, 'w').close()"
    step = model.steps[0][1] if isinstance(model, Pipeline) else model
    step.fit(code).transform(code)


@pytest.fixture
def allowed() -> frozenset[str]:
    return allowed_model_types("local")


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_the_payload_runs_when_its_types_are_trusted(kind: str, tmp_path: Path) -> None:
    """Control: under skops' own audit, trusting what the file names, the payload executes."""
    data = skops.io.dumps(PAYLOADS[kind]())
    assert RUNSTRING in skops.io.get_untrusted_types(data=data)
    marker = tmp_path / "pwned"
    _trigger(skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data)), marker)
    assert marker.exists()


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_an_unlisted_function_reference_is_refused_on_save(
    kind: str, allowed: frozenset[str], tmp_path: Path
) -> None:
    with pytest.raises(UntrustedModelError, match=f"Saving the model refused.*{RUNSTRING}"):
        dumps_model(PAYLOADS[kind](), allowed)


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_an_unlisted_function_reference_is_refused_on_load_and_never_runs(
    kind: str, allowed: frozenset[str], tmp_path: Path
) -> None:
    crafted = skops.io.dumps(PAYLOADS[kind]())  # written by an attacker, not by the platform
    marker = tmp_path / "pwned"
    loaded = None
    with pytest.raises(UntrustedModelError, match=f"Loading the model refused.*{RUNSTRING}"):
        loaded = loads_model(crafted, allowed)
    assert loaded is None
    assert not marker.exists()


def test_every_name_is_listed_including_what_skops_trusts_by_default(
    allowed: frozenset[str],
) -> None:
    """A NumPy ufunc is trusted by skops' defaults; the platform still wants it listed."""
    import numpy as np

    data = skops.io.dumps(FunctionTransformer(func=np.log1p))
    assert "numpy.log1p" not in skops.io.get_untrusted_types(data=data)
    assert "numpy.log1p" in model_types(data)
    transformer = "sklearn.preprocessing._function_transformer.FunctionTransformer"
    assert refused_types(data, allowed | {transformer}) == ["numpy.log1p"]
    assert refused_types(data, allowed | {transformer, "numpy.log1p"}) == []


def test_a_file_that_is_not_skops_is_refused(allowed: frozenset[str]) -> None:
    import pickle

    with pytest.raises(UntrustedModelError, match="not a skops archive"):
        loads_model(pickle.dumps(StandardScaler()), allowed)


@pytest.mark.parametrize("entry", ["sklearn.", "numpy", "sklearn.*", "os.system "])
def test_the_allow_list_takes_full_names_not_prefixes(entry: str) -> None:
    with pytest.raises(ValidationError):
        SerializationSettings(allowed_types=("sklearn.pipeline.Pipeline", entry))


def test_the_configured_list_has_no_code_running_helpers(allowed: frozenset[str]) -> None:
    assert RUNSTRING not in allowed
    assert not {"functools.partial", "posix.system", "builtins.eval", "builtins.exec"} & allowed


# --- pinned digest and signature ---------------------------------------------------------------

PIN_ARGS = {"model_name": "readmission", "model_version": "3", "artifact_id": "a-1"}


@pytest.fixture
def keyed_state(isolated_state: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Isolated state whose staging and production trails are local (local keys trusted)."""
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{isolated_state / 'audit.db'}")
    yield isolated_state


def _sign_with(signer: Signer, data: bytes, **pin_args: str) -> ModelFilePin:
    args = {**PIN_ARGS, **pin_args}
    pin = ModelFilePin(**args, sha256=file_digest(data), key_id="", signature="")
    signature = signer.sign(pin.statement())
    return dataclasses.replace(pin, key_id=signature.key_id, signature=signature.value)


@pytest.mark.parametrize("env", ["local", "staging", "production"])
def test_the_signed_file_verifies(keyed_state: Path, env: str) -> None:
    data = skops.io.dumps(StandardScaler())
    pin = sign_model_file("local", data=data, **PIN_ARGS)
    check_model_file(data, pin, verifier_for(env), **PIN_ARGS)


def test_a_replaced_file_is_refused(keyed_state: Path) -> None:
    data = skops.io.dumps(StandardScaler())
    pin = sign_model_file("local", data=data, **PIN_ARGS)
    swapped = skops.io.dumps(StandardScaler(with_mean=False))
    with pytest.raises(ModelFileIntegrityError, match="replaced or altered"):
        check_model_file(swapped, pin, verifier_for("production"), **PIN_ARGS)


def test_a_forged_digest_in_the_record_is_refused(keyed_state: Path) -> None:
    """Whoever swaps the file and rewrites the recorded digest still lacks the signing key."""
    data = skops.io.dumps(StandardScaler())
    pin = sign_model_file("local", data=data, **PIN_ARGS)
    swapped = skops.io.dumps(StandardScaler(with_mean=False))
    forged = dataclasses.replace(pin, sha256=file_digest(swapped))
    with pytest.raises(ModelFileIntegrityError, match="does not verify"):
        check_model_file(swapped, forged, verifier_for("local"), **PIN_ARGS)


def test_another_versions_signed_pin_is_refused(keyed_state: Path) -> None:
    data = skops.io.dumps(StandardScaler())
    other = sign_model_file("local", data=data, **{**PIN_ARGS, "model_version": "2"})
    with pytest.raises(ModelFileIntegrityError, match="another model was copied"):
        check_model_file(data, other, verifier_for("local"), **PIN_ARGS)


def test_the_pin_of_a_deleted_version_with_the_same_number_is_refused(keyed_state: Path) -> None:
    """ZenML gives a deleted version's number to the next one: the pin names the ZenML version
    id it was signed for, so moving it onto the new version is refused; stripping the id from
    it breaks its signature; a pin signed before ids were signed still verifies."""
    data = skops.io.dumps(StandardScaler())
    pin = sign_model_file("local", data=data, **PIN_ARGS, model_version_id="id-of-the-first-3")
    check_model_file(
        data, pin, verifier_for("local"), **PIN_ARGS, model_version_id=pin.model_version_id
    )
    with pytest.raises(ModelFileIntegrityError, match="deleted version that had the same number"):
        check_model_file(data, pin, verifier_for("local"), **PIN_ARGS, model_version_id="id-2")
    stripped = dataclasses.replace(pin, model_version_id="")
    with pytest.raises(ModelFileIntegrityError, match="does not verify"):
        check_model_file(data, stripped, verifier_for("local"), **PIN_ARGS, model_version_id="id-2")
    older = sign_model_file("local", data=data, **PIN_ARGS)
    check_model_file(data, older, verifier_for("local"), **PIN_ARGS, model_version_id="id-2")
    assert (
        ModelFilePin.from_metadata(
            {k: v for k, v in older.as_dict().items() if k != "model_version_id"}, "a record"
        )
        == older
    )


@pytest.mark.parametrize("env", ["staging", "production"])
def test_a_model_signed_with_another_key_is_refused(keyed_state: Path, env: str) -> None:
    data = skops.io.dumps(StandardScaler())
    pin = _sign_with(Signer(Ed25519PrivateKey.generate()), data)
    with pytest.raises(ModelFileIntegrityError, match="not trusted here"):
        check_model_file(data, pin, verifier_for(env), **PIN_ARGS)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_a_laptop_key_is_refused_where_the_trail_is_not_local(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    """With a real (remote) trail, staging and production trust only the listed keys."""
    data = skops.io.dumps(StandardScaler())
    pin = sign_model_file("local", data=data, **PIN_ARGS)
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", "postgresql://audit.example/trail")
    with pytest.raises(ModelFileIntegrityError, match="not trusted here"):
        check_model_file(data, pin, verifier_for(env), **PIN_ARGS)


def test_an_incomplete_pin_is_refused() -> None:
    with pytest.raises(ModelFileIntegrityError, match="no complete signed model-file pin"):
        ModelFilePin.from_metadata({"sha256": "0" * 64}, "the registration record")


@pytest.mark.slow  # starts a ZenML store
def test_the_materializer_refuses_the_payload_on_save_and_on_load(
    isolated_state: Path, tmp_path: Path
) -> None:
    """The ZenML materializer every model goes through: nothing written, nothing run."""
    import os

    from zenml.client import Client

    from mlops_platform.materializers.skops_model import MODEL_FILENAME, SkopsModelMaterializer

    store = Client().active_stack.artifact_store
    uri = os.path.join(store.path, "probe")
    store.makedirs(uri)
    materializer = SkopsModelMaterializer(uri, artifact_store=store)
    with pytest.raises(UntrustedModelError, match=RUNSTRING):
        materializer.save(_payload_in_pipeline())
    assert not os.path.exists(os.path.join(uri, MODEL_FILENAME))

    with open(os.path.join(uri, MODEL_FILENAME), "wb") as handle:  # placed by an attacker
        handle.write(skops.io.dumps(_payload_in_pipeline()))
    marker = tmp_path / "pwned"
    with pytest.raises(UntrustedModelError, match=RUNSTRING):
        _trigger(materializer.load(Pipeline), marker)
    assert not marker.exists()


def test_models_are_written_with_a_compact_schema_and_older_indented_files_still_load() -> None:
    import json
    import zipfile
    from io import BytesIO

    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from skops.io import _persist

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    model = HistGradientBoostingClassifier(max_iter=5).fit(x, y)
    allowed = allowed_model_types("local")

    written = dumps_model(model, allowed)
    older = skops.io.dumps(model)  # how skops writes on its own, and how earlier models were

    def schema(data: bytes) -> str:
        return zipfile.ZipFile(BytesIO(data)).read("schema.json").decode()

    assert "\n" not in schema(written) and "\n" in schema(older)
    assert json.loads(schema(written)).keys() == json.loads(schema(older)).keys()
    assert len(written) < len(older)
    assert _persist.json is json  # skops' writer is itself again after the dump
    for data in (written, older):
        assert model_types(data) == model_types(older)
        loaded = loads_model(data, allowed)
        np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    # The allow-list still applies to what is written compactly.
    with pytest.raises(UntrustedModelError):
        dumps_model(_partial_payload(), allowed)
    assert _persist.json is json


def test_a_stored_model_whose_class_moved_is_refused_in_words_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refactor moved a module a stored model names: loading it is one refusal (exit 8)
    naming the missing path and the way out, not ModuleNotFoundError from deep in skops."""
    import importlib
    import sys

    import skops.io

    from mlops_platform.trust.artifacts import ModelCodeMissing, loads_model, model_types

    (tmp_path / "moved_shop_features.py").write_text(
        "class Features:\n    def __init__(self):\n        self.columns = ['age']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("moved_shop_features")
    data = skops.io.dumps({"features": module.Features()})
    allowed = set(model_types(data))
    assert "moved_shop_features.Features" in allowed
    # the refactor: the module is gone from this code
    (tmp_path / "moved_shop_features.py").unlink()
    monkeypatch.delitem(sys.modules, "moved_shop_features")
    importlib.invalidate_caches()

    with pytest.raises(ModelCodeMissing, match=r"stored with moved_shop_features\.Features") as e:
        loads_model(data, allowed)
    assert "Keep the old import path working" in str(e.value)
    assert isinstance(e.value.__cause__, ImportError)
