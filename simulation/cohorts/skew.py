"""Dirichlet label skew: the standard non-IID knob of federated benchmarks.

With ``alpha`` given, one share vector ``q ~ Dirichlet(alpha * 1_N)`` is drawn per
``(seed, N)`` and hospital ``i`` gets about ``q_i * N`` times the cohort's mean
prevalence of ectopy (V beats) and of ICU deterioration. Small ``alpha``
(0.1-0.5) concentrates the labels in a few hospitals, large ``alpha`` (100)
is close to IID.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from shared_models.errors import ConfigError
from simulation.cohorts.seeding import rng_for

if TYPE_CHECKING:
    from simulation.cohorts.profiles import HospitalProfile

PVC_RANGE = (0.0, 0.35)  # hospital-level fraction of V beats
DETERIORATION_RANGE = (0.01, 0.60)
PATIENT_BURDEN_RANGE = (0.01, 0.45)  # one patient's V fraction under skew
BURDEN_SIGMA = 0.45  # log-sd of a patient's burden around the hospital mean
# without skew, a few PVC patients have frequent ectopy (runs of bigeminy)
FREQUENT_BURDEN_RANGE = (0.30, 0.45)
# a hospital's mean burden per ectopic patient stays in this range; the rest of
# the target comes from more (or fewer) patients with ectopy
_BURDEN_MEAN = (0.03, 0.15)
# a fixed grid over the standard normal: deterministic lognormal expectations
_Z = np.linspace(-4.0, 4.0, 161)


def check_label_skew(label_skew: float | None, hospitals: int | None) -> None:
    """Raise :class:`ConfigError` unless ``label_skew`` is None or a valid alpha."""
    if label_skew is None:
        return
    if isinstance(label_skew, bool) or not isinstance(label_skew, (int, float)):
        raise ConfigError(f"label_skew must be a number, got {label_skew!r}.")
    if not (math.isfinite(label_skew) and label_skew > 0):
        raise ConfigError(
            f"label_skew={label_skew} is not valid: the Dirichlet alpha must be a "
            "positive finite number (0.1-0.5 strong skew, 100 close to IID)."
        )
    if hospitals is None:
        raise ConfigError(
            "label_skew needs the cohort size: pass hospitals=N as well, so every "
            "hospital draws from the same share vector."
        )


def label_shares(seed: int, hospitals: int, alpha: float) -> np.ndarray:
    """The Dirichlet(alpha * 1_N) share vector of a cohort; sums to 1."""
    check_label_skew(alpha, hospitals)
    rng = rng_for(seed, hospitals, "label-skew")
    shares = rng.dirichlet(np.full(hospitals, float(alpha)))
    return shares / shares.sum()


def expected_pvc_fraction(profile: HospitalProfile) -> float:
    """Expected fraction of V beats of a hospital without skew (see ``ecg``)."""
    weights = np.exp(-0.5 * _Z**2)
    weights /= weights.sum()
    factor = np.exp(BURDEN_SIGMA * _Z)
    burden = np.clip(profile.pvc_burden_mean * factor, 0.05, 0.25)
    frequent = profile.frequent_ectopy_fraction
    per_patient = (1 - frequent) * np.sum(weights * burden)
    per_patient += frequent * float(np.mean(FREQUENT_BURDEN_RANGE))
    return float(profile.pvc_patient_fraction * per_patient)


def apply_label_skew(
    profile: HospitalProfile,
    cohort: Sequence[HospitalProfile],
    alpha: float,
) -> HospitalProfile:
    """``profile`` with ectopy and deterioration set from its Dirichlet share.

    ``cohort`` holds the unskewed profiles of all ``N`` hospitals; their mean
    prevalences are what the shares redistribute. Under skew every ectopic
    patient's burden is lognormal around the mean (no separate frequent-ectopy
    group), so the target is hit on average.
    """
    n = len(cohort)
    share = float(label_shares(profile.seed, n, alpha)[profile.hospital_id - 1])
    factor = share * n
    mean_v = float(np.mean([expected_pvc_fraction(p) for p in cohort]))
    mean_det = float(np.mean([p.deterioration_prevalence for p in cohort]))
    target_v = float(np.clip(factor * mean_v, *PVC_RANGE))
    # a typical burden per ectopic patient, then as many such patients as needed
    # and a whole number of them, so that small hospitals hit the target too
    burden = float(np.clip(target_v / profile.pvc_patient_fraction, *_BURDEN_MEAN))
    n_patients = profile.n_ecg_patients
    n_ectopic = round(min(1.0, target_v / burden) * n_patients)
    if n_ectopic:
        burden = min(target_v * n_patients / n_ectopic, PATIENT_BURDEN_RANGE[1])
    return replace(
        profile,
        pvc_patient_fraction=round(n_ectopic / n_patients, 6),
        pvc_burden_mean=round(burden, 4),
        frequent_ectopy_fraction=0.0,
        deterioration_prevalence=round(
            float(np.clip(factor * mean_det, *DETERIORATION_RANGE)), 4
        ),
        label_skew=float(alpha),
        label_share=round(share, 6),
        cohort_size=n,
    )


def ectopic_patients(profile: HospitalProfile) -> frozenset[int]:
    """Under label skew: the patients (1-based) of a hospital that have ectopy."""
    n = profile.n_ecg_patients
    k = round(profile.pvc_patient_fraction * n)
    order = rng_for(profile.seed, profile.hospital_id, "label-skew", "ectopic")
    return frozenset(int(p) + 1 for p in order.permutation(n)[:k])
