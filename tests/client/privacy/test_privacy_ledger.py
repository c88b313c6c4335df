"""The privacy ledger: persistence, planning once per run, refusals, tampering."""

from __future__ import annotations

import json
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.errors import BudgetExceededError, ConfigError, LedgerError
from client.privacy import PrivacyBudget, PrivacyLedger, compute_epsilon

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-5)
Q = 0.01


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "hospital-a" / "privacy.jsonl"


def _spent_ledger(path: Path) -> PrivacyLedger:
    ledger = PrivacyLedger.open(path, BUDGET, "hospital-a")
    plan = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1.0)
    ledger.charge(plan, 100)
    ledger.charge(plan, 100)
    ledger.plan("run-2", Q, 200, 1.0, run_epsilon=0.5)
    return ledger


def test_budget_is_validated() -> None:
    with pytest.raises(ConfigError, match="epsilon"):
        PrivacyBudget(epsilon=0, delta=1e-5)
    with pytest.raises(ConfigError, match="delta"):
        PrivacyBudget(epsilon=1, delta=1)
    with pytest.raises(ConfigError, match="known accountants"):
        PrivacyBudget(epsilon=1, delta=1e-5, accountant="gdp")


def test_nothing_written_until_needed(path: Path) -> None:
    PrivacyLedger(path)
    assert not path.exists()
    with pytest.raises(LedgerError, match="no budget was given"):
        PrivacyLedger.open(path, None)


def test_new_ledger_has_a_header_and_mode_0600(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET, "hospital-a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header = json.loads(path.read_text().splitlines()[0])
    assert header["type"] == "header" and header["prev"] == ""
    assert header["budget"] == {"epsilon": 3.0, "delta": 1e-5, "accountant": "rdp"}
    assert ledger.spent_epsilon == 0.0 and ledger.remaining_epsilon == 3.0
    _spent_ledger(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_spending_survives_reopening(path: Path) -> None:
    first = _spent_ledger(path)
    again = PrivacyLedger.open(path, None)  # a new process, a new object
    assert again.budget == BUDGET and again.hospital_id == "hospital-a"
    assert again.history() == [(first.plans[0]["noise_multiplier"], Q, 100)] * 2
    assert again.spent_epsilon == pytest.approx(first.spent_epsilon)
    expected = compute_epsilon(again.history(), BUDGET.delta)
    assert again.spent_epsilon == expected > 0
    assert [e["steps"] for e in again.entries] == [100, 100]


def test_plan_is_calibrated_once_per_run(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 300, 1.0, run_epsilon=1.0)
    assert plan.target_epsilon == pytest.approx(1.0)
    assert 0.99 <= ledger.epsilon_after(plan.noise_multiplier, Q, 300) <= 1.0
    ledger.charge(plan, 100)
    # Round 2, new process, different arguments: the same plan comes back.
    again = PrivacyLedger.open(path, None).plan("run-1", Q, 999, 2.0)
    assert again == plan
    assert len(PrivacyLedger(path).plans) == 1


def test_full_run_spends_its_epsilon_exactly(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 300, 1.0)  # default: everything that remains
    for _ in range(3):
        ledger.check(plan, 100)
        ledger.charge(plan, 100)
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


def test_check_refuses_before_training(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 100, 1.0, run_epsilon=1.0)
    with pytest.raises(BudgetExceededError, match="past the budget"):
        ledger.check(plan, 100_000)
    assert ledger.entries == []


def test_charge_records_even_an_overspend(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    plan = ledger.plan("run-1", Q, 100, 1.0, run_epsilon=1.0)
    entry = ledger.charge(plan, 50_000, note="trainer ignored check")
    assert entry["epsilon_after"] > BUDGET.epsilon
    assert PrivacyLedger(path).remaining_epsilon == 0.0


def test_plans_from_elsewhere_are_rejected(path: Path) -> None:
    ledger = PrivacyLedger.open(path, BUDGET)
    other = PrivacyLedger.open(path.with_name("other.jsonl"), BUDGET)
    plan = other.plan("run-x", Q, 100, 1.0, run_epsilon=1.0)
    with pytest.raises(LedgerError, match="not the one recorded"):
        ledger.charge(plan, 10)


def test_budget_and_hospital_are_fixed_at_creation(path: Path) -> None:
    _spent_ledger(path)
    with pytest.raises(LedgerError, match="fixed at creation.*new ledger file"):
        PrivacyLedger.open(path, PrivacyBudget(epsilon=10.0, delta=1e-5))
    with pytest.raises(LedgerError, match="fixed at creation"):
        PrivacyLedger.open(path, PrivacyBudget(3.0, 1e-5, accountant="prv"))
    with pytest.raises(LedgerError, match="belongs to hospital"):
        PrivacyLedger.open(path, BUDGET, "hospital-b")
    assert PrivacyLedger.open(path, BUDGET, "hospital-a").budget == BUDGET


def _edit_number(lines: list[str]) -> list[str]:
    record = json.loads(lines[2])
    record["steps"] = 1
    return [*lines[:2], json.dumps(record), *lines[3:]]


@pytest.mark.parametrize(
    ("tamper", "line", "reason"),
    [
        (_edit_number, 3, "checksum mismatch"),
        (lambda ls: [ls[0], ls[1], *ls[3:]], 3, "chain broken"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2, "chain broken"),
        (lambda ls: [*ls[:2], "{garbage", *ls[2:]], 3, "not valid JSON"),
        (lambda ls: [*ls[:2], "", *ls[2:]], 3, "not valid JSON"),
        (lambda ls: ls[1:], 1, "expected header"),
    ],
    ids=["edit-number", "delete-middle", "reorder", "garbage", "blank", "no-header"],
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
    st.sampled_from(["plan", "round"]),
    st.floats(0.2, 2.5),  # run epsilon asked
    st.integers(1, 200),  # steps
    st.sampled_from([0.005, 0.01, 0.05]),
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(_action, min_size=1, max_size=8))
def test_budget_is_never_exceeded(actions: list[tuple[str, float, int, float]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.jsonl"
        budget = PrivacyBudget(epsilon=2.0, delta=1e-5)
        ledger = PrivacyLedger.open(path, budget)
        plan = None
        for number, (kind, asked, steps, q) in enumerate(actions):
            try:
                if kind == "plan" or plan is None:
                    plan = ledger.plan(f"run-{number}", q, steps * 3, 1.0, asked)
                ledger.check(plan, steps)
            except BudgetExceededError:
                continue
            ledger.charge(plan, steps)
            ledger = PrivacyLedger(path)  # as a new process would
        assert ledger.spent_epsilon <= budget.epsilon * (1 + 1e-9)
