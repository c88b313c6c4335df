"""Dense (MLP) autoencoder over a flattened window; denoising and sparse options."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from shared_models.base import FedcareModel
from shared_models.registry import register_model


def _mlp(dims: list[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if k < len(dims) - 2 or last_activation:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


@register_model(
    "dense_autoencoder",
    task="reconstruction",
    loss="mse (+ l1 * mean |code| when sparse)",
    metrics=("auroc", "auprc", "f1", "precision", "recall"),
    input_spec={"seq_len": 64, "n_features": 1, "layout": "batch, time, feature"},
)
class DenseAutoencoder(FedcareModel):
    """Encoder ``D -> hidden... -> code``, mirrored decoder; tanh activations.

    ``noise_std`` > 0 trains it as a denoising autoencoder (Gaussian noise on the
    input, clean target); ``l1`` > 0 adds a sparsity penalty on the code.
    The anomaly score is the mean squared reconstruction error of an example.
    """

    def __init__(
        self,
        n_features: int = 1,
        seq_len: int = 64,
        hidden: tuple[int, ...] | list[int] = (128, 64),
        code_size: int = 16,
        noise_std: float = 0.0,
        l1: float = 0.0,
        dp: bool = True,
    ) -> None:
        super().__init__(
            n_features=n_features,
            seq_len=seq_len,
            hidden=list(hidden),
            code_size=code_size,
            noise_std=noise_std,
            l1=l1,
        )
        if noise_std < 0 or l1 < 0:
            raise ValueError("noise_std and l1 must be >= 0")
        dims = [n_features * seq_len, *hidden, code_size]
        self.encoder = _mlp(dims, last_activation=True)
        self.decoder = _mlp(dims[::-1], last_activation=False)
        self.noise_std = noise_std
        self.l1 = l1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x.flatten(1))).view_as(x)

    def loss(
        self, x: torch.Tensor, y: torch.Tensor | None = None, **_: Any
    ) -> torch.Tensor:
        noisy = x + self.noise_std * torch.randn_like(x) if self.noise_std else x
        code = self.encoder(noisy.flatten(1))
        recon = self.decoder(code).view_as(x)
        loss = (recon - x).pow(2).mean()
        if self.l1:
            loss = loss + self.l1 * code.abs().mean()
        return loss

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (self(x) - x).pow(2).flatten(1).mean(dim=1)
