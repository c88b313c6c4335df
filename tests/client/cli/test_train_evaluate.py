"""`fedcare train` and `fedcare evaluate` through Typer's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import reliability
from typer.testing import CliRunner

from simulation.cli.main import app

runner = CliRunner()
TASK = "icu-deterioration"  # the smallest data set: a few private steps
FAST = ["--epochs", "1", "--batch-size", "8", "--device", "cpu"]


def _train(data: Path, tmp_path: Path, *extra: str, out: str = "model") -> object:
    args = [
        "train",
        "--task",
        TASK,
        "--data",
        str(data),
        "--out",
        str(tmp_path / out),
        "--ledger",
        str(tmp_path / "ledger.jsonl"),
        *FAST,
        *extra,
    ]
    return runner.invoke(app, args)


def test_help_lists_the_commands_and_options() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("train", "evaluate", "budget", "validate-data", "cohort"):
        assert name in result.output
    train_help = runner.invoke(app, ["train", "--help"]).output
    for option in ("--task", "--run-epsilon", "--ledger", "--no-dp", "--format"):
        assert option in train_help
    assert "--model" in runner.invoke(app, ["evaluate", "--help"]).output


def test_help_does_not_import_torch_opacus_or_pandas() -> None:
    code = (
        "import sys, simulation.cli.main; "
        "print(sorted(m for m in ('torch', 'opacus', 'pandas', 'wfdb') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_train_then_evaluate_print_json(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    result = _train(
        tiny_hospitals[0],
        tmp_path,
        "--epsilon",
        "3",
        "--run-epsilon",
        "1",
        "--run-id",
        "cli-run",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {
        "task",
        "model_dir",
        "metrics",
        "training",
        "privacy",
        "config",
    }
    assert {"auroc", "f1", "n"} <= set(payload["metrics"])
    assert payload["privacy"]["run_id"] == "cli-run"
    assert 0 < payload["privacy"]["epsilon_spent"] <= 1.0 + 1e-6
    assert payload["config"]["epochs"] == 1 and payload["config"]["batch_size"] == 8

    args = [
        "evaluate",
        "--model",
        payload["model_dir"],
        "--data",
        str(tiny_hospitals[1]),
        "--format",
        "json",
    ]
    evaluated = runner.invoke(app, args)
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert set(report) == {
        "task",
        "model",
        "examples",
        "metrics",
        "threshold",
        "threshold_source",
    }
    assert report["task"] == TASK and report["examples"] > 0
    assert report["threshold_source"].startswith("this hospital's validation split")


def test_calibrate_at_another_hospital_prints_both_thresholds(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    assert _train(tiny_hospitals[0], tmp_path, "--no-dp").exit_code == 0
    args = ["calibrate", "--model", str(tmp_path / "model")]
    args += ["--data", str(tiny_hospitals[1]), "--out", str(tmp_path / "local")]
    text = runner.invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "before: threshold" in text.output and "after: threshold" in text.output
    assert f"wrote {tmp_path / 'local'}" in text.output
    report = json.loads(runner.invoke(app, [*args[:5], "--format", "json"]).stdout)
    assert report["model_dir"] is None and report["before"]["threshold"] is not None
    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(tmp_path / "model"),
            "--data",
            str(tiny_hospitals[1]),
        ],
    )
    assert "chosen on: this hospital's validation split" in evaluated.output


def test_text_output_without_dp(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    result = _train(tiny_hospitals[0], tmp_path, "--no-dp")
    assert result.exit_code == 0, result.output
    assert "privacy: none (--no-dp)" in result.output
    assert not (tmp_path / "ledger.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "ecg-arythmia"], "unknown task 'ecg-arythmia'; known tasks: "),
        (["--lr", "0"], "learning rate must be a finite number > 0"),
        (["--lr", "inf"], "learning rate must be a finite number > 0, got inf"),
        (["--device", "tpu"], "device 'tpu': expected auto, cpu, cuda or cuda:N"),
        (["--data", "/nonexistent/hospital"], "/nonexistent/hospital"),
    ],
)
def test_user_errors_exit_2_with_a_message(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    base = {
        "--task": TASK,
        "--data": str(tiny_hospitals[0]),
        "--out": str(tmp_path / "m"),
        "--ledger": str(tmp_path / "l.jsonl"),
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    extra = [a for a in args if a not in base and a not in base.values()]
    cli = ["train", *[x for kv in base.items() for x in kv], *extra, "--no-dp"]
    result = runner.invoke(app, cli)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "args",
    [["--lr", "inf"], ["--device", "tpu"], ["--out", "FILE/model"]],
    ids=["lr-inf", "device", "out-under-a-file"],
)
def test_bad_flags_spend_no_budget(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path, args: list[str]
) -> None:
    """A private train with a bad flag exits 2 before its ledger exists."""
    (tmp_path / "FILE").write_text("a regular file")
    ledger = tmp_path / "l.jsonl"
    base = {
        "--task": TASK,
        "--data": str(tiny_hospitals[0]),
        "--out": str(tmp_path / "m"),
        "--ledger": str(ledger),
    }
    flag, value = args
    base[flag] = value.replace("FILE", str(tmp_path / "FILE"))
    result = runner.invoke(app, ["train", *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not ledger.exists() and not (tmp_path / "m").exists()


def test_a_run_past_the_remaining_budget_is_refused(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    first = _train(
        tiny_hospitals[0], tmp_path, "--epsilon", "1", "--run-epsilon", "0.8"
    )
    assert first.exit_code == 0, first.output
    ledger = (tmp_path / "ledger.jsonl").read_bytes()
    second = _train(tiny_hospitals[0], tmp_path, "--run-epsilon", "0.5", out="second")
    assert second.exit_code == 2
    assert "refused before training" in second.output
    assert "remains" in second.output
    assert (tmp_path / "ledger.jsonl").read_bytes() == ledger
    assert not (tmp_path / "second").exists()


def test_a_budget_that_differs_from_the_ledger_is_refused(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    first = _train(
        tiny_hospitals[0], tmp_path, "--epsilon", "1", "--run-epsilon", "0.5"
    )
    assert first.exit_code == 0, first.output
    second = _train(tiny_hospitals[0], tmp_path, "--epsilon", "2", out="second")
    assert second.exit_code == 2
    assert "was created with budget" in second.output
    assert not (tmp_path / "second").exists()


def test_evaluate_refuses_a_directory_that_is_not_a_model(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    args = ["evaluate", "--model", str(tmp_path), "--data", str(tiny_hospitals[1])]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "is not a fedcare model directory" in result.output


def test_training_data_without_a_positive_class_exits_2_and_spends_nothing(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    import pandas as pd

    frame = pd.read_parquet(tiny_hospitals[0] / "vitals" / "vitals.parquet")
    frame["deterioration"] = 0
    data = tmp_path / "vitals.parquet"
    frame.to_parquet(data)
    with reliability.case(
        "budget: training data without a positive class",
        checks_lost=True,
        checks_spent=True,
    ):
        result = _train(data, tmp_path)
        assert result.exit_code == 2, result.output
        assert "holds only class" in result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "ledger.jsonl").exists()
        assert not (tmp_path / "model").exists()
