"""A hospital's ledger checked against the ledger heads a run's audit log
recorded: re-sealed edits and cuts are caught; CLI exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import reliability
from typer.testing import CliRunner

from client.privacy import PrivacyBudget, PrivacyLedger
from shared_models import wire
from shared_models.hash_chain import canonical_json, seal
from simulation.cli.main import app

BUDGET = PrivacyBudget(epsilon=8.0, delta=1e-5)


@pytest.fixture
def hospital(tmp_path: Path) -> tuple[Path, Path]:
    """A ledger charged over two rounds, and a run's audit log that recorded
    its head after each (as the aggregator does from the train replies)."""
    ledger_path = tmp_path / "h1.jsonl"
    ledger = PrivacyLedger.open(ledger_path, BUDGET, "h1")
    plan = ledger.plan("run-a", 0.01, 200, 1.0, run_epsilon=2.0)
    rounds = []
    for number in (1, 2):
        ledger.settle(ledger.reserve(plan, 100), 100)
        rounds.append(
            {
                "type": "round",
                "version": 2,
                "run_id": "run-a",
                "round": number,
                "ledger_heads": {
                    "h1": wire.ledger_commitment(ledger.head_hash, "run-a", number),
                    "h2": "0" * 64,
                },
            }
        )
    run_dir = tmp_path / "run"
    _write(run_dir / "audit.jsonl", _sealed(rounds))
    return ledger_path, run_dir / "audit.jsonl"


def _sealed(records: list[dict]) -> list[dict]:
    out: list[dict] = []
    for record in records:
        out.append(seal(record, out[-1]["hash"] if out else ""))
    return out


def _write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(canonical_json(r) + b"\n" for r in records))


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _verify(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["ledger", "verify", *args])
    assert "Traceback" not in done.output, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
    return done.exit_code, done.output


def test_an_intact_ledger_holds_every_recorded_head(hospital) -> None:
    ledger, log = hospital

    code, text = _verify("--ledger", str(ledger), "--against", str(log))
    as_json = _verify(
        "--ledger", str(ledger), "--against", str(log.parent), "--format", "json"
    )

    assert code == 0 and text.startswith("OK ") and "2 ledger head(s)" in text
    payload = json.loads(as_json[1])
    assert as_json[0] == 0 and payload["heads_checked"] == 2
    assert payload["hospital"] == "h1" and payload["ok"] is True


def test_heads_sent_before_the_ledger_existed_verify(hospital) -> None:
    """A hospital that declined before its first spend sent the commitment of
    "" (no ledger yet); it differs every round, so it tells no decline."""
    ledger, log = hospital
    records = _records(log)
    early = wire.ledger_commitment("", "run-a", 3)
    records.append({**records[-1], "round": 3, "ledger_heads": {"h1": early}})
    _write(log, _sealed(records))

    code, text = _verify("--ledger", str(ledger), "--against", str(log))

    assert code == 0 and "3 ledger head(s)" in text
    assert early != wire.ledger_commitment("", "run-a", 4)


def _raise_budget(records: list[dict]) -> list[dict]:
    records[0]["budget"]["epsilon"] = 1000.0
    return records


def _drop_spends(records: list[dict]) -> list[dict]:
    return [r for r in records if r["type"] != "spend"]


@pytest.mark.parametrize(
    ("tamper", "round_"),
    [(_raise_budget, 1), (_drop_spends, 1), (lambda rs: rs[:-1], 2)],
    ids=["budget-8-to-1000", "spends-deleted", "last-record-cut"],
)
def test_a_resealed_or_cut_ledger_lacks_a_recorded_head(
    hospital, tamper, round_: int
) -> None:
    ledger, log = hospital
    _write(ledger, _sealed([dict(r) for r in tamper(_records(ledger))]))

    alone = _verify("--ledger", str(ledger))  # its own chain is fooled
    assert alone[0] == 0
    with reliability.case("ledger: re-sealed edit or truncation (audit heads)"):
        code, text = _verify("--ledger", str(ledger), "--against", str(log))
        assert code == 1 and text.startswith("TAMPERED")
        assert f"round {round_}" in text and "re-computed, or cut short" in text


def test_exit_codes_for_broken_deleted_and_unusable_inputs(hospital) -> None:
    ledger, log = hospital
    records = _records(ledger)
    original = ledger.read_bytes()

    records[1]["target_epsilon"] = 99.0  # edited, not re-sealed
    _write(ledger, records)
    code, text = _verify("--ledger", str(ledger))
    assert code == 1 and "checksum mismatch" in text

    ledger.unlink()
    assert _verify("--ledger", str(ledger), "--against", str(log))[0] == 2
    code, text = _verify(
        "--ledger", str(ledger), "--against", str(log), "--hospital", "h1"
    )
    assert code == 1 and "missing" in text

    ledger.write_bytes(original)
    assert _verify("--ledger", str(ledger), "--against", str(log / "nope"))[0] == 2
    code, text = _verify(
        "--ledger", str(ledger), "--against", str(log), "--hospital", "h9"
    )
    assert code == 2 and "no ledger head of hospital 'h9'" in text
    audit = _records(log)
    audit[0]["ledger_heads"]["h1"] = "f" * 64
    _write(log, audit)
    code, text = _verify("--ledger", str(ledger), "--against", str(log))
    assert code == 2 and "line 1: checksum mismatch" in text
    log.write_bytes(b"")
    assert _verify("--ledger", str(ledger), "--against", str(log))[0] == 2
    assert "verify" in CliRunner().invoke(app, ["ledger", "--help"]).output
