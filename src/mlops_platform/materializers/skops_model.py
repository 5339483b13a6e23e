"""Store scikit-learn models with skops instead of pickle, so loading a model cannot run arbitrary code.

Saving and loading refuse any class or function outside the exact allow-list
(`serialization.allowed_types` in configs/*/platform.yaml); a model that needs another type fails
with a message naming it. Loading a registered model also checks the file against the digest
signed at registration (`mlops_platform.trust.artifacts`), so a file swapped in the artifact store
is refused before it is deserialised.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from sklearn.base import BaseEstimator
from zenml.enums import ArtifactType
from zenml.materializers.base_materializer import BaseMaterializer

from mlops_platform.infra.settings import allowed_model_types
from mlops_platform.runtime.run_context import current_environment
from mlops_platform.trust import artifacts
from mlops_platform.trust.artifacts import MODEL_FILENAME, UntrustedModelError

__all__ = ["MODEL_FILENAME", "SkopsModelMaterializer", "UntrustedModelError"]


def _env() -> str:
    """The verified environment of the governed run this step belongs to; else local."""
    return current_environment()


def dumps_model(model: Any) -> bytes:
    """Skops bytes of ``model`` under the current environment's allow-list."""
    return artifacts.dumps_model(model, allowed_model_types(_env()))


def loads_model(data: bytes) -> Any:
    """The model in ``data`` under the current environment's allow-list (no digest check)."""
    return artifacts.loads_model(data, allowed_model_types(_env()))


class SkopsModelMaterializer(BaseMaterializer):
    """Materializer for scikit-learn estimators in the skops format (no pickle)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (BaseEstimator,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL
    # The file names every type it holds, checked against the allow-list as it loads; the data
    # type ZenML records is not used (`trust.stored.data_type_of`).
    LOADS_TYPES_FROM_FILE: ClassVar[bool] = True

    def load(self, data_type: type[Any]) -> Any:
        with self.artifact_store.open(os.path.join(self.uri, MODEL_FILENAME), "rb") as f:
            data = f.read()
        artifacts.verify_pinned_uri(self.uri, data, _env())
        return loads_model(data)

    def save(self, data: Any) -> None:
        from mlops_platform.trust.outputs import note_refusal

        try:
            payload = dumps_model(data)
        except artifacts.UntrustedModelError as error:
            note_refusal(error)  # ZenML records no error for a failure storing outputs
            raise
        with self.artifact_store.open(os.path.join(self.uri, MODEL_FILENAME), "wb") as f:
            f.write(payload)
