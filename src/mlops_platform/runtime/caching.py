"""Content-addressed reuse of data steps, the ZenML way (cache policies), under the platform's key.

Loading, validating and splitting the same file with the same code is the same work, so a
governed run lets ZenML reuse the outputs of the steps listed in `caching.reusable_steps`
(configs/base/platform.yaml) instead of running them again. ZenML's cache key for such a step
already covers the step's code, its parameters and its input artifacts; the platform adds one
value through the step's cache policy (`cache_func`), the *launch key*:

    Ed25519 signature, by the environment's writer key, over
    {git commit, SHA-256 of the data file (hashed by the platform), holdout key digest and fraction}

so that

- a changed data file (one byte), a changed commit, or another holdout gives another key and the
  step runs again;
- a dirty working tree is never reused (its code is not named by a commit): the key is random;
- nobody without the environment's signing key can compute the key, so a step run made outside
  the platform (a patched loader in somebody's notebook) can never be served to a governed run;
- outside a governed launch the key is random, so nothing is reused.

Steps that decide or change governance state (gates, registration, stage moves, scoring and
outcome checks) can never be listed (`NEVER_REUSED`). The candidate model is never reused: its
training step is not listed, so every candidate artifact is new. The baseline (`train_baseline`)
is listed: a comparator the gate scores itself, fitted again only when its rows, parameters or
code change. Which steps a run reused is recorded on the run (`reused_steps` run metadata and
MLflow tag) by `runtime.runner`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

# Platform steps whose result is a decision or a state change: never served from a cache.
NEVER_REUSED: Final = frozenset(
    {
        "validate_model",
        "register_model",
        "promote_model",
        "score_batch",
        "check_outcomes",
        "build_drift_reference",
    }
)
CACHE_FUNC: Final = "mlops_platform.runtime.caching.launch_key"
# v2: runs launched under v1 signed no launch with their outputs, so they are never reused.
_PURPOSE: Final = "mlops-step-reuse-v2"


@dataclass(frozen=True)
class LaunchContent:
    """What makes two launches' data steps the same work."""

    git_sha: str
    git_dirty: bool
    data_file_sha256: str
    holdout_key_sha256: str
    holdout_fraction: float

    def payload(self) -> bytes:
        body = {
            "purpose": _PURPOSE,
            "git_sha": self.git_sha,
            "data_file_sha256": self.data_file_sha256,
            "holdout_key_sha256": self.holdout_key_sha256,
            "holdout_fraction": self.holdout_fraction,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def reusable(self) -> bool:
        """Only code named by a commit can be reused."""
        return bool(self.git_sha) and self.git_sha != "unknown" and not self.git_dirty

    def digest(self) -> str:
        """SHA-256 of the content, named in the run's signed output list (`trust.outputs`) so
        that a reused output is read only by a run of the same content; "" when not reusable."""
        return hashlib.sha256(self.payload()).hexdigest() if self.reusable() else ""


def holdout_key_digest(key: bytes) -> str:
    """SHA-256 of the holdout key: names the key in the launch key without revealing it."""
    return hashlib.sha256(key).hexdigest()


def launch_key_for(content: LaunchContent, signer: Any) -> str:
    """The launch key of `content` under `signer` (random when the code is not a commit)."""
    if not content.reusable():
        return f"unreusable:{secrets.token_hex(16)}"
    signature = signer.sign(content.payload())
    return f"{signature.key_id}:{signature.value}"


_CURRENT: dict[str, str] = {}


@contextlib.contextmanager
def launching(key: str) -> Iterator[None]:
    """Make `key` the launch key while a governed run is launched in this process."""
    _CURRENT["key"] = key
    try:
        yield
    finally:
        _CURRENT.pop("key", None)


def launch_key() -> str:
    """ZenML `cache_func` of reusable steps: the current launch key, else a random value."""
    return _CURRENT.get("key") or f"no-launch:{secrets.token_hex(16)}"


def step_options(reusable_steps: Iterable[str]) -> dict[str, dict[str, Any]]:
    """`with_options(steps=...)` entries turning on content-addressed reuse for those steps."""
    policy = {
        "include_step_code": True,
        "include_step_parameters": True,
        "include_artifact_values": True,
        "include_artifact_ids": True,
        "cache_func": CACHE_FUNC,
    }
    return {name: {"enable_cache": True, "cache_policy": dict(policy)} for name in reusable_steps}


def reused_steps(steps: Mapping[str, Any]) -> dict[str, str]:
    """{step name: id of the step run whose outputs were reused} for the cached steps of a run."""
    reused = {}
    for name, step_run in steps.items():
        if str(getattr(step_run.status, "value", step_run.status)) == "cached":
            original = getattr(step_run, "original_step_run_id", None)
            reused[name] = str(original) if original else ""
    return dict(sorted(reused.items()))
