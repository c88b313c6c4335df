"""Audit log: chain over a fake run, tamper detection, resume, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import reliability
from tiny_model import tiny_card, tiny_weights
from typer.testing import CliRunner

from server import audit
from server.history import RunHistory
from server.run_state import FederatedRun
from server.strategy import instruction_config
from shared_models import held_heads, wire
from shared_models.export import arrays_hash
from shared_models.hash_chain import canonical_json, seal
from shared_models.run_config import RunConfig
from simulation.cli.main import app

CARD = tiny_card("signal-anomaly")
CONFIG = RunConfig(
    task="signal-anomaly", strategy="fedprox", proximal_mu=0.1
).resolved()


def _weights(seed: int) -> list[np.ndarray]:
    return tiny_weights(seed)


def _reply(hospital: int, declined: str = "") -> tuple[int, dict]:
    # Under SecAgg+ every reply carries the constant count 1 and the id only;
    # a decline is a zero-weight masked vector.
    return (1, {"hospital-id": hospital})


def _fake_run(run_dir: Path, rounds: int = 3) -> FederatedRun:
    """Round 1: h1, h2 train, h3 declines; round 2: a failure; round 3: no model."""
    run = FederatedRun(CONFIG, run_dir, "run-a", CARD)
    run.set_initial(_weights(0))
    plan = [
        (_weights(1), [_reply(1), _reply(2), _reply(3, "privacy budget spent")], []),
        (_weights(2), [_reply(1), _reply(2)], ["TimeoutError('hospital gone')"]),
        (None, [_reply(1, "no data"), _reply(2, "no data")], []),
    ]
    gone = [{"node_id": 77, "hospital": 3}]
    for flwr_round, (weights, replies, failures) in enumerate(plan[:rounds], 1):
        run.on_fit(
            flwr_round, weights, replies, failures, gone if flwr_round == 2 else None
        )
    return run


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    _fake_run(tmp_path)
    return tmp_path


def _lines(run_dir: Path) -> list[str]:
    return (run_dir / audit.FILE_NAME).read_text().splitlines()


def _write(run_dir: Path, lines: list[str]) -> Path:
    path = run_dir / audit.FILE_NAME
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_fake_run_writes_a_verified_chain(run_dir: Path) -> None:
    records = audit.read_records(run_dir / audit.FILE_NAME)
    verdict = audit.verify(run_dir / audit.FILE_NAME, run_dir / "checkpoints")

    assert verdict.ok and verdict.records == 3 and verdict.checkpoints_checked == 2
    one, two, three = records
    assert [r["round"] for r in records] == [1, 2, 3]
    assert one["prev"] == "" and two["prev"] == one["hash"]
    assert three["prev"] == two["hash"]
    # hospital 3 declined round 1 at home: under SecAgg+ nobody can tell
    assert one["run_id"] == "run-a" and one["participating"] == ["1", "2", "3"]
    assert one["dropped"] == []
    assert two["dropped"] == [
        {
            "hospital": "3",
            "node_id": 77,
            "status": "no-reply",
            "reason": "sampled for the round, sent no reply",
        },
        {"hospital": "", "status": "failed", "reason": "TimeoutError('hospital gone')"},
    ]
    assert one["model_before"] == arrays_hash(_weights(0))
    assert one["model_after"] == arrays_hash(_weights(1)) == two["model_before"]
    assert two["model_after"] == arrays_hash(_weights(2))
    assert three["model_before"] == three["model_after"] == two["model_after"]
    assert (one["checkpoint"], three["checkpoint"]) == ("checkpoints/round_0001", "")
    assert one["settings"] == {
        "task": "signal-anomaly",
        "strategy": "fedprox",
        "proximal-mu": 0.1,
        "dp": True,
        "run-epsilon": 2.0,
        "max-grad-norm": 1.0,
        "secagg": True,
        "secagg-num-shares": 1.0,
        "secagg-reconstruction-threshold": 0.67,
        "secagg-clipping-range": 2.0,
        "secagg-quantization-range": 4194304,
    }


def _edit_field(lines: list[str]) -> list[str]:
    record = json.loads(lines[1])
    record["participating"] = ["1"]
    return [lines[0], json.dumps(record, sort_keys=True), lines[2]]


@pytest.mark.parametrize(
    ("tamper", "line", "reason"),
    [
        (_edit_field, 2, "checksum mismatch"),
        (lambda ls: [ls[0], ls[2]], 2, "chain broken"),
        (lambda ls: [ls[1], ls[0], ls[2]], 1, "chain broken"),
        (lambda ls: [ls[0], ls[1], "garbage{", ls[2]], 3, "not valid JSON"),
        (lambda ls: [ls[0], "[1, 2]", ls[1]], 2, "expected a JSON object"),
    ],
    ids=["edited", "deleted", "reordered", "garbage", "not-an-object"],
)
def test_tampering_is_detected_at_its_line(
    run_dir: Path, tamper, line: int, reason: str
) -> None:
    with reliability.case("audit log: edited, deleted, reordered, garbled line"):
        path = _write(run_dir, tamper(_lines(run_dir)))
        verdict = audit.verify(path)
        assert not verdict.ok and verdict.line == line and reason in verdict.reason


def test_torn_last_line_is_detected_and_not_extended(run_dir: Path) -> None:
    path = run_dir / audit.FILE_NAME
    path.write_text(path.read_text() + '{"type": "rou')

    assert audit.verify(path).line == 4
    with pytest.raises(audit.ChainError, match="line 4"):
        audit.append(path, {"round": 4})


def test_checkpoint_mismatch_and_cut_log_are_detected(run_dir: Path) -> None:
    lines = _lines(run_dir)
    path = _write(run_dir, lines[:1])
    cut = audit.verify(path, run_dir / "checkpoints")
    assert not cut.ok and cut.line == 2 and "round 2" in cut.reason

    state_file = run_dir / "checkpoints" / "round_0001" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "weights_sha256": "0" * 64}))
    _write(run_dir, lines)
    wrong = audit.verify(path, run_dir / "checkpoints")
    assert not wrong.ok and wrong.line == 1 and "weights_sha256" in wrong.reason


def test_resumed_run_continues_the_chain(tmp_path: Path) -> None:
    _fake_run(tmp_path, rounds=2)
    before = _lines(tmp_path)
    resumed = FederatedRun(
        CONFIG,
        tmp_path,
        "run-a",
        CARD,
        offset=2,
        history=RunHistory.load(tmp_path, "run-a", 2),
    )
    resumed.set_initial(_weights(2))  # the round-2 checkpoint's weights
    resumed.on_fit(1, _weights(3), [_reply(1), _reply(2)], [])

    records = audit.read_records(tmp_path / audit.FILE_NAME)
    assert _lines(tmp_path)[:2] == before
    assert [r["round"] for r in records] == [1, 2, 3]
    assert records[2]["prev"] == records[1]["hash"]
    assert records[2]["model_before"] == records[1]["model_after"]
    assert audit.verify(tmp_path / audit.FILE_NAME, tmp_path / "checkpoints").ok


def test_cli_ok_tampered_and_usage_errors(run_dir: Path) -> None:
    runner = CliRunner()
    path = str(run_dir / audit.FILE_NAME)
    checkpoints = str(run_dir / "checkpoints")

    ok = runner.invoke(app, ["audit", "verify", path, "--checkpoints", checkpoints])
    assert ok.exit_code == 0 and ok.output.startswith("OK ") and "3 record" in ok.output

    as_json = runner.invoke(app, ["audit", "verify", path, "--format", "json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["records"] == 3

    _write(run_dir, _edit_field(_lines(run_dir)))
    bad = runner.invoke(app, ["audit", "verify", path, "--format", "json"])
    payload = json.loads(bad.output)
    assert bad.exit_code == 1 and payload["ok"] is False and payload["line"] == 2
    text = runner.invoke(app, ["audit", "verify", path])
    assert text.exit_code == 1 and "line 2" in text.output

    missing = runner.invoke(app, ["audit", "verify", str(run_dir / "nope.jsonl")])
    assert missing.exit_code == 2
    no_dir = runner.invoke(app, ["audit", "verify", path, "--checkpoints", path])
    assert no_dir.exit_code == 2
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 2
    assert "verify" in runner.invoke(app, ["audit", "--help"]).output


def test_exit_codes_keep_their_meaning(run_dir: Path) -> None:
    """0 intact, 1 tampered, 2 could not check; never a traceback (a crash read
    as exit 1 would look like tampering)."""
    runner = CliRunner()
    log = run_dir / audit.FILE_NAME
    checkpoints = run_dir / "checkpoints"
    lines = _lines(run_dir)

    def verify(*extra: str) -> tuple[int, str]:
        done = runner.invoke(app, ["audit", "verify", str(log), *extra])
        assert "Traceback" not in done.output, done.output
        assert done.exception is None or isinstance(done.exception, SystemExit)
        return done.exit_code, done.output

    log.write_bytes(b"")  # every record removed
    code, text = verify()
    assert code == 1 and "holds no record" in text

    record = json.loads(lines[0])
    record["round"] = float("nan")  # a value fedcare never writes
    _write(run_dir, [json.dumps(record), *lines[1:]])
    code, text = verify()
    assert code == 1 and "line 1" in text and "never writes" in text

    _write(run_dir, lines)
    assert verify("--checkpoints", str(checkpoints))[0] == 0
    (checkpoints / "round_0001" / "state.json").write_text("{not json")
    code, text = verify("--checkpoints", str(checkpoints))
    assert code == 2 and "cannot check against it" in text
    (checkpoints / "round_0001").rename(checkpoints / "moved")
    (checkpoints / "latest.json").write_text('{"round": "two"}')
    code, text = verify("--checkpoints", str(checkpoints))
    assert code in (1, 2) and "Traceback" not in text

    folder = runner.invoke(app, ["audit", "verify", str(run_dir)])
    assert folder.exit_code == 2 and "is a folder" in folder.output


def test_checkpoints_check_hashes_the_weights_themselves(run_dir: Path) -> None:
    """A weights file replaced beside an untouched state.json is caught."""
    import shutil

    path = run_dir / audit.FILE_NAME
    assert audit.verify(path, run_dir / "checkpoints").ok
    first = run_dir / "checkpoints" / "round_0001"
    second = run_dir / "checkpoints" / "round_0002"
    shutil.copy(second / "weights.safetensors", first / "weights.safetensors")
    swapped = audit.verify(path, run_dir / "checkpoints")
    assert not swapped.ok and swapped.line == 1
    assert "weights" in swapped.reason
    (first / "weights.safetensors").write_bytes(b"garbage")
    garbage = audit.verify(path, run_dir / "checkpoints")
    assert not garbage.ok and "weights.safetensors" in garbage.reason


# -- evidence held apart: ledger heads in the log, audit heads at the hospitals
def _head(hospital: int, number: int) -> str:
    return hashlib.sha256(
        f"ledger {hospital} after round {number}".encode()
    ).hexdigest()


def _held_run(run_dir: Path, rounds: int = 3) -> list[Path]:
    """A run whose hospitals report ledger heads and keep every audit head the
    instructions of the next round (and the last evaluate) carry."""
    run = FederatedRun(CONFIG, run_dir, "run-a", CARD)
    run.set_initial(_weights(0))
    files = [run_dir / "hospitals" / f"h{h}.jsonl.audit-heads.jsonl" for h in (1, 2)]
    for number in range(1, rounds + 1):
        replies = [
            (1, {"hospital-id": h, "ledger-head": _head(h, number)}) for h in (1, 2)
        ]
        run.on_fit(number, _weights(number), replies, [])
        config = instruction_config(CONFIG, run)(number)  # evaluate, round r + 1
        for path in files:
            held_heads.record(
                path,
                config["run-name"],
                config[wire.AUDIT_HEAD_ROUND],
                config[wire.AUDIT_HEAD],
            )
    return files


def _reseal(lines: list[str], edit) -> list[str]:
    """Edit records, then re-compute the whole chain (what a forger does)."""
    records = [json.loads(line) for line in lines]
    edit(records)
    sealed: list[dict] = []
    for record in records:
        sealed.append(seal(record, sealed[-1]["hash"] if sealed else ""))
    return [canonical_json(r).decode() for r in sealed]


def _no_dp(records: list[dict]) -> None:
    records[0]["settings"]["dp"] = False


def test_records_hold_the_ledger_heads_and_instructions_the_audit_head(
    tmp_path: Path,
) -> None:
    files = _held_run(tmp_path)
    records = audit.read_records(tmp_path / audit.FILE_NAME)
    config = instruction_config(CONFIG, FederatedRun(CONFIG, tmp_path, "run-a", CARD))

    assert records[1]["version"] == 2
    assert records[1]["ledger_heads"] == {"1": _head(1, 2), "2": _head(2, 2)}
    assert config(4)[wire.AUDIT_HEAD] == records[-1]["hash"]  # read on resume
    assert config(4)[wire.AUDIT_HEAD_ROUND] == 3
    assert [(h.round, h.head) for h in held_heads.read(files[0])] == [
        (r["round"], r["hash"]) for r in records
    ]
    # the same head again is not a new line
    assert not held_heads.record(files[0], "run-a", 3, records[-1]["hash"])
    verdict = audit.verify(tmp_path / audit.FILE_NAME, held=held_heads.read(files[0]))
    assert verdict.ok and verdict.heads_checked == 3


@pytest.mark.parametrize(
    ("tamper", "line", "reason"),
    [
        (lambda ls: _reseal(ls, _no_dp), 1, "re-computed"),
        (lambda ls: _reseal(ls, lambda rs: rs.pop(1)), 2, "re-computed"),
        (lambda ls: ls[:-1], 3, "round 3, but the log ends at round 2"),
        (lambda ls: _reseal(ls[:-1], lambda rs: None), 3, "truncated"),
    ],
    ids=["resealed-dp-false", "resealed-deletion", "last-deleted", "cut-resealed"],
)
def test_held_heads_catch_what_a_recomputed_chain_hides(
    tmp_path: Path, tamper, line: int, reason: str
) -> None:
    files = _held_run(tmp_path)
    path = _write(tmp_path, tamper(_lines(tmp_path)))
    held = [h for f in files for h in held_heads.read(f)]

    alone = audit.verify(path)  # the chain alone is fooled
    assert alone.ok
    with reliability.case("audit log: re-sealed edit or truncation (held heads)"):
        verdict = audit.verify(path, held=held)
        assert not verdict.ok and verdict.line == line and reason in verdict.reason


def test_cli_checks_heads_and_a_deleted_log(tmp_path: Path) -> None:
    runner = CliRunner()
    files = _held_run(tmp_path)
    log = tmp_path / audit.FILE_NAME
    heads = [arg for f in files for arg in ("--heads", str(f))]

    def verify(*extra: str) -> tuple[int, str]:
        done = runner.invoke(app, ["audit", "verify", str(log), *extra])
        assert "Traceback" not in done.output, done.output
        return done.exit_code, done.output

    code, text = verify(*heads)
    assert code == 0 and "6 held head(s) match" in text
    _write(tmp_path, _reseal(_lines(tmp_path), _no_dp))
    assert verify()[0] == 0  # without the hospitals' heads a re-sealed log passes
    code, text = verify(*heads, "--format", "json")
    assert code == 1 and json.loads(text)["line"] == 1

    other = tmp_path / "other.jsonl"
    held_heads.record(other, "run-b", 1, "a" * 64)
    code, text = verify("--heads", str(other))
    assert code == 2 and "none of the held heads" in text
    other.write_text("not json\n")
    assert verify("--heads", str(other))[0] == 2
    assert verify("--heads", str(tmp_path / "absent.jsonl"))[0] == 2

    log.write_bytes(b"")
    code, text = verify(*heads)
    assert code == 1 and "holds no record" in text
    log.unlink()
    code, text = verify()
    assert code == 1 and "log was deleted" in text
    assert verify("--format", "json")[0] == 1
