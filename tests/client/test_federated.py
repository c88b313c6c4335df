"""A hospital's part of a federated run, without Flower: node settings, fit, decline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from client.errors import ConfigError
from client.federated import Hospital, NodeSettings
from client.privacy import PrivacyLedger
from server.config import RunConfig
from simulation.cohorts import write_hospital

RUN = RunConfig(num_server_rounds=2, batch_size=256, run_epsilon=2.0)


@pytest.fixture(scope="module")
def ecg_hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hospital(
        tmp_path_factory.mktemp("fed_hospital"), 1, seed=0, scale=0.2, kinds=("ecg",)
    )


def _settings(data: Path, ledger: Path, **extra: object) -> NodeSettings:
    node = {
        "hospital-id": "h1",
        "data-path": str(data),
        "ledger-path": str(ledger),
        "epsilon": 8.0,
        **extra,
    }
    return NodeSettings.from_node_config(node)


# -- node settings ---------------------------------------------------------------------


def test_node_config_is_read_with_defaults() -> None:
    settings = NodeSettings.from_node_config(
        {"hospital-id": 3, "data-path": "/d", "ledger-path": "/l.jsonl", "epsilon": "4"}
    )

    assert settings == NodeSettings("3", Path("/d"), Path("/l.jsonl"), 4.0, 1e-5, None)


def test_missing_node_keys_are_listed_with_an_example() -> None:
    with pytest.raises(
        ConfigError, match=r"lacks \['ledger-path', 'epsilon'\].*--node-config"
    ):
        NodeSettings.from_node_config({"hospital-id": "h", "data-path": "/d"})


def test_simulated_partition_selects_its_entry_of_the_hospitals_file(
    tmp_path: Path,
) -> None:
    entries = [
        {
            "hospital-id": f"h{i}",
            "data-path": f"/d{i}",
            "ledger-path": f"/l{i}",
            "epsilon": 1.0,
            "run-epsilon": 0.5,
        }
        for i in range(2)
    ]
    hospitals = tmp_path / "hospitals.json"
    hospitals.write_text(json.dumps(entries))

    settings = NodeSettings.from_node_config({"partition-id": 1}, str(hospitals))

    assert (settings.hospital_id, settings.data_path, settings.run_epsilon) == (
        "h1",
        Path("/d1"),
        0.5,
    )
    with pytest.raises(ConfigError, match="partition-id 2 has no entry"):
        NodeSettings.from_node_config({"partition-id": 2}, str(hospitals))
    with pytest.raises(ConfigError, match="no run-config hospitals-file"):
        NodeSettings.from_node_config({"partition-id": 0})


# -- fit, decline, evaluate ------------------------------------------------------------


def test_fit_trains_charges_the_ledger_and_keeps_the_plan(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "h1.jsonl"
    hospital = Hospital(_settings(ecg_hospital, ledger_path), RUN)
    start = hospital.initial_weights()

    weights, examples, metrics = hospital.fit(start, 1, "run-a")
    ledger = PrivacyLedger.open(ledger_path, None)
    plan = ledger.plans[0]
    later = hospital._private_run(
        "run-a", examples
    )  # round 2 asks for the same run's plan
    replanned = later.ledger.plan(
        "run-a", sample_rate=0.5, planned_steps=1, max_grad_norm=2.0
    )

    assert examples > 0 and metrics["declined"] == "" and metrics["steps"] >= 1
    assert any(not np.array_equal(a, b) for a, b in zip(weights, start, strict=True))
    assert [p["run_id"] for p in ledger.plans] == ["run-a"] and len(ledger.entries) == 1
    assert plan["planned_steps"] == metrics["steps"] * RUN.num_server_rounds
    assert plan["target_epsilon"] == pytest.approx(RUN.run_epsilon)
    assert replanned.noise_multiplier == plan["noise_multiplier"]  # calibrated once
    assert len(PrivacyLedger.open(ledger_path, None).plans) == 1
    assert 0 < metrics["epsilon-spent"] == ledger.spent_epsilon < RUN.run_epsilon


def test_exhausted_budget_declines_without_training_or_charging(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "h1.jsonl"
    settings = _settings(ecg_hospital, ledger_path)
    ledger = PrivacyLedger.open(ledger_path, Hospital(settings, RUN)._ledger().budget)
    plan = ledger.plan(
        "elsewhere",
        sample_rate=0.1,
        planned_steps=100,
        max_grad_norm=1.0,
        run_epsilon=ledger.remaining_epsilon,
    )
    ledger.charge(plan, 100)
    before = PrivacyLedger.open(ledger_path, None).records
    hospital = Hospital(settings, RUN)
    start = hospital.initial_weights()

    weights, examples, metrics = hospital.fit(start, 1, "run-b")

    assert examples == 0
    assert weights is start
    assert metrics["declined"].startswith(
        "privacy budget: Run 'run-b' refused before training"
    )
    assert metrics["epsilon-spent"] == pytest.approx(8.0, rel=0.01)
    assert PrivacyLedger.open(ledger_path, None).records == before


def test_node_run_epsilon_caps_the_run_share(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "h1.jsonl"
    hospital = Hospital(
        _settings(ecg_hospital, ledger_path, **{"run-epsilon": 0.5}), RUN
    )

    private = hospital._private_run("run-c", 100)

    assert private is not None and private.run_epsilon == 0.5
    assert private.planned_steps == 1 * RUN.num_server_rounds  # 100 examples, batch 256


def test_without_dp_there_is_no_ledger(ecg_hospital: Path, tmp_path: Path) -> None:
    hospital = Hospital(
        _settings(ecg_hospital, tmp_path / "h1.jsonl"),
        RunConfig(dp=False, batch_size=256),
    )

    assert hospital._private_run("r", 100) is None
    assert hospital._budget_metrics() == {}
    assert not (tmp_path / "h1.jsonl").exists()


def test_evaluate_sends_histograms_not_scores(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    hospital = Hospital(_settings(ecg_hospital, tmp_path / "h1.jsonl"), RUN)

    loss, examples, metrics = hospital.evaluate(hospital.initial_weights())

    assert np.isfinite(loss) and examples == len(hospital.prepared.test)
    test = np.asarray(json.loads(metrics["test-histogram"]))
    assert test.shape == (2, 400) and test.sum() == examples
    assert test[1].sum() == int(np.sum(hospital.prepared.test.y))
    assert set(metrics) == {
        "hospital-id",
        "val-histogram",
        "test-histogram",
        "local-threshold",
    }
