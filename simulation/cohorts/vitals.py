"""ICU vitals in long format: ``vitals/vitals.parquet``.

One row per charting time of a stay: ``patient_id``, ``stay_id``, ``timestamp``
(datetime64), six vitals and two per-stay labels repeated on every row,
``deterioration`` (0/1) and ``length_of_stay_days``. Charting is irregular
(every 1-4 h with jitter, depending on the hospital), values go missing and a
few artefacts slip in. Deteriorating stays drift (HR, RR and temperature up,
blood pressure and SpO2 down) in the 6-24 h before the event, which happens
late in the first 48 h or after them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from simulation.cohorts.profiles import HospitalProfile
from simulation.cohorts.seeding import rng_for

VITALS = ("heart_rate", "resp_rate", "spo2", "temperature", "sbp", "dbp", "map")
OBSERVED_HOURS = 60.0
EPOCH = pd.Timestamp("2024-01-01")
# change at full deterioration: HR, RR, SpO2, temperature, SBP, DBP
DRIFT = np.array([28.0, 9.0, -7.0, 1.3, -32.0, -16.0])
BASE_MEAN = np.array([82.0, 16.0, 97.0, 36.9, 122.0, 68.0])
BASE_SD = np.array([10.0, 2.5, 1.2, 0.3, 14.0, 8.0])
NOISE_SD = np.array([4.0, 1.5, 0.8, 0.15, 6.0, 4.0])
LIMITS = np.array([[20, 220], [4, 60], [50, 100], [33, 42], [40, 250], [20, 150]])


@dataclass(frozen=True)
class Stay:
    """Ground truth of one stay, before charting."""

    stay_id: int
    patient_id: int
    admit_hours: float
    severity: float
    deteriorates: bool
    onset_hours: float  # deterioration time since admission (inf if none)
    los_days: float


def _draw_stay(
    profile: HospitalProfile, rng: np.random.Generator, sid: int, pid: int
) -> Stay:
    sev = float(rng.beta(*profile.severity_beta))
    logit = np.log(
        profile.deterioration_prevalence / (1 - profile.deterioration_prevalence)
    )
    prob = 1.0 / (1.0 + np.exp(-(logit + 4.0 * (sev - 0.4))))
    det = bool(rng.random() < prob)
    onset = float(rng.uniform(34.0, 66.0)) if det else float("inf")
    los = float(rng.lognormal(np.log(1.5 + 5.0 * sev), 0.5))
    if det:
        los = max(los, onset / 24.0) + float(rng.uniform(2.0, 9.0))
    return Stay(
        sid, pid, float(rng.uniform(0, 365 * 24)), sev, det, onset, max(los, 0.3)
    )


def _chart_times(
    profile: HospitalProfile, stay: Stay, rng: np.random.Generator
) -> np.ndarray:
    end = min(stay.los_days * 24.0, OBSERVED_HOURS)
    mean = profile.vitals_interval_hours
    gaps = rng.gamma(4.0, mean / 4.0, size=int(end / 0.25) + 2)
    times = np.concatenate([[rng.uniform(0, 0.5)], np.cumsum(np.maximum(gaps, 0.25))])
    return times[times < end]


def _stay_values(stay: Stay, hours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    base = BASE_MEAN + BASE_SD * rng.standard_normal(6)
    base += stay.severity * np.array([8.0, 3.0, -1.5, 0.3, -8.0, -4.0])
    ramp_len = rng.uniform(6.0, 24.0)
    ramp = np.clip((hours - (stay.onset_hours - ramp_len)) / ramp_len, 0.0, 1.0)
    circadian = np.sin(2 * np.pi * (hours + rng.uniform(0, 24)) / 24.0)
    ar = np.zeros((len(hours), 6))
    for i in range(1, len(hours)):  # slowly wandering physiology (AR(1))
        ar[i] = 0.7 * ar[i - 1] + rng.standard_normal(6)
    vals = base + ar * NOISE_SD * 0.7 + ramp[:, None] ** 1.5 * DRIFT
    vals[:, 0] += 3.0 * circadian
    vals[:, 3] += 0.2 * circadian
    return np.clip(vals, LIMITS[:, 0], LIMITS[:, 1])


def _stay_rows(
    profile: HospitalProfile, stay: Stay, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One stay's charting times (hours since admission) and charted vitals."""
    hours = _chart_times(profile, stay, rng)
    vals = _stay_values(stay, hours, rng)
    artefact = rng.random(vals.shape) < profile.artefact_rate
    vals = np.where(artefact, vals * rng.choice([0.3, 1.9], size=vals.shape), vals)
    vals[:, 2] = np.minimum(vals[:, 2], 100.0)
    rates = np.full(6, profile.missing_rate)
    rates[3] = min(0.9, 3 * profile.missing_rate + 0.3)  # temperature charted less
    vals = np.where(rng.random(vals.shape) < rates, np.nan, vals)
    return hours, vals


