"""The interface every fedcare model implements.

``loss`` is the training objective (a mean over the batch, as Opacus expects
with ``loss_reduction="mean"``); ``predict`` returns what the metrics need:
class probabilities, days, or an anomaly score per example. Every parameter
lives in a module Opacus has an exact per-sample gradient for, and the loss
only goes through submodules, so hooks see every use of every weight.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class FedcareModel(nn.Module):
    """Base class: remembers its constructor arguments for the model card."""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = {k: v for k, v in config.items() if k != "dp"}

    def loss(self, x: torch.Tensor, y: torch.Tensor | None, **kw: Any) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
