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


@dataclass(frozen=True)
class Segment:
    """Rows ``start:stop`` carry an anomaly of ``kind``."""

    kind: str
    start: int
    stop: int


def plan_segments(
    n: int, fs: float, rng: np.random.Generator, fraction: float
) -> list[Segment]:
    """Non-overlapping segments covering about ``fraction`` of ``n`` rows."""
    budget = max(int(fraction * n), 4)
    kinds = list(
        rng.choice(ANOMALY_KINDS[1:], size=int(rng.integers(2, 4)), replace=False)
    )
    kinds += ["spike"] * int(rng.integers(1, 4))
    long_total = budget - 2 * kinds.count("spike")
    shares = rng.dirichlet(np.full(len(kinds) - kinds.count("spike"), 3.0))
    taken = np.zeros(n, dtype=bool)
    segments, share_i = [], 0
    margin = int(5 * fs)
    for kind in kinds:
        if kind == "spike":
            length = int(rng.integers(1, 4))
        else:
            length = max(int(shares[share_i] * long_total), int(2 * fs))
            share_i += 1
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
