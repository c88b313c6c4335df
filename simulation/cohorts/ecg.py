"""One patient's two-lead ECG with beat annotations, written as a WFDB record.

Layout and encoding follow the MIT-BIH Arrhythmia Database: leads ``MLII`` and
``V1`` in mV, format 212, ADC gain 200, baseline 1024, annotations in ``.atr``
with a ``+``/``(N`` rhythm annotation at sample 0 and one beat label per QRS,
placed on its R peak (the largest excursion of MLII). One record per patient,
named after the patient (``p0001``): a 10 s resting ECG or a rhythm strip or
Holter excerpt of up to 40 s.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulation.cohorts.morphology import PatientShapes, beat_waves, draw_shapes, render
from simulation.cohorts.noise import NoiseLevels, add_noise
from simulation.cohorts.profiles import GENERATOR_VERSION, HospitalProfile
from simulation.cohorts.rhythm import BeatSchedule, beat_schedule, draw_rhythm
from simulation.cohorts.seeding import rng_for
from simulation.cohorts.skew import (
    BURDEN_SIGMA,
    FREQUENT_BURDEN_RANGE,
    PATIENT_BURDEN_RANGE,
    ectopic_patients,
)
from simulation.cohorts.wfdb_write import write_annotations, write_record_212

logger = logging.getLogger(__name__)

LEADS = ("MLII", "V1")
ADC_GAIN = 200.0
ADC_BASELINE = 1024
FIDUCIAL_SEARCH_S = 0.03


@dataclass(frozen=True)
class EcgRecord:
    """A synthesised record: signal (samples x leads, mV) and its annotations."""

    name: str
    fs: int
    signal: np.ndarray
    ann_samples: np.ndarray
    symbols: np.ndarray
    comments: tuple[str, ...]


def record_name(patient: int) -> str:
    """``p0001`` for patient 1: four digits hold every count up to scale 10."""
    return f"p{patient:04d}"


def _pvc_burden(
    profile: HospitalProfile, rng: np.random.Generator, patient: int
) -> float:
    if profile.label_skew is None:
        if rng.random() >= profile.pvc_patient_fraction:
            return 0.0
        if rng.random() < profile.frequent_ectopy_fraction:  # runs of bigeminy
            return float(rng.uniform(*FREQUENT_BURDEN_RANGE))
        factor = rng.lognormal(0, BURDEN_SIGMA)
        return float(np.clip(profile.pvc_burden_mean * factor, 0.05, 0.25))
    # label skew: a fixed set of ectopic patients, unbiased burden, wider range
    rng.random()  # the unskewed path draws here too
    if patient not in ectopic_patients(profile):
        return 0.0
    factor = rng.lognormal(-0.5 * BURDEN_SIGMA**2, BURDEN_SIGMA)
    return float(np.clip(profile.pvc_burden_mean * factor, *PATIENT_BURDEN_RANGE))


def _lead_waves(
    shapes: PatientShapes, sched: BeatSchedule, lead: int, beat_gain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    centers, rows = [], []
    for i, sym in enumerate(sched.symbols):
        waves = beat_waves(shapes, lead, sym, sched.focus[i], sched.rr_prev[i])
        for off, amp, sl, sr in waves:
            centers.append(sched.times[i])
            rows.append((off, amp * beat_gain[i], sl, sr))
    n_p = 2 if lead == 1 else 1
    for t in sched.hidden_sinus:  # sinus P waves that still fire during a PVC
        for wave in shapes.normal[lead][:n_p]:
            centers.append(t)
            rows.append(wave)
    return np.asarray(centers), np.asarray(rows, dtype=float)


def _fiducials(mlii: np.ndarray, times: np.ndarray, fs: int) -> np.ndarray:
    """Sample of the largest |MLII| within +-30 ms of each nominal R time."""
    half = int(FIDUCIAL_SEARCH_S * fs)
    nominal = np.round(times * fs).astype(int)
    idx = np.clip(nominal[:, None] + np.arange(-half, half + 1), 0, len(mlii) - 1)
    return idx[np.arange(len(idx)), np.argmax(np.abs(mlii[idx]), axis=1)]


def _record_seconds(profile: HospitalProfile, rng: np.random.Generator) -> float:
    """A 10 s resting ECG, or a rhythm strip / Holter excerpt of 10-40 s."""
    shortest, longest = profile.record_seconds
    if rng.random() < profile.resting_ecg_fraction:
        return float(shortest)
    return float(rng.uniform(shortest, longest))


def synthesize_record(profile: HospitalProfile, patient: int) -> EcgRecord:
    """Synthesise patient ``patient`` (1-based) of ``profile``'s hospital."""
    rng = rng_for(profile.seed, profile.hospital_id, "ecg", patient)
    fs = profile.fs
    burden = _pvc_burden(profile, rng, patient)
    n_foci = (
        int(rng.integers(2, 4)) if rng.random() < profile.multifocal_fraction else 1
    )
    rhythm = draw_rhythm(
        rng,
        profile.hr_range,
        burden,
        n_foci,
        profile.apc_rate * float(rng.lognormal(0, 0.7)),
        profile.fusion_rate if burden > 0 else 0.0,
    )
    shapes = draw_shapes(rng, n_foci)
    duration = _record_seconds(profile, rng)
    n = int(duration * fs)
    sched = beat_schedule(duration, rhythm, rng)
    # respiration modulates the electrical axis, hence the beat amplitude
    phase = rng.uniform(0, 2 * np.pi)
    resp = np.sin(2 * np.pi * rhythm.resp_hz * sched.times + phase)
    beat_gain = 1.0 + 0.07 * resp + rng.normal(0, 0.02, size=len(sched.times))
    lead_gain = rng.uniform(0.6, 1.6, size=len(LEADS))
    clean = np.stack(
        [
            lead_gain[k] * render(n, fs, *_lead_waves(shapes, sched, k, beat_gain))
            for k in range(len(LEADS))
        ],
        axis=1,
    )
    levels = NoiseLevels(
        profile.baseline_wander_mv,
        profile.emg_noise_mv,
        profile.mains_noise_mv,
        profile.mains_hz,
        profile.motion_bursts_per_min,
    )
    noisy = add_noise(clean, fs, levels, rng)
    age, sex = int(rng.integers(25, 90)), str(rng.choice(["M", "F"]))
    comments = (
        f"{age} {sex} synthetic",
        f"fedcare cohort generator {GENERATOR_VERSION}, {profile.name}, "
        f"seed {profile.seed}, pvc burden {burden:.3f}, foci {n_foci}",
    )
    return EcgRecord(
        name=record_name(patient),
        fs=fs,
        signal=noisy,
        ann_samples=_fiducials(clean[:, 0], sched.times, fs),
        symbols=sched.symbols,
        comments=comments,
    )


