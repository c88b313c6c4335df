"""Anomaly detection on physiological signals with an autoencoder.

Rows are split by series (one file = one patient's session) when there are at
least three series; otherwise each series is cut in time (UCR archive files:
the anomaly-free training prefix is train/validation, the rest is test).
The autoencoder trains on windows whose rows are all normal (all rows when
the file has no labels). Every row is scored: its score is the mean
reconstruction error of the windows that cover it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from client.data import (
    SignalSet,
    apply_signal_stats,
    fit_signal_stats,
    load_signals,
    resolve_data_path,
    split_contiguous,
    split_groups,
)
from client.tasks.base import Arrays, Prepared, Task
from shared_models.errors import DataError
from shared_models.export import ModelCard
from shared_models.metrics import anomaly_metrics, calibrate_threshold
from shared_models.recipe import SIGNAL_ANOMALY

WINDOW, STRIDE = 64, 16
TRAIN, VAL, TEST = 0, 1, 2


def row_parts(signals: SignalSet, seed: int) -> np.ndarray:
    """TRAIN/VAL/TEST per row (see the module doc)."""
    series = np.asarray(signals.series)
    parts = np.empty(len(series), dtype=np.int8)
    if len(np.unique(series)) >= 3:
        split = split_groups(series, seed=seed)
        for part, idx in ((TRAIN, split.train), (VAL, split.val), (TEST, split.test)):
            parts[idx] = part
        return parts
    for sid in np.unique(series):
        rows = np.flatnonzero(series == sid)
        end = (signals.train_end or {}).get(str(sid))
        if end is not None and 0 < end < len(rows):
            fit = split_contiguous(end, (0.85, 0.15, 0.0)) if end >= 3 else None
            parts[rows] = TEST
            parts[rows[:end]] = TRAIN
            if fit is not None:
                parts[rows[fit.val]] = VAL
            continue
        split = split_contiguous(len(rows))
        for part, idx in ((TRAIN, split.train), (VAL, split.val), (TEST, split.test)):
            parts[rows[idx]] = part
    return parts


def segments(keys: np.ndarray) -> list[tuple[int, int]]:
    """Half-open runs [a, b) of equal consecutive keys."""
    if len(keys) == 0:
        return []
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    bounds = [0, *change.tolist(), len(keys)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def window_starts(a: int, b: int, window: int, stride: int) -> np.ndarray:
    """Starts of windows inside [a, b); the last ends at b, so every row is covered."""
    if b - a < window:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(a, b - window + 1, stride)
    if starts[-1] != b - window:
        starts = np.append(starts, b - window)
    return starts.astype(np.int64)


def windows_of(
    values: np.ndarray, rows: np.ndarray, keys: np.ndarray, stride: int
) -> np.ndarray:
    """Absolute window starts over ``rows`` (sorted), within equal ``keys`` runs."""
    starts = [
        rows[a] + window_starts(0, b - a, WINDOW, stride)
        for a, b in segments(keys[rows])
    ]
    return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)


class SignalAnomaly(Task):
    name = "signal-anomaly"
    data_kind = "signals"
    model = "dense_autoencoder"
    kind = "reconstruction"
    percentile = 99.0
    # Cheap epochs, batches of few monitored patients (shared_models.recipe).
    recipe = SIGNAL_ANOMALY

    def _arrays(
        self,
        values: np.ndarray,
        labels: np.ndarray | None,
        keys: np.ndarray,
        rows: np.ndarray,
        series: np.ndarray,
    ) -> Arrays:
        starts = windows_of(values, rows, keys, STRIDE)
        x = (
            np.stack([values[s : s + WINDOW] for s in starts])
            if len(starts)
            else (np.zeros((0, WINDOW, values.shape[1]), np.float32))
        )
        y = (
            None
            if labels is None
            else np.array([labels[s : s + WINDOW].max() for s in starts])
        )
        extra = {
            "starts": starts,
            "rows": rows,
            "row_labels": None if labels is None else labels[rows],
        }
        return Arrays(x.astype(np.float32), y, series[starts], extra)

    def prepare(self, path: Path, seed: int = 0) -> Prepared:
        signals = load_signals(resolve_data_path(path, "signals"))
        parts = row_parts(signals, seed)
        labels = signals.is_anomaly
        normal = np.ones(len(parts), bool) if labels is None else labels == 0
        stats = fit_signal_stats(signals.values[(parts == TRAIN) & normal])
        values = apply_signal_stats(signals.values, stats)
        series = np.asarray(signals.series)
        keys = np.char.add(series.astype(str), parts.astype(str))
        made = [
            self._arrays(values, labels, keys, np.flatnonzero(parts == p), series)
            for p in (TRAIN, VAL, TEST)
        ]
        for name, arr in zip(("train", "validation", "test"), made, strict=True):
            if len(arr) == 0:
                raise DataError(
                    f"{path}: the {name} part has no window of {WINDOW} rows; "
                    "give longer signals or more sessions"
                )
        norm = {
            "method": "per-channel z-score",
            "window": WINDOW,
            "stride": STRIDE,
            "channels": list(signals.channels),
            **stats,
        }
        summary = {
            "source": signals.source,
            "series": int(len(np.unique(series))),
            "rows": {
                n: int((parts == p).sum())
                for n, p in (("train", TRAIN), ("val", VAL), ("test", TEST))
            },
            "anomalous_rows": None if labels is None else int(labels.sum()),
        }
        return Prepared(*made, norm, summary)

    def prepare_all(self, path: Path, card: ModelCard) -> Arrays:
        signals = load_signals(resolve_data_path(path, "signals"))
        if list(signals.channels) != list(card.normalisation["channels"]):
            raise DataError(
                f"{path}: channels {list(signals.channels)} differ from the "
                f"model's {card.normalisation['channels']}"
            )
        values = apply_signal_stats(signals.values, card.normalisation)
        series = np.asarray(signals.series)
        return self._arrays(
            values, signals.is_anomaly, series, np.arange(len(series)), series
        )

    def model_config(self, prepared: Prepared) -> dict[str, Any]:
        return {**super().model_config(prepared), "noise_std": 0.05}

    def fit_arrays(self, prepared: Prepared) -> Arrays:
        train = prepared.train
        return train if train.y is None else train.subset(train.y == 0)

    def row_scores(self, model: nn.Module, arrays: Arrays) -> np.ndarray:
        from client.training import predict

        scores = predict(model, arrays.x)
        rows = arrays.extra["rows"]
        total = np.zeros(rows.max() + 1 if len(rows) else 0)
        count = np.zeros_like(total)
        for start, score in zip(arrays.extra["starts"], scores, strict=True):
            total[start : start + WINDOW] += score
            count[start : start + WINDOW] += 1
        return np.where(
            count[rows] > 0, total[rows] / np.maximum(count[rows], 1), np.nan
        )

    def calibrate(self, model: nn.Module, prepared: Prepared) -> float:
        scores = self.row_scores(model, prepared.val)
        labels = prepared.val.extra["row_labels"]
        normal = np.isfinite(scores) & (True if labels is None else labels == 0)
        if not normal.any():
            raise DataError("no normal rows in the validation part to calibrate on")
        return calibrate_threshold(scores[normal], self.percentile)

    def score(
        self, model: nn.Module, arrays: Arrays, card: ModelCard
    ) -> dict[str, Any]:
        scores = self.row_scores(model, arrays)
        labels = arrays.extra["row_labels"]
        ok = np.isfinite(scores)
        out = anomaly_metrics(
            None if labels is None else labels[ok], scores[ok], card.threshold
        )
        out["rows_unscored"] = int((~ok).sum())
        return out