def _frame(
    stays: list[Stay], rows: list[tuple[np.ndarray, np.ndarray]]
) -> pd.DataFrame:
    """All stays' rows as one table (built once: hundreds of stays)."""
    counts = [len(hours) for hours, _ in rows]
    vals = np.concatenate([v for _, v in rows]).reshape(-1, 6)
    hours = np.concatenate(
        [s.admit_hours + h for s, (h, _) in zip(stays, rows, strict=True)]
    )
    frame = pd.DataFrame(
        {
            "patient_id": np.repeat([s.patient_id for s in stays], counts),
            "stay_id": np.repeat([s.stay_id for s in stays], counts),
            "timestamp": EPOCH + pd.to_timedelta(hours, "h"),
        }
    )
    rounded = np.round(vals)
    for k, name in enumerate(VITALS[:6]):
        frame[name] = rounded[:, k]
    frame["temperature"] = np.round(vals[:, 3], 1)
    frame["map"] = np.round((rounded[:, 4] + 2 * rounded[:, 5]) / 3.0, 0)
    frame["deterioration"] = np.repeat(
        np.array([s.deteriorates for s in stays], dtype=np.int8), counts
    )
    frame["length_of_stay_days"] = np.repeat(
        [round(s.los_days, 3) for s in stays], counts
    )
    return frame


def draw_stays(profile: HospitalProfile) -> list[Stay]:
    """All stays of the hospital; some patients come back for a second stay."""
    rng = rng_for(profile.seed, profile.hospital_id, "vitals", "stays")
    stays, pid = [], profile.hospital_id * 10_000
    while len(stays) < profile.n_stays:
        pid += 1
        repeat = 2 if rng.random() < profile.second_stay_fraction else 1
        for k in range(min(repeat, profile.n_stays - len(stays))):
            sid = profile.hospital_id * 100_000 + len(stays) + 1
            stay = _draw_stay(profile, rng, sid, pid)
            if k == 1:  # readmission after the first stay ended
                prev = stays[-1]
                gap = prev.los_days * 24.0 + float(rng.uniform(24.0, 24.0 * 60))
                stay = replace(stay, admit_hours=prev.admit_hours + gap)
            stays.append(stay)
    return stays


def vitals_frame(profile: HospitalProfile) -> pd.DataFrame:
    """The whole hospital's vitals table, sorted by stay and time."""
    stays = draw_stays(profile)
    rows = [
        _stay_rows(
            profile, s, rng_for(profile.seed, profile.hospital_id, "vitals", s.stay_id)
        )
        for s in stays
    ]
    frame = _frame(stays, rows)
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns]")
    return frame


def write_vitals(vitals_dir: Path, profile: HospitalProfile) -> dict[str, float]:
    """Write ``vitals.parquet``; return stay and deterioration counts."""
    vitals_dir.mkdir(parents=True, exist_ok=True)
    frame = vitals_frame(profile)
    frame.to_parquet(vitals_dir / "vitals.parquet", index=False)
    per_stay = frame.groupby("stay_id")["deterioration"].first()
    return {
        "rows": int(len(frame)),
        "stays": int(len(per_stay)),
        "patients": int(frame["patient_id"].nunique()),
        "deteriorated": int(per_stay.sum()),
    }
