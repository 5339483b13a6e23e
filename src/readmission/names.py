"""One name for each pipeline, model and artifact, shared by code, configs, tests and docs."""

from enum import StrEnum

MODEL_NAME = "patient_readmission_predictor"


class Pipeline(StrEnum):
    TRAINING = "readmission_training"
    BATCH_INFERENCE = "readmission_batch_inference"
    OUTCOME_MONITORING = "readmission_outcome_monitoring"


class Artifact(StrEnum):
    RAW_ENCOUNTERS = "raw_encounters"
    DATA_PROVENANCE = "data_provenance"
    VALIDATED_ENCOUNTERS = "validated_encounters"
    COHORT = "cohort"
    TRAIN_SET = "train_set"
    VALIDATION_SET = "validation_set"
    TEST_SET = "test_set"
    MODEL = "readmission_model"
    BASELINE_MODEL = "baseline_model"
    TEST_PREDICTIONS = "test_predictions"
    TEST_METRICS = "test_metrics"
    BASELINE_METRICS = "baseline_metrics"
    PATIENT_HISTORY = "patient_history"
