"""Monitoring sessions for anomaly detection: ``signals/sNNN.csv``.

Columns: ``timestamp`` (float seconds from the start of the session), ``abp``
(arterial pressure waveform, mmHg), ``resp`` (impedance respiration, arbitrary
units) and ``is_anomaly`` (0/1 per row, the Yahoo S5 / NAB convention). Every
row of an injected anomaly is labelled 1, every other row 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulation.cohorts.anomalies import ANOMALY_KINDS, Segment, inject, plan_segments
from simulation.cohorts.profiles import HospitalProfile
from simulation.cohorts.seeding import rng_for

COLUMNS = ("timestamp", "abp", "resp", "is_anomaly")


@dataclass(frozen=True)
class Session:
    """One monitoring session and the anomalies injected into it."""

    name: str
    frame: pd.DataFrame
    segments: tuple[Segment, ...]


def session_name(session: int) -> str:
    return f"s{session:03d}"


def _phase(rate_hz: np.ndarray, fs: float) -> np.ndarray:
    return np.cumsum(rate_hz) / fs


def _abp(phase: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Arterial pressure: systolic upstroke, dicrotic notch, diastolic run-off."""
    frac = phase % 1.0
    pulse = np.exp(-0.5 * ((frac - 0.14) / 0.07) ** 2)
    pulse += 0.35 * np.exp(-0.5 * ((frac - 0.45) / 0.07) ** 2)
    pulse += 0.25 * np.exp(-frac / 0.5)
    dia, pp = rng.uniform(60, 85), rng.uniform(35, 60)
    return dia + pp * pulse / float(pulse.max())


def synthesize_session(profile: HospitalProfile, session: int) -> Session:
    """Session ``session`` (1-based) of ``profile``'s hospital, with anomalies."""
    rng = rng_for(profile.seed, profile.hospital_id, "signals", session)
    fs = profile.signals_fs
    n = int(rng.uniform(*profile.session_seconds) * fs)
    t = np.arange(n) / fs
    segments = plan_segments(n, fs, rng, rng.uniform(*profile.anomaly_fraction))
    hr_hz = rng.uniform(1.0, 1.6) * (1 + 0.05 * np.sin(2 * np.pi * t / 60.0))
    resp_hz = np.full(n, rng.uniform(0.2, 0.33))
    for seg in segments:  # rhythm changes are drawn into the waveform itself
        if seg.kind == "frequency_change":
            factor = rng.uniform(1.6, 2.2)
            hr_hz[seg.start : seg.stop] *= factor
            resp_hz[seg.start : seg.stop] *= factor
    resp_phase = _phase(resp_hz, fs)
    resp = np.sin(2 * np.pi * resp_phase) * rng.uniform(0.8, 1.5)
    abp = _abp(_phase(hr_hz, fs), rng) + 3.0 * np.sin(2 * np.pi * resp_phase)
    abp += rng.normal(0, 0.6, n)
    resp += rng.normal(0, 0.04, n)
    values = np.stack([abp, resp], axis=1)
    labels = np.zeros(n, dtype=np.int64)
    for seg in segments:
        inject(values, seg, rng)
        labels[seg.start : seg.stop] = 1
    frame = pd.DataFrame(
        {
            "timestamp": np.round(t, 3),
            "abp": np.round(values[:, 0], 2),
            "resp": np.round(values[:, 1], 3),
            "is_anomaly": labels,
        }
    )
    return Session(session_name(session), frame, tuple(segments))


def write_signals(signals_dir: Path, profile: HospitalProfile) -> dict[str, int]:
    """Write every session CSV; return rows, anomalous rows and counts per kind."""
    signals_dir.mkdir(parents=True, exist_ok=True)
    summary = {"rows": 0, "anomalous_rows": 0} | {k: 0 for k in ANOMALY_KINDS}
    for session in range(1, profile.n_sessions + 1):
        sess = synthesize_session(profile, session)
        sess.frame.to_csv(signals_dir / f"{sess.name}.csv", index=False)
        summary["rows"] += len(sess.frame)
        summary["anomalous_rows"] += int(sess.frame["is_anomaly"].sum())
        for seg in sess.segments:
            summary[seg.kind] += 1
    return summary
