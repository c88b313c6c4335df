"""ICU tasks on hourly vitals: deterioration (binary) and length of stay (days).

Each stay becomes a fixed window of hourly bins (the first ``hours`` of the
stay), forward-filled within the stay by the loader; the median imputation,
outlier clipping and z-normalisation statistics are fitted on the training
split of this hospital only and saved in the model card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from client.data import (
    VitalsSet,
    apply_vitals_stats,
    load_vitals,
    public_vitals_stats,
    resolve_data_path,
    split_groups,
)
from client.tasks.base import Arrays, Prepared, Task, label_counts, split_arrays
from shared_models.errors import DataError
from shared_models.export import ModelCard
from shared_models.recipe import ICU_VITALS

HOURS = 48


class _VitalsTask(Task):
    data_kind = "vitals"
    label = ""
    # Small batches of few stays (shared_models.recipe).
    recipe = ICU_VITALS

    def _target(self, vitals: VitalsSet, source: Path) -> np.ndarray:
        if self.label not in vitals.labels:
            raise DataError(
                f"{source}: column {self.label!r} is required for task {self.name} "
                f"(found labels: {sorted(vitals.labels) or 'none'})"
            )
        return vitals.labels[self.label]

    def prepare(self, path: Path, seed: int = 0) -> Prepared:
        vitals = load_vitals(resolve_data_path(path, "vitals"), hours=HOURS)
        y = self._target(vitals, path)
        split = split_groups(np.asarray(vitals.patient), seed=seed)
        stats = public_vitals_stats(vitals.features)
        arrays = Arrays(
            apply_vitals_stats(vitals.x, stats), y, np.asarray(vitals.patient)
        )
        train, val, test = split_arrays(arrays, split.train, split.val, split.test)
        norm = {
            "method": "impute, clip, z-score with public clinical constants",
            "hours": HOURS,
            "features": list(vitals.features),
            **stats,
        }
        summary = {
            "source": vitals.source,
            "patients": int(len(np.unique(arrays.groups))),
            "examples": {"train": len(train), "val": len(val), "test": len(test)},
            **self._label_summary(train.y),
        }
        return Prepared(train, val, test, norm, summary)

    def _label_summary(self, y: np.ndarray) -> dict[str, Any]:
        return {}

    def prepare_all(self, path: Path, card: ModelCard) -> Arrays:
        norm = card.normalisation
        vitals = load_vitals(
            resolve_data_path(path, "vitals"), hours=int(norm["hours"])
        )
        expected = list(norm["features"])
        if list(vitals.features) != expected:
            raise DataError(
                f"{path}: vitals columns {list(vitals.features)} differ from the "
                f"model's {expected}; provide the same vitals, in the same order"
            )
        y = self._target(vitals, path) if self.label in vitals.labels else None
        return Arrays(apply_vitals_stats(vitals.x, norm), y, np.asarray(vitals.patient))


class IcuDeterioration(_VitalsTask):
    name = "icu-deterioration"
    model = "lstm_classifier"
    kind = "binary"
    classes = ["stable", "deterioration"]
    label = "deterioration"

    def model_config(self, prepared: Prepared) -> dict[str, Any]:
        return {**super().model_config(prepared), "num_classes": 2, "frame": 2}

    def _label_summary(self, y: np.ndarray) -> dict[str, Any]:
        return {"labels_train": label_counts(y, self.classes)}

    # Public prior, not the training split's counts: clinical deterioration
    # (rapid response, ICU transfer or death) in roughly 15% of monitored stays.
    PUBLIC_PREVALENCE = 0.15

    def loss_kwargs(self) -> dict[str, Any]:
        p = self.PUBLIC_PREVALENCE
        return {"class_weight": [round(1 / (2 * (1 - p)), 4), round(1 / (2 * p), 4)]}


class IcuLengthOfStay(_VitalsTask):
    name = "icu-los"
    model = "lstm_regressor"
    kind = "regression"
    label = "length_of_stay_days"

    def _label_summary(self, y: np.ndarray) -> dict[str, Any]:
        return {
            "length_of_stay_days_train": {
                "mean": float(np.mean(y)),
                "median": float(np.median(y)),
                "max": float(np.max(y)),
            }
        }

    def score(
        self, model: nn.Module, arrays: Arrays, card: ModelCard
    ) -> dict[str, Any]:
        """MAE/RMSE, and the MAE of always predicting the training median (a floor)."""
        out = super().score(model, arrays, card)
        median = card.training_data.get("length_of_stay_days_train", {}).get("median")
        if median is not None and arrays.y is not None and len(arrays.y):
            out["baseline_mae_days"] = float(np.mean(np.abs(arrays.y - median)))
        return out
