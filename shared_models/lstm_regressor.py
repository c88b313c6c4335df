"""LSTM regressor: length of stay in days from hourly vitals.

The network predicts ``log1p(days)``: stays are right-skewed, and a fixed
transform (unlike per-hospital target statistics) means the same thing at
every hospital of a federation. ``predict`` returns days.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from shared_models.base import FedcareModel
from shared_models.layers import Framing, make_lstm
from shared_models.registry import register_model


@register_model(
    "lstm_regressor",
    task="regression",
    loss="huber on log1p(days)",
    metrics=("mae_days", "rmse_days"),
    input_spec={"seq_len": 48, "n_features": 6, "layout": "batch, time, feature"},
)
class LSTMRegressor(FedcareModel):
    def __init__(
        self,
        n_features: int = 6,
        seq_len: int = 48,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        frame: int = 2,
        dp: bool = True,
    ) -> None:
        super().__init__(
            n_features=n_features,
            seq_len=seq_len,
            frame=frame,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.framing = Framing(seq_len, frame)
        self.lstm = make_lstm(n_features * frame, hidden_size, num_layers, dropout, dp)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``log1p(days)`` per example, shape (B,)."""
        _, (h_n, _) = self.lstm(self.framing(x))
        return self.head(h_n[-1]).squeeze(-1)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None, **_: Any) -> torch.Tensor:
        return F.huber_loss(self(x), torch.log1p(y.to(x.dtype)), delta=1.0)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.expm1(self(x)).clamp_min(0.0)
