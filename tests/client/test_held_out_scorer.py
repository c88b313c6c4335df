"""client.held_out: the scorer the aggregator's server-side evaluation loads."""

from __future__ import annotations

import math
from pathlib import Path

import tomllib

from client.held_out import score_held_out
from client.tasks import get_task
from server.evaluation import task_kind
from shared_models import create_model
from shared_models.export import ModelCard, get_weights
from shared_models.run_config import TASKS

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_declares_the_scorer_the_server_loads() -> None:
    from server.held_out import GROUP

    table = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][GROUP]
    assert list(table.values()) == ["client.held_out:score_held_out"]


def test_the_server_knows_each_run_tasks_kind_as_the_task_does() -> None:
    for name in TASKS:
        assert task_kind(name) == get_task(name).kind, name


def test_score_held_out_scores_the_weights_on_the_data(
    tiny_hospitals: tuple[Path, Path],
) -> None:
    task = get_task("ecg-arrhythmia")
    prepared = task.prepare(tiny_hospitals[0])
    config = task.model_config(prepared)
    model = create_model(task.model, **config, dp=False)
    card = ModelCard(
        model=task.model,
        model_config=config,
        task=task.name,
        input_spec={},
        normalisation=prepared.normalisation,
        threshold=0.5,
        classes=task.classes,
    )

    metrics = score_held_out(task.name, card, get_weights(model), tiny_hospitals[1])

    expected = task.score(model, task.prepare_all(tiny_hospitals[1], card), card)
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(metrics[key]), key
        else:
            assert metrics[key] == value, key
