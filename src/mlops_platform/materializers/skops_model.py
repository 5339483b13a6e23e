"""Store scikit-learn models with skops instead of pickle, so loading a model cannot run arbitrary code.

Loading refuses any type outside the trusted module prefixes (`serialization.trusted_prefixes` in
configs/*/platform.yaml); a model that needs another type fails with a message naming it.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from sklearn.base import BaseEstimator
from zenml.enums import ArtifactType
from zenml.materializers.base_materializer import BaseMaterializer

from mlops_platform.infra.settings import trusted_model_prefixes

# HistGradientBoosting's categorical preprocessing wraps sklearn's check_array in a partial; skops
# still checks the wrapped function against the trusted prefixes.
TRUSTED_TYPES: frozenset[str] = frozenset({"functools.partial"})
MODEL_FILENAME = "model.skops"


class UntrustedModelError(RuntimeError):
    """The stored model holds a type outside the trusted prefixes."""


def untrusted_types(data: bytes) -> list[str]:
    """Types in a skops payload that the platform does not trust."""
    import skops.io

    prefixes = trusted_model_prefixes()
    return [
        t
        for t in skops.io.get_untrusted_types(data=data)
        if not t.startswith(prefixes) and t not in TRUSTED_TYPES
    ]


def dumps_model(model: Any) -> bytes:
    import skops.io

    data = skops.io.dumps(model)
    refused = untrusted_types(data)
    if refused:
        raise UntrustedModelError(
            f"The model contains types the platform will not load: {', '.join(refused)}. "
            f"Only types from {', '.join(trusted_model_prefixes())} are trusted: build the model "
            "from those, or add a prefix to serialization.trusted_prefixes in platform.yaml."
        )
    return data


def loads_model(data: bytes) -> Any:
    import skops.io

    refused = untrusted_types(data)
    if refused:
        raise UntrustedModelError(
            f"Refusing to load a model with untrusted types: {', '.join(refused)}."
        )
    return skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))


class SkopsModelMaterializer(BaseMaterializer):
    """Materializer for scikit-learn estimators in the skops format (no pickle)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (BaseEstimator,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: type[Any]) -> Any:
        with self.artifact_store.open(os.path.join(self.uri, MODEL_FILENAME), "rb") as f:
            return loads_model(f.read())

    def save(self, data: Any) -> None:
        with self.artifact_store.open(os.path.join(self.uri, MODEL_FILENAME), "wb") as f:
            f.write(dumps_model(data))
