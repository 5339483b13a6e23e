"""Signed output digests (`trust.outputs`): the pure checks, with real keys and real forgeries."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlops_platform.trust.outputs import (
    OutputIntegrityError,
    OutputPins,
    check_digest,
    check_pins,
    launch_problem,
    reuse_problem,
    sign_outputs,
    statement,
)
from mlops_platform.trust.signing import Signer, Verifier, key_id
from mlops_platform.trust.stored import digest_files

PLATFORM_KEY = Ed25519PrivateKey.generate()
PLATFORM = Signer(PLATFORM_KEY)
TRUSTED = Verifier({key_id(PLATFORM_KEY.public_key()): PLATFORM_KEY.public_key()})
FILES = {"df.parquet.gzip": b"rows", "schema.json": b"{}"}
MATERIALIZER = "zenml.materializers.pandas_materializer.PandasMaterializer"


def describe(artifact_id: str) -> dict[str, str]:
    return {
        "name": f"name-{artifact_id}",
        "materializer": MATERIALIZER,
        "cache_key": f"k-{artifact_id}",
    }


def signed(
    run_id: str,
    digests: dict[str, str],
    signer: Signer,
    used: dict[str, str] | None = None,
    launch: str = "",
) -> OutputPins:
    """`sign_outputs` with every listed artifact described as `describe` does (test data)."""
    meta = {k: describe(k) for k in {**digests, **(used or {})}}
    return sign_outputs(run_id, digests, signer, used, launch, meta)


def test_the_digest_covers_every_file_its_name_and_its_bytes() -> None:
    digest = digest_files(FILES)
    assert digest == digest_files(dict(reversed(list(FILES.items()))))  # order of listing
    assert digest != digest_files({**FILES, "df.parquet.gzip": b"rowz"})
    assert digest != digest_files({"other.parquet": b"rows", "schema.json": b"{}"})
    assert digest != digest_files({**FILES, "extra": b""})
    assert digest != digest_files({"df.parquet.gzip": b"rows"})


def test_a_signed_list_verifies_and_names_each_output() -> None:
    pins = signed("run-1", {"a1": digest_files(FILES)}, PLATFORM)
    read = OutputPins.from_metadata(pins.as_dict(), "run-1")
    check_pins(read, "run-1", TRUSTED)
    check_digest(read, "a1", digest_files(FILES), "artifact a1")


def test_changed_files_and_unlisted_artifacts_are_refused() -> None:
    pins = signed("run-1", {"a1": digest_files(FILES)}, PLATFORM)
    changed = digest_files({**FILES, "df.parquet.gzip": b"other outcomes"})
    with pytest.raises(OutputIntegrityError, match="changed after the run"):
        check_digest(pins, "a1", changed, "artifact a1")
    with pytest.raises(
        OutputIntegrityError, match="not among the artifacts run run-1 signed as made"
    ):
        check_digest(pins, "a2", digest_files(FILES), "artifact a2")


def test_a_list_signed_with_another_key_is_refused() -> None:
    forged = signed("run-1", {"a1": "0" * 64}, Signer(Ed25519PrivateKey.generate()))
    with pytest.raises(OutputIntegrityError, match="does not verify"):
        check_pins(forged, "run-1", TRUSTED)


def test_an_edited_digest_breaks_the_signature() -> None:
    pins = signed("run-1", {"a1": digest_files(FILES)}, PLATFORM).as_dict()
    pins["outputs"] = {"a1": digest_files({**FILES, "df.parquet.gzip": b"chosen"})}
    with pytest.raises(OutputIntegrityError, match="does not verify"):
        check_pins(OutputPins.from_metadata(pins, "run-1"), "run-1", TRUSTED)


def test_another_runs_list_copied_onto_a_run_is_refused() -> None:
    other = signed("run-2", {"a1": digest_files(FILES)}, PLATFORM)
    with pytest.raises(OutputIntegrityError, match="another run"):
        check_pins(other, "run-1", TRUSTED)


@pytest.mark.parametrize(
    "value",
    [None, {}, "pins", {"run_id": "run-1", "outputs": {"a1": 1}, "key_id": "k", "signature": "s"}],
)
def test_a_missing_or_partial_record_is_refused(value: object) -> None:
    with pytest.raises(OutputIntegrityError, match="no complete signed list"):
        OutputPins.from_metadata(value, "run-1")


def test_the_stored_digest_read_in_blocks_equals_the_in_memory_one(tmp_path) -> None:
    from mlops_platform.trust.outputs import stored_digest

    folder = tmp_path / "artifact"
    (folder / "nested").mkdir(parents=True)
    files = {"df.parquet.gzip": bytes(range(256)) * 9000, "nested/schema.json": b"{}"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    assert stored_digest(str(folder)) == digest_files(files)
    (folder / "nested" / "schema.json").write_bytes(b"{ }")
    assert stored_digest(str(folder)) != digest_files(files)
    single = tmp_path / "model.skops"
    single.write_bytes(b"model")
    assert stored_digest(str(single)) == digest_files({"": b"model"})


def test_used_outputs_and_the_launch_are_signed_with_the_outputs() -> None:
    pins = signed("run-2", {"a2": "2" * 64}, PLATFORM, used={"a1": "1" * 64}, launch="L")
    read = OutputPins.from_metadata(pins.as_dict(), "run-2")
    check_pins(read, "run-2", TRUSTED)
    assert (read.used, read.launch) == ({"a1": "1" * 64}, "L")
    check_digest(read, "a1", "1" * 64, "artifact a1", used=True)
    with pytest.raises(OutputIntegrityError, match="signed as made"):
        check_digest(read, "a1", "1" * 64, "artifact a1")  # used, not made by run-2
    for field, value in (("used", {"a1": "9" * 64}), ("launch", "other")):
        edited = {**pins.as_dict(), field: value}
        with pytest.raises(OutputIntegrityError, match="does not verify"):
            check_pins(OutputPins.from_metadata(edited, "run-2"), "run-2", TRUSTED)


def test_a_v2_list_stripped_to_v1_does_not_verify() -> None:
    pins = signed("run-2", {"a2": "2" * 64}, PLATFORM, used={}, launch="L").as_dict()
    stripped = {k: v for k, v in pins.items() if k not in ("used", "launch", "meta")}
    with pytest.raises(OutputIntegrityError, match="does not verify"):
        check_pins(OutputPins.from_metadata(stripped, "run-2"), "run-2", TRUSTED)


def test_an_older_v1_list_still_verifies_for_what_its_run_made() -> None:
    v1 = statement("run-1", {"a1": "1" * 64})
    signature = PLATFORM.sign(v1)
    record = {"run_id": "run-1", "outputs": {"a1": "1" * 64}, **signature.as_dict()}
    read = OutputPins.from_metadata(record, "run-1")
    check_pins(read, "run-1", TRUSTED)
    assert read.used is None and read.launch is None
    assert launch_problem(read, "L", "x") is not None  # never reused by a signed launch


def test_reuse_needs_the_step_cache_key_the_making_run_signed() -> None:
    pins = signed("run-1", {"a1": "1" * 64}, PLATFORM, launch="L1")
    assert reuse_problem(pins, "L1", "a1", "k-a1", "the baseline") is None
    copied = reuse_problem(pins, "L1", "a1", "k-of-other-work", "the baseline")
    assert copied is not None and "k-a1" in copied and "k-of-other-work" in copied
    assert reuse_problem(pins, "L1", "a1", None, "the baseline") is not None
    assert reuse_problem(pins, "L2", "a1", "k-a1", "the baseline") is not None  # launch first


def test_names_materializers_and_cache_keys_are_signed() -> None:
    pins = signed("run-2", {"a2": "2" * 64}, PLATFORM, used={"a1": "1" * 64}, launch="L")
    read = OutputPins.from_metadata(pins.as_dict(), "run-2")
    assert read.named("name-a1") == ["a1"] and read.named("name-a2") == ["a2"]
    assert read.named("holdout_set") == []
    for field in ("name", "materializer", "cache_key"):
        edited = pins.as_dict()
        edited["meta"] = {**edited["meta"], "a1": {**edited["meta"]["a1"], field: "chosen"}}
        with pytest.raises(OutputIntegrityError, match="does not verify"):
            check_pins(OutputPins.from_metadata(edited, "run-2"), "run-2", TRUSTED)


def test_every_signed_artifact_must_be_described() -> None:
    with pytest.raises(ValueError, match="name, materializer and cache key"):
        sign_outputs("run-1", {"a1": "1" * 64}, PLATFORM, launch="L", meta={})
    record = signed("run-1", {"a1": "1" * 64}, PLATFORM, launch="L").as_dict()
    for meta in ({}, {"a1": {"name": "x"}}, {"a1": describe("a1"), "a9": describe("a9")}):
        with pytest.raises(OutputIntegrityError, match="no complete signed list"):
            OutputPins.from_metadata({**record, "meta": meta}, "run-1")


def test_reuse_needs_the_same_reusable_launch() -> None:
    pins = signed("run-1", {"a1": "1" * 64}, PLATFORM, launch="L1")
    assert launch_problem(pins, "L1", "the holdout") is None
    problem = launch_problem(pins, "L2", "the holdout")
    assert problem is not None and "run-1" in problem and "L1" in problem and "L2" in problem
    assert "may reuse nothing" in (launch_problem(pins, "", "the holdout") or "")
    unsigned_launch = signed("run-1", {"a1": "1" * 64}, PLATFORM)
    assert launch_problem(unsigned_launch, "L1", "the holdout") is not None


@pytest.mark.parametrize(
    "extra",
    [
        {"used": {"a1": 1}, "launch": "L", "meta": {"a1": describe("a1")}},
        {"used": {}, "launch": 3, "meta": {"a1": describe("a1")}},
        {"launch": "L"},
        {"used": {}, "launch": "L"},
    ],
)
def test_a_partial_v2_record_is_refused(extra: dict) -> None:
    base = {"run_id": "run-1", "outputs": {"a1": "1" * 64}, "key_id": "k", "signature": "s"}
    with pytest.raises(OutputIntegrityError, match="no complete signed list"):
        OutputPins.from_metadata({**base, **extra}, "run-1")


def test_writes_are_recorded_where_zenml_stores_step_outputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`record_writes` wraps the function ZenML's step runner stores outputs with; if a ZenML
    upgrade renames it, this fails instead of the platform silently hashing at the end only."""
    from mlops_platform.trust import outputs

    modules = outputs._storing_modules()
    for module in modules:  # ZenML's own function here (a governed run may have wrapped it)
        stored = getattr(module, outputs._STORE_FUNCTION)
        original = getattr(stored, "__wrapped__", stored)
        monkeypatch.setattr(module, outputs._STORE_FUNCTION, original)
    monkeypatch.setattr(outputs, "_WRITTEN", {})
    assert outputs.record_writes() is True
    for module in modules:
        stored = getattr(module, outputs._STORE_FUNCTION)
        assert getattr(stored, "_mlops_records_writes", False), module.__name__
    assert outputs.record_writes() is False  # once per process
