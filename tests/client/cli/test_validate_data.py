"""CLI tests for `fedcare validate-data` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from client.cli.validate_data import command

app = typer.Typer()
app.command()(command)
runner = CliRunner()


def _signals(tmp_path: Path) -> Path:
    folder = tmp_path / "hospital" / "signals"
    folder.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (folder / f"{name}.out").write_text("1,0\n2,0\n3,1\n4,0\n")
    return folder.parent


def test_help_mentions_tasks():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "--task" in result.output and "--format" in result.output


def test_json_report(tmp_path):
    hospital = _signals(tmp_path)
    args = [str(hospital), "--task", "signal-anomaly", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["series"] == 3
    assert report["split"]["by_patient_possible"] is True


def test_text_report(tmp_path):
    result = runner.invoke(app, [str(_signals(tmp_path)), "--task", "signal-anomaly"])
    assert result.exit_code == 0, result.output
    assert "label balance" in result.stdout


def test_data_error_exits_2_with_message_on_stderr(tmp_path):
    bad = tmp_path / "signals"
    bad.mkdir()
    (bad / "x.csv").write_text("timestamp,hr\n1,80\n2,abc\n")
    result = runner.invoke(app, [str(bad), "--task", "signal-anomaly"])
    assert result.exit_code == 2
    assert "x.csv row 3, column 'hr'" in result.stderr
    assert "Traceback" not in result.output
