"""ECG tasks on beats: arrhythmia classification and beat anomaly detection.

Beats come from WFDB records (or a beats CSV), cut from a fixed time window
around each annotated beat and resampled to a fixed length, so the sampling
rate of a record does not matter. Each beat is z-normalised on its own (mean 0,
standard deviation 1), which removes lead gain and baseline offset and needs no
statistics from the training split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from client.data import (
    AAMI_CLASSES,
    BeatSet,
    load_beats,
    resolve_data_path,
    split_groups,
)
from client.errors import DataError
from client.tasks.base import Arrays, Prepared, Task, label_counts, split_arrays
from shared_models.export import ModelCard
from shared_models.metrics import calibrate_threshold

N, V = AAMI_CLASSES.index("N"), AAMI_CLASSES.index("V")
BEAT = {"lead": "MLII", "beat_length": 90, "window_s": [0.25, 0.47]}


def normalise_beats(beats: np.ndarray) -> np.ndarray:
    """Per-beat z-score, shape (n, length, 1)."""
    beats = np.asarray(beats, dtype=np.float32)
    mean = beats.mean(axis=1, keepdims=True)
    std = beats.std(axis=1, keepdims=True)
    return ((beats - mean) / np.maximum(std, 1e-3))[..., None]


def read_beats(path: Path, spec: dict[str, Any]) -> BeatSet:
    return load_beats(
        resolve_data_path(path, "ecg"),
        lead=spec["lead"],
        beat_length=int(spec["beat_length"]),
        window_s=tuple(spec["window_s"]),
    )


class _BeatTask(Task):
    data_kind = "ecg"
    # A hospital has a few thousand beats: large batches keep the DP noise on the
    # mean gradient small (sigma * clip / batch), a high learning rate and several
    # epochs make up for the clipped, noisy steps.
    train_defaults = {"epochs": 6, "batch_size": 128, "lr": 1e-2, "max_grad_norm": 1.0}

    def _labels(self, beats: BeatSet) -> tuple[np.ndarray, np.ndarray]:
        """(kept mask, label per kept beat)."""
        raise NotImplementedError

    def _arrays(self, beats: BeatSet, source: Path) -> Arrays:
        keep, y = self._labels(beats)
        if not keep.any():
            raise DataError(f"{source}: no beats usable for task {self.name}")
        return Arrays(
            normalise_beats(beats.beats[keep]), y, np.asarray(beats.patient)[keep]
        )

    def prepare(self, path: Path, seed: int = 0) -> Prepared:
        beats = read_beats(path, BEAT)
        arrays = self._arrays(beats, path)
        split = split_groups(arrays.groups, seed=seed)
        train, val, test = split_arrays(arrays, split.train, split.val, split.test)
        summary = {
            "source": beats.source,
            "patients": int(len(np.unique(arrays.groups))),
            "examples": {"train": len(train), "val": len(val), "test": len(test)},
            "labels_train": label_counts(train.y, self.label_names),
        }
        norm = {"method": "per-beat z-score", **BEAT}
        return Prepared(train, val, test, norm, summary)

    def prepare_all(self, path: Path, card: ModelCard) -> Arrays:
        spec = {k: card.normalisation.get(k, v) for k, v in BEAT.items()}
        return self._arrays(read_beats(path, spec), path)

    label_names: list[str] | None = None


class EcgArrhythmia(_BeatTask):
    """Normal (N) vs ventricular ectopic (V) beats; other AAMI classes are left out."""

    name = "ecg-arrhythmia"
    model = "lstm_classifier"
    kind = "binary"
    classes = ["N", "V"]
    label_names = ["N", "V"]
    # Measured on synthetic hospitals (epsilon 1): batch 256 gave cross-hospital
    # AUROC 0.60 where batch 128 gave 0.39, in fewer steps.
    train_defaults = {"epochs": 6, "batch_size": 256, "lr": 2e-2, "max_grad_norm": 1.0}

    def _labels(self, beats: BeatSet) -> tuple[np.ndarray, np.ndarray]:
        keep = np.isin(beats.aami, [N, V])
        return keep, (beats.aami[keep] == V).astype(np.int64)

    def model_config(self, prepared: Prepared) -> dict[str, Any]:
        return {
            **super().model_config(prepared),
            "num_classes": 2,
            "flip_augment": True,
        }

    def loss_kwargs(self, train: Arrays) -> dict[str, Any]:
        """Inverse-frequency class weights (capped at 10), from the training split."""
        counts = np.bincount(train.y, minlength=2).astype(float)
        weights = np.where(counts > 0, counts.sum() / (2 * np.maximum(counts, 1)), 1.0)
        return {"class_weight": np.minimum(weights, 10.0).tolist()}


class EcgArrhythmiaAami(EcgArrhythmia):
    """The AAMI 5-class option: N, S, V, F, Q."""

    name = "ecg-arrhythmia-aami5"
    kind = "multiclass"
    classes = list(AAMI_CLASSES)
    label_names = list(AAMI_CLASSES)

    def _labels(self, beats: BeatSet) -> tuple[np.ndarray, np.ndarray]:
        return np.ones(len(beats.aami), bool), beats.aami.astype(np.int64)

    def model_config(self, prepared: Prepared) -> dict[str, Any]:
        return {
            **Task.model_config(self, prepared),
            "num_classes": len(AAMI_CLASSES),
            "flip_augment": True,
        }

    def loss_kwargs(self, train: Arrays) -> dict[str, Any]:
        k = len(AAMI_CLASSES)
        counts = np.bincount(train.y, minlength=k).astype(float)
        weights = np.where(counts > 0, counts.sum() / (k * np.maximum(counts, 1)), 1.0)
        return {"class_weight": np.minimum(weights, 10.0).tolist()}


class EcgAnomaly(_BeatTask):
    """LSTM autoencoder trained on normal beats; every non-N beat is an anomaly."""

    name = "ecg-anomaly"
    model = "lstm_autoencoder"
    kind = "reconstruction"
    label_names = ["normal", "anomaly"]
    percentile = 97.5

    def _labels(self, beats: BeatSet) -> tuple[np.ndarray, np.ndarray]:
        return np.ones(len(beats.aami), bool), (beats.aami != N).astype(np.int64)

    def fit_arrays(self, prepared: Prepared) -> Arrays:
        return prepared.train.subset(prepared.train.y == 0)

    def calibrate(self, model: nn.Module, prepared: Prepared) -> float:
        from client.training import predict

        normal = prepared.val.subset(prepared.val.y == 0)
        if len(normal) == 0:
            raise DataError("no normal beats in the validation split to calibrate on")
        return calibrate_threshold(predict(model, normal.x), self.percentile)
