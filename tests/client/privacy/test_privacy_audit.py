"""client.privacy.audit and ``fedcare privacy-audit``: one-run canary audits.

Expected margins (Gaussian scores, q = 1, so only sigma / sqrt(steps) matters and
one epoch is as strong an audit as six; simulated with audit_from_scores):
claimed epsilon 2 at delta 1e-5 gives mu = 0.46 per canary.
- fedcare, 1000 canaries: lower bound 0.5 +- 0.1, far below the claim 2.
- known-noise, 1000 canaries: near-perfect guesses, bound 4.2-4.5 (the most
  1000 canaries can show at delta 1e-5 is 4.53), above the claim 2.
- double-sensitivity (mu = 0.93, true epsilon about 4): 1.5 +- 0.2 with 1000
  canaries, 1.75 +- 0.15 with 4000, about 2.0 with 20000: a factor 2 in the
  sensitivity is below the resolution of a one-run audit at any feasible number
  of canaries, so the test checks that the bound rises well above the correct
  mechanism's (> 1.0, 4 sd below its mean with 4000 canaries) and stays below
  the mechanism's true epsilon.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from client.cli import privacy_audit
from client.privacy import SECURE, SpendPlan, compute_epsilon, make_private
from client.privacy.audit import (
    GradientCanaries,
    RecordedNoise,
    _plan,
    run_audit,
)
from client.privacy.randomness import TEST_SWITCH
from client.privacy.sampling import UnitBatch
from shared_models.errors import ConfigError
from simulation.cohorts import write_hospital

TASK = "ecg-arrhythmia"
CONTRACT = {"epsilon_claimed", "epsilon_lower_bound", "canaries", "confidence"}
KEYS = CONTRACT | {
    "delta",
    "privacy_unit",
    "mechanism",
    "task",
    "units",
    "sample_rate",
    "steps",
    "noise_multiplier",
    "guesses",
    "correct",
    "seconds",
}
# One epoch is one step at q = 1: as strong an audit as the task's six epochs (only
# sigma / sqrt(steps) matters, and it is calibrated), and two examples per
# patient change nothing for the canaries; both only make the tests fast.
FAST = {"epochs": 1, "batch_size": 100_000, "examples_per_unit": 2}
app = typer.Typer()
app.command()(privacy_audit.command)
runner = CliRunner()


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ECG hospital (about 50 training patients); read-only."""
    out = tmp_path_factory.mktemp("audit_cohort")
    return write_hospital(out, 1, seed=0, scale=0.2, kinds=("ecg",))


def _params() -> list[torch.Tensor]:
    return [torch.zeros(3, 4, requires_grad=True), torch.zeros(5, requires_grad=True)]


def _at(grads: list[torch.Tensor], canaries: GradientCanaries) -> np.ndarray:
    """Each canary's coordinate of ``grads``."""
    pairs = zip(canaries.param, canaries.coord, strict=True)
    return np.array([float(grads[p].reshape(-1)[c]) for p, c in pairs])


class ZeroNoise:
    secure = False

    def uniform(self, n: int) -> np.ndarray:
        return SECURE.uniform(n)

    def normal(self, shape, std, like):  # type: ignore[no-untyped-def]
        return torch.zeros(shape, dtype=like.dtype, device=like.device)


