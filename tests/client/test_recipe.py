"""shared_models.recipe: one recipe for fedcare train, the federation and baselines."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.federated import Hospital, NodeSettings
from client.tasks import TASKS, get_task
from shared_models import run_config
from shared_models.errors import ConfigError
from shared_models.recipe import RECIPES, Recipe, recipe_of
from shared_models.run_config import RunConfig
from simulation import baselines


def test_fedcare_train_runs_the_whole_recipe_alone() -> None:
    recipe = get_task("ecg-arrhythmia").recipe
    config = get_task("ecg-arrhythmia").recommended_config(seed=4)
    assert config.optimizer == "adam" and config.lr == recipe.alone_lr
    assert config.max_grad_norm == recipe.max_grad_norm
    assert config.epochs == recipe.epochs and config.batch_size == recipe.batch_size
    assert config.sample_rate == recipe.sample_rate and config.seed == 4
    plain = get_task("ecg-arrhythmia").recommended_config(dp=False)
    assert (plain.lr, plain.batch_size) == (recipe.plain_lr, recipe.plain_batch)


def test_every_task_has_a_valid_recipe_and_its_model_size() -> None:
    for name, task in TASKS.items():
        assert isinstance(task.recipe, Recipe), name
        assert task.recipe.epochs >= 1
    assert get_task("ecg-arrhythmia").recipe.model == {
        "hidden_size": 32,
        "num_layers": 1,
    }
    with pytest.raises(ValueError, match="sample_rate"):
        Recipe(sample_rate=0)


def test_the_tasks_carry_the_shared_recipes_the_server_resolves_from() -> None:
    assert set(TASKS) == set(RECIPES)
    for name, task in TASKS.items():
        assert task.recipe is recipe_of(name), name
    assert set(run_config.TASKS) <= set(RECIPES)
    with pytest.raises(ConfigError, match="known tasks: ecg-arrhythmia"):
        recipe_of("ecg")


def test_a_hospital_trains_each_round_with_the_recipe(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    settings = NodeSettings("h1", tiny_hospitals[0], tmp_path / "l.jsonl", 8.0)
    hospital = Hospital(settings, RunConfig(task="ecg-arrhythmia"))
    recipe = get_task("ecg-arrhythmia").recipe
    config = hospital._train_config(1)
    assert (config.optimizer, config.lr) == ("adam", recipe.local_lr)
    assert (config.steps, recipe.local_steps) == (10, 10)
    assert config.sample_rate == recipe.sample_rate and config.batch_size == 0
    assert hospital.run.strategy == recipe.strategy == "fedavg"
    weights = hospital.initial_weights()
    model = hospital.model(weights, dp=False)
    assert model.config["hidden_size"] == 32  # the recipe's model size


def test_the_local_only_baseline_trains_like_fedcare_train() -> None:
    task = get_task("ecg-arrhythmia")
    run = RunConfig(task="ecg-arrhythmia", seed=2).resolved()
    config = baselines._config(run, task, dp=True)
    alone = task.recommended_config(seed=2, loss_kwargs=task.loss_kwargs())
    assert config == alone
