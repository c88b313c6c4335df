"""Writers of small real data files (WFDB records, CSV, Parquet) for the tests.

A uniquely named module (not conftest) so test files can import it by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

DURATION_S = 10.0
# Beat times (s): the first and last are too close to the record edge for the
# default window (0.25 s before, 0.47 s after).
BEAT_TIMES = (0.1, 0.8, 1.6, 2.4, 3.2, 4.0, 4.8, 5.6, 6.4, 7.2, 8.0, 8.8, 9.8)
BEAT_SYMBOLS = ("N", "N", "V", "N", "A", "N", "L", "N", "F", "N", "/", "N", "N")


def beat_shape(t: np.ndarray) -> np.ndarray:
    """A smooth P-QRS-T-like waveform (mV) centred on t = 0 (seconds)."""
    p = 0.15 * np.exp(-((t + 0.16) ** 2) / (2 * 0.025**2))
    qrs = 1.2 * np.exp(-(t**2) / (2 * 0.015**2))
    s = -0.3 * np.exp(-((t - 0.03) ** 2) / (2 * 0.012**2))
    tw = 0.3 * np.exp(-((t - 0.3) ** 2) / (2 * 0.05**2))
    return p + qrs + s + tw


def ecg_signal(fs: float) -> np.ndarray:
    t = np.arange(int(DURATION_S * fs)) / fs
    mlii = sum(beat_shape(t - b) for b in BEAT_TIMES)
    v1 = -0.5 * mlii
    return np.stack([mlii, v1], axis=1)


def write_record(
    directory: Path,
    name: str,
    fs: int,
    leads: tuple[str, ...] = ("MLII", "V1"),
    annotate: bool = True,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    signal = ecg_signal(fs)[:, : len(leads)]
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(leads),
        sig_name=list(leads),
        p_signal=signal,
        fmt=["212"] * len(leads),
        adc_gain=[200.0] * len(leads),
        baseline=[0] * len(leads),
        write_dir=str(directory),
    )
    if annotate:
        beat_samples = [round(b * fs) for b in BEAT_TIMES]
        samples = [0, *beat_samples[:5], beat_samples[4] + 5, *beat_samples[5:]]
        symbols = ["+", *BEAT_SYMBOLS[:5], "~", *BEAT_SYMBOLS[5:]]
        aux = ["(N", *[""] * (len(symbols) - 1)]
        wfdb.wrann(
            name,
            "atr",
            sample=np.array(samples),
            symbol=symbols,
            aux_note=aux,
            fs=fs,
            write_dir=str(directory),
        )
    return directory / name


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def vitals_frame() -> pd.DataFrame:
    """Two patients, three stays; stay s1 has two heart-rate values in hour 0."""
    rows = [
        ("p1", "s1", "2024-01-01 00:00", 80, None, 1, 3.0),
        ("p1", "s1", "2024-01-01 00:30", 90, 97, 1, 3.0),
        ("p1", "s1", "2024-01-01 03:10", 100, None, 1, 3.0),
        ("p1", "s2", "2024-02-01 10:00", 70, 99, 0, 1.5),
        ("p1", "s2", "2024-02-01 12:00", None, 98, 0, 1.5),
        ("p2", "s3", "2024-03-05 08:00", 60, 95, 0, 2.0),
        ("p2", "s3", "2024-03-05 09:00", 65, 96, 0, 2.0),
    ]
    columns = ["patient_id", "stay_id", "timestamp", "heart_rate", "spo2"]
    return pd.DataFrame(
        rows, columns=[*columns, "deterioration", "length_of_stay_days"]
    )
