"""Names of the sensitive group columns the fairness code builds (no heavy imports here).

`mlops_platform.evaluation.fairness.sensitive_groups` builds exactly these columns; the gate policy
accepts only these names in `fairness.sensitive_features`, so a policy cannot ask for a group the
code would never assess (every model would then fail `fairness_assessed`).
"""

from __future__ import annotations

AGE_BAND_COLUMN = "age_band"
BUILDABLE_SENSITIVE_FEATURES: tuple[str, ...] = ("race", "gender", AGE_BAND_COLUMN)
