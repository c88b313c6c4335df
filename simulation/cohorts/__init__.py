"""Synthetic hospitals: the embedded default data of fedcare.

Each hospital gets MIT-BIH-style two-lead ECG records (WFDB), monitoring
sessions with labelled anomalies (CSV) and ICU vitals (Parquet), all derived
deterministically from ``(seed, hospital_id)``; an optional Dirichlet label
skew (``label_skew``) makes ectopy and deterioration strongly non-IID.
"""

from simulation.cohorts.cohort import KINDS, read_summary, write_cohort, write_hospital
from simulation.cohorts.profiles import (
    GENERATOR_VERSION,
    HospitalProfile,
    hospital_dirname,
    hospital_profile,
)
from simulation.cohorts.seeding import rng_for, stable_seed
from simulation.cohorts.skew import label_shares

__all__ = [
    "GENERATOR_VERSION",
    "KINDS",
    "HospitalProfile",
    "hospital_dirname",
    "hospital_profile",
    "label_shares",
    "read_summary",
    "rng_for",
    "stable_seed",
    "write_cohort",
    "write_hospital",
]
