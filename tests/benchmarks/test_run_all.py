"""``make bench`` (benchmarks/run_all.py): the tables merge runs; one ``--quick``
run (slow) checks every benchmark's JSON and the regenerated docs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "run_all.py"
sys.path.insert(0, str(ROOT))

from benchmarks import dp_overhead, federation_tables, utility_tables  # noqa: E402

KEYS = {"task", "arm", "privacy_unit", "epsilon", "seeds", "pooled_auroc_mean",
        "pooled_auroc_sd"}  # fmt: skip


def _fed_row(n: int, secagg: bool, round_s: float) -> dict:
    timing = {"round_s": round_s, "train_max_s": 1.0, "train_sum_s": 10.0,
              "phases_s": {"fit": round_s}, "secagg_stage_marks_s": []}  # fmt: skip
    return {
        "hospitals": n, "secagg": secagg, "dp": True, "status": "ok", "num_cpus": 2,
        "client_cpus": 1.0, "loadavg_before": [1.0, 1.0, 1.0], "wall_s": 9.0,
        "memory": {"peak_tree_pss_mb": 1000.0 + 10 * n, "ray_worker_hwm_mb": [400.0]},
        "rounds": [{**timing, "round_s": 2 * round_s}, timing],
    }  # fmt: skip


def _fed_result(created: str, rows: list[dict], search: list[dict]) -> dict:
    machine = {"cpu_count": 2, "mem_total_gb": 24, "flwr": "1.42", "ray": "2",
               "loadavg_at_start": [1.0] * 3, "loadavg_at_end": [1.0] * 3}  # fmt: skip
    return {"created": created, "command": f"run of {created}", "machine": machine,
            "rows": rows, "scale_search": search}  # fmt: skip


def test_federation_runs_merge_a_later_row_over_an_earlier_one() -> None:
    old = _fed_result(
        "2026-12-03T00:00:00+00:00",
        [_fed_row(10, False, 8.0), _fed_row(50, False, 30.0)],
        [_fed_row(100, False, 40.0)],
    )
    new = _fed_result("2026-12-04T00:00:00+00:00", [_fed_row(10, False, 4.0)], [])
    merged = federation_tables.merge([old, new])
    rows = {r["hospitals"]: r for r in merged["summary"]["rows"]}
    assert rows[10]["round_s"] == 4.0 and rows[10]["measured"] == "2026-12-04"
    assert rows[50]["round_s"] == 30.0 and rows[50]["measured"] == "2026-12-03"
    # the scale search was not re-run: the earlier one stays, with its date
    assert [r["measured"] for r in merged["scale_search"]] == ["2026-12-03"]
    text = federation_tables.block(merged)
    assert "| 10 | off | ok |" in text and "| 2026-12-04 |" in text


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``make bench-quick`` (3 steps at CI's smoke size), results in a temp dir."""
    results = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, str(SCRIPT), "--quick", "--results", str(results)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # --quick regenerates copies, never the committed docs (whose tables would
    # name this run's temp folder in their commands)
    for committed in (ROOT / "docs/benchmarks.md", ROOT / "README.md"):
        assert str(results) not in committed.read_text(), committed
    return results


def _one(results: Path, pattern: str) -> dict:
    (path,) = results.glob(pattern)
    return json.loads(path.read_text())


@pytest.mark.slow
def test_quick_bench_runs_every_step_and_regenerates_every_table(quick: Path) -> None:
    summary = _one(quick, "bench-*-quick.json")
    assert [s["name"] for s in summary["steps"]] == ["dp_overhead", "federation",
                                                     "utility"]  # fmt: skip
    assert all(s["exit_code"] == 0 and s["seconds"] > 0 for s in summary["steps"])
    assert summary["total_s"] >= sum(s["seconds"] for s in summary["steps"]) - 1
    docs = (quick / "benchmarks.md").read_text()
    for begin in (dp_overhead.BEGIN, federation_tables.BEGIN, utility_tables.BEGIN):
        assert docs.count(begin) == 1, begin
    readme = (quick / "README.md").read_text()
    assert readme.count(utility_tables.HEADLINE_BEGIN) == 1
    assert "| patient-level, ε = 8 |" in readme  # the quick run's guarantee
    manifest = json.loads((quick / "tables.json").read_text())
    assert set(manifest) == {"dp_overhead", "federation", "utility"}


@pytest.mark.slow
def test_quick_dp_overhead_measures_every_model(quick: Path) -> None:
    result = _one(quick, "dp_overhead_*.json")
    modes = {(r["model"], r["mode"]): r for r in result["rows"]}
    assert {m for m, _ in modes} == set(dp_overhead.MODELS)
    for (_, mode), row in modes.items():
        assert row["status"] == "ok", row
        if mode != "plain":
            assert row["slowdown_vs_plain"] > 0


@pytest.mark.slow
def test_quick_federation_writes_consistent_json(quick: Path) -> None:
    result = _one(quick, "federation-*.json")
    assert result["schema"] == "fedcare.benchmarks.federation/1"
    assert len(result["machine"]["loadavg_at_start"]) == 3
    rows = result["summary"]["rows"]
    assert [(r["hospitals"], r["secagg"]) for r in rows] == [(3, False), (3, True)]
    for row in rows:
        assert row["status"] == "ok", row
        assert row["round_s"] > 0 and row["train_max_s"] > 0
        assert row["peak_tree_pss_mb"] > 0 and row["ray_workers_peak"] >= 1
    assert result["summary"]["secagg_ratio"]["3"] > 0


@pytest.mark.slow
def test_quick_utility_writes_every_arm(quick: Path) -> None:
    report = _one(quick, "utility-*.json")
    arms = {(r["arm"], r["privacy_unit"]) for r in report["rows"]}
    assert {("federated", "patient"), ("local_only", "patient"),
            ("single_hospital", "patient"), ("centralized", "none"),
            ("federated", "none")} <= arms  # fmt: skip
    for row in report["rows"]:
        assert KEYS <= set(row) and row["seeds"] == 1
        for value in row["pooled_auroc_values"]:
            assert 0.0 <= value <= 1.0
