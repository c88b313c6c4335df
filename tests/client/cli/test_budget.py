"""``fedcare budget`` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from client.cli import budget
from client.privacy import PrivacyBudget, PrivacyLedger

app = typer.Typer()
app.command()(budget.command)
runner = CliRunner()


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "privacy.jsonl"
    ledger = PrivacyLedger.open(path, PrivacyBudget(4.0, 1e-5), "hospital-a")
    plan = ledger.plan("run-1", 0.01, 200, 1.0, run_epsilon=1.0)
    ledger.charge(plan, 100)
    return path


def test_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "--ledger" in result.output


def test_text(ledger_path: Path) -> None:
    result = runner.invoke(app, ["--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    assert "hospital-a" in result.output and "run-1" in result.output
    assert "remaining" in result.output and "accountant rdp" in result.output


def test_json(ledger_path: Path) -> None:
    result = runner.invoke(app, ["--ledger", str(ledger_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["budget"] == {"epsilon": 4.0, "delta": 1e-5, "accountant": "rdp"}
    assert data["hospital_id"] == "hospital-a" and data["ledger"] == str(ledger_path)
    assert 0 < data["spent_epsilon"] < 1.0
    assert data["remaining_epsilon"] == pytest.approx(4.0 - data["spent_epsilon"])
    assert [e["steps"] for e in data["entries"]] == [100]


def test_corrupted_ledger_exits_2(ledger_path: Path) -> None:
    text = ledger_path.read_text().replace('"steps":100', '"steps":1')
    ledger_path.write_text(text)
    result = runner.invoke(app, ["--ledger", str(ledger_path)])
    assert result.exit_code == 2
    assert "line 3" in result.output and "checksum" in result.output


def test_missing_ledger_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--ledger", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output
