"""RunConfig: kebab-case parsing, type coercion, honest errors, pyproject mirror."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import tomllib

from shared_models.errors import ConfigError
from shared_models.recipe import recipe_of
from shared_models.run_config import RunConfig

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_mirrors_the_defaults() -> None:
    table = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]

    assert table == RunConfig().to_run_config()
    assert RunConfig.from_run_config(table) == RunConfig().resolved()


def test_unset_training_keys_come_from_the_tasks_recipe() -> None:
    for task in ("ecg-arrhythmia", "icu-los"):
        recipe = recipe_of(task)
        run = RunConfig(task=task).resolved()

        assert (run.num_server_rounds, run.strategy, run.local_epochs) == (
            recipe.rounds,
            recipe.strategy,
            recipe.local_epochs,
        )
        assert (run.learning_rate, run.server_learning_rate, run.max_grad_norm) == (
            recipe.local_lr,
            recipe.server_lr,
            recipe.max_grad_norm,
        )
        assert run.server_lr_schedule == recipe.server_lr_schedule
        assert run.resolved() == run  # idempotent
    # Another strategy than the recipe's keeps its own optimiser, never the
    # other strategy's learning rates.
    fedavg = RunConfig(strategy="fedavg").resolved()
    ecg = recipe_of("ecg-arrhythmia")
    assert (fedavg.local_optimizer, fedavg.learning_rate) == (
        "adam",
        ecg.alone_lr or ecg.server_lr,
    )
    assert fedavg.server_lr_schedule == "const"
    icu = RunConfig(task="icu-los", strategy="fedadam").resolved()
    assert (icu.local_optimizer, icu.learning_rate) == ("sgd", 1.0)
    assert icu.server_learning_rate == 0.05
    # an explicit sample rate replaces a batch-based recipe's batch
    rate = RunConfig(task="icu-los", sample_rate=0.25).resolved()
    assert (rate.batch_size, rate.sample_rate) == (0, 0.25)
    # A key that is set wins over the recipe.
    run = RunConfig(num_server_rounds=3, strategy="fedavg", batch_size=16).resolved()
    assert (run.num_server_rounds, run.strategy, run.batch_size) == (3, "fedavg", 16)


def test_kebab_keys_and_flower_string_values_are_coerced() -> None:
    raw = {
        "num-server-rounds": "3",
        "learning-rate": "0.01",
        "dp": "false",
        "secagg": "True",
        "fraction-fit": 1,
        "batch-size": 32.0,
        "run-name": 7,
        "seed": "-4",
    }

    run = RunConfig.from_run_config(raw)

    assert (run.num_server_rounds, run.learning_rate, run.dp, run.secagg) == (
        3,
        0.01,
        False,
        True,
    )
    assert (run.fraction_fit, run.batch_size, run.run_name, run.seed) == (
        1.0,
        32,
        "7",
        -4,
    )
    assert isinstance(run.fraction_fit, float) and isinstance(run.batch_size, int)


def test_round_trip_through_run_config() -> None:
    run = RunConfig(task="icu-los", strategy="fedadam", secagg=False, run_name="x")

    assert RunConfig.from_run_config(run.to_run_config()) == run.resolved()
    assert set(run.to_run_config()) == {
        f.name.replace("_", "-") for f in fields(RunConfig)
    }


def test_unknown_key_is_named_with_the_known_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown run-config key\(s\) \['num_server_rounds'\]"
        r".*'num-server-rounds'",
    ):
        RunConfig.from_run_config({"num_server_rounds": 3})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"num-server-rounds": "three"},
            r"num-server-rounds = 'three': expected a int",
        ),
        ({"num-server-rounds": 2.5}, r"num-server-rounds = 2.5: expected a int"),
        ({"batch-size": True}, r"batch-size = True: expected a int"),
        ({"dp": "yes"}, r"dp = 'yes': expected a bool"),
        ({"learning-rate": "fast"}, r"learning-rate = 'fast': expected a float"),
    ],
)
def test_values_of_the_wrong_type_are_refused(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_run_config(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"task": "mnist"}, r"task = 'mnist': expected one of ecg-arrhythmia"),
        ({"strategy": "fedsgd"}, r"strategy = 'fedsgd': expected one of fedavg"),
        (
            {"num-server-rounds": -1},
            r"num-server-rounds = -1: expected >= 1 \(or 0 for the task's\)",
        ),
        ({"sample-rate": 1.5}, r"sample-rate = 1.5: expected in \(0, 1\]"),
        ({"local-optimizer": "rmsprop"}, r"local-optimizer = 'rmsprop': expected sgd"),
        ({"fraction-fit": 0}, r"fraction-fit = 0.0: expected in \(0, 1\]"),
        ({"fraction-evaluate": 1.5}, r"fraction-evaluate = 1.5: expected in \(0, 1\]"),
        ({"min-fit-hospitals": 0}, r"min-fit-hospitals = 0: expected >= 1"),
        ({"max-grad-norm": -1}, r"max-grad-norm = -1.0: expected > 0 \(or 0"),
        ({"run-epsilon": -1}, r"run-epsilon = -1.0: expected > 0"),
        ({"proximal-mu": -0.1}, r"proximal-mu = -0.1: expected >= 0"),
        # Flower rejects these only at the first round; fedcare at once
        ({"secagg-num-shares": 2}, r"secagg-num-shares = 2.0: expected a fraction"),
        (
            {"secagg-num-shares": 5, "secagg-reconstruction-threshold": 5},
            r"Flower's SecAgg\+ refuses these settings: `reconstruction_threshold` "
            "must be less than `num_shares`",
        ),
        # fedcare's margin: the server plus one neighbour must not unmask
        (
            {"secagg-num-shares": 5, "secagg-reconstruction-threshold": 2},
            r"secagg-reconstruction-threshold = 2.0: expected a fraction in "
            r"\(0.5, 1\]",
        ),
        (
            {"secagg-reconstruction-threshold": 0.5},
            r"secagg-reconstruction-threshold = 0.5: expected",
        ),
        (
            {"secagg-quantization-range": 0},
            r"Flower's SecAgg\+ refuses these settings: `quantization_range`",
        ),
        ({"min-secagg-hospitals": 1}, r"min-secagg-hospitals = 1: expected >= 2"),
    ],
)
def test_invalid_values_name_the_rule(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_run_config(raw)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        RunConfig().seed = 1  # type: ignore[misc]


def test_resume_refuses_other_training_settings(tmp_path: Path) -> None:
    from server.resume import check_same_training as _check_same_training

    started = RunConfig(task="ecg-arrhythmia").resolved()
    _check_same_training(started, started.to_run_config(), tmp_path)  # the same
    # more rounds: the hospitals' own plans refuse them, not the resume
    longer = RunConfig(num_server_rounds=30)
    _check_same_training(longer, started.to_run_config(), tmp_path)
    # a run started under older defaults, resumed under the recipe
    old = {"num-server-rounds": 4, "strategy": "fedadam", "local-epochs": 1,
           "batch-size": 64, "learning-rate": 0.001, "max-grad-norm": 1.0}  # fmt: skip
    with pytest.raises(ConfigError, match=r"strategy 'fedadam' -> 'fedavg'") as err:
        _check_same_training(RunConfig(), old, tmp_path)
    assert "batch-size 64 -> 0" in str(err.value) and str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    ("shares", "threshold", "flower"),
    [(1.0, 0.67, (1.0, 0.67)), (7, 5, (7, 5)), (7.0, 0.8, (7, 0.8))],
)
def test_secagg_shares_are_fractions_or_counts(
    shares: float, threshold: float, flower: tuple
) -> None:
    """The defaults share with every sampled hospital (all pairs) and need two
    thirds of the shares to reconstruct; a whole number above 1 is a count."""
    run = RunConfig.from_run_config(
        {"secagg-num-shares": shares, "secagg-reconstruction-threshold": threshold}
    )
    got = run.secagg_shares()
    assert got == flower and [type(v) for v in got] == [type(v) for v in flower]


def test_resume_refuses_a_run_with_audit_records_but_no_checkpoint(
    tmp_path: Path,
) -> None:
    """Starting again from round 1 in such a folder would append a second run
    to its audit log and charge every hospital twice."""
    from server.resume import refuse_resume_without_checkpoint

    refuse_resume_without_checkpoint(tmp_path)  # an empty folder: a fresh start
    (tmp_path / "run.json").write_text('{"x": 1}\n')
    refuse_resume_without_checkpoint(tmp_path)  # stopped in round 1: continued
    (tmp_path / "audit.jsonl").write_text('{"x": 1}\n')
    with pytest.raises(ConfigError, match=r"audit log records rounds but .* no compl"):
        refuse_resume_without_checkpoint(tmp_path)


def test_a_run_stopped_in_round_1_restarts_under_its_own_name(tmp_path: Path) -> None:
    """Killed after run.json, before round 1 was recorded: the same run (its
    name is the hospitals' plan) starts round 1 again."""
    import json

    from server.resume import started_run

    run = RunConfig(run_dir=str(tmp_path), resume=True)
    assert started_run(run, tmp_path) is None  # nothing started: a fresh run
    meta = {"run_name": "r1", "run_config": run.to_run_config(), "model_card": {}}
    (tmp_path / "run.json").write_text(json.dumps(meta))

    assert started_run(run, tmp_path)["run_name"] == "r1"
    with pytest.raises(ConfigError, match="other training settings"):
        started_run(RunConfig(run_dir=str(tmp_path), dp=False), tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "unreadable"),
        ("[1, 2]", "expected an object"),
        ('{"run_name": "r", "run_config": [], "model_card": {}}', "expected an object"),
    ],
)
def test_resume_refuses_a_damaged_run_json(
    tmp_path: Path, content: str | None, message: str
) -> None:
    from server.resume import read_run_json

    if content is not None:
        (tmp_path / "run.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        read_run_json(tmp_path)
    assert "run.json" in str(err.value)


def test_example_level_takes_the_recipes_example_keys_unless_set() -> None:
    recipe = recipe_of("ecg-arrhythmia")
    example = recipe.example
    run = RunConfig(task="ecg-arrhythmia").for_unit("example")
    assert (run.sample_rate, run.local_steps) == (
        example["sample-rate"],
        example["local-steps"],
    )
    assert run.num_server_rounds == example["num-server-rounds"]
    # the keys the variant does not name stay the recipe's
    assert (run.strategy, run.local_optimizer, run.learning_rate) == (
        recipe.strategy,
        recipe.local_optimizer,
        recipe.local_lr,
    )
    assert run.for_unit("example") == run  # idempotent
    # patient level, or keys the operator set, keep the recipe's / their own
    patient = RunConfig(task="ecg-arrhythmia").for_unit("patient")
    assert patient == RunConfig(task="ecg-arrhythmia").resolved()
    assert (patient.local_steps, patient.sample_rate) == (
        recipe.local_steps,
        recipe.sample_rate,
    )
    mine = RunConfig(
        task="ecg-arrhythmia", strategy="fedadam", learning_rate=0.5, local_steps=0
    )
    chosen = mine.for_unit("example")
    assert (chosen.strategy, chosen.learning_rate) == ("fedadam", 0.5)
    # FedAdam keeps its own local optimiser; 0 steps (epochs) is a set value
    assert chosen.local_optimizer == "sgd" and chosen.sample_rate == 0.05
    assert chosen.local_steps == 0
    # asking for epochs (and no steps) trains epochs, at either unit
    epochs = RunConfig(task="ecg-arrhythmia", local_epochs=2)
    for unit in ("patient", "example"):
        run = epochs.for_unit(unit)
        assert (run.local_epochs, run.local_steps) == (2, 0), unit
    both = RunConfig(local_epochs=2, local_steps=3).resolved()
    assert (both.local_epochs, both.local_steps) == (2, 3)
    # a task without an example variant is unchanged
    icu = RunConfig(task="icu-los")
    assert icu.for_unit("example") == icu.resolved()
