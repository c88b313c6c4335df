"""``fedcare budget`` through Typer's CliRunner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from client.cli import budget
from client.privacy import PrivacyBudget, PrivacyLedger

app = typer.Typer()
app.command()(budget.command)
runner = CliRunner()
FP = "sha256:" + "ab" * 32


def _ledger(path: Path, unit: str = "patient") -> PrivacyLedger:
    ledger = PrivacyLedger.open(
        path, PrivacyBudget(4.0, 1e-5), "hospital-a", dataset_fingerprint=FP
    )
    plan = ledger.plan("run-1", 0.01, 300, 1.0, run_epsilon=1.0, privacy_unit=unit)
    ledger.settle(ledger.reserve(plan, 100), 100)
    return ledger


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "privacy.jsonl"
    _ledger(path)
    return path


def test_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "--ledger" in result.output


def test_text(ledger_path: Path) -> None:
    result = runner.invoke(app, ["--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    assert "hospital-a" in result.output and "run-1" in result.output
    assert "remaining" in result.output and "accountant rdp" in result.output
    assert f"dataset    {FP}" in result.output
    assert "unit       patient" in result.output and "open       none" in result.output
    found = re.search(
        r"guarantee  \(epsilon ([0-9.]+), delta 1e-05\)-DP with respect to adding or "
        r"removing one patient's data",
        result.output,
    )
    assert found, result.output
    spent = PrivacyLedger(ledger_path).spent_epsilon
    assert spent <= float(found[1]) < spent + 1e-4  # rounded up, never down


def test_text_example_level_and_open_reservations(tmp_path: Path) -> None:
    path = tmp_path / "privacy.jsonl"
    ledger = _ledger(path, unit="example")
    plan = ledger.plan("run-1", 0.01, 300, 1.0, 1.0, privacy_unit="example")
    rid = ledger.reserve(plan, 50)
    result = runner.invoke(app, ["--ledger", str(path)])
    assert result.exit_code == 0, result.output
    assert "one example (beat, window or stay)" in result.output
    assert "open       1 reservation(s), counted in full" in result.output
    assert rid[:12] in result.output and "50 steps (example)" in result.output


def test_guarantee_rounds_epsilon_up() -> None:
    summary = {"spent_epsilon": 2.30001, "privacy_unit": "patient",
               "budget": {"delta": 1e-5}}  # fmt: skip
    assert budget.guarantee(summary).startswith("(epsilon 2.3001, delta 1e-05)-DP")
    assert budget.guarantee({**summary, "spent_epsilon": 0.0}) == "nothing spent yet"


def test_json(ledger_path: Path) -> None:
    ledger = PrivacyLedger(ledger_path)
    rid = ledger.reserve(ledger.plan("run-1", 0.01, 300, 1.0, 1.0), 50)
    result = runner.invoke(app, ["--ledger", str(ledger_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["budget"] == {"epsilon": 4.0, "delta": 1e-5, "accountant": "rdp"}
    assert data["hospital_id"] == "hospital-a" and data["ledger"] == str(ledger_path)
    assert data["privacy_unit"] == "patient" and data["dataset_fingerprint"] == FP
    assert data["version"] == 2
    assert 0 < data["settled_epsilon"] < data["spent_epsilon"] < 1.0
    assert data["reserved_epsilon"] == pytest.approx(
        data["spent_epsilon"] - data["settled_epsilon"]
    )
    assert data["remaining_epsilon"] == pytest.approx(4.0 - data["spent_epsilon"])
    assert [e["steps"] for e in data["entries"]] == [100]
    assert [e["privacy_unit"] for e in data["entries"]] == ["patient"]
    assert [(r["reservation"], r["steps"]) for r in data["reserved_open"]] == [
        (rid, 50)
    ]


def test_corrupted_ledger_exits_2(ledger_path: Path) -> None:
    text = ledger_path.read_text().replace('"steps":100', '"steps":1')
    ledger_path.write_text(text)
    result = runner.invoke(app, ["--ledger", str(ledger_path)])
    assert result.exit_code == 2
    assert "line 3" in result.output and "checksum" in result.output


def test_ledger_in_a_missing_folder_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--ledger", str(tmp_path / "typo" / "none.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_before_the_first_round_nothing_is_spent(tmp_path: Path) -> None:
    """A hospital checks its budget before joining: no ledger yet is not an error,
    and looking creates nothing."""
    path = tmp_path / "privacy-ledger.jsonl"
    result = runner.invoke(app, ["--ledger", str(path)])
    assert result.exit_code == 0 and "nothing has been spent" in result.output
    as_json = runner.invoke(app, ["--ledger", str(path), "--format", "json"])
    assert json.loads(as_json.output) == {
        "ledger": str(path),
        "exists": False,
        "spent_epsilon": 0.0,
    }
    assert not path.exists()
