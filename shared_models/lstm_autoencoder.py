"""LSTM sequence autoencoder for anomaly detection.

Encoder LSTM -> last state -> linear code; the decoder LSTM reads the code at
every step and a linear layer maps its states back to the features. The anomaly
score of a sequence is its mean squared reconstruction error; the threshold is
calibrated on normal validation data (a percentile) and saved in the model card.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from shared_models.base import FedcareModel
from shared_models.layers import Framing, make_lstm
from shared_models.registry import register_model


@register_model(
    "lstm_autoencoder",
    task="reconstruction",
    loss="mse",
    metrics=("auroc", "auprc", "f1", "precision", "recall"),
    input_spec={"seq_len": 90, "n_features": 1, "layout": "batch, time, feature"},
)
class LSTMAutoencoder(FedcareModel):
    def __init__(
        self,
        n_features: int = 1,
        seq_len: int = 90,
        hidden_size: int = 64,
        code_size: int = 16,
        num_layers: int = 1,
        frame: int = 5,
        dp: bool = True,
    ) -> None:
        super().__init__(
            n_features=n_features,
            seq_len=seq_len,
            frame=frame,
            hidden_size=hidden_size,
            code_size=code_size,
            num_layers=num_layers,
        )
        self.framing = Framing(seq_len, frame)
        width = n_features * frame
        self.encoder = make_lstm(width, hidden_size, num_layers, 0.0, dp)
        self.to_code = nn.Linear(hidden_size, code_size)
        self.decoder = make_lstm(code_size, hidden_size, num_layers, 0.0, dp)
        self.output = nn.Linear(hidden_size, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        framed = self.framing(x)
        _, (h_n, _) = self.encoder(framed)
        code = torch.tanh(self.to_code(h_n[-1]))
        repeated = code.unsqueeze(1).expand(-1, framed.shape[1], -1)
        states, _ = self.decoder(repeated)
        return self.output(states).reshape(x.shape)

    def loss(
        self, x: torch.Tensor, y: torch.Tensor | None = None, **_: Any
    ) -> torch.Tensor:
        return (self(x) - x).pow(2).mean()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (self(x) - x).pow(2).flatten(1).mean(dim=1)
