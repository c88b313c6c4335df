"""Crash trials in CI: ``fedcare simulate`` SIGKILLed at two fixed points,
``--resume``d, checked by the very code of ``benchmarks/crash_trials.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import crash_trials
from benchmarks.crash_observe import classify
from benchmarks.crash_tables import BEGIN, END, crash_table

# Fixed kill points (no calibration: kill as soon as the phase's event shows).
TARGETS = {
    # a hospital's reservation of round 2 open: inside its DP steps
    "training of round 2": {"phase": "training", "round": 2, "delay_s": 0.0},
    # round 1 audited (aggregated and checkpointed), not yet evaluated
    "evaluation of round 1": {"phase": "evaluation", "round": 1, "delay_s": 0.0},
}


@pytest.mark.slow  # 77 s + 70 s measured at load 1-3; 448 s + 236 s at load 16-27
@pytest.mark.parametrize("name", list(TARGETS))
def test_killed_run_resumes_exactly(name: str, tmp_path: Path) -> None:
    args = crash_trials.parse_args(
        ["--rounds", "2", "--work", str(tmp_path), "--timeout", "600",
         "--output", str(tmp_path / "out.json")]
    )  # fmt: skip
    target = {**TARGETS[name], "seed": None}

    result = crash_trials.one_trial(args, 0, target)

    assert result["kill_point"] == {
        "phase": target["phase"], "round": target["round"]
    }, result["before_resume"]  # fmt: skip
    assert result["resume"]["exit"] == 0, result["resume"]
    failed = {c: v for c, v in result["checks"].items() if not v["ok"]}
    assert not failed, failed
    assert result["ok"]
    if target["phase"] == "evaluation":
        assert result["checks"]["evaluations"]["killed_round_evaluated"] is True
    table = crash_table({"trials": [result], "summary": {}}, "x.json")
    assert table.startswith(BEGIN) and table.endswith(END) and "| pass |" in table


def test_classify_reads_phases_from_the_events() -> None:
    base = {"audited": [], "evaluated": [], "reserved": {}, "open": {}}
    assert classify(base, 3, 3) == {"phase": "startup", "round": None}
    training = {**base, "reserved": {1: 3}, "open": {1: 1}}
    assert classify(training, 3, 3) == {"phase": "training", "round": 1}
    partial = {**base, "reserved": {1: 2}}  # a hospital not yet started
    assert classify(partial, 3, 3) == {"phase": "training", "round": 1}
    settled = {**base, "reserved": {1: 3}}
    assert classify(settled, 3, 3) == {"phase": "aggregation", "round": 1}
    evaluating = {**settled, "audited": [1]}
    assert classify(evaluating, 3, 3) == {"phase": "evaluation", "round": 1}
    between = {**evaluating, "evaluated": [1]}
    assert classify(between, 3, 3) == {"phase": "between rounds", "round": 1}
    done = {**base, "audited": [1, 2, 3], "evaluated": [1, 2, 3]}
    assert classify(done, 3, 3) == {"phase": "after the last round", "round": 3}


def test_plan_targets_aims_most_kills_inside_a_round() -> None:
    targets = crash_trials.plan_targets(15, 3, 0, {"reserve 2": 10.0})
    phases = [t["phase"] for t in targets]
    assert phases.count("training") == 9 and phases.count("evaluation") == 3
    assert phases.count("between rounds") == 2 and phases.count("startup") == 1
    for t in targets:
        assert 0.1 <= t["fraction"] <= 0.9
        want = round(t["fraction"] * 10.0, 2) if t["round"] == 2 else 0.0
        assert t["delay_s"] == (want if t["phase"] == "training" else 0.0)
    assert targets == crash_trials.plan_targets(15, 3, 0, {"reserve 2": 10.0})