def test_canaries_are_diracs_of_norm_c_on_distinct_coordinates() -> None:
    params = _params()
    canaries = GradientCanaries(params, 17, norm=1.5, sample_rate=1.0)
    pairs = set(zip(canaries.param.tolist(), canaries.coord.tolist(), strict=True))
    assert len(pairs) == 17  # every coordinate of the 12 + 5, once
    rows = [torch.ones(2, 3, 4), torch.ones(2, 5)]
    out = canaries.add_rows(rows)
    n_in = int(canaries.included.sum())
    assert [r.shape[0] for r in out] == [2 + n_in, 2 + n_in]
    assert all(torch.equal(o[:2], r) for o, r in zip(out, rows, strict=True))
    flat = torch.cat([o[2:].reshape(n_in, -1) for o in out], dim=1)
    assert torch.equal(flat.norm(dim=1), torch.full((n_in,), 1.5))
    assert torch.equal((flat != 0).sum(dim=1), torch.ones(n_in, dtype=torch.long))
    hit = {(0, int(i)) if i < 12 else (1, int(i) - 12) for i in flat.argmax(1)}
    members = np.flatnonzero(canaries.included)
    assert hit == {(canaries.param[k], canaries.coord[k]) for k in members}
    never = GradientCanaries(params, 17, norm=1.5, sample_rate=1e-12)
    assert never.add_rows(rows) is rows  # not sampled: no row


def test_scores_sum_the_noisy_gradient_and_known_noise_subtracts_it() -> None:
    params = _params()
    canaries = GradientCanaries(params, 6, norm=1.0, sample_rate=1.0)
    grads = [torch.arange(12.0).view(3, 4), 100 + torch.arange(5.0)]
    canaries.observe(grads)
    canaries.observe(grads)
    assert canaries.scores.tolist() == pytest.approx(2 * _at(grads, canaries))
    noise = RecordedNoise(SECURE)
    leaky = GradientCanaries(params, 6, norm=1.0, sample_rate=1.0, noise=noise)
    drawn = [noise.normal(g.shape, 3.0, g) for g in grads]
    leaky.observe([g + n for g, n in zip(grads, drawn, strict=True)])
    assert noise.drawn == []  # one step's noise is forgotten after it is used
    assert leaky.scores.tolist() == pytest.approx(_at(grads, leaky), abs=1e-4)


def test_canaries_go_through_clipping_summing_and_noise() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plan = SpendPlan("audit-test", 1.0, 1.0, 1, 1.0, 1.0)
    canaries = GradientCanaries(list(model.parameters()), 8, 1.0, 1.0)
    dp_model, dp_optimizer = make_private(
        model, optimizer, plan, 3, randomness=ZeroNoise()
    )
    dp_optimizer.unit_grad_hooks.append(canaries.add_rows)
    dp_optimizer.noisy_grad_hooks.append(canaries.observe)
    empty = np.zeros(0, dtype=np.int64)
    dp_optimizer.set_batch(UnitBatch(empty, empty, np.zeros(0), 0), torch.device("cpu"))
    dp_optimizer.step()  # no patient sampled: the sum is the canaries alone
    expected = np.where(canaries.included, 1.0, 0.0)
    assert canaries.scores == pytest.approx(expected, abs=1e-5)  # clip factor ~1


def test_too_many_or_too_few_canaries_are_refused() -> None:
    with pytest.raises(ConfigError, match="between 2 and 17"):
        GradientCanaries(_params(), 18, 1.0, 1.0)
    with pytest.raises(ConfigError, match="between 2 and 17"):
        GradientCanaries(_params(), 1, 1.0, 1.0)


def test_double_sensitivity_clips_at_2c_with_the_same_noise_std() -> None:
    real = _plan("fedcare", 3.0, 0.5, 10, 1.0, 2.0)
    broken = _plan("double-sensitivity", 3.0, 0.5, 10, 1.0, 2.0)
    assert (real.noise_multiplier, real.max_grad_norm) == (3.0, 1.0)
    assert (broken.noise_multiplier, broken.max_grad_norm) == (1.5, 2.0)
    assert broken.noise_multiplier * broken.max_grad_norm == 3.0  # sigma * C


def test_bad_settings_are_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known: fedcare, known-noise"):
        run_audit(TASK, tmp_path, 2.0, mechanism="no-noise")
    with pytest.raises(ConfigError, match="epsilon 0"):
        run_audit(TASK, tmp_path, 0)
    with pytest.raises(ConfigError, match="confidence 1.5"):
        run_audit(TASK, tmp_path, 2.0, confidence=1.5)


