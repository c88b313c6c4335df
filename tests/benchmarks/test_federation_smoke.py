"""benchmarks/federation.py: its parsing of Flower's log lines and its tables
(fast, no federation), and a ``--quick`` run (slow). No timing claims."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "federation.py"
sys.path.insert(0, str(ROOT))

from benchmarks.federation_run import split_rounds  # noqa: E402
from benchmarks.federation_tables import summarise  # noqa: E402


def test_rounds_and_phases_come_from_flowers_log_lines() -> None:
    events = [
        (10.0, "[ROUND 1]"),
        (10.1, "configure_fit: strategy sampled 3 clients (out of 3)"),
        (14.0, "aggregate_fit: received 3 results and 0 failures"),
        (14.5, "aggregate_fit: received 3 results and 0 failures"),
        (15.0, "aggregate_evaluate: received 3 results and 0 failures"),
        (15.5, "[ROUND 2]"),
        (18.5, "aggregate_fit: received 3 results and 0 failures"),
        (19.0, "aggregate_fit: received 3 results and 0 failures"),
        (19.5, "aggregate_evaluate: received 3 results and 0 failures"),
        (20.0, "[SUMMARY]"),
    ]

    rounds = split_rounds(events)

    assert [r["round_s"] for r in rounds] == [5.5, 4.5]
    assert rounds[1]["phases_s"] == {
        "fit": 3.0,
        "pool": 0.5,
        "evaluate": 0.5,
        "after_evaluate": 0.5,
    }


def _row(n: int, secagg: bool, round_s: float) -> dict:
    timing = {"round_s": round_s, "train_max_s": 1.0, "train_sum_s": float(n),
              "phases_s": {"fit": round_s}, "secagg_stage_marks_s": []}  # fmt: skip
    return {
        "hospitals": n, "secagg": secagg, "status": "ok", "num_cpus": 2,
        "client_cpus": 1.0, "loadavg_before": [1.0, 1.0, 1.0], "wall_s": 9.0,
        "memory": {"peak_tree_pss_mb": 1000.0 + 10 * n, "ray_worker_hwm_mb": [400.0]},
        "rounds": [{**timing, "round_s": 2 * round_s}, timing],
    }  # fmt: skip


def test_summary_ratios_goals_and_extrapolation() -> None:
    result = {"rows": [_row(5, False, 4.0), _row(5, True, 5.0),
                       _row(10, False, 8.0), _row(10, True, 8.0)]}  # fmt: skip

    summary = summarise(result)

    assert summary["secagg_ratio"] == {"5": 1.25, "10": 1.0}
    plain10 = next(r for r in summary["rows"] if r == summary["rows"][2])
    assert plain10["round_s"] == 8.0  # the steady round, not the cold one
    assert plain10["overhead"] == 1 - 1.0 / 8.0
    assert plain10["ideal_round_s"] == 5.0  # 10 s of training on 2 slots
    assert summary["goals"]["largest_completed"] == 10
    assert summary["extrapolation"]["memory_per_hospital_mb"] == 10.0
