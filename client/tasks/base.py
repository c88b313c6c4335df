"""What a task is: data kind, model, preprocessing, splits and metrics.

A task turns a hospital's files into model-ready arrays (``Arrays``), split by
patient, with normalisation statistics fitted on the training split only; it
knows which model to build and how to judge it. ``prepare`` is used for
training (split), ``prepare_all`` for scoring a whole data set with the
statistics saved in a model card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from shared_models.export import ModelCard
from shared_models.recipe import Recipe


@dataclass
class Arrays:
    """Model inputs ``x`` (n, T, C), targets ``y`` and the patient of each example."""

    x: np.ndarray
    y: np.ndarray | None
    groups: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, mask: np.ndarray) -> Arrays:
        y = None if self.y is None else self.y[mask]
        return Arrays(self.x[mask], y, self.groups[mask], dict(self.extra))


@dataclass
class Prepared:
    train: Arrays
    val: Arrays
    test: Arrays
    normalisation: dict[str, Any]
    summary: dict[str, Any]


class Task:
    """Base class; concrete tasks live in ``client.tasks.<family>``."""

    name: str = ""
    data_kind: str = ""  # "ecg" | "signals" | "vitals"
    model: str = ""
    kind: str = ""  # binary | multiclass | regression | reconstruction
    classes: list[str] | None = None
    # How this task trains, alone and federated (``shared_models.recipe``).
    recipe: Recipe = Recipe()

    def recommended_config(self, dp: bool = True, **overrides: Any) -> Any:
        """``fedcare train``'s ``TrainConfig``: the whole recipe at one hospital.

        ``None`` overrides are ignored. Without DP: Adam at ``plain_lr``,
        batches of ``plain_batch`` examples.
        """
        from client.training import TrainConfig

        recipe = self.recipe
        base: dict[str, Any] = {
            "epochs": recipe.epochs,
            "steps": recipe.steps if dp else 0,
            "max_grad_norm": recipe.max_grad_norm,
            "optimizer": "adam",
        }
        if dp:
            base.update(
                batch_size=recipe.batch_size,
                sample_rate=recipe.sample_rate,
                lr=recipe.alone_lr or recipe.server_lr,
            )
        else:
            base.update(
                epochs=recipe.plain_epochs,
                batch_size=recipe.plain_batch,
                lr=recipe.plain_lr,
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "epochs" in given and "steps" not in given:
            base["steps"] = 0  # asked for epochs: train epochs, not the steps
        return TrainConfig(**{**base, **given})

    def prepare(self, path: Path, seed: int = 0) -> Prepared:
        raise NotImplementedError

    def prepare_all(self, path: Path, card: ModelCard) -> Arrays:
        raise NotImplementedError

    def model_config(self, prepared: Prepared) -> dict[str, Any]:
        x = prepared.train.x
        return {
            "seq_len": int(x.shape[1]),
            "n_features": int(x.shape[2]),
            **self.recipe.model,
        }

    def fit_arrays(self, prepared: Prepared) -> Arrays:
        """The examples the model is trained on (autoencoders: normal ones only)."""
        return prepared.train

    def loss_kwargs(self) -> dict[str, Any]:
        """Loss settings; public constants only (never fitted on patient data)."""
        return {}

    def calibrate(self, model: nn.Module, prepared: Prepared) -> float | None:
        """The decision threshold saved with the model.

        Binary classifiers: the probability cut that maximises F1 on the
        validation split (DP clipping bounds every example's gradient, which
        blunts class weights, so probabilities of a private model are rarely
        centred on 0.5). When the validation split lacks a class (few
        patients), the training split is used; 0.5 when both lack one.
        Regression has none; autoencoders override this.
        """
        if self.kind != "binary":
            return None
        from client.training import predict
        from shared_models.metrics import best_f1_threshold

        for part in (prepared.val, prepared.train):
            if len(part) and len(np.unique(part.y)) == 2:
                return best_f1_threshold(part.y, predict(model, part.x)[:, 1])
        return 0.5

    def score(
        self, model: nn.Module, arrays: Arrays, card: ModelCard
    ) -> dict[str, Any]:
        from client.training import evaluate

        return evaluate(
            model,
            arrays.x,
            arrays.y,
            self.kind,
            threshold=card.threshold,
            classes=card.classes,
        )


def split_arrays(
    arrays: Arrays, train: np.ndarray, val: np.ndarray, test: np.ndarray
) -> tuple[Arrays, Arrays, Arrays]:
    return arrays.subset(train), arrays.subset(val), arrays.subset(test)


def label_counts(
    y: np.ndarray | None, names: list[str] | None = None
) -> dict[str, int]:
    if y is None:
        return {}
    values, counts = np.unique(y, return_counts=True)
    return {
        (names[int(v)] if names else str(v)): int(c)
        for v, c in zip(values, counts, strict=True)
    }
