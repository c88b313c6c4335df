"""Models every hospital and the aggregator share: a registry of DP-ready networks.

The registry's names are loaded on first use (PEP 562): the registry imports
torch, and the light modules of this package (errors, run configuration, CLI
helpers) must stay importable without it, so ``fedcare --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared_models.registry import (
        ModelSpec,
        create_model,
        dp_errors,
        get_spec,
        model_names,
        register_model,
    )

__all__ = [
    "ModelSpec",
    "create_model",
    "dp_errors",
    "get_spec",
    "model_names",
    "register_model",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from shared_models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'shared_models' has no attribute {name!r}")
