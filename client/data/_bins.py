"""Hourly bins of the vitals rows (see vitals.py)."""

from __future__ import annotations

import numpy as np

# Stays forward-filled at a time (memory only: the result does not depend on it).
FILL_BLOCK = 4096


def bin_hourly(
    values: list[np.ndarray],
    code: np.ndarray,
    hour: np.ndarray,
    in_window: np.ndarray,
    n_stays: int,
    hours: int,
) -> tuple[np.ndarray, list[float]]:
    """Mean per (stay, hour) bin of the rows ``in_window``, then forward fill;
    also the fraction of empty bins per feature. ``values`` are the chunks'
    rows in order (consumed: freed once binned); ``code``, ``hour`` and
    ``in_window`` cover all rows. One feature at a time, so that only the
    float32 result is full size."""
    n_feat = values[0].shape[1]
    x = np.empty((n_stays, hours, n_feat), dtype=np.float32)
    missing = []
    for k in range(n_feat):
        sums = np.zeros((n_stays, hours))
        counts = np.zeros((n_stays, hours), dtype=np.int32)
        start = 0
        for part in values:
            rows = slice(start, start + len(part))
            start += len(part)
            keep = in_window[rows]
            v = part[keep, k]
            at = (code[rows][keep], hour[rows][keep])
            seen = ~np.isnan(v)
            np.add.at(sums, at, np.where(seen, v, 0.0))
            np.add.at(counts, at, seen)
        if k == n_feat - 1:
            values.clear()
        observed = counts > 0
        np.maximum(counts, 1, out=counts)
        mean = np.divide(sums, counts, out=sums)  # in place: one bin array less
        mean[~observed] = np.nan
        del counts
        # forward fill, a block of stays at a time: its index and gathered
        # values are then a block's size, not two more full-size arrays
        hour_index = np.arange(hours, dtype=np.int32)[None, :]
        for lo in range(0, n_stays, FILL_BLOCK):
            hi = min(lo + FILL_BLOCK, n_stays)
            last = np.where(observed[lo:hi], hour_index, 0)
            np.maximum.accumulate(last, axis=1, out=last)
            x[lo:hi, :, k] = np.take_along_axis(mean[lo:hi], last, axis=1)
        del mean
        missing.append(float(1 - observed.mean()))
    return x, missing
