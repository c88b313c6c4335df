"""``fedcare simulate`` refuses an output folder it cannot make before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import reliability
from typer.testing import CliRunner

from client.privacy import PrivacyBudget, PrivacyLedger
from shared_models.errors import ConfigError
from shared_models.recipe import recipe_of
from shared_models.run_config import RunConfig
from simulation.cli.main import app
from simulation.runner import SimulationOptions, check_budgets


def test_out_under_a_regular_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = CliRunner().invoke(
        app, ["simulate", "--out", str(tmp_path / "file" / "s")]
    )
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_run_epsilon_above_the_budget_exits_2_before_anything_is_written(
    tmp_path: Path,
) -> None:
    out = tmp_path / "s"
    with reliability.case(
        "budget: a run asking more than the budget",
        checks_lost=True,
        checks_spent=True,
    ):
        result = CliRunner().invoke(
            app,
            ["simulate", "--out", str(out), "--epsilon", "8", "--run-epsilon", "100"],
        )
        assert result.exit_code == 2, result.output
        assert "--run-epsilon 100 exceeds each hospital's budget --epsilon 8" in (
            result.output
        )
        assert not out.exists()


def test_run_epsilon_above_an_existing_ledgers_remaining_exits_2(
    tmp_path: Path,
) -> None:
    ledgers = tmp_path / "ledgers"
    hospital = tmp_path / "hospital_01"
    hospital.mkdir()
    ledger = PrivacyLedger.open(ledgers / "hospital_01.jsonl", PrivacyBudget(3.0, 1e-5))
    plan = ledger.plan("earlier", 0.5, 4, 1.0, run_epsilon=2.5)
    ledger.settle(ledger.reserve(plan, 4), 4)
    left = ledger.remaining_epsilon
    assert 0 < left < 1.0

    def opts(run_epsilon: float) -> SimulationOptions:
        return SimulationOptions(
            out=tmp_path / "run",
            run=RunConfig(run_epsilon=run_epsilon),
            epsilon=3.0,
            ledger_dir=ledgers,
        )

    with pytest.raises(ConfigError, match=rf"hospital_01 \({left:.3g} left"):
        check_budgets(opts(1.0), [hospital])
    check_budgets(opts(left * 0.99), [hospital])


def test_secagg_beyond_the_pooled_evaluations_bound_is_refused_before_round_1(
    tmp_path: Path,
) -> None:
    from shared_models import wire
    from simulation.runner import simulate

    data = tmp_path / "hospitals"
    for i in range(wire.POOL_MAX_HOSPITALS + 1):
        (data / f"h{i:03d}").mkdir(parents=True)
    opts = SimulationOptions(
        out=tmp_path / "run",
        run=RunConfig(task="signal-anomaly", dp=False, secagg=True),
        data_dir=data,
        with_baselines=False,
    )

    with pytest.raises(ConfigError, match="at most 64 hospitals"):
        simulate(opts)

    assert not (tmp_path / "run" / "history.json").exists()


ECG = recipe_of("ecg-arrhythmia")


@pytest.mark.parametrize(
    ("flags", "steps", "epochs", "rate"),
    [
        ([], ECG.local_steps, 1, ECG.sample_rate),  # the recipe's
        (  # the recipe's example-level variant
            ["--privacy-unit", "example"],
            ECG.example["local-steps"],
            1,
            ECG.example["sample-rate"],
        ),
        (["--local-epochs", "2"], 0, 2, ECG.sample_rate),  # epochs: no steps
        (["--local-steps", "4", "--sample-rate", "0.25"], 4, 1, 0.25),
    ],
)
def test_local_training_flags_reach_the_run_config(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    steps: int,
    epochs: int,
    rate: float,
) -> None:
    import simulation.runner

    seen: list[SimulationOptions] = []

    def fake(opts: SimulationOptions, *args: object, **kwargs: object) -> None:
        seen.append(opts)
        raise SystemExit(0)

    monkeypatch.setattr(simulation.runner, "simulate", fake)
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "s"), *flags])
    assert result.exit_code == 0, result.output
    run = seen[0].run
    assert (run.local_steps, run.local_epochs, run.sample_rate) == (
        steps,
        epochs,
        rate,
    )
    example = "example" in flags
    assert run.num_server_rounds == (
        ECG.example["num-server-rounds"] if example else ECG.rounds
    )
