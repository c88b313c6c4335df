"""Measurements on written ECG records, shared by the cohort tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import wfdb
from scipy import signal


def read(path: Path) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """MLII band-passed 0.5-40 Hz, fs, beat samples and beat symbols."""
    rec = wfdb.rdrecord(str(path))
    ann = wfdb.rdann(str(path), "atr")
    sos = signal.butter(2, [0.5, 40.0], btype="bandpass", fs=rec.fs, output="sos")
    mlii = signal.sosfiltfilt(sos, rec.p_signal[:, rec.sig_name.index("MLII")])
    symbols = np.asarray(ann.symbol)
    beats = symbols != "+"
    return mlii, int(rec.fs), ann.sample[beats], symbols[beats]


def header_seconds(hea: Path) -> float:
    """Duration (s) of a record from the first line of its ``.hea`` file."""
    _, _, fs, n_samples = hea.read_text().split("\n", 1)[0].split()[:4]
    return int(n_samples) / float(fs)


def record_paths(hospitals: list[Path], per_hospital: int | None = None) -> list[Path]:
    """Record paths (no suffix), the first ``per_hospital`` of each hospital."""
    return [
        p.with_suffix("")
        for h in hospitals
        for p in sorted((h / "ecg").glob("*.hea"))[:per_hospital]
    ]


def template(x: np.ndarray, fs: int, samples: np.ndarray) -> np.ndarray:
    """Median beat from 0.25 s before to 0.45 s after each sample."""
    pre, post = int(0.25 * fs), int(0.45 * fs)
    ok = samples[(samples >= pre) & (samples < len(x) - post)]
    return np.median(np.stack([x[s - pre : s + post] for s in ok]), axis=0)


def qrs_width_s(tpl: np.ndarray, fs: int, frac: float = 0.2) -> float:
    """Span (s) around the fiducial where |slope| exceeds ``frac`` of its max."""
    pre = int(0.25 * fs)
    half = int(0.12 * fs)
    slope = np.abs(np.diff(tpl[pre - half : pre + half]))
    above = np.flatnonzero(slope > frac * slope.max())
    return float((above[-1] - above[0] + 1) / fs)


def p_wave_mv(tpl: np.ndarray, fs: int) -> float:
    """Peak-to-peak (mV) of the linearly detrended window 220-90 ms before R."""
    pre = int(0.25 * fs)
    seg = tpl[pre - int(0.22 * fs) : pre - int(0.09 * fs)]
    t = np.arange(len(seg))
    resid = seg - np.polyval(np.polyfit(t, seg, 1), t)
    return float(np.ptp(resid))
