"""Errors of the model registry and the model-directory format."""

from __future__ import annotations

from client.errors import ModelError

__all__ = ["ModelError", "UnknownModelError", "NotDPCompatibleError"]


class UnknownModelError(ModelError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotDPCompatibleError(ModelError):
    """A registered model has a layer Opacus cannot compute per-sample gradients for."""
