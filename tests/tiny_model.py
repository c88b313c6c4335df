"""The smallest model card the server side accepts, and its seeded weights:
for tests of checkpoints, resume and the audit log that need a real model
but not a trained one."""

from __future__ import annotations

from typing import Any

import numpy as np


def tiny_card(task: str = "signal-anomaly") -> dict[str, Any]:
    """A card of a 8-step, 1-feature dense autoencoder for ``task``."""
    return {
        "model": "dense_autoencoder",
        "model_config": {"seq_len": 8, "n_features": 1, "hidden": [4], "code_size": 2},
        "task": task,
        "input_spec": {"seq_len": 8, "n_features": 1},
        "normalisation": {},
        "classes": None,
    }


def tiny_weights(seed: int) -> list[np.ndarray]:
    """The card's weights drawn under ``torch.manual_seed(seed)``."""
    import torch

    from shared_models import create_model
    from shared_models.export import get_weights
    from shared_models.registry import get_spec

    card = tiny_card()
    get_spec(card["model"])  # registering draws random weights: before seeding
    torch.manual_seed(seed)
    return get_weights(create_model(card["model"], **card["model_config"], dp=False))
