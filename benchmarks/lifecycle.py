"""Wall time of each stage of the demo lifecycle (`mlops demo`), in a fresh state directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run(data: Path) -> dict[str, Any]:
    """One cold run of the demo: a new process, store and audit trail, as a new user sees it."""
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        environ = {**os.environ, "MLOPS_STATE_DIR": str(state), "READMISSION_DATA": str(data)}
        environ.pop("ZENML_CONFIG_PATH", None)
        started = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "mlops"), "demo"],
            env=environ,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        timeline = json.loads((state / "demo" / "timeline.json").read_text())
        # The demo leaves its ZenML server running for the dashboard; this state is thrown away.
        subprocess.run(
            [str(Path(sys.executable).parent / "mlops"), "server", "stop"],
            env=environ,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return {**timeline, "process_wall_seconds": wall, "load_average": load}
