"""Recording artefacts of a real ECG: baseline wander, EMG, mains hum, motion."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal


@dataclass(frozen=True)
class NoiseLevels:
    """Amplitudes (mV) of each artefact for one hospital's recordings."""

    baseline_wander_mv: float
    emg_mv: float
    mains_mv: float
    mains_hz: int
    motion_bursts_per_min: float


@lru_cache(maxsize=32)
def _bandpass_design(order: int, low: float, high: float, fs: float) -> np.ndarray:
    return signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")


def _bandpass(order: int, low: float, high: float, fs: float) -> np.ndarray:
    """Butterworth band-pass in second-order sections, designed once per fs."""
    return _bandpass_design(order, low, high, fs).copy()


def baseline_wander(
    n: int, fs: float, amp: float, rng: np.random.Generator
) -> np.ndarray:
    """Sum of slow sinusoids (0.05-0.5 Hz): breathing and electrode drift."""
    t = np.arange(n) / fs
    freqs = rng.uniform(0.05, 0.5, size=3)
    weights = rng.dirichlet(np.ones(3)) * amp
    phases = rng.uniform(0, 2 * np.pi, size=3)
    return (weights * np.sin(2 * np.pi * t[:, None] * freqs + phases)).sum(axis=1)


def emg(n: int, fs: float, std: float, rng: np.random.Generator) -> np.ndarray:
    """Muscle noise: white noise band-limited to 20-150 Hz, in bursts of effort."""
    high = min(150.0, 0.45 * fs)
    x = signal.sosfilt(_bandpass(4, 20.0, high, fs), rng.standard_normal(n))
    x *= std / max(float(np.std(x)), 1e-12)
    knots = rng.lognormal(0.0, 0.6, size=max(2, int(n / fs / 5) + 2))
    envelope = np.interp(np.arange(n), np.linspace(0, n - 1, len(knots)), knots)
    return x * envelope / float(np.mean(envelope))


def mains(
    n: int, fs: float, amp: float, hz: int, rng: np.random.Generator
) -> np.ndarray:
    """Power-line hum at 50/60 Hz with a weaker third harmonic where fs allows."""
    t = np.arange(n) / fs
    phase = rng.uniform(0, 2 * np.pi)
    out = amp * np.sin(2 * np.pi * hz * t + phase)
    if 3 * hz < fs / 2:
        out += 0.2 * amp * np.sin(2 * np.pi * 3 * hz * t + 3 * phase)
    return out


def motion_bursts(
    n: int, fs: float, rate_per_min: float, rng: np.random.Generator
) -> np.ndarray:
    """Electrode-motion artefacts: short, large, low-frequency transients."""
    out = np.zeros(n)
    count = rng.poisson(rate_per_min * n / fs / 60.0)
    sos = _bandpass(2, 1.0, 10.0, fs)
    for _ in range(count):
        length = int(rng.uniform(0.5, 3.0) * fs)
        start = int(rng.integers(0, max(1, n - length)))
        burst = signal.sosfiltfilt(sos, rng.standard_normal(length + 64))[32:-32]
        burst *= rng.uniform(0.3, 1.2) / max(float(np.max(np.abs(burst))), 1e-12)
        out[start : start + length] += (
            burst[: n - start] * np.hanning(length)[: n - start]
        )
    return out


def add_noise(
    clean: np.ndarray, fs: float, levels: NoiseLevels, rng: np.random.Generator
) -> np.ndarray:
    """Add all artefacts to a (samples, leads) signal; each lead gets its own."""
    n, leads = clean.shape
    noisy = clean.copy()
    # per-record severity: some recordings are clean, some are rough
    severity = rng.lognormal(0.0, 0.4)
    for lead in range(leads):
        noisy[:, lead] += baseline_wander(
            n, fs, levels.baseline_wander_mv * severity, rng
        )
        noisy[:, lead] += emg(n, fs, levels.emg_mv * severity, rng)
        noisy[:, lead] += mains(n, fs, levels.mains_mv, levels.mains_hz, rng)
        noisy[:, lead] += motion_bursts(n, fs, levels.motion_bursts_per_min, rng)
    return noisy
