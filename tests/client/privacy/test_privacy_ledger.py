"""The privacy ledger: persistence, planning once per run, refusals, tampering."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.privacy import PrivacyBudget, PrivacyLedger, SpendPlan, compute_epsilon
from client.privacy.fingerprint import dataset_fingerprint
from client.privacy.ledger_file import create_ledger
from shared_models.errors import (
    BudgetExceededError,
    ConfigError,
    DataError,
    LedgerError,
    PrivacyError,
)
from shared_models.hash_chain import canonical_json, seal

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-5)
Q = 0.01
FP = "sha256:" + "ab" * 32


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "hospital-a" / "privacy.jsonl"


def _spend(ledger: PrivacyLedger, plan: SpendPlan, steps: int) -> dict:
    return ledger.settle(ledger.reserve(plan, steps), steps)


def _spent_ledger(path: Path) -> PrivacyLedger:
    ledger = PrivacyLedger.open(path, BUDGET, "hospital-a")
    plan = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1.0)
    _spend(ledger, plan, 100)
    _spend(ledger, plan, 100)
    ledger.plan("run-2", Q, 200, 1.0, run_epsilon=0.5)
    return ledger


def test_budget_is_validated() -> None:
    with pytest.raises(ConfigError, match="epsilon"):
        PrivacyBudget(epsilon=0, delta=1e-5)
    with pytest.raises(ConfigError, match="delta"):
        PrivacyBudget(epsilon=1, delta=1)
    with pytest.raises(ConfigError, match="known accountants"):
        PrivacyBudget(epsilon=1, delta=1e-5, accountant="gdp")


def test_nothing_written_until_the_first_plan(path: Path) -> None:
    PrivacyLedger(path)
    with pytest.raises(LedgerError, match="no budget was given"):
        PrivacyLedger.open(path, None)
    ledger = PrivacyLedger.open(path, BUDGET, "hospital-a", dataset_fingerprint=FP)
    assert not path.parent.exists()  # no file, no lock file, no directory
    assert not ledger.exists and ledger.privacy_unit is None
    assert ledger.budget == BUDGET and ledger.spent_epsilon == 0.0
    assert ledger.summary()["entries"] == [] and ledger.records == []
    # A command that fails here (bad data path, refused plan) leaves no ledger.
    with pytest.raises(BudgetExceededError):
        ledger.plan("run-1", Q, 100, 1.0, run_epsilon=5.0)
    assert not path.exists()
    # ... so the next command may still pick the budget.
    other = PrivacyBudget(epsilon=8.0, delta=1e-5)
    PrivacyLedger.open(path, other).plan("run-1", Q, 100, 1.0, run_epsilon=1.0)
    assert PrivacyLedger.open(path, None).budget == other


def test_first_plan_writes_header_v2_with_mode_0600(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET, "hospital-a", dataset_fingerprint=FP)
    ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1.0, privacy_unit="patient")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header, plan = (json.loads(line) for line in path.read_text().splitlines())
    assert header["type"] == "header" and header["prev"] == ""
    assert header["version"] == 2 and header["hospital_id"] == "hospital-a"
    assert header["budget"] == {"epsilon": 3.0, "delta": 1e-5, "accountant": "rdp"}
    assert header["dataset_fingerprint"] == FP and header["privacy_unit"] == "patient"
    assert plan["type"] == "plan" and plan["prev"] == header["hash"]
    assert plan["run_epsilon"] == 1.0 and plan["privacy_unit"] == "patient"
    assert ledger.spent_epsilon == 0.0 and ledger.remaining_epsilon == 3.0
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["privacy.jsonl", "privacy.jsonl.lock"]  # no temporary left


def test_creation_never_replaces_an_existing_file(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"someone else's ledger\n")
    header = {"type": "header", "version": 2, "hospital_id": "", "created": "t"}
    with pytest.raises(LedgerError, match="appeared while this process"):
        create_ledger(path, [header])
    assert path.read_bytes() == b"someone else's ledger\n"
    assert [p.name for p in path.parent.iterdir()] == ["privacy.jsonl"]


def test_spending_survives_reopening(path: Path) -> None:
    first = _spent_ledger(path)
    again = PrivacyLedger.open(path, None)  # a new process, a new object
    assert again.budget == BUDGET and again.hospital_id == "hospital-a"
    assert again.history() == [(first.plans[0]["noise_multiplier"], Q, 100)] * 2
    assert again.spent_epsilon == pytest.approx(first.spent_epsilon)
    expected = compute_epsilon(again.history(), BUDGET.delta)
    assert again.spent_epsilon == expected > 0
    assert [e["steps"] for e in again.entries] == [100, 100]
    assert again.reserved_open == [] and again.settled_epsilon == expected


def test_plan_is_calibrated_once_per_run(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1.0)
    assert plan.target_epsilon == pytest.approx(1.0)
    assert plan.privacy_unit == "patient"
    assert 0.99 <= ledger.epsilon_after(plan.noise_multiplier, Q, 300) <= 1.0
    _spend(ledger, plan, 100)
    # Round 2, new process, different arguments: the same plan comes back.
    again = PrivacyLedger.open(path, None).plan("run-1", Q, 999, 2.0, 1.0)
    assert again == plan
    assert len(PrivacyLedger(path).plans) == 1


def test_reused_run_id_keeps_its_run_epsilon(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1.0)
    with pytest.raises(ConfigError, match=r"planned for run_epsilon 1\.0.*asks for 2"):
        ledger.plan("run-1", Q, 300, 1.0, run_epsilon=2.0)
    with pytest.raises(ConfigError, match="asks for None"):
        ledger.plan("run-1", Q, 300, 1.0)  # "all remaining" is another request
    everything = ledger.plan("run-2", Q, 300, 1.0)
    assert PrivacyLedger(path).plans[1]["run_epsilon"] is None
    assert ledger.plan("run-2", Q, 300, 1.0) == everything
    with pytest.raises(ConfigError, match="planned for run_epsilon None"):
        ledger.plan("run-2", Q, 300, 1.0, run_epsilon=0.5)
    assert ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1) == plan
    assert len(PrivacyLedger(path).plans) == 2


def test_full_run_spends_its_epsilon_exactly(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 300, 1.0)  # default: everything that remains
    for _ in range(3):
        ledger.check(plan, 100)
        _spend(ledger, plan, 100)
    assert ledger.spent_epsilon <= BUDGET.epsilon
    assert ledger.spent_epsilon == pytest.approx(BUDGET.epsilon, abs=0.01)
    with pytest.raises(BudgetExceededError, match="refused before it started"):
        ledger.check(plan, 50)


def test_plan_past_the_budget_is_refused(path: Path) -> None:
    ledger = _spent_ledger(path)
    spent = ledger.spent_epsilon
    with pytest.raises(BudgetExceededError) as info:
        ledger.plan("run-3", Q, 100, 1.0, run_epsilon=3.0)
    message = str(info.value)
    assert "3" in message and f"{spent:.6g}" in message and "remain" in message
    assert len(PrivacyLedger(path).plans) == 2  # nothing recorded


def test_check_is_a_preview_that_writes_nothing(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    first = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=2.7)
    second = ledger.plan("run-2", Q, 300, 1.0, run_epsilon=2.7)
    _spend(ledger, first, 300)
    before = path.read_bytes()
    ledger.check(second, 10)
    with pytest.raises(BudgetExceededError, match="past the budget"):
        ledger.check(second, 300)  # within the run's cap, past the budget
    with pytest.raises(BudgetExceededError, match="cap"):
        ledger.check(second, 301)
    assert path.read_bytes() == before and len(ledger.entries) == 1


def test_reserve_refuses_past_the_budget_with_the_whole_story(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET, "hospital-a")
    first = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=2.7)
    second = ledger.plan("run-2", Q, 300, 1.0, run_epsilon=2.7)
    ledger.reserve(first, 300)
    before = path.read_bytes()
    with pytest.raises(BudgetExceededError) as info:
        ledger.reserve(second, 300)
    message = str(info.value)
    for part in ("past the budget 3", "1 open reservation(s) of 300 steps",
                 "0 settled", str(path), "Train fewer steps"):  # fmt: skip
        assert part in message
    assert path.read_bytes() == before  # nothing written by a refusal


def test_open_reservations_count_in_full(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1.0)
    rid = ledger.reserve(plan, 200, note="round 1")
    full = compute_epsilon([(plan.noise_multiplier, Q, 200)], BUDGET.delta)
    again = PrivacyLedger(path)  # e.g. the trainer's process has crashed
    assert again.spent_epsilon == pytest.approx(full) and again.settled_epsilon == 0
    assert again.history() == [(plan.noise_multiplier, Q, 200)]
    (held,) = again.reserved_open
    assert held["reservation"] == rid and held["steps"] == 200
    assert held["privacy_unit"] == "patient" and held["note"] == "round 1"
    summary = again.summary()
    assert summary["reserved_epsilon"] == pytest.approx(full)
    assert [r["reservation"] for r in summary["reserved_open"]] == [rid]
    # Settling fewer steps than reserved gives the rest back.
    entry = ledger.settle(rid, 50)
    assert entry["reservation"] == rid and entry["steps"] == 50
    assert entry["reserved_steps"] == 200 and entry["privacy_unit"] == "patient"
    fifty = compute_epsilon([(plan.noise_multiplier, Q, 50)], BUDGET.delta)
    assert entry["epsilon_after"] == pytest.approx(fifty)
    assert PrivacyLedger(path).spent_epsilon == pytest.approx(fifty)
    assert PrivacyLedger(path).reserved_open == []


def test_run_cap_is_enforced(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1.0)
    _spend(ledger, plan, 100)
    ledger.reserve(plan, 150)  # 250 of 300 settled or held
    with pytest.raises(BudgetExceededError, match="planned .*for 300 steps.*cap"):
        ledger.check(plan, 51)
    with pytest.raises(BudgetExceededError, match="settled 100 and holds 150"):
        ledger.reserve(plan, 51)
    ledger.reserve(plan, 50)
    # A reused run id gets its recorded plan, and the same cap.
    with pytest.raises(BudgetExceededError, match="new run id"):
        PrivacyLedger.open(path, None).reserve(
            PrivacyLedger(path).plan("run-1", Q, 900, 1.0, 1.0), 1
        )


def test_settle_rules(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1.0)
    rid = ledger.reserve(plan, 100)
    with pytest.raises(LedgerError, match="not in privacy ledger"):
        ledger.settle("0" * 32, 10)
    with pytest.raises(ConfigError, match="non-negative integer"):
        ledger.settle(rid, -1)
    with pytest.raises(ConfigError, match="positive integer"):
        ledger.reserve(plan, 0)
    ledger.settle(rid, 0)  # training failed before its first step
    with pytest.raises(LedgerError, match="already settled"):
        PrivacyLedger(path).settle(rid, 0)
    assert PrivacyLedger(path).spent_epsilon == 0.0


def test_settling_more_than_reserved_records_it_then_raises(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 1000, 1.0, run_epsilon=1.0)
    rid = ledger.reserve(plan, 10)
    with pytest.raises(PrivacyError, match="trained 50000 steps under reservation"):
        ledger.settle(rid, 50_000, note="trainer ignored its reservation")
    (entry,) = PrivacyLedger(path).entries  # what was spent was spent
    assert entry["steps"] == 50_000 and entry["epsilon_after"] > BUDGET.epsilon
    assert PrivacyLedger(path).remaining_epsilon == 0.0


def test_plans_from_elsewhere_are_rejected(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    ledger.plan("run-0", Q, 100, 1.0, run_epsilon=1.0)
    other = PrivacyLedger.open(path.with_name("other.jsonl"), BUDGET)
    plan = other.plan("run-x", Q, 100, 1.0, run_epsilon=1.0)
    with pytest.raises(LedgerError, match="not the one recorded"):
        ledger.reserve(plan, 10)
    with pytest.raises(LedgerError, match="not the one recorded"):
        ledger.check(plan, 10)


def test_budget_and_hospital_are_fixed_at_creation(path: Path) -> None:
    _spent_ledger(path)
    with pytest.raises(LedgerError, match="fixed at creation.*new ledger file"):
        PrivacyLedger.open(path, PrivacyBudget(epsilon=10.0, delta=1e-5))
    with pytest.raises(LedgerError, match="fixed at creation"):
        PrivacyLedger.open(path, PrivacyBudget(3.0, 1e-5, accountant="prv"))
    with pytest.raises(LedgerError, match="belongs to hospital"):
        PrivacyLedger.open(path, BUDGET, "hospital-b")
    assert PrivacyLedger.open(path, BUDGET, "hospital-a").budget == BUDGET


def test_dataset_fingerprint_is_fixed_at_creation(path: Path) -> None:
    other = "sha256:" + "cd" * 32
    ledger = PrivacyLedger.open(path, BUDGET, dataset_fingerprint=FP)
    ledger.plan("run-1", Q, 100, 1.0, run_epsilon=1.0)
    with pytest.raises(LedgerError) as info:
        PrivacyLedger.open(path, BUDGET, dataset_fingerprint=other)
    message = str(info.value)
    assert FP in message and other in message and str(path) in message
    assert "use the ledger created for this data" in message
    assert PrivacyLedger.open(path, None, dataset_fingerprint=FP).exists
    assert PrivacyLedger.open(path, None).dataset_fingerprint == FP  # "" = unknown
    with pytest.raises(ConfigError, match="must be a string"):
        PrivacyLedger.open(path, None, dataset_fingerprint=None)  # type: ignore[arg-type]


def test_header_without_fingerprint_accepts_any(path: Path) -> None:
    PrivacyLedger.open(path, BUDGET).plan("run-1", Q, 100, 1.0, run_epsilon=1.0)
    ledger = PrivacyLedger.open(path, None, dataset_fingerprint=FP)
    assert ledger.dataset_fingerprint == ""


def test_ledger_created_elsewhere_meanwhile_must_match(path: Path) -> None:
    mine = PrivacyLedger.open(path, BUDGET, dataset_fingerprint=FP)  # pending
    theirs = PrivacyLedger.open(path, BUDGET, dataset_fingerprint="sha256:00")
    theirs.plan("run-1", Q, 100, 1.0, run_epsilon=1.0)
    with pytest.raises(LedgerError, match="fingerprint sha256:00"):
        mine.plan("run-2", Q, 100, 1.0, run_epsilon=1.0)
    assert len(PrivacyLedger(path).plans) == 1


def test_privacy_unit_is_one_per_ledger(path: Path) -> None:
    with pytest.raises(ConfigError, match="known units are patient, example"):
        SpendPlan("r", 1.0, Q, 10, 1.0, 1.0, privacy_unit="beat")
    ledger = PrivacyLedger.open(path, BUDGET)
    with pytest.raises(ConfigError, match="known units are patient, example"):
        ledger.plan("run-1", Q, 100, 1.0, run_epsilon=1.0, privacy_unit="visit")
    plan = ledger.plan("run-1", Q, 100, 1.0, run_epsilon=1.0, privacy_unit="example")
    assert plan.privacy_unit == "example" and ledger.privacy_unit == "example"
    entry = _spend(ledger, plan, 10)
    assert entry["privacy_unit"] == "example"
    with pytest.raises(LedgerError, match="says nothing about a patient"):
        ledger.plan("run-2", Q, 100, 1.0, run_epsilon=1.0, privacy_unit="patient")
    with pytest.raises(LedgerError, match="at example level"):
        PrivacyLedger(path).plan("run-2", Q, 100, 1.0, run_epsilon=1.0)
    assert len(PrivacyLedger(path).plans) == 1


def _v1_ledger(path: Path) -> float:
    """A ledger as fedcare wrote it before version 2; returns its sigma."""
    sigma = 1.1
    records = [
        {"type": "header", "version": 1, "hospital_id": "hospital-a",
         "budget": BUDGET.to_dict(), "created": "2025-01-01T00:00:00+00:00"},
        {"type": "plan", "run_id": "old", "noise_multiplier": sigma,
         "sample_rate": Q, "planned_steps": 300, "max_grad_norm": 1.0,
         "target_epsilon": 1.0, "accountant": "rdp", "time": "t"},
        {"type": "spend", "run_id": "old", "sample_rate": Q,
         "noise_multiplier": sigma, "steps": 100, "delta": 1e-5, "accountant": "rdp",
         "max_grad_norm": 1.0, "epsilon_after": 0.0, "note": "", "time": "t"},
    ]  # fmt: skip
    sealed: list[dict] = []
    for record in records:
        sealed.append(seal(record, sealed[-1]["hash"] if sealed else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(canonical_json(r) + b"\n" for r in sealed))
    return sigma


def test_version_1_ledger_is_read_as_example_level(path: Path) -> None:
    sigma = _v1_ledger(path)
    ledger = PrivacyLedger.open(path, BUDGET, "hospital-a", dataset_fingerprint=FP)
    assert ledger.version == 1 and ledger.privacy_unit == "example"
    assert ledger.dataset_fingerprint == ""
    assert ledger.spent_epsilon == compute_epsilon([(sigma, Q, 100)], BUDGET.delta)
    assert ledger.summary()["entries"][0]["privacy_unit"] == "example"
    # The old run continues at example level, with its cap; patients are refused.
    plan = ledger.plan("old", Q, 300, 1.0, privacy_unit="example")
    assert plan.privacy_unit == "example" and plan.noise_multiplier == sigma
    with pytest.raises(LedgerError, match="patient-level privacy"):
        ledger.plan("new", Q, 100, 1.0, run_epsilon=0.1)
    _spend(ledger, plan, 200)
    with pytest.raises(BudgetExceededError, match="cap"):
        ledger.check(plan, 1)
    again = PrivacyLedger(path)
    assert again.version == 1 and [e["steps"] for e in again.entries] == [100, 200]


def test_newer_ledger_version_is_refused(path: Path) -> None:
    _v1_ledger(path)
    lines = path.read_bytes().splitlines()
    header = json.loads(lines[0])
    header["version"] = 3
    path.write_bytes(b"\n".join([canonical_json(seal(header, "")), *lines[1:]]))
    with pytest.raises(LedgerError, match="line 1: ledger version 3.*reads versions"):
        PrivacyLedger(path)


def test_file_changed_under_a_process_is_detected(path: Path) -> None:
    ledger = _spent_ledger(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-2]) + "\n")  # drop the last two records
    with pytest.raises(LedgerError, match="changed under this process"):
        ledger.reload()
    path.unlink()
    with pytest.raises(LedgerError, match="deleted while in use"):
        ledger.plan("run-9", Q, 100, 1.0, run_epsilon=0.1)
    assert not path.exists()


# -- dataset fingerprints ---------------------------------------------------------
def _tree(root: Path) -> Path:
    (root / "b").mkdir(parents=True)
    (root / "a.csv").write_bytes(b"id,x\n1,2\n")
    (root / "b" / "c.csv").write_bytes(b"id,x\n3,4\n")
    return root


def test_fingerprint_of_a_file_is_its_sha256(tmp_path: Path) -> None:
    data = tmp_path / "beats.csv"
    data.write_bytes(b"id,x\n1,2\n" * 1000)
    expected = hashlib.sha256(data.read_bytes()).hexdigest()
    assert dataset_fingerprint(data) == f"sha256:{expected}"


def test_fingerprint_of_a_directory_known_answer(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    digest = hashlib.sha256(b"fedcare-dataset-dir-v1\0")
    for name in ("a.csv", "b/c.csv"):  # sorted relative paths
        content = (root / name).read_bytes()
        digest.update(f"{name}\0{len(content)}\0".encode() + content)
    assert dataset_fingerprint(root) == "sha256:" + digest.hexdigest()
    assert dataset_fingerprint(root) == (
        "sha256:b573b1dad143aae0c32acb1a770d4d77c4e0bc77a6e3c38eed2f4f468484ff4a"
    )


def test_fingerprint_changes_with_the_data_only(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data")
    before = dataset_fingerprint(root)
    (root / ".DS_Store").write_bytes(b"junk")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "ledger.jsonl.lock").touch()
    assert dataset_fingerprint(root) == before  # hidden and lock files: not data
    (root / "b" / "c.csv").rename(root / "b" / "d.csv")
    renamed = dataset_fingerprint(root)
    assert renamed != before
    (root / "b" / "d.csv").write_bytes(b"id,x\n3,5\n")
    assert dataset_fingerprint(root) not in (before, renamed)
    (root / "link.csv").symlink_to(root / "a.csv")  # links count as their target
    assert dataset_fingerprint(root) != renamed


def test_fingerprint_refuses_what_it_cannot_hash(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        dataset_fingerprint(tmp_path / "missing")
    root = _tree(tmp_path / "data")
    (root / "b" / "loop").symlink_to(root, target_is_directory=True)
    with pytest.raises(DataError, match="symbolic-link loop"):
        dataset_fingerprint(root)
    (root / "b" / "loop").unlink()
    (root / "dangling.csv").symlink_to(tmp_path / "gone.csv")
    with pytest.raises(DataError, match="broken link"):
        dataset_fingerprint(root)
    (root / "dangling.csv").unlink()
    os.mkfifo(root / "pipe")
    with pytest.raises(DataError, match="not a regular file"):
        dataset_fingerprint(root)


def _edit_number(lines: list[str]) -> list[str]:
    record = json.loads(lines[2])
    record["steps"] = 1
    return [*lines[:2], json.dumps(record), *lines[3:]]


def _settle_twice(lines: list[str]) -> list[str]:
    spend = json.loads(lines[3])
    return [*lines, canonical_json(seal(spend, json.loads(lines[-1])["hash"])).decode()]


@pytest.mark.parametrize(
    ("tamper", "line", "reason"),
    [
        (_edit_number, 3, "checksum mismatch"),
        (lambda ls: [ls[0], ls[1], *ls[3:]], 3, "chain broken"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2, "chain broken"),
        (lambda ls: [*ls[:2], "{garbage", *ls[2:]], 3, "not valid JSON"),
        (lambda ls: [*ls[:2], "", *ls[2:]], 3, "not valid JSON"),
        (lambda ls: ls[1:], 1, "expected header"),
        (_settle_twice, 8, "settled a second time"),
    ],
    ids=[
        "edit-number",
        "delete-middle",
        "reorder",
        "garbage",
        "blank",
        "no-header",
        "settle-twice",
    ],
)
def test_tampering_is_detected(path: Path, tamper, line: int, reason: str) -> None:
    _spent_ledger(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(tamper(lines)) + "\n")
    with pytest.raises(LedgerError, match=f"{path} line {line}: ?.*{reason}"):
        PrivacyLedger.open(path, None)


def test_empty_file_is_an_error(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    with pytest.raises(LedgerError, match="empty"):
        PrivacyLedger.open(path, BUDGET)


_action = st.tuples(
    st.sampled_from(["plan", "round", "crash"]),
    st.floats(0.2, 2.5),  # run epsilon asked
    st.integers(1, 200),  # steps
    st.sampled_from([0.005, 0.01, 0.05]),
    st.floats(0.0, 1.0),  # share of the reserved steps actually taken
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(_action, min_size=1, max_size=8))
def test_budget_is_never_exceeded(
    actions: list[tuple[str, float, int, float, float]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.jsonl"
        budget = PrivacyBudget(epsilon=2.0, delta=1e-5)
        ledger = PrivacyLedger.open(path, budget)
        plan = None
        for number, (kind, asked, steps, q, share) in enumerate(actions):
            try:
                if kind == "plan" or plan is None:
                    plan = ledger.plan(f"run-{number}", q, steps * 3, 1.0, asked)
                rid = ledger.reserve(plan, steps)
            except BudgetExceededError:
                continue
            if kind != "crash":  # a crash leaves the reservation open
                ledger.settle(rid, int(steps * share))
            ledger = PrivacyLedger(path)  # as a new process would
        assert ledger.spent_epsilon <= budget.epsilon * (1 + 1e-9)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_number_is_a_ledger_error_naming_the_line(
    path: Path, constant: str
) -> None:
    _spent_ledger(path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"steps":100', f'"steps":{constant}', 1)
    assert constant in lines[2]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError, match=rf"line 3: the non-finite number {constant}"):
        PrivacyLedger.open(path, None)
