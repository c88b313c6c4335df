"""Normalisation statistics (fitted on train only) and signal windows."""

from __future__ import annotations

import logging

import numpy as np

from shared_models.errors import DataError

logger = logging.getLogger(__name__)

STD_FLOOR = 1e-6
CLIP_PERCENTILES = (0.5, 99.5)


# Public, clinically motivated constants per vital sign, never fitted on a
# hospital's data: (imputation value: a normal adult reading; plausible range
# kept after clipping; centre and scale of the z-score: typical ICU adult
# values). Units: beats/min, breaths/min, %, degrees C, mmHg.
PUBLIC_VITALS: dict[str, tuple[float, float, float, float, float]] = {
    "heart_rate": (80.0, 20.0, 250.0, 85.0, 20.0),
    "resp_rate": (18.0, 4.0, 60.0, 19.0, 6.0),
    "spo2": (97.0, 50.0, 100.0, 96.0, 3.0),
    "temperature": (37.0, 30.0, 43.0, 37.0, 0.8),
    "sbp": (120.0, 40.0, 260.0, 120.0, 22.0),
    "dbp": (70.0, 20.0, 160.0, 65.0, 14.0),
    "map": (85.0, 30.0, 180.0, 83.0, 15.0),
}
VITAL_ALIASES = {
    "hr": "heart_rate",
    "rr": "resp_rate",
    "resp": "resp_rate",
    "o2sat": "spo2",
    "temp": "temperature",
    "nbp_sys": "sbp",
    "nbp_dia": "dbp",
    "nbp_mean": "map",
}


def public_vitals_stats(
    features: list[str] | tuple[str, ...],
) -> dict[str, list[float]]:
    """Normalisation of ``features`` from :data:`PUBLIC_VITALS` (no patient data).

    Raises :class:`DataError` for a vital sign without public constants.
    """
    rows = []
    for name in features:
        key = VITAL_ALIASES.get(name.strip().lower(), name.strip().lower())
        if key not in PUBLIC_VITALS:
            raise DataError(
                f"vital sign column {name!r} has no public normalisation constants "
                f"(fedcare never fits them on patient data); known columns: "
                f"{', '.join(PUBLIC_VITALS)} (aliases {', '.join(VITAL_ALIASES)}). "
                "Rename the column or drop it."
            )
        rows.append(PUBLIC_VITALS[key])
    median, low, high, mean, std = (list(col) for col in zip(*rows, strict=True))
    return {"median": median, "low": low, "high": high, "mean": mean, "std": std}


def fit_vitals_stats(x_train: np.ndarray) -> dict[str, list[float]]:
    """Per feature median, clip bounds (0.5th/99.5th pct), mean and std.

    ``x_train`` is ``(stays, hours, features)`` with NaN for missing values; mean
    and std are those of the imputed and clipped values.
    """
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] == 0:
        raise DataError(
            f"expected vitals of shape (stays, hours, features) with at least one "
            f"stay, got shape {x.shape}"
        )
    flat = x.reshape(-1, x.shape[-1])
    empty = np.flatnonzero(np.isnan(flat).all(axis=0))
    if len(empty):
        raise DataError(
            f"feature(s) {empty.tolist()} have no observation at all in the "
            f"training stays; drop them or add stays where they are measured"
        )
    median = np.nanmedian(flat, axis=0)
    low, high = np.nanpercentile(flat, CLIP_PERCENTILES, axis=0)
    clean = np.clip(np.where(np.isnan(flat), median, flat), low, high)
    return {
        "median": median.tolist(),
        "low": low.tolist(),
        "high": high.tolist(),
        "mean": clean.mean(axis=0).tolist(),
        "std": np.maximum(clean.std(axis=0), STD_FLOOR).tolist(),
    }


def _stat_arrays(stats: dict, keys: tuple[str, ...], n: int) -> list[np.ndarray]:
    missing = [k for k in keys if k not in stats]
    if missing:
        raise DataError(f"statistics lack {missing}; expected keys {list(keys)}")
    arrays = [np.asarray(stats[k], dtype=np.float64) for k in keys]
    for key, arr in zip(keys, arrays, strict=True):
        if arr.shape != (n,):
            raise DataError(
                f"statistics {key!r} have {arr.size} value(s), the data has {n} "
                f"feature(s); fit the statistics on data with the same features"
            )
    return arrays


def apply_vitals_stats(x: np.ndarray, stats: dict) -> np.ndarray:
    """Impute NaN with the median, clip to [low, high], z-normalise; float32."""
    x = np.asarray(x, dtype=np.float64)
    keys = ("median", "low", "high", "mean", "std")
    median, low, high, mean, std = _stat_arrays(stats, keys, x.shape[-1])
    out = np.clip(np.where(np.isnan(x), median, x), low, high)
    return ((out - mean) / np.maximum(std, STD_FLOOR)).astype(np.float32)


def fit_signal_stats(values: np.ndarray) -> dict[str, list[float]]:
    """Per channel mean and std (std floored at 1e-6) of ``(rows, channels)``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise DataError(f"expected signals of shape (rows, channels), got {v.shape}")
    return {
        "mean": v.mean(axis=0).tolist(),
        "std": np.maximum(v.std(axis=0), STD_FLOOR).tolist(),
    }


def apply_signal_stats(values: np.ndarray, stats: dict) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    mean, std = _stat_arrays(stats, ("mean", "std"), v.shape[-1])
    return ((v - mean) / np.maximum(std, STD_FLOOR)).astype(np.float32)


def signal_windows(
    values: np.ndarray,
    window: int,
    stride: int,
    series: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows ``(n_w, window, channels)`` float32 and their start rows.

    With ``series`` (one id per row), a window never spans two series: each run
    of equal consecutive ids is windowed on its own and a tail shorter than
    ``window`` is dropped. Without it, ``values`` is treated as one series.
    """
    if window < 1 or stride < 1:
        raise DataError(f"window and stride must be >= 1, got {window}, {stride}")
    v = np.asarray(values, dtype=np.float32)
    if v.ndim == 1:
        v = v[:, None]
    n = len(v)
    if series is None:
        bounds = [0, n]
    else:
        ids = np.asarray(series)
        if len(ids) != n:
            raise DataError(f"series has {len(ids)} ids for {n} rows; expected {n}")
        changes = np.flatnonzero(ids[1:] != ids[:-1]) + 1
        bounds = [0, *changes.tolist(), n]
    starts = np.concatenate(
        [
            np.arange(a, b - window + 1, stride)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        or [np.zeros(0)]
    ).astype(np.int64)
    if len(starts) == 0:
        logger.warning("no window of %d rows fits in the %d rows given", window, n)
        return np.zeros((0, window, v.shape[1]), np.float32), starts
    windows = np.lib.stride_tricks.sliding_window_view(v, window, axis=0)
    return np.ascontiguousarray(windows[starts].transpose(0, 2, 1)), starts
