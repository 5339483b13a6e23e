"""Fit the calibrated gradient-boosted model and the logistic baseline."""

from typing import Annotated

import pandas as pd
from sklearn.base import BaseEstimator
from zenml import ArtifactConfig, step
from zenml.enums import ArtifactType

from readmission.core.model import train_baseline_model, train_readmission_model
from readmission.core.params import ModelParams
from readmission.names import Artifact


@step
def train_model(
    train: pd.DataFrame, validation: pd.DataFrame, params: ModelParams
) -> Annotated[
    BaseEstimator, ArtifactConfig(name=Artifact.MODEL, artifact_type=ArtifactType.MODEL)
]:
    return train_readmission_model(train, validation, params)


@step
def train_baseline(
    train: pd.DataFrame, params: ModelParams
) -> Annotated[
    BaseEstimator, ArtifactConfig(name=Artifact.BASELINE_MODEL, artifact_type=ArtifactType.MODEL)
]:
    return train_baseline_model(train, params)
