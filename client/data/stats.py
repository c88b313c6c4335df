"""Normalisation statistics (fitted on train only) and signal windows."""

from __future__ import annotations

import logging

import numpy as np

from client.errors import DataError

logger = logging.getLogger(__name__)

STD_FLOOR = 1e-6
CLIP_PERCENTILES = (0.5, 99.5)


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
