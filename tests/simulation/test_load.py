"""Load: 20 hospitals x 5 rounds, DP + SecAgg+, on Flower's Simulation Engine.

``fedcare simulate`` is run as a user runs it (a subprocess), made cheap so
the time goes to the protocol: 10 patients per hospital (``--scale 0.05``),
one local epoch, one patient per expected DP step (``--batch-size 1``: a
small sample rate keeps the RDP noise calibration at ~1 s per hospital, where
the recipe's half-of-the-patients takes ~6 s), no baselines. It asserts the
run completed its 5 rounds with every hospital in every round, that each round
recorded its ``resources`` (``RUN/history.json``: fit and round seconds, the
ServerApp process's peak RSS), and writes what it measured, with the summed
RSS of the whole process tree (driver + Ray workers) sampled each second, to
``benchmarks/results/load-simulation-<date>.json`` (docs/reliability.md, "Load").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from load_probe import TreeMemory, machine, rounds_table, write_results

from client.privacy import PrivacyLedger

# Measured 379 s (2026-12-04, 2 cores shared with other test runs, load 15-18);
# the 4-minute aim is for an idle machine, not measured there yet.
pytestmark = pytest.mark.slow

HOSPITALS, ROUNDS = 20, 5
BIN = Path(sys.executable).parent
ARGS = [
    "simulate", "--hospitals", str(HOSPITALS), "--rounds", str(ROUNDS),
    "--scale", "0.05", "--local-epochs", "1", "--batch-size", "1",
    "--no-baselines", "--num-cpus", "2", "--format", "json", "--overwrite",
]  # fmt: skip


def test_twenty_hospitals_five_rounds_secagg_dp(tmp_path: Path) -> None:
    out = tmp_path / "run"
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "fedcare"), *ARGS, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with TreeMemory([proc.pid]) as tree:
        stdout, stderr = proc.communicate(timeout=1800)
    took = time.monotonic() - start
    assert proc.returncode == 0, stderr[-4000:]

    history = json.loads((out / "history.json").read_text())
    rounds = history["rounds"]
    names = sorted(d.name for d in (out / "cohort").iterdir() if d.is_dir())
    assert len(names) == HOSPITALS
    assert [r["round"] for r in rounds] == list(range(1, ROUNDS + 1))
    peaks = []
    for record in rounds:
        assert record["participating"] == names, record["round"]
        assert record["dropped"] == [] and record["failures"] == [], record
        assert record["evaluation"]["pooled_from"] == names
        spent = record["resources"]
        assert 0 < spent["fit_s"] < spent["round_s"] < took, spent
        peaks.append(spent["server_peak_rss_mib"])
    assert 0 < peaks[0] and peaks == sorted(peaks)  # a peak never falls
    summary = json.loads(stdout)
    assert summary["privacy"]["dp"] and summary["privacy"]["secagg"]
    for name in names:  # DP: every ledger was charged once per round
        ledger = PrivacyLedger.open(out / "ledgers" / f"{name}.jsonl", None)
        assert len(ledger.entries) == ROUNDS and ledger.spent_epsilon > 0, name

    table = rounds_table(history)
    path = write_results(
        "load-simulation",
        {
            "command": "fedcare " + " ".join(ARGS) + " --out RUN",
            "engine": "simulation (Ray, 2 CPUs)",
            "hospitals": HOSPITALS,
            "rounds": ROUNDS,
            "secagg": True,
            "dp": True,
            "wall_s": round(took, 1),
            "timings": summary["timings"],
            "round_s": [r["round_s"] for r in table],
            "server_peak_rss_mib": peaks[-1],
            "process_tree_peak_rss_mib": tree.peak_mib,
            "process_tree_processes_at_peak": tree.peak_processes,
            "per_round": table,
            "machine_after": machine(),
        },
    )
    print(f"{path}: {took:.0f} s, round_s {[r['round_s'] for r in table]}, "
          f"ServerApp peak {peaks[-1]} MiB, tree peak {tree.peak_mib} MiB")  # fmt: skip
