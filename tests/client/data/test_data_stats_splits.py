"""Tests for normalisation statistics, signal windows and splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.data import (
    apply_signal_stats,
    apply_vitals_stats,
    fit_signal_stats,
    fit_vitals_stats,
    signal_windows,
    split_contiguous,
    split_groups,
)
from shared_models.errors import DataError


def test_vitals_stats_impute_clip_and_normalise():
    x = np.full((2, 3, 2), np.nan)
    x[0, :, 0] = [1.0, 2.0, 3.0]
    x[1, 0, 0] = 100.0
    x[:, :, 1] = 5.0
    stats = fit_vitals_stats(x)
    json.dumps(stats)
    assert stats["median"] == [2.5, 5.0]
    assert stats["low"][0] == pytest.approx(np.percentile([1, 2, 3, 100], 0.5))
    assert stats["std"][1] == pytest.approx(1e-6)
    out = apply_vitals_stats(x, stats)
    assert out.dtype == np.float32
    assert not np.isnan(out).any()
    np.testing.assert_allclose(out[:, :, 1], 0.0)


def test_vitals_stats_need_each_feature_observed():
    x = np.full((2, 3, 2), np.nan)
    x[:, :, 0] = 1.0
    with pytest.raises(DataError, match=r"feature\(s\) \[1\] have no observation"):
        fit_vitals_stats(x)


def test_apply_stats_checks_feature_count():
    stats = fit_signal_stats(np.ones((4, 2)))
    with pytest.raises(DataError, match=r"'mean' have 2 value.*3 feature"):
        apply_signal_stats(np.ones((4, 3)), stats)


def test_signal_stats_round_trip():
    values = np.array([[1.0, 10.0], [3.0, 10.0]])
    stats = fit_signal_stats(values)
    assert stats == {"mean": [2.0, 10.0], "std": [1.0, 1e-6]}
    np.testing.assert_allclose(apply_signal_stats(values, stats)[:, 0], [-1, 1])


def test_windows_never_cross_series():
    values = np.arange(10, dtype=float)[:, None]
    series = np.array(["a"] * 6 + ["b"] * 4)
    windows, starts = signal_windows(values, window=3, stride=2, series=series)
    assert starts.tolist() == [0, 2, 6]
    assert windows.shape == (3, 3, 1)
    assert windows[2, :, 0].tolist() == [6, 7, 8]
    _, all_starts = signal_windows(values, window=3, stride=2)
    assert all_starts.tolist() == [0, 2, 4, 6]
    empty, _ = signal_windows(values, window=20, stride=1)
    assert empty.shape == (0, 20, 1)


def test_split_groups_keeps_patients_apart_and_is_deterministic():
    groups = np.repeat([f"p{i}" for i in range(10)], 5)
    split = split_groups(groups, seed=3)
    parts = [set(groups[idx]) for idx in (split.train, split.val, split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert [len(p) for p in parts] == [6, 2, 2]  # round(1.5) == 2 patients
    again = split_groups(groups, seed=3)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(split.__dict__.values(), again.__dict__.values(), strict=True)
    )


def test_split_groups_needs_three_patients():
    with pytest.raises(DataError, match=r"found 2 patient.*at least 3.*split in time"):
        split_groups(np.array(["a", "b", "a"]))


def test_split_fractions_are_checked():
    with pytest.raises(DataError, match=r"sum to 1"):
        split_groups(np.array(["a", "b", "c"]), fractions=(0.5, 0.2, 0.2))


def test_split_contiguous_blocks():
    split = split_contiguous(20)
    assert split.train.tolist() == list(range(14))
    assert split.val.tolist() == [14, 15, 16]
    assert split.test.tolist() == [17, 18, 19]
    with pytest.raises(DataError, match=r"at least 3"):
        split_contiguous(2)


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.integers(0, 30), min_size=3, max_size=200).filter(
        lambda g: len(set(g)) >= 3
    ),
    seed=st.integers(0, 2**32 - 1),
    val=st.floats(0.05, 0.4),
    test=st.floats(0.05, 0.4),
)
def test_split_groups_property(groups, seed, val, test):
    arr = np.array(groups)
    split = split_groups(arr, fractions=(1 - val - test, val, test), seed=seed)
    parts = (split.train, split.val, split.test)
    assert all(len(p) > 0 and p.dtype == np.int64 for p in parts)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(arr)))
    sets = [set(arr[p].tolist()) for p in parts]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    again = split_groups(arr, fractions=(1 - val - test, val, test), seed=seed)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(parts, again.__dict__.values(), strict=True)
    )
