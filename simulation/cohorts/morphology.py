"""Beat shapes as sums of Gaussian waves (McSharry et al.'s ECGSYN idea).

A wave is ``(offset_s, amplitude_mV, sigma_left_s, sigma_right_s)`` relative to
the beat's R peak; two sigmas give the asymmetric T wave of real ECG. Each
patient gets one set of shapes per beat type and lead (``MLII``, ``V1``); each
PVC focus its own wide-QRS shape with a discordant T wave.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Wave = tuple[float, float, float, float]
T_INDEX = -1  # the T wave is always the last wave of a sinus/atrial shape


@dataclass(frozen=True)
class PatientShapes:
    """Waves per lead for ``N``/``A`` beats and per PVC focus, plus QT scale."""

    normal: tuple[tuple[Wave, ...], tuple[Wave, ...]]
    atrial_p: tuple[Wave, Wave]
    pvc: tuple[tuple[tuple[Wave, ...], tuple[Wave, ...]], ...]
    t_peak_at_1s: float  # T-peak delay (s) at RR = 1 s; scales with RR ** (1/3)


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _normal_mlii(rng: np.random.Generator) -> tuple[Wave, ...]:
    p_off = -_u(rng, 0.13, 0.19)
    p_sig = _u(rng, 0.02, 0.028)
    t_amp = _u(rng, 0.15, 0.45)
    return (
        (p_off, _u(rng, 0.08, 0.2), p_sig, p_sig),
        (-_u(rng, 0.022, 0.03), -_u(rng, 0.03, 0.15), 0.008, 0.008),
        (0.0, _u(rng, 0.8, 1.8), _u(rng, 0.008, 0.011), _u(rng, 0.008, 0.011)),
        (_u(rng, 0.022, 0.03), -_u(rng, 0.1, 0.4), 0.009, _u(rng, 0.008, 0.011)),
        (0.0, t_amp, _u(rng, 0.045, 0.06), _u(rng, 0.03, 0.04)),
    )


def _normal_v1(rng: np.random.Generator, p_off: float) -> tuple[Wave, ...]:
    """rS complex: small r, deep S, biphasic P, flat or small T."""
    p_amp = _u(rng, 0.03, 0.08)
    return (
        (p_off - 0.015, p_amp, 0.018, 0.018),
        (p_off + 0.02, -0.7 * p_amp, 0.018, 0.018),
        (-0.008, _u(rng, 0.1, 0.35), 0.008, 0.008),
        (0.022, -_u(rng, 0.6, 1.3), 0.011, 0.013),
        (0.0, _u(rng, -0.1, 0.25), _u(rng, 0.045, 0.06), _u(rng, 0.03, 0.04)),
    )


def _pvc_lead(rng: np.random.Generator, polarity: float) -> tuple[Wave, ...]:
    """Wide QRS (~130-180 ms), no P wave, T opposite to the main deflection."""
    amp = polarity * _u(rng, 1.2, 2.4)
    sig_l, sig_r = _u(rng, 0.026, 0.036), _u(rng, 0.028, 0.04)
    side = 1.0 if rng.random() < 0.5 else -1.0
    return (
        (0.0, amp, sig_l, sig_r),
        (side * _u(rng, 0.035, 0.05), -0.25 * amp * _u(rng, 0.5, 1.0), 0.018, 0.018),
        (_u(rng, 0.3, 0.37), -amp * _u(rng, 0.25, 0.45), 0.07, 0.05),
    )


def draw_shapes(rng: np.random.Generator, n_foci: int) -> PatientShapes:
    """One patient's beat shapes; each PVC focus has its own morphology."""
    mlii = _normal_mlii(rng)
    v1 = _normal_v1(rng, mlii[0][0])
    atrial_p = (
        (mlii[0][0] + _u(rng, 0.0, 0.03), _u(rng, -0.12, 0.06), 0.02, 0.02),
        (mlii[0][0] + _u(rng, 0.0, 0.03), _u(rng, -0.06, 0.04), 0.02, 0.02),
    )
    foci = []
    for _ in range(n_foci):
        pol_ii = 1.0 if rng.random() < 0.55 else -1.0
        # RV focus: LBBB-like (negative in V1); LV focus: RBBB-like (positive)
        pol_v1 = 1.0 if rng.random() < 0.4 else -1.0
        foci.append((_pvc_lead(rng, pol_ii), _pvc_lead(rng, pol_v1)))
    return PatientShapes(
        normal=(mlii, v1),
        atrial_p=atrial_p,
        pvc=tuple(foci),
        t_peak_at_1s=_u(rng, 0.24, 0.29),
    )


def beat_waves(
    shapes: PatientShapes, lead: int, symbol: str, focus: int, rr_prev: float
) -> list[Wave]:
    """The waves of one beat on ``lead`` (0 = MLII, 1 = V1)."""
    if symbol == "V":
        return list(shapes.pvc[focus][lead])
    normal = list(shapes.normal[lead])
    qt_scale = float(np.clip(rr_prev, 0.4, 1.6)) ** (1.0 / 3.0)
    t_off, t_amp, t_sl, t_sr = normal[T_INDEX]
    normal[T_INDEX] = (
        shapes.t_peak_at_1s * qt_scale,
        t_amp,
        t_sl * qt_scale,
        t_sr * qt_scale,
    )
    if symbol == "A":  # ectopic atrial focus: a different, early P wave
        n_p = 2 if lead == 1 else 1
        return [shapes.atrial_p[lead]] + normal[n_p:]
    if symbol == "F":  # half sinus-conducted, half ventricular
        waves = normal + list(shapes.pvc[focus][lead])
        return [(o, 0.5 * a, sl, sr) for o, a, sl, sr in waves]
    return normal


def render(
    n_samples: int, fs: float, centers_s: np.ndarray, waves: np.ndarray
) -> np.ndarray:
    """Sum asymmetric Gaussians; ``waves`` rows are (offset, amp, sig_l, sig_r).

    ``centers_s`` gives each row's beat time, so all waves of all beats are drawn
    in one vectorised pass per width class.
    """
    out = np.zeros(n_samples)
    if len(waves) == 0:
        return out
    mu = (centers_s + waves[:, 0]) * fs
    sig_l, sig_r = waves[:, 2] * fs, waves[:, 3] * fs
    for lo, hi in ((0, 8), (8, 20), (20, 60), (60, np.inf)):
        width = np.maximum(sig_l, sig_r)
        sel = (width >= lo) & (width < hi)
        if not sel.any():
            continue
        half = int(np.ceil(5 * width[sel].max()))
        idx = np.floor(mu[sel])[:, None].astype(int) + np.arange(-half, half + 1)
        dt = idx - mu[sel][:, None]
        sig = np.where(dt < 0, sig_l[sel][:, None], sig_r[sel][:, None])
        vals = waves[sel, 1][:, None] * np.exp(-0.5 * (dt / sig) ** 2)
        ok = (idx >= 0) & (idx < n_samples)
        np.add.at(out, idx[ok], vals[ok])
    return out
