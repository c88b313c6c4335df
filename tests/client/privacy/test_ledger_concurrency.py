"""The ledger across real OS processes: racing trainers and a crash mid-round."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import pytest

from client.privacy import PrivacyBudget, PrivacyLedger
from shared_models.errors import BudgetExceededError

# Each test spawns fresh interpreters that import torch and opacus (seconds each).
pytestmark = pytest.mark.slow
BUDGET = PrivacyBudget(epsilon=8.0, delta=1e-5)
Q, STEPS = 0.01, 300
ASK = 0.9 * BUDGET.epsilon  # each trainer asks for 90% of the budget
TIMEOUT = 120  # seconds; spawning imports torch and opacus


def _trainer(path: str, run_id: str, barrier: Any, results: Any) -> None:
    """One ``fedcare train`` process: plan, then reserve the whole run at once."""
    ledger = PrivacyLedger.open(Path(path), BUDGET, "hospital-a")  # writes nothing
    barrier.wait()  # both processes create the ledger and plan at the same time
    plan = ledger.plan(run_id, Q, STEPS, 1.0, run_epsilon=ASK)
    barrier.wait()  # ... and reserve at the same time
    try:
        ledger.reserve(plan, STEPS)
    except BudgetExceededError as exc:
        results.put((run_id, "refused", str(exc)))
    else:
        results.put((run_id, "reserved", ""))


def _crashing_trainer(path: str, reserved: Any) -> None:
    """Reserve a round, then hang in "training" until killed (no settle)."""
    ledger = PrivacyLedger.open(Path(path), BUDGET, "hospital-a")
    plan = ledger.plan("crashing", Q, STEPS, 1.0, run_epsilon=ASK)
    ledger.reserve(plan, STEPS)
    reserved.set()
    time.sleep(TIMEOUT)  # "training": the parent kills this process first


def _join(processes: list[Any]) -> None:
    for process in processes:
        process.join(TIMEOUT)
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.kill()
    assert not alive, "a trainer process hung (lock never released?)"


def test_two_processes_cannot_both_reserve_most_of_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "hospital-a" / "privacy.jsonl"
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2, timeout=TIMEOUT), ctx.Queue()
    processes = [
        ctx.Process(target=_trainer, args=(str(path), run_id, barrier, results))
        for run_id in ("run-a", "run-b")
    ]
    for process in processes:
        process.start()
    _join(processes)
    assert [p.exitcode for p in processes] == [0, 0]

    outcomes = sorted(results.get(timeout=5)[1:] for _ in processes)
    ledger = PrivacyLedger.open(path, None)
    assert [o[0] for o in outcomes] == ["refused", "reserved"]
    assert "past the budget" in outcomes[0][1]
    assert [r["type"] for r in ledger.records].count("header") == 1  # created once
    assert sorted(p["run_id"] for p in ledger.plans) == ["run-a", "run-b"]
    assert len(ledger.reserved_open) == 1
    assert ledger.spent_epsilon <= BUDGET.epsilon
    assert ledger.spent_epsilon == pytest.approx(ASK, rel=0.01)


def test_a_crash_after_reserve_leaves_the_reservation_counted(tmp_path: Path) -> None:
    path = tmp_path / "privacy.jsonl"
    ctx = mp.get_context("spawn")
    reserved = ctx.Event()
    process = ctx.Process(target=_crashing_trainer, args=(str(path), reserved))
    process.start()
    try:
        assert reserved.wait(TIMEOUT), "the trainer never reserved"
    finally:
        process.kill()  # SIGKILL: no finally, no settle
        process.join(TIMEOUT)
    assert process.exitcode == -9

    ledger = PrivacyLedger.open(path, None)
    (held,) = ledger.reserved_open
    assert held["run_id"] == "crashing" and held["steps"] == STEPS
    assert ledger.entries == [] and ledger.settled_epsilon == 0.0
    assert ledger.spent_epsilon == pytest.approx(held["epsilon_after"])
    assert ledger.spent_epsilon == pytest.approx(ASK, rel=0.01)
    # The killed process's lock is gone; what it held stays spent.
    with pytest.raises(BudgetExceededError, match="refused before training"):
        ledger.plan("next", Q, STEPS, 1.0, run_epsilon=ASK)
    rest = ledger.plan("next", Q, STEPS, 1.0, run_epsilon=ledger.remaining_epsilon)
    ledger.settle(ledger.reserve(rest, STEPS), STEPS)
    assert ledger.spent_epsilon <= BUDGET.epsilon * (1 + 1e-9)