@pytest.mark.slow
def test_fedcare_mechanism_keeps_its_claim(hospital: Path) -> None:
    result = run_audit(TASK, hospital, 2.0, **FAST)
    assert KEYS <= set(result) and json.dumps(result)
    assert result["mechanism"] == "fedcare" and result["canaries"] == 1000
    assert result["steps"] == 1 and result["sample_rate"] == 1.0
    assert result["privacy_unit"] == "patient" and result["units"] > 20
    assert 0 <= result["epsilon_lower_bound"] <= result["epsilon_claimed"] == 2.0


@pytest.mark.slow
def test_known_noise_is_caught(hospital: Path) -> None:
    result = run_audit(TASK, hospital, 2.0, mechanism="known-noise", **FAST)
    assert result["epsilon_lower_bound"] > 2.0


@pytest.mark.slow
def test_double_sensitivity_raises_the_bound(hospital: Path) -> None:
    result = run_audit(
        TASK, hospital, 2.0, canaries=4000, mechanism="double-sensitivity", **FAST
    )
    true_epsilon = compute_epsilon(
        [(result["noise_multiplier"] / 2, result["sample_rate"], result["steps"])],
        result["delta"],
        "rdp",
    )
    assert 1.0 < result["epsilon_lower_bound"] < true_epsilon


def test_cli_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    words = " ".join(result.output.lower().split())
    assert "--canaries" in words and "does not charge the privacy ledger" in words


@pytest.mark.slow
def test_cli_json_contract_and_exit_0(hospital: Path) -> None:
    args = ["--task", TASK, "--data", str(hospital), "--epsilon", "2"]
    args += ["--canaries", "200", "--epochs", "1", "--batch-size", "100000"]
    args += ["--examples-per-patient", "2", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert KEYS <= set(payload)
    assert payload["epsilon_claimed"] == 2.0 and payload["canaries"] == 200
    assert payload["epsilon_lower_bound"] <= 2.0


def test_cli_exit_1_when_the_bound_exceeds_the_claim(
    hospital: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(task: str, data: Path, epsilon: float, delta: float, **_: object):
        return {
            "task": task, "mechanism": "fedcare", "epsilon_claimed": epsilon,
            "epsilon_lower_bound": 4.2, "delta": delta, "confidence": 0.95,
            "canaries": 1000, "guesses": 500, "correct": 499,
            "privacy_unit": "patient", "units": 48, "sample_rate": 1.0,
            "steps": 6, "noise_multiplier": 5.28, "seconds": 1.0,
        }  # fmt: skip

    monkeypatch.setattr("client.privacy.audit.run_audit", broken)
    args = ["--task", TASK, "--data", str(hospital), "--epsilon", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "BROKEN" in result.output and "4.200 exceeds" in result.output
    assert "not (4.200, 1e-05)-DP for any smaller epsilon" in result.output
    json_run = runner.invoke(app, [*args, "--format", "json"])
    assert json_run.exit_code == 1
    assert json.loads(json_run.stdout)["epsilon_lower_bound"] == 4.2


def test_cli_user_errors_exit_2(
    tmp_path: Path, hospital: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ["--epsilon", "2", "--data"]
    missing = runner.invoke(app, ["--task", TASK, *base, str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    unknown = runner.invoke(app, ["--task", "ecg-x", *base, str(hospital)])
    assert unknown.exit_code == 2 and "unknown task" in unknown.output
    few = runner.invoke(app, ["--task", TASK, *base, str(hospital), "--canaries", "1"])
    assert few.exit_code == 2
    monkeypatch.setenv(TEST_SWITCH, "1")
    seeded = runner.invoke(app, ["--task", TASK, *base, str(hospital)])
    assert seeded.exit_code == 2 and "privacy-audit refuses" in seeded.output
