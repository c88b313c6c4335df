"""LSTM classifier: ECG beats (default) or ICU deterioration from hourly vitals."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from shared_models.base import FedcareModel
from shared_models.layers import Framing, make_lstm
from shared_models.registry import register_model


@register_model(
    "lstm_classifier",
    task="binary",
    loss="cross_entropy (optionally class-weighted)",
    metrics=("auroc", "auprc", "f1", "precision", "recall", "accuracy"),
    input_spec={"seq_len": 90, "n_features": 1, "layout": "batch, time, feature"},
)
class LSTMClassifier(FedcareModel):
    """2-layer LSTM (hidden 64) over the sequence, a linear head on the last state.

    ``flip_augment`` multiplies each training example by a random sign (see
    ``_random_signs``); prediction is unaffected.

    ``num_classes=2`` is a binary task (probability of class 1 is the score);
    more classes make it multiclass (e.g. the AAMI 5-class ECG option).
    """

    def __init__(
        self,
        n_features: int = 1,
        seq_len: int = 90,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_classes: int = 2,
        dropout: float = 0.0,
        frame: int = 5,
        flip_augment: bool = False,
        dp: bool = True,
    ) -> None:
        super().__init__(
            n_features=n_features,
            seq_len=seq_len,
            frame=frame,
            flip_augment=flip_augment,
            hidden_size=hidden_size,
            num_layers=num_layers,
            num_classes=num_classes,
            dropout=dropout,
        )
        self.framing = Framing(seq_len, frame)
        self.lstm = make_lstm(n_features * frame, hidden_size, num_layers, dropout, dp)
        self.head = nn.Linear(hidden_size, num_classes)
        self.flip_augment = flip_augment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(self.framing(x))
        return self.head(h_n[-1])

    def loss(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        class_weight: Any = None,
        **_: Any,
    ) -> torch.Tensor:
        if self.training and self.flip_augment:
            x = x * _random_signs(x)
        return weighted_cross_entropy(self(x), y.long(), class_weight)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(x), dim=-1)


def weighted_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, class_weight: Any = None
) -> torch.Tensor:
    """Mean over the batch of ``w[y_i] * CE_i``: each example's term is its own.

    ``F.cross_entropy(weight=w)`` divides by the batch's SUM of weights, so one
    example would scale every other example's gradient; DP-SGD needs a gradient
    per example that depends on that example alone. Dividing by the batch size
    is what Opacus' ``loss_reduction="mean"`` undoes exactly.
    """
    losses = F.cross_entropy(logits, y, reduction="none")
    if class_weight is not None:
        weight = torch.as_tensor(class_weight, dtype=logits.dtype, device=logits.device)
        losses = losses * weight[y]
    return losses.sum() / max(1, len(y))


def _random_signs(x: torch.Tensor) -> torch.Tensor:
    """+1 or -1 per example: a random polarity flip.

    ECG beats: ectopic beats of one focus are upright in one patient and
    inverted in another, so polarity does not tell a ventricular beat from a
    normal one across patients; flipping it at random during training makes
    the model learn width, P wave and shape instead (on a held-out synthetic
    hospital, test AUROC 0.94 -> 0.999 without DP and 0.955 -> 0.993 with DP,
    epsilon 2). The flip is per example, so DP accounting is unchanged.
    """
    draw = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device)
    return torch.where(draw < 0.5, -1.0, 1.0).to(x.dtype)
