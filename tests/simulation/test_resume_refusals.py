"""``fedcare simulate --resume`` refuses what it cannot continue, before Ray
starts, with a one-line error and exit 2, and leaves the run folder as it was."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_model import tiny_card, tiny_weights
from typer.testing import CliRunner

from server import audit, checkpoint
from shared_models.errors import ConfigError
from shared_models.export import ModelCard, arrays_hash
from shared_models.recipe import recipe_of
from shared_models.run_config import RunConfig
from simulation.cli.main import app

CARD = tiny_card("ecg-arrhythmia")
ECG = recipe_of("ecg-arrhythmia")  # the run below starts on its patient recipe
NODE = {"privacy-unit": "patient", "epsilon": 8.0, "delta": 1e-5}


def _weights() -> list[np.ndarray]:
    return tiny_weights(0)


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    """A run folder as ``fedcare simulate`` leaves it killed after round 1."""
    out = tmp_path / "run"
    run = RunConfig(task="ecg-arrhythmia", seed=0, num_server_rounds=3).resolved()
    checkpoint.save(out, 1, "r", _weights(), ModelCard(**CARD), run.to_run_config())
    meta = {"run_name": "r", "run_config": run.to_run_config(), "model_card": CARD}
    (out / "run.json").write_text(json.dumps(meta))
    record = {"round": 1, "fit": {}, "global_model_sha256": arrays_hash(_weights())}
    audit.append_round(out, "r", record, "", run)
    nodes = [{"hospital-id": f"h{i}", **NODE} for i in (1, 2, 3)]
    (out / "hospitals.json").write_text(json.dumps(nodes))
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _resume(out: Path, *extra: str):
    args = ["simulate", "--out", str(out), "--resume", "--rounds", "3", *extra]
    return CliRunner().invoke(app, args)


def _break_state_json(out: Path) -> None:
    state = out / "checkpoints" / "round_0001" / "state.json"
    state.write_text(state.read_text()[:40])


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ("dp off", ("--no-dp",), r"other training settings .*dp True -> False"),
        (  # the patient recipe's steps and rate, else the example variant's
            "unit",  # differ too and are refused first
            (
                "--privacy-unit",
                "example",
                "--local-steps",
                str(ECG.local_steps),
                "--sample-rate",
                str(ECG.sample_rate),
            ),
            r"privacy-unit 'patient' -> 'exam",
        ),
        (
            "unit, variant",
            ("--privacy-unit", "example"),
            rf"local-steps {ECG.local_steps} -> {ECG.example['local-steps']}",
        ),
        ("task", ("--task", "icu-deterioration"), r"task 'ecg-arrhythmia' -> 'icu"),
        ("batch", ("--batch-size", "7"), r"batch-size \d+ -> 7"),
        ("run epsilon", ("--run-epsilon", "1"), r"run-epsilon 2.0 -> 1.0"),
        ("budget", ("--epsilon", "4"), r"--epsilon 8.0 -> 4.0"),
        ("secagg off", ("--no-secagg",), r"secagg True -> False"),
        ("no checkpoints", (), r"audit log records rounds but .* no complete"),
        ("bad state.json", (), r"state.json: unreadable .*damaged"),
    ],
)
def test_resume_refuses_and_changes_nothing(
    stopped: Path, change: str, extra: tuple[str, ...], message: str
) -> None:
    if change == "no checkpoints":
        shutil.rmtree(stopped / "checkpoints")
    if change == "bad state.json":
        _break_state_json(stopped)
    before = _digest(stopped)

    result = _resume(stopped, *extra)

    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]
    assert _digest(stopped) == before


def test_the_same_settings_pass_the_preflight(stopped: Path) -> None:
    from dataclasses import replace

    from simulation.runner import SimulationOptions, check_resume

    run = replace(RunConfig(task="ecg-arrhythmia", seed=0, resume=True)).resolved()
    check_resume(SimulationOptions(out=stopped, run=run, hospitals=3))


def test_a_run_may_add_secagg_on_resume_but_not_drop_it(tmp_path: Path) -> None:
    from server.resume import check_same_training

    plain = RunConfig(task="ecg-arrhythmia", secagg=False).resolved()
    secure = RunConfig(task="ecg-arrhythmia", secagg=True).resolved()
    check_same_training(secure, {**plain.to_run_config()}, tmp_path)
    with pytest.raises(ConfigError, match="secagg True -> False"):
        check_same_training(plain, secure.to_run_config(), tmp_path)
