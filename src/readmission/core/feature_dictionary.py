"""What each model feature means and which raw UCI columns it is computed from.

`tests/unit/test_feature_dictionary.py` fails when a feature in `features.FEATURE_NAMES` has no entry
here, and when docs/FEATURES.md differs from `markdown()`: regenerate it with
`python -m readmission.core.feature_dictionary > docs/FEATURES.md`.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from readmission.core import features, uci
from readmission.core.model import fitted_feature_lists


class FeatureEntry(NamedTuple):
    sources: tuple[str, ...]
    meaning: str


_COUNTS: Final = {
    "time_in_hospital": "Days from admission to discharge.",
    "num_lab_procedures": "Lab tests performed during the stay.",
    "num_procedures": "Procedures other than lab tests during the stay.",
    "num_medications": "Distinct generic medications given during the stay.",
    "number_outpatient": "Outpatient visits in the year before the stay.",
    "number_emergency": "Emergency visits in the year before the stay.",
    "number_inpatient": "Inpatient stays in the year before the stay.",
    "number_diagnoses": "Diagnoses entered for the stay.",
}
_HISTORY_SOURCES: Final = (uci.PATIENT_ID, uci.ENCOUNTER_ID)

DICTIONARY: Final[dict[str, FeatureEntry]] = {
    **{name: FeatureEntry((name,), meaning) for name, meaning in _COUNTS.items()},
    "utilisation_total": FeatureEntry(
        ("number_outpatient", "number_emergency", "number_inpatient"),
        "Outpatient, emergency and inpatient visits of the year before, added up.",
    ),
    "age_years": FeatureEntry(("age",), "Midpoint of the 10-year age band, in years."),
    "weight_recorded": FeatureEntry(("weight",), "1 if a weight was recorded, else 0."),
    "meds_in_use": FeatureEntry(
        uci.MEDICATIONS, "Diabetes medications prescribed (steady, up or down) at discharge."
    ),
    "meds_up": FeatureEntry(uci.MEDICATIONS, "Diabetes medications whose dose was raised."),
    "meds_down": FeatureEntry(uci.MEDICATIONS, "Diabetes medications whose dose was lowered."),
    "diagnosis_chapters": FeatureEntry(
        uci.DIAGNOSIS_COLUMNS, "Distinct ICD-9 chapters among the three diagnoses (0 to 3)."
    ),
    **{
        condition: FeatureEntry(
            uci.DIAGNOSIS_COLUMNS,
            f"1 if any diagnosis is {condition.replace('_', ' ')} "
            f"(ICD-9 {', '.join(codes)}), else 0.",
        )
        for condition, codes in features.SPECIFIC_CONDITIONS.items()
    },
    "prior_encounters": FeatureEntry(
        _HISTORY_SOURCES, "Earlier encounters of the same patient (smaller encounter_id)."
    ),
    "prior_inpatient_days": FeatureEntry(
        (*_HISTORY_SOURCES, "time_in_hospital"),
        "Days in hospital over the patient's earlier encounters.",
    ),
    "prior_emergency_max": FeatureEntry(
        (*_HISTORY_SOURCES, "number_emergency"),
        "Most emergency visits reported at any earlier encounter of the patient.",
    ),
    "previous_inpatient_visits": FeatureEntry(
        (*_HISTORY_SOURCES, "number_inpatient"),
        "Inpatient stays reported at the patient's previous encounter.",
    ),
    "race": FeatureEntry(("race",), "Recorded race (category code)."),
    "gender": FeatureEntry(("gender",), "Recorded gender (category code)."),
    "payer_code": FeatureEntry(("payer_code",), "Payer of the stay (category code)."),
    "medical_specialty": FeatureEntry(
        ("medical_specialty",), "Specialty of the admitting physician (category code)."
    ),
    "admission_type": FeatureEntry(
        ("admission_type_id",), "Admission type grouped: emergency, urgent, elective, other."
    ),
    "discharge_group": FeatureEntry(
        ("discharge_disposition_id",),
        "Where the patient went: home, home care, care facility, rehab, hospital, other.",
    ),
    "discharge_code": FeatureEntry(
        ("discharge_disposition_id",), "Raw discharge disposition code (category code)."
    ),
    "admission_source": FeatureEntry(
        ("admission_source_id",), "Admission source grouped: referral, transfer, emergency, other."
    ),
    "admission_source_code": FeatureEntry(
        ("admission_source_id",), "Raw admission source code (category code)."
    ),
    **{
        f"{column}_chapter": FeatureEntry(
            (column,), f"ICD-9 chapter of diagnosis {column[-1]} (diabetes kept apart)."
        )
        for column in uci.DIAGNOSIS_COLUMNS
    },
    "max_glu_serum": FeatureEntry(("max_glu_serum",), "Glucose serum test result, if taken."),
    "A1Cresult": FeatureEntry(("A1Cresult",), "HbA1c test result, if taken."),
    "change": FeatureEntry(("change",), "Whether any diabetes medication was changed."),
    "diabetesMed": FeatureEntry(("diabetesMed",), "Whether any diabetes medication was given."),
    **{
        medication: FeatureEntry(
            (medication,), f"{medication.capitalize()} at discharge: no, steady, up or down."
        )
        for medication in features.MODELLED_MEDICATIONS
    },
}


def entry(name: str) -> FeatureEntry:
    try:
        return DICTIONARY[name]
    except KeyError:
        raise KeyError(
            f"Feature {name!r} has no entry in readmission/core/feature_dictionary.py; add its "
            "source columns and meaning there."
        ) from None


NOT_IN_DICTIONARY: Final = "not in today's dictionary"


def model_predictors(model: Any) -> tuple[str, ...]:
    """The model card's predictors: the features `model` was fitted with, described today.

    The names come from the fitted `ReadmissionFeatures` inside the stored model, never from this
    code's feature lists, so the card of an old version lists what that version learned. A name
    this code's dictionary no longer knows is listed as such rather than dropped or guessed.
    The model card's "Predictors" is filled from this function (the `ModelContract`'s
    `describe_predictors`).
    """
    numeric, categorical = fitted_feature_lists(model)
    return tuple(
        f"{name}: {DICTIONARY[name].meaning} [{', '.join(DICTIONARY[name].sources)}]"
        if name in DICTIONARY
        else f"{name}: {NOT_IN_DICTIONARY}"
        for name in (*numeric, *categorical)
    )


def markdown() -> str:
    lines = [
        "# Feature dictionary",
        "",
        "Generated from `src/readmission/core/feature_dictionary.py` (do not edit by hand):",
        "`python -m readmission.core.feature_dictionary > docs/FEATURES.md`. The model's features",
        "are computed by `ReadmissionFeatures` in `src/readmission/core/features.py`; categorical",
        "features become integer codes ranked by training frequency.",
        "",
        "| feature | kind | source columns | meaning |",
        "|---|---|---|---|",
    ]
    for name in features.FEATURE_NAMES:
        kind = "numeric" if name in features.NUMERIC_FEATURES else "categorical"
        item = entry(name)
        sources = ", ".join(f"`{s}`" for s in item.sources)
        lines.append(f"| `{name}` | {kind} | {sources} | {item.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
