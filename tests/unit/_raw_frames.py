"""Valid raw frames and files for tests, built in code from the synthetic generator."""

from __future__ import annotations

import io
import zipfile
from functools import lru_cache

import pandas as pd

from readmission.core import uci
from readmission.core.synthetic import generate_encounters

NESTED_MEMBER = f"diabetes+130-us+hospitals+for+years+1999-2008/{uci.UCI_CSV_NAME}"


@lru_cache(maxsize=4)
def _frame(n_patients: int, seed: int) -> pd.DataFrame:
    return generate_encounters(n_patients, seed)


def raw_frame(n_patients: int = 300, seed: int = 11) -> pd.DataFrame:
    """A fresh copy of a valid raw frame, safe to modify."""
    return _frame(n_patients, seed).copy()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as the UCI file writes it: header, no index."""
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive in memory holding `members` (name -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
