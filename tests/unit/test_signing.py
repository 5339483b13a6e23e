"""Key handling and detached signatures (trust/signing.py), with real keys and real forgeries."""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlops_platform.trust.signing import (
    LOCAL_PRIVATE_KEY_NAME,
    Signer,
    SigningError,
    SigningSettings,
    generate_local_keys,
    key_id,
    load_signer,
    load_verifier,
    private_pem,
    public_pem,
)


def _settings(folder: Path, **changes: object) -> SigningSettings:
    values: dict[str, object] = {
        "private_key_file": str(folder / LOCAL_PRIVATE_KEY_NAME),
        "public_keys_dir": str(folder),
    }
    values.update(changes)
    return SigningSettings.model_validate(values)


def test_local_keys_sign_and_verify(tmp_path: Path) -> None:
    identifier = generate_local_keys(tmp_path)
    settings = _settings(tmp_path)
    signature = load_signer(settings, environ={}).sign(b"record")
    assert signature.key_id == identifier
    load_verifier(settings).verify(b"record", signature)


def test_generation_is_idempotent_and_private_key_is_owner_only(tmp_path: Path) -> None:
    first = generate_local_keys(tmp_path)
    assert generate_local_keys(tmp_path) == first
    assert os.stat(tmp_path / LOCAL_PRIVATE_KEY_NAME).st_mode & 0o077 == 0


def test_changed_content_or_signature_is_refused(tmp_path: Path) -> None:
    generate_local_keys(tmp_path)
    settings = _settings(tmp_path)
    signature = load_signer(settings, environ={}).sign(b"record")
    verifier = load_verifier(settings)
    with pytest.raises(SigningError, match="does not match"):
        verifier.verify(b"recorD", signature)
    flipped = bytearray(base64.b64decode(signature.value))
    flipped[0] ^= 1
    forged = dataclasses.replace(signature, value=base64.b64encode(bytes(flipped)).decode())
    with pytest.raises(SigningError, match="does not match"):
        verifier.verify(b"record", forged)
    with pytest.raises(SigningError, match="does not match"):
        verifier.verify(b"record", dataclasses.replace(signature, value="not base64!"))


def test_signature_by_an_untrusted_key_is_refused(tmp_path: Path) -> None:
    generate_local_keys(tmp_path)
    attacker = Signer(Ed25519PrivateKey.generate())
    with pytest.raises(SigningError, match="not trusted"):
        load_verifier(_settings(tmp_path)).verify(b"record", attacker.sign(b"record"))
    # Claiming the trusted key's id does not help: the signature is checked under that key.
    claimed = dataclasses.replace(attacker.sign(b"record"), key_id=generate_local_keys(tmp_path))
    with pytest.raises(SigningError, match="does not match"):
        load_verifier(_settings(tmp_path)).verify(b"record", claimed)


def test_private_key_from_the_environment_wins(tmp_path: Path) -> None:
    generate_local_keys(tmp_path)
    other = Ed25519PrivateKey.generate()
    signer = load_signer(_settings(tmp_path), environ={"MLOPS_SIGNING_KEY": private_pem(other)})
    assert signer.key_id == key_id(other.public_key())


def test_missing_private_key_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="run `mlops setup`"):
        load_signer(_settings(tmp_path), environ={})
    with pytest.raises(SigningError, match="MLOPS_SIGNING_KEY is unset"):
        load_signer(SigningSettings(), environ={})
    with pytest.raises(SigningError, match="not a PEM private key"):
        load_signer(SigningSettings(), environ={"MLOPS_SIGNING_KEY": "garbage"})


def test_listed_public_key_must_match_its_id(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    good = SigningSettings(public_keys={key_id(key): public_pem(key)})
    assert load_verifier(good).key_ids == (key_id(key),)
    with pytest.raises(SigningError, match="id is"):
        load_verifier(SigningSettings(public_keys={"0" * 16: public_pem(key)}))


def test_local_keys_are_trusted_by_staging_only_with_a_local_trail(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_platform.trust.keys import signer_for, verifier_for

    local_id = load_signer(_settings(isolated_state / "keys"), environ={}).key_id
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{isolated_state / 'audit.db'}")
    assert verifier_for("staging").trusts(local_id)
    assert signer_for("staging", environ={}).key_id == local_id
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", "postgresql://audit@db.example/audit")
    assert not verifier_for("production").trusts(local_id)
    with pytest.raises(SigningError, match="MLOPS_SIGNING_KEY is unset"):
        signer_for("production", environ={})
    # A trail outside the state directory is not "local", even if it is SQLite.
    monkeypatch.setenv("MLOPS_AUDIT_DB_URL", f"sqlite:///{isolated_state.parent / 'other.db'}")
    assert not verifier_for("staging").trusts(local_id)
