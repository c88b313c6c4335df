"""Models every hospital and the aggregator share: a registry of DP-ready networks."""

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
