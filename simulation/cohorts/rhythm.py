"""Beat timing: sinus rhythm with heart-rate variability, plus ectopic beats.

The sinus node runs an RR interval modulated by respiration (respiratory sinus
arrhythmia), a 0.1 Hz Mayer wave and a slow drift. Ectopic beats follow the
rules a cardiologist reads off a strip:

* ``V`` (PVC): premature at a fixed coupling ratio of its focus (55-80 % of the
  sinus RR), then a full compensatory pause (the next sinus beat comes two
  sinus RRs after the last one);
* ``A`` (atrial premature): premature at 65-85 % of the RR and resets the sinus
  node (no compensatory pause);
* ``F`` (fusion): a ventricular focus firing just as the sinus beat conducts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_COUPLING_S = 0.36  # a PVC never lands on the previous QRS/T peak


@dataclass(frozen=True)
class RhythmParams:
    """Per-patient rhythm parameters (see :func:`draw_rhythm`)."""

    hr_bpm: float
    resp_hz: float
    rsa_frac: float
    lf_frac: float
    drift_frac: float
    pvc_prob: float
    coupling: tuple[float, ...]  # one coupling ratio per PVC focus
    focus_weights: tuple[float, ...]
    apc_prob: float
    fusion_prob: float


@dataclass(frozen=True)
class BeatSchedule:
    """R-peak times (s), MIT-BIH symbols, PVC focus (-1 if none), preceding RR."""

    times: np.ndarray
    symbols: np.ndarray
    focus: np.ndarray
    rr_prev: np.ndarray
    hidden_sinus: np.ndarray  # sinus beats blocked by a PVC: their P waves remain


def sinus_rr(t: float, base_rr: float, p: RhythmParams, phases: np.ndarray) -> float:
    """Sinus RR interval (s) at time ``t``."""
    mod = (
        p.rsa_frac * np.sin(2 * np.pi * p.resp_hz * t + phases[0])
        + p.lf_frac * np.sin(2 * np.pi * 0.1 * t + phases[1])
        + p.drift_frac * np.sin(2 * np.pi * 0.008 * t + phases[2])
        + 0.5 * p.drift_frac * np.sin(2 * np.pi * 0.021 * t + phases[3])
    )
    return float(base_rr * (1.0 + mod))


def beat_schedule(
    duration_s: float, p: RhythmParams, rng: np.random.Generator
) -> BeatSchedule:
    """Lay out all beats of a record of ``duration_s`` seconds."""
    base_rr = 60.0 / p.hr_bpm
    phases = rng.uniform(0, 2 * np.pi, size=4)
    t = float(rng.uniform(0.4, 0.9))
    times, symbols, focus, hidden_p = [t], ["N"], [-1], []
    end = duration_s - 0.6
    while True:
        rr = sinus_rr(t, base_rr, p, phases) * (1.0 + rng.normal(0, 0.01))
        u = rng.random()
        if u < p.pvc_prob and symbols[-1] != "V":
            f = int(rng.choice(len(p.coupling), p=np.asarray(p.focus_weights)))
            events = [(t + max(p.coupling[f] * rr, MIN_COUPLING_S), "V", f)]
            hidden_p.append(t + rr)
            t_next = t + 2 * rr
        elif u < p.pvc_prob + p.apc_prob:
            t_a = t + rr * rng.uniform(0.65, 0.85)
            events = [(t_a, "A", -1)]
            t_next = None
            t = t_a
        elif u < p.pvc_prob + p.apc_prob + p.fusion_prob:
            events = [(t + rr * rng.uniform(0.94, 0.99), "F", 0)]
            t_next = t + 2 * rr
        else:
            events, t_next = [], t + rr
        if t_next is not None:
            events.append((t_next, "N", -1))
            t = t_next
        if max(e[0] for e in events) > end:
            break
        times.extend(e[0] for e in events)
        symbols.extend(e[1] for e in events)
        focus.extend(e[2] for e in events)
    arr = np.asarray(times)
    rr_prev = np.diff(arr, prepend=arr[0] - base_rr)
    return BeatSchedule(
        times=arr,
        symbols=np.asarray(symbols),
        focus=np.asarray(focus, dtype=int),
        rr_prev=rr_prev,
        hidden_sinus=np.asarray(hidden_p),
    )


def draw_rhythm(
    rng: np.random.Generator,
    hr_range: tuple[float, float],
    pvc_burden: float,
    n_foci: int,
    apc_rate: float,
    fusion_rate: float,
) -> RhythmParams:
    """Draw one patient's rhythm; ``pvc_burden`` is the target fraction of V beats."""
    burden = min(max(pvc_burden, 0.0), 0.45)
    coupling = tuple(float(c) for c in rng.uniform(0.55, 0.8, size=n_foci))
    weights = rng.dirichlet(np.full(n_foci, 2.0)) if n_foci > 1 else np.ones(1)
    return RhythmParams(
        hr_bpm=float(rng.uniform(*hr_range)),
        resp_hz=float(rng.uniform(0.2, 0.33)),
        rsa_frac=float(rng.uniform(0.01, 0.05)),
        lf_frac=float(rng.uniform(0.005, 0.025)),
        drift_frac=float(rng.uniform(0.02, 0.06)),
        pvc_prob=burden / (1.0 - burden),
        coupling=coupling,
        focus_weights=tuple(float(w) for w in weights),
        apc_prob=apc_rate,
        fusion_prob=fusion_rate * burden if burden > 0 else 0.0,
    )
