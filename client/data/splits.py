"""Train/validation/test splits: by patient (group) or in contiguous time blocks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from client.data.types import Split
from shared_models.errors import DataError


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f <= 0 for f in fractions):
        raise DataError(
            f"fractions must be three positive numbers (train, val, test), "
            f"got {tuple(fractions)}"
        )
    total = float(sum(fractions))
    if abs(total - 1.0) > 1e-6:
        raise DataError(f"fractions must sum to 1, got {tuple(fractions)} = {total}")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def _sizes(total: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Split ``total`` (>= 3) items into three non-empty parts close to fractions."""
    val = max(1, round(fractions[1] * total))
    test = max(1, round(fractions[2] * total))
    while total - val - test < 1:
        if val >= test:
            val -= 1
        else:
            test -= 1
    return total - val - test, val, test


def split_groups(
    groups: np.ndarray,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Split:
    """Split example indices so that no group (patient) is in two parts.

    Groups are shuffled with ``seed`` and assigned whole to train, val and test,
    with the number of groups per part close to ``fractions``; every part gets
    at least one group. The result depends only on the groups and the seed.
    """
    fr = _check_fractions(fractions)
    keys = np.asarray(groups).astype(str)
    unique = np.unique(keys)
    if len(unique) < 3:
        raise DataError(
            f"found {len(unique)} patient(s) ({', '.join(unique[:2])}); a train/"
            f"validation/test split by patient needs at least 3: add patients, or "
            f"use a single signal without patient ids to split in time"
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    n_train, n_val, _ = _sizes(len(unique), fr)
    part = np.empty(len(unique), dtype=np.int64)
    part[order[:n_train]] = 0
    part[order[n_train : n_train + n_val]] = 1
    part[order[n_train + n_val :]] = 2
    example_part = part[np.searchsorted(unique, keys)]
    return Split(
        *(np.flatnonzero(example_part == p).astype(np.int64) for p in range(3))
    )


def split_contiguous(n: int, fractions: Sequence[float] = (0.7, 0.15, 0.15)) -> Split:
    """Rows ``[0, n)`` cut into three consecutive blocks: train, val, test."""
    fr = _check_fractions(fractions)
    if n < 3:
        raise DataError(
            f"found {n} example(s); a split in time needs at least 3, one per part"
        )
    n_train, n_val, _ = _sizes(n, fr)
    idx = np.arange(n, dtype=np.int64)
    return Split(idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :])
