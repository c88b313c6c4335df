"""Model registry: ``@register_model`` registers, ``create_model`` builds.

Each model declares its task, loss, metrics and input spec. It is checked for
DP-compatibility (Opacus' ``ModuleValidator.validate(strict=True)``) when it is
registered, not mid-round: a model that cannot be trained privately never gets
into the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from torch import nn

from shared_models.errors import NotDPCompatibleError, UnknownModelError

ModelTask = Literal["binary", "multiclass", "regression", "reconstruction"]
T = TypeVar("T", bound=type[nn.Module])


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is for and how it is trained and judged."""

    name: str
    cls: type[nn.Module]
    task: ModelTask
    loss: str
    metrics: tuple[str, ...]
    input_spec: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    task: ModelTask,
    loss: str,
    metrics: tuple[str, ...],
    input_spec: dict[str, Any],
) -> Callable[[T], T]:
    """Class decorator: register ``cls`` under ``name`` after a DP check."""

    def decorator(cls: T) -> T:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        errors = dp_errors(cls(dp=True))
        if errors:
            raise NotDPCompatibleError(
                f"model {name!r} cannot be trained with DP-SGD: " + "; ".join(errors)
            )
        _REGISTRY[name] = ModelSpec(name, cls, task, loss, tuple(metrics), input_spec)
        return cls

    return decorator


def dp_errors(model: nn.Module) -> list[str]:
    """Opacus' strict validation of ``model``, as a list of messages."""
    from opacus.validators import ModuleValidator

    return [str(err) for err in ModuleValidator.validate(model, strict=False)]


def model_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {known}"
        ) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build model ``name``; ``dp=True`` gives the Opacus-compatible variant."""
    return get_spec(name).cls(**kwargs)


def _load_builtin() -> None:
    # Importing the modules runs their @register_model decorators.
    from shared_models import (  # noqa: F401
        dense_autoencoder,
        lstm_autoencoder,
        lstm_classifier,
        lstm_regressor,
    )
