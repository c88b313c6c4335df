"""Score a global model on a held-out data folder: the aggregator's server-side
evaluation (run-config ``server-eval-data``).

Reading a data folder and scoring a model on it is the hospitals' code
(``client.tasks``). The aggregator reaches this function through the
``fedcare.server_eval`` entry point that ``pyproject.toml`` declares
(``server.held_out`` loads it), so ``server`` never imports ``client``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from client.tasks import get_task
from shared_models.export import ModelCard


def score_held_out(
    task: str, card: ModelCard, weights: list, data: Path
) -> dict[str, Any]:
    """Metrics of the model ``card`` describes, with ``weights``, on ``data``."""
    from shared_models import create_model
    from shared_models.export import set_weights

    spec = get_task(task)
    model = create_model(card.model, **card.model_config, dp=False)
    set_weights(model, weights)
    arrays = spec.prepare_all(data, card)
    return spec.score(model, arrays, card)
