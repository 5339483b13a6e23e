"""How encounter files are read and checked, as import paths the platform loads (no ZenML here).

The batch-scoring contract (`pipelines/batch_inference.py`) and the CLI's checks before a run
starts (`mlops_platform.batch.preflight`) use the same functions, so a file refused before the run
is refused with the message the pipeline would give.
"""

from typing import Final

SCORING_READER: Final = "readmission.core.data.encounters_to_score"
SCORING_VALIDATOR: Final = "readmission.core.schema.validate_inference_encounters"
SCORING_INVALID_ROWS: Final = "readmission.core.schema.invalid_inference_rows"
# The scoring rules compiled for real-time requests: True only where SCORING_VALIDATOR accepts.
SCORING_REQUEST_CHECK: Final = "readmission.core.schema.inference_rules_accept"
TRAINING_READER: Final = "readmission.core.data.encounters_from_text"
TRAINING_VALIDATOR: Final = "readmission.core.schema.validate_encounters"
