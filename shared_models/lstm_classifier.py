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
        dp: bool = True,
    ) -> None:
        super().__init__(
            n_features=n_features,
            seq_len=seq_len,
            frame=frame,
            hidden_size=hidden_size,
            num_layers=num_layers,
            num_classes=num_classes,
            dropout=dropout,
        )
        self.framing = Framing(seq_len, frame)
        self.lstm = make_lstm(n_features * frame, hidden_size, num_layers, dropout, dp)
        self.head = nn.Linear(hidden_size, num_classes)

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
        weight = (
            None
            if class_weight is None
            else torch.as_tensor(class_weight, dtype=x.dtype, device=x.device)
        )
        return F.cross_entropy(self(x), y.long(), weight=weight)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(x), dim=-1)
