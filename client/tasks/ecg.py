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
from client.tasks.base import Arrays, Prepared, Task, label_counts, split_arrays
from shared_models.errors import DataError
from shared_models.export import ModelCard
from shared_models.metrics import calibrate_threshold
from shared_models.recipe import ECG_ANOMALY, ECG_BEATS

N, V = AAMI_CLASSES.index("N"), AAMI_CLASSES.index("V")
# Class weights are PUBLIC constants, never counts of a hospital's training
# split (those would be a statistic of patient data outside the DP accounting).
# Source: AAMI class beat counts of the MIT-BIH Arrhythmia Database as commonly
# reported (about 90.6k N, 2.8k S, 7.2k V, 0.8k F; Q is rare outside the paced
# records). Any order-of-magnitude prior works: the weights are capped at 10
# and DP clipping bounds every example's gradient anyway.
PUBLIC_AAMI_BEATS = {"N": 90631, "S": 2781, "V": 7236, "F": 803, "Q": 15}
MAX_CLASS_WEIGHT = 10.0


def public_class_weights(classes: list[str]) -> list[float]:
    """Inverse-frequency weights of ``classes`` in MIT-BIH, capped at 10."""
    counts = np.array([PUBLIC_AAMI_BEATS[c] for c in classes], dtype=float)
    weights = counts.sum() / (len(classes) * counts)
    return np.minimum(weights, MAX_CLASS_WEIGHT).round(4).tolist()


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
    # The autoencoder's recipe (shared_models.recipe); the classifier overrides it.
    recipe = ECG_ANOMALY

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
    # DP-FedAdam, half of the patients per step, a small LSTM (32 x 1): see
    # shared_models.recipe and docs/benchmarks.md for the measurements.
    recipe = ECG_BEATS

    def _labels(self, beats: BeatSet) -> tuple[np.ndarray, np.ndarray]:
        keep = np.isin(beats.aami, [N, V])
        return keep, (beats.aami[keep] == V).astype(np.int64)

    def model_config(self, prepared: Prepared) -> dict[str, Any]:
        return {
            **super().model_config(prepared),
            "num_classes": 2,
            "flip_augment": True,
        }

    def loss_kwargs(self) -> dict[str, Any]:
        """Public class weights: inverse frequency of the MIT-BIH prevalence."""
        return {"class_weight": public_class_weights(["N", "V"])}


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

    def loss_kwargs(self) -> dict[str, Any]:
        return {"class_weight": public_class_weights(list(AAMI_CLASSES))}


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