def write_record(rec: EcgRecord, ecg_dir: Path) -> None:
    """Write ``rec`` as ``<name>.hea``, ``<name>.dat`` (212) and ``<name>.atr``."""
    digital = np.round(rec.signal * ADC_GAIN) + ADC_BASELINE
    digital = np.clip(digital, -2047, 2047).astype(np.int32)
    write_record_212(
        ecg_dir,
        rec.name,
        rec.fs,
        digital,
        LEADS,
        ["mV"] * len(LEADS),
        ADC_GAIN,
        ADC_BASELINE,
        rec.comments,
    )
    write_annotations(
        ecg_dir,
        rec.name,
        "atr",
        np.concatenate([[0], rec.ann_samples]).astype(np.int64),
        ["+"] + [str(s) for s in rec.symbols],
        ["(N"] + [""] * len(rec.symbols),
    )


def write_ecg(ecg_dir: Path, profile: HospitalProfile) -> dict[str, int]:
    """Write every patient's record; return beat counts per MIT-BIH symbol."""
    ecg_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    for patient in range(1, profile.n_ecg_patients + 1):
        rec = synthesize_record(profile, patient)
        write_record(rec, ecg_dir)
        counts.update(str(s) for s in rec.symbols)
    logger.debug("%s: wrote %d ECG records", profile.name, profile.n_ecg_patients)
    return dict(sorted(counts.items()))
