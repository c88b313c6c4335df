"""A hospital's part of a federated run, without Flower: node settings, fit, decline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from client.federated import DECLINED_BUDGET, Hospital, NodeSettings
from client.policy import GENERIC_REFUSAL, HospitalPolicy
from client.privacy import PrivacyLedger
from shared_models import wire
from shared_models.errors import ConfigError, PolicyError
from shared_models.run_config import RunConfig
from simulation.cohorts import write_hospital

# epochs of batches of 256 (local-steps 0), not the recipe's steps
RUN = RunConfig(num_server_rounds=2, batch_size=256, run_epsilon=2.0, local_steps=0)


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

    assert settings == NodeSettings(
        "3", Path("/d"), Path("/l.jsonl"), 4.0, 1e-5, HospitalPolicy()
    )
    assert settings.policy.require_dp and settings.policy.require_secagg
    assert settings.policy.privacy_unit == "patient"


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
            "max-run-epsilon": 0.5,
        }
        for i in range(2)
    ]
    hospitals = tmp_path / "hospitals.json"
    hospitals.write_text(json.dumps(entries))

    settings = NodeSettings.from_node_config({"partition-id": 1}, str(hospitals))

    assert (
        settings.hospital_id,
        settings.data_path,
        settings.policy.max_run_epsilon,
    ) == (
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
    fit = hospital.task.fit_arrays(hospital.prepared)
    later = hospital._private_run("run-a", fit)  # round 2 asks for the same plan
    replanned = later.ledger.plan(
        "run-a",
        sample_rate=0.5,
        planned_steps=1,
        max_grad_norm=2.0,
        run_epsilon=RUN.run_epsilon,
        privacy_unit="patient",
    )

    assert examples > 0 and metrics["declined"] == "" and metrics["steps"] >= 1
    assert any(not np.array_equal(a, b) for a, b in zip(weights, start, strict=True))
    assert [p["run_id"] for p in ledger.plans] == ["run-a"] and len(ledger.entries) == 1
    assert plan["planned_steps"] == metrics["steps"] * RUN.num_server_rounds
    assert plan["target_epsilon"] == pytest.approx(RUN.run_epsilon)
    assert replanned.noise_multiplier == plan["noise_multiplier"]  # calibrated once
    assert len(PrivacyLedger.open(ledger_path, None).plans) == 1
    assert 0 < metrics["epsilon-spent"] == ledger.spent_epsilon < RUN.run_epsilon
    # the ledger's head after this round's spend, for the round's audit record
    assert metrics["ledger-head"] == wire.ledger_commitment(
        ledger.records[-1]["hash"], "run-a", 1
    )


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
        privacy_unit="patient",
    )
    ledger.settle(ledger.reserve(plan, 100), 100)
    before = PrivacyLedger.open(ledger_path, None).records
    hospital = Hospital(settings, RUN)
    start = hospital.initial_weights()

    weights, examples, metrics = hospital.fit(start, 1, "run-b")

    assert examples == 0
    assert weights is start
    # generic for the aggregator: no spent epsilon, budget or ledger path
    assert metrics["declined"] == DECLINED_BUDGET
    assert str(ledger_path) not in metrics["declined"]
    assert metrics["epsilon-spent"] == pytest.approx(8.0, rel=0.01)
    assert PrivacyLedger.open(ledger_path, None).records == before
    # a decline still sends a ledger head, and one of this round: the unchanged
    # ledger does not show (under SecAgg+ a decline looks like a contribution)
    _, _, again = hospital.fit(start, 2, "run-b")
    assert wire.clear_metrics(metrics)["ledger-head"] == wire.ledger_commitment(
        before[-1]["hash"], "run-b", 1
    )
    assert again["ledger-head"] != metrics["ledger-head"]


def test_node_run_epsilon_caps_the_run_share(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "h1.jsonl"
    hospital = Hospital(
        _settings(ecg_hospital, ledger_path, **{"max-run-epsilon": 0.5}), RUN
    )

    private = hospital._private_run(
        "run-c", hospital.task.fit_arrays(hospital.prepared)
    )

    assert private is not None and private.run_epsilon == 0.5
    # fewer patients than the batch of 256: one step per round
    assert private.planned_steps == 1 * RUN.num_server_rounds
    assert private.privacy_unit == "patient"
    with pytest.raises(ConfigError, match="renamed max-run-epsilon"):
        _settings(ecg_hospital, ledger_path, **{"run-epsilon": 0.5})


def test_without_dp_there_is_no_ledger(ecg_hospital: Path, tmp_path: Path) -> None:
    hospital = Hospital(
        _settings(ecg_hospital, tmp_path / "h1.jsonl"),
        RunConfig(dp=False, batch_size=256),
    )

    assert hospital._private_run("r", hospital.prepared.train) is None
    assert hospital._budget_metrics("run-a", 1) == {}
    assert not (tmp_path / "h1.jsonl").exists()


def test_pool_sums_are_histograms_not_scores(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    hospital = Hospital(_settings(ecg_hospital, tmp_path / "h1.jsonl"), RUN)

    sums = hospital.pool(hospital.initial_weights())

    assert set(sums) == {"val-histogram", "test-histogram"}
    test = sums["test-histogram"]
    assert test.shape == (2, 400) and test.sum() == len(hospital.prepared.test)
    assert test[1].sum() == int(np.sum(hospital.prepared.test.y))


def test_own_metrics_at_the_pooled_threshold_stay_in_the_local_report(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    from shared_models import pooled

    hospital = Hospital(_settings(ecg_hospital, tmp_path / "h1.jsonl"), RUN)
    weights = hospital.initial_weights()
    test = hospital.pool(weights)["test-histogram"]

    loss, examples, metrics = hospital.evaluate(weights, 200, 3, "run-a")

    assert np.isfinite(loss) and examples == len(hospital.prepared.test)
    assert metrics == {"hospital-id": "h1", **pooled.summary(test, 200, "binary")}
    report = json.loads(
        (tmp_path / "fedcare-reports" / "h1" / "run-a.json").read_text()
    )
    assert report["evaluation"]["3"]["f1"] == metrics["f1"]
    assert report["hospital_id"] == "h1"


# -- the hospital's policy -------------------------------------------------------------


def test_a_run_config_cannot_turn_dp_off(
    ecg_hospital: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger_path = tmp_path / "h1.jsonl"
    hospital = Hospital(
        _settings(ecg_hospital, ledger_path), RunConfig(dp=False, batch_size=256)
    )
    start = hospital.initial_weights()

    with pytest.raises(PolicyError) as refused:
        hospital.fit(start, 1, "run-d")

    assert str(refused.value) == GENERIC_REFUSAL  # all the aggregator learns
    assert "require-dp = true" in caplog.text  # the hospital's own log says why
    assert not ledger_path.exists()


def test_the_split_is_the_hospitals_not_the_runs(
    ecg_hospital: Path, tmp_path: Path
) -> None:
    def train_groups(run: RunConfig, **node: object) -> set[str]:
        hospital = Hospital(_settings(ecg_hospital, tmp_path / "l.jsonl", **node), run)
        return set(hospital.prepared.train.groups.astype(str))

    base = train_groups(RunConfig(seed=0))
    assert train_groups(RunConfig(seed=12345)) == base  # the server's seed: ignored
    assert train_groups(RunConfig(seed=0), **{"split-seed": 7}) != base


def test_the_policy_caps_the_run_epsilon_and_sets_the_unit() -> None:
    policy = HospitalPolicy.from_node_config(
        {"max-run-epsilon": "1.5", "privacy-unit": "example", "require-secagg": "false"}
    )
    assert policy.run_epsilon(4.0) == 1.5 and policy.run_epsilon(1.0) == 1.0
    assert policy.privacy_unit == "example" and not policy.require_secagg
    with pytest.raises(ConfigError, match="min-secagg-hospitals = 1"):
        HospitalPolicy(min_secagg_hospitals=1)
    with pytest.raises(ConfigError, match="privacy unit 'visit'"):
        HospitalPolicy.from_node_config({"privacy-unit": "visit"})
