"""Load the raw encounters and say exactly where they came from."""

from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from readmission.core.data import DataSettings
from readmission.core.data import load_encounters as load
from readmission.names import Artifact


@step
def load_encounters(
    data: DataSettings,
) -> tuple[
    Annotated[pd.DataFrame, Artifact.RAW_ENCOUNTERS],
    Annotated[dict[str, Any], Artifact.DATA_PROVENANCE],
]:
    frame, provenance = load(data)
    record = provenance.as_dict()
    log_metadata(metadata={"data": record})
    return frame, record
