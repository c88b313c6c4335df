"""Anomaly segments for the monitoring sessions: where they go, what they do."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANOMALY_KINDS = (
    "spike",
    "level_shift",
    "flatline",
    "frequency_change",
    "noise_burst",
    "amplitude_damping",
)
ABP, RESP = 0, 1
MIN_LONG_S = 1.0  # shortest level shift, flatline, rhythm change, ...
MARGIN_S = 3.0  # normal signal kept around every anomaly and at both ends


@dataclass(frozen=True)
class Segment:
    """Rows ``start:stop`` carry an anomaly of ``kind``."""

    kind: str
    start: int
    stop: int


def plan_segments(
    n: int, fs: float, rng: np.random.Generator, fraction: float
) -> list[Segment]:
    """Non-overlapping segments covering about ``fraction`` of ``n`` rows.

    One to three spikes, and one to three longer anomalies of different kinds
    (at least ``MIN_LONG_S`` each; no more than fit the budget at about 2 s
    each, so a short session gets one).
    """
    budget = max(int(fraction * n), 4)
    n_spikes = int(rng.integers(1, 4))
    long_total = budget - 2 * n_spikes
    min_long = int(MIN_LONG_S * fs)
    most = int(np.clip(long_total // (2 * min_long), 1, 3))
    kinds = list(
        rng.choice(
            ANOMALY_KINDS[1:], size=int(rng.integers(1, most + 1)), replace=False
        )
    )
    shares = rng.dirichlet(np.full(len(kinds), 3.0))
    kinds += ["spike"] * n_spikes
    taken = np.zeros(n, dtype=bool)
    segments = []
    margin = int(MARGIN_S * fs)
    for i, kind in enumerate(kinds):
        if kind == "spike":
            length = int(rng.integers(1, 4))
        else:
            length = max(int(shares[i] * long_total), min_long)
        for _ in range(100):
            start = int(rng.integers(margin, n - margin - length))
            if not taken[max(0, start - margin) : start + length + margin].any():
                taken[start : start + length] = True
                segments.append(Segment(str(kind), start, start + length))
                break
    return sorted(segments, key=lambda s: s.start)


def inject(values: np.ndarray, seg: Segment, rng: np.random.Generator) -> None:
    """Apply ``seg`` in place to ``values`` (rows x [abp, resp])."""
    rows = slice(seg.start, seg.stop)
    if seg.kind == "spike":
        ch = int(rng.integers(0, 2))
        size = rng.uniform(60, 120) if ch == ABP else rng.uniform(4, 8)
        values[rows, ch] += size * rng.choice([-1.0, 1.0])
    elif seg.kind == "level_shift":
        values[rows, ABP] += rng.uniform(15, 30) * rng.choice([-1.0, 1.0])
    elif seg.kind == "flatline":  # sensor off: both channels stuck at one value
        values[rows, :] = values[seg.start - 1, :]
    elif seg.kind == "noise_burst":
        values[rows, ABP] += rng.normal(0, rng.uniform(6, 15), seg.stop - seg.start)
        values[rows, RESP] += rng.normal(0, rng.uniform(0.4, 1.0), seg.stop - seg.start)
    elif seg.kind == "amplitude_damping":  # over-damped arterial line
        mean = values[rows, ABP].mean()
        values[rows, ABP] = mean + (values[rows, ABP] - mean) * rng.uniform(0.15, 0.35)
    # frequency_change is drawn into the waveform by the session generator
