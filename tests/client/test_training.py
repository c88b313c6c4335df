"""client.training: determinism, FedProx, DP charges and refusals, devices."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from client.privacy import PrivacyBudget, PrivacyLedger
from client.training import PrivateRun, TrainConfig, evaluate, predict, train
from shared_models import create_model, model_names
from shared_models.errors import BudgetExceededError, ConfigError

N, T = 48, 10
model_names()  # registers the models now: registration draws random weights


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    x = rng.normal(size=(N, T, 1)).astype(np.float32) + y[:, None, None]
    return x, y


def _model(dp: bool, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(
        "lstm_classifier",
        seq_len=T,
        n_features=1,
        hidden_size=8,
        num_layers=1,
        frame=5,
        dp=dp,
    )


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _ledger(tmp_path: Path, epsilon: float = 3.0) -> PrivacyLedger:
    return PrivacyLedger.open(
        tmp_path / "ledger.jsonl", PrivacyBudget(epsilon, 1e-5), "h1"
    )


CONFIG = TrainConfig(epochs=2, batch_size=16, lr=1e-2, seed=3, device="cpu")


def test_training_without_dp_is_deterministic_given_the_seed() -> None:
    x, y = _data()
    runs = []
    for _ in range(2):
        model = _model(dp=False)
        result = train(model, x, y, CONFIG)
        runs.append((_weights(model), result["train_loss"]))
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0], runs[1][0], strict=True))
    assert runs[0][1] == runs[1][1]
    assert result["steps"] == 2 * 3


def _private_weights(tmp_path: Path, tag: str, randomness=None) -> list[torch.Tensor]:
    x, y = _data()
    model = _model(dp=True)
    ledger = PrivacyLedger.open(tmp_path / f"{tag}.jsonl", PrivacyBudget(3.0, 1e-5))
    run = PrivateRun(ledger, "run", 1.0, privacy_unit="example", randomness=randomness)
    train(model, x, y, CONFIG, run)
    return _weights(model)


def test_the_same_seed_never_reproduces_the_dp_noise(tmp_path: Path) -> None:
    """Seeds fix weights and augmentation; DP noise and sampling are secret."""
    first, second = (_private_weights(tmp_path, f"l{i}") for i in range(2))
    assert not any(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_seeded_noise_exists_only_behind_the_test_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from client.privacy import SeededRandomness
    from client.privacy.randomness import TEST_SWITCH
    from shared_models.errors import PrivacyError

    monkeypatch.delenv(TEST_SWITCH, raising=False)
    with pytest.raises(PrivacyError, match="tests only"):
        SeededRandomness(0)
    monkeypatch.setenv(TEST_SWITCH, "1")
    first, second = (
        _private_weights(tmp_path, f"s{i}", SeededRandomness(7)) for i in range(2)
    )
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_patient_level_training_samples_and_charges_patients(tmp_path: Path) -> None:
    x, y = _data()
    groups = np.repeat(np.arange(12), 4)  # 12 patients, 4 examples each
    ledger = _ledger(tmp_path)
    run = PrivateRun(ledger, "run", 1.0)  # privacy unit: patient (the default)
    result = train(_model(dp=True), x, y, CONFIG, run, groups=groups)
    assert result["privacy_unit"] == "patient" and result["units"] == 12
    assert result["sample_rate"] == pytest.approx(1.0)  # 16 patients asked, 12 exist
    entry = PrivacyLedger(ledger.path).entries[-1]
    assert entry["privacy_unit"] == "patient"
    assert entry["steps"] == result["steps"] == CONFIG.epochs * 1
    with pytest.raises(ConfigError, match="patient of every training example"):
        train(_model(dp=True), x, y, CONFIG, PrivateRun(_ledger(tmp_path), "r2", 1.0))


def test_a_different_seed_trains_differently() -> None:
    x, y = _data()
    a, b = _model(dp=False), _model(dp=False)
    train(a, x, y, CONFIG)
    train(b, x, y, TrainConfig(**{**CONFIG.__dict__, "seed": 4}))
    assert not all(
        torch.equal(p, q) for p, q in zip(_weights(a), _weights(b), strict=True)
    )


def _distance(model: torch.nn.Module, start: list[torch.Tensor]) -> float:
    return float(
        sum(((p - s) ** 2).sum() for p, s in zip(_weights(model), start, strict=True))
    )


def test_fedprox_keeps_the_weights_closer_to_the_start() -> None:
    x, y = _data()
    distances = {}
    for mu in (0.0, 10.0):
        model = _model(dp=False)
        start = _weights(model)
        train(model, x, y, TrainConfig(**{**CONFIG.__dict__, "proximal_mu": mu}))
        distances[mu] = _distance(model, start)
    assert 0 < distances[10.0] < distances[0.0]


def test_fedprox_also_applies_under_dp(tmp_path: Path) -> None:
    x, y = _data()
    distances = {}
    for mu in (0.0, 10.0):
        model = _model(dp=True)
        start = _weights(model)
        ledger = PrivacyLedger.open(tmp_path / f"l{mu}.jsonl", PrivacyBudget(3.0, 1e-5))
        config = TrainConfig(**{**CONFIG.__dict__, "proximal_mu": mu})
        train(
            model,
            x,
            y,
            config,
            PrivateRun(ledger, "run", run_epsilon=1.0, privacy_unit="example"),
        )
        distances[mu] = _distance(model, start)
    assert 0 < distances[10.0] < distances[0.0]


def test_the_ledger_is_charged_exactly_the_steps_taken(tmp_path: Path) -> None:
    x, y = _data()
    ledger = _ledger(tmp_path)
    result = train(
        _model(dp=True),
        x,
        y,
        CONFIG,
        PrivateRun(ledger, "run", 1.0, privacy_unit="example"),
    )
    entries = PrivacyLedger(ledger.path).entries
    assert [e["steps"] for e in entries] == [result["steps"]] == [CONFIG.epochs * 3]
    assert result["epsilon_spent"] == pytest.approx(entries[-1]["epsilon_after"])
    assert 0 < result["epsilon_spent"] <= 1.0 + 1e-6
    assert result["sample_rate"] == pytest.approx(16 / N)


def test_an_overspending_run_is_refused_before_training(tmp_path: Path) -> None:
    x, y = _data()
    ledger = _ledger(tmp_path, epsilon=1.0)
    train(
        _model(dp=True),
        x,
        y,
        CONFIG,
        PrivateRun(ledger, "first", 0.9, privacy_unit="example"),
    )
    before_ledger = ledger.path.read_bytes()
    model = _model(dp=True, seed=1)
    before = _weights(model)
    with pytest.raises(BudgetExceededError, match="refused before training"):
        train(
            model,
            x,
            y,
            CONFIG,
            PrivateRun(ledger, "second", 0.5, privacy_unit="example"),
        )
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model), strict=True))
    assert ledger.path.read_bytes() == before_ledger


def test_more_steps_than_the_plan_are_refused_before_training(tmp_path: Path) -> None:
    x, y = _data()
    ledger = _ledger(tmp_path, epsilon=1.0)
    run = PrivateRun(
        ledger, "run", None, planned_steps=2, privacy_unit="example"
    )  # whole budget, 2 steps
    model = _model(dp=True)
    before = _weights(model)
    with pytest.raises(BudgetExceededError):
        train(model, x, y, CONFIG, run)  # 6 steps
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model), strict=True))
    assert PrivacyLedger(ledger.path).plans  # the plan is recorded ...
    assert PrivacyLedger(ledger.path).entries == []  # ... but nothing is charged


def test_a_failure_mid_training_still_charges_the_steps_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _data()
    model = _model(dp=True)
    original, calls = type(model).loss, {"n": 0}

    def failing_loss(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom at step 3")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "loss", failing_loss)
    ledger = _ledger(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        train(
            model, x, y, CONFIG, PrivateRun(ledger, "run", 1.0, privacy_unit="example")
        )
    assert [e["steps"] for e in PrivacyLedger(ledger.path).entries] == [2]
    # the model is left without Opacus hooks: it predicts as a plain module
    assert predict(model, x[:4], device="cpu").shape == (4, 2)


def test_config_errors_name_the_value() -> None:
    with pytest.raises(ConfigError, match="max-grad-norm must be > 0, got 0"):
        TrainConfig(max_grad_norm=0)
    with pytest.raises(ConfigError, match="no training examples"):
        train(_model(dp=False), np.zeros((0, T, 1), np.float32), np.zeros(0), CONFIG)
    with pytest.raises(ConfigError, match="unknown task kind"):
        evaluate(_model(dp=False), *_data(), "ranking")


def test_a_trained_model_beats_chance() -> None:
    x, y = _data()
    model = _model(dp=False)
    train(model, x, y, TrainConfig(epochs=15, batch_size=16, lr=2e-2, device="cpu"))
    assert evaluate(model, x, y, "binary")["auroc"] > 0.8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_training_on_cuda(tmp_path: Path) -> None:
    x, y = _data()
    model = _model(dp=True)
    config = TrainConfig(**{**CONFIG.__dict__, "device": "cuda"})
    result = train(
        model,
        x,
        y,
        config,
        PrivateRun(_ledger(tmp_path), "run", 1.0, privacy_unit="example"),
    )
    assert next(model.parameters()).is_cuda
    assert result["steps"] == CONFIG.epochs * 3
    assert predict(model, x, device="cuda").shape == (N, 2)


def test_asking_for_cuda_without_it_is_a_config_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        train(_model(dp=False), *_data(), TrainConfig(device="cuda"))


def test_batch_zero_samples_the_recipes_fraction_of_patients(tmp_path: Path) -> None:
    x, y = _data()
    groups = np.repeat(np.arange(12), 4)  # 12 patients
    config = TrainConfig(epochs=2, batch_size=0, sample_rate=0.25, seed=3, lr=1e-2)
    assert config.unit_batch(12) == 3 and config.plain_batch() == 64
    ledger = _ledger(tmp_path)
    result = train(_model(dp=True), x, y, config, PrivateRun(ledger, "r", 1.0), groups)
    assert result["sample_rate"] == pytest.approx(0.25)
    assert result["steps"] == 2 * 4  # 1 / q steps per epoch


def test_steps_replace_epochs_under_dp(tmp_path: Path) -> None:
    x, y = _data()
    config = TrainConfig(epochs=5, steps=3, batch_size=16, lr=1e-2, seed=3)
    ledger = _ledger(tmp_path)
    run = PrivateRun(ledger, "r", 1.0, privacy_unit="example")
    assert train(_model(dp=True), x, y, config, run)["steps"] == 3
    assert [e["steps"] for e in PrivacyLedger(ledger.path).entries] == [3]
    with pytest.raises(ConfigError, match="steps must be >= 0"):
        TrainConfig(steps=-1)


def test_sgd_has_no_momentum_unless_asked() -> None:
    from client.training import _optimizer

    model = _model(dp=False)
    plain = _optimizer(model, TrainConfig(optimizer="sgd", lr=1.0))
    heavy = _optimizer(model, TrainConfig(optimizer="sgd", lr=1.0, momentum=0.9))
    assert plain.param_groups[0]["momentum"] == 0.0
    assert heavy.param_groups[0]["momentum"] == 0.9


def test_a_carried_optimizer_state_continues_across_calls(tmp_path: Path) -> None:
    from client.training import OptimizerCarry

    x, y = _data()
    config = TrainConfig(epochs=5, steps=3, batch_size=16, lr=1e-2, seed=3)
    run = PrivateRun(
        _ledger(tmp_path), "r", 2.0, planned_steps=6, privacy_unit="example"
    )
    carry = OptimizerCarry()
    train(_model(dp=True), x, y, config, run, carry=carry)
    assert carry.state is not None
    first = [float(s["step"]) for s in carry.state["state"].values()]
    assert first and set(first) == {3.0}  # Adam's step count, per parameter
    moment = carry.state["state"][0]["exp_avg"].clone()
    # a new model (the next round's global weights), the same carried state
    faster = replace(config, lr=5e-2)
    train(_model(dp=True), x, y, faster, run, carry=carry)
    assert {float(s["step"]) for s in carry.state["state"].values()} == {6.0}
    assert carry.state["param_groups"][0]["lr"] == 5e-2  # the call's rate, not saved
    assert not torch.equal(carry.state["state"][0]["exp_avg"], moment)
    # the non-private path leaves its state in the carry too
    fresh = OptimizerCarry()
    train(_model(dp=False), x, y, config, None, carry=fresh)
    assert fresh.state is not None and fresh.state["state"]
