"""A hospital killed mid-training, and a round retried after the aggregator
crashed: the ledger charges each round once, and the hospital rejoins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from client import round_cache
from client.federated import Hospital
from client.privacy import PrivacyLedger
from shared_models.run_config import RunConfig
from simulation.cohorts import write_hospital
from tests.client.hospital_node import hospital

RUN = RunConfig(num_server_rounds=2, batch_size=256, run_epsilon=2.0)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ecg_hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hospital(
        tmp_path_factory.mktemp("crash_hospital"), 1, seed=0, scale=0.2, kinds=("ecg",)
    )


def _hospital(data: Path, ledger: Path) -> Hospital:
    return hospital(data, ledger, RUN)


def _killed_in_round(data: Path, ledger: Path, server_round: int) -> int:
    """Run round ``server_round`` in a child process SIGKILLed right after its
    reservation, as training starts; returns the child's exit status."""
    code = textwrap.dedent(
        f"""
        import os, signal
        from client.privacy import engine
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        engine.PrivateSession.make_private = die
        from tests.client.test_crash_retry import _hospital
        from pathlib import Path
        h = _hospital(Path({str(data)!r}), Path({str(ledger)!r}))
        h.fit(h.initial_weights(), {server_round}, "run-a")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env).returncode


def _run_steps(ledger: PrivacyLedger) -> list[int]:
    return [int(e["steps"]) for e in ledger.entries if e["run_id"] == "run-a"]


def test_killed_mid_training_leaves_its_reservation_counted(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "h1.jsonl"

    status = _killed_in_round(ecg_hospital, ledger_path, 1)
    ledger = PrivacyLedger.open(ledger_path, None)

    assert status == -9
    [held] = ledger.reserved_open
    assert held["note"] == "round 1" and held["holder"]["pid"] > 0
    assert ledger.settled_epsilon == 0 < ledger.spent_epsilon  # counted in full


def test_killed_hospital_rejoins_and_each_round_is_charged_once(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "h1.jsonl"
    hospital = _hospital(ecg_hospital, ledger_path)
    start = hospital.initial_weights()
    _, _, first = hospital.fit(start, 1, "run-a")
    assert _killed_in_round(ecg_hospital, ledger_path, 2) == -9

    weights, examples, second = hospital.fit(start, 2, "run-a")  # the retry
    ledger = PrivacyLedger.open(ledger_path, None)

    per_round = first["steps"]
    assert examples > 0 and second["declined"] == "" and second["steps"] == per_round
    assert ledger.reserved_open == []
    # round 1, the dead process's reservation released (0 steps), round 2
    assert _run_steps(ledger) == [per_round, 0, per_round]
    assert "released: holder pid" in ledger.entries[1]["note"]
    assert sum(_run_steps(ledger)) == ledger.plans[0]["planned_steps"]
    assert ledger.spent_epsilon <= RUN.run_epsilon * (1 + 1e-9)


def test_a_live_holders_reservation_is_not_released(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "h1.jsonl"
    hospital = _hospital(ecg_hospital, ledger_path)
    hospital.fit(hospital.initial_weights(), 1, "run-a")
    ledger = PrivacyLedger.open(ledger_path, None)
    plan = ledger.plans[0]
    from client.privacy.budget import SpendPlan

    ledger.reserve(SpendPlan.from_dict(plan), 1, note="round 2")  # this process

    assert ledger.release_abandoned("run-a", "round 2") == []
    assert ledger.release_abandoned("run-a", "round 3") == []
    assert len(PrivacyLedger.open(ledger_path, None).reserved_open) == 1


def test_retried_round_resends_its_update_without_a_new_charge(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    # The aggregator crashed after the hospital trained round 1: the resumed
    # run sends round 1 again, from the same global model.
    ledger_path = tmp_path / "h1.jsonl"
    hospital = _hospital(ecg_hospital, ledger_path)
    start = hospital.initial_weights()
    weights, examples, metrics = hospital.fit(start, 1, "run-a")
    spent = PrivacyLedger.open(ledger_path, None).spent_epsilon

    again, examples_again, metrics_again = hospital.fit(start, 1, "run-a")
    ledger = PrivacyLedger.open(ledger_path, None)

    assert examples_again == examples and metrics_again["steps"] == metrics["steps"]
    for a, b in zip(again, weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(_run_steps(ledger)) == 1 and ledger.spent_epsilon == spent
    assert set(metrics_again) == set(metrics)  # the same reply fields
    assert oct(round_cache.cache_path(ledger_path).stat().st_mode)[-3:] == "600"


def test_another_start_model_is_trained_not_resent(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "h1.jsonl"
    hospital = _hospital(ecg_hospital, ledger_path)
    start = hospital.initial_weights()
    weights, _, _ = hospital.fit(start, 1, "run-a")

    hospital.fit(weights, 2, "run-a")

    assert len(_run_steps(PrivacyLedger.open(ledger_path, None))) == 2
