"""Load: 20 SuperNodes on loopback, 5 rounds, DP + SecAgg+, TLS (Deployment Engine).

The consortium is provisioned and started as in ``test_loopback_e2e.py``
(``tests/loopback_world.py``: real ``flower-superlink`` behind nginx with the
consortium CA and node authentication, one ``flower-supernode`` and one
``fedcare-superexec`` per hospital), with 20 hospitals of 10 patients each.
``flwr run`` of the approved release runs 5 rounds, cheap as the simulation's
load test is (one local epoch, one patient per expected DP step), so the time
goes to the protocol and to Flower's process per task (each ClientApp task is
a new ``fedcare-clientapp`` process that imports the app).

Measured and written to ``benchmarks/results/load-loopback-<date>.json``: the
SuperNodes' start-up time, each round's ``resources`` (``RUN/history.json``:
fit and round seconds, the ServerApp process's peak RSS), the SuperLink
process's peak RSS (VmHWM of /proc/PID/status: the ServerApp cannot see the
SuperLink's memory), and the summed RSS of the operator's processes
(SuperLink, its SuperExec and ServerApp) and of the whole consortium, sampled
each second.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from load_probe import TreeMemory, machine, peak_rss_mib, rounds_table, write_results
from loopback_world import (
    NAME,
    Consortium,
    Proc,
    cmdline,
    flwr_run,
    provision,
    start_superlink,
    start_supernodes,
)

from client.privacy import PrivacyLedger

# On 2026-12-04 round 1 stalled on the SuperLink's SQLite lock; on the
# in-memory state it passed on 2026-12-06 in 4890 s, 891-987 s a round at
# load 30-34 on 2 cores (docs/reliability.md, "Load").
pytestmark = [
    pytest.mark.slow,
    # Far over the CI's budget on 2 cores (docs/reliability.md, "Load"): run
    # it on purpose, with FEDCARE_LOAD_LOOPBACK=1.
    pytest.mark.skipif(
        os.environ.get("FEDCARE_LOAD_LOOPBACK") != "1",
        reason="20 SuperNodes x 5 rounds takes tens of minutes on 2 cores; "
        "set FEDCARE_LOAD_LOOPBACK=1 to run it",
    ),
]

HOSPITALS = tuple(f"h{i:02d}" for i in range(1, 21))
ROUNDS = 5
TRAINING = {"local-epochs": "1", "batch-size": "1", "secagg-timeout": "900.0"}
RUN_TIMEOUT = float(os.environ.get("FEDCARE_LOAD_TIMEOUT", "7200"))


@pytest.fixture(scope="module")
def twenty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    c = provision(tmp_path_factory.mktemp("load"), HOSPITALS, scale=0.05)
    try:
        # Flower's in-memory state: with 20 SuperNodes polling, the SQLite
        # file's write lock stalled round 1 ("database is locked",
        # docs/reliability.md, "Load"); the protocol, not the disk, is measured
        start_superlink(c, database=":flwr-in-memory:")
        start_supernodes(c, online_timeout=600.0)
        yield c
    finally:
        c.stop()


def _measured(c: Consortium, history: dict, took: float, peaks: dict) -> dict:
    table = rounds_table(history)
    last = history["rounds"][-1].get("resources", {}) if history["rounds"] else {}
    return {
        "command": (
            "FEDCARE_LOAD_LOOPBACK=1 pytest tests/deploy_e2e/test_loopback_load.py "
            "(flwr run, run config: num-server-rounds=5 "
            + " ".join(f"{k}={v}" for k, v in TRAINING.items())
            + ")"
        ),
        "engine": "deployment (SuperLink + 20 SuperNodes on loopback, TLS)",
        "hospitals": len(HOSPITALS),
        "rounds": ROUNDS,
        "rounds_completed": sum("round_s" in r for r in table),
        "secagg": True,
        "dp": True,
        "supernodes_online_s": round(c.nodes_online_s, 1),
        "run_wall_s": round(took, 1),
        "round_s": [r["round_s"] for r in table if "round_s" in r],
        "serverapp_peak_rss_mib": last.get("server_peak_rss_mib"),
        **peaks,
        "per_round": table,
        "machine_after": machine(),
    }


def _status(c: Consortium, proc: Proc, deadline: float) -> str:
    """The run's status at the SuperLink once finished (or at ``deadline``)."""
    found = re.search(r"Successfully started run (\d+)", proc.text())
    if not found:
        return ""
    status = ""
    while True:
        try:  # the machine may be too busy to answer in time: ask again
            done = c.flwr("ls", NAME, "--run-id", found.group(1), "--format", "json")
            runs = (
                json.loads(done.stdout).get("runs", []) if done.returncode == 0 else []
            )
            status = str(runs[0]["status"]) if runs else ""
        except (subprocess.TimeoutExpired, ValueError):
            pass
        if status.startswith("finished") or time.monotonic() > deadline:
            return status
        time.sleep(5.0)


def test_twenty_supernodes_five_rounds_secagg_dp_tls(twenty: Consortium) -> None:
    c, run_dir = twenty, twenty.root / "run"
    assert c.superlink is not None
    superlink = c.superlink.popen.pid  # start-superlink.sh execs flower-superlink
    assert "flower-superlink" in cmdline(superlink), cmdline(superlink)
    start = time.monotonic()
    with (
        TreeMemory([superlink]) as operator,
        TreeMemory(lambda: [p.popen.pid for p in c.procs]) as everything,
    ):
        proc = flwr_run(c, run_dir, "flwr-run.log", rounds=ROUNDS, **TRAINING)
        try:
            code: int | None = proc.popen.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        # `flwr run --stream` once exited 0 while the run was in round 1: the
        # SuperLink's run status says when the run is over
        status = _status(c, proc, start + RUN_TIMEOUT)
    took = time.monotonic() - start
    peaks = {
        "superlink_peak_rss_mib": peak_rss_mib(superlink),
        "operator_tree_peak_rss_mib": operator.peak_mib,
        "consortium_tree_peak_rss_mib": everything.peak_mib,
        "consortium_processes_at_peak": everything.peak_processes,
    }
    history_path = run_dir / "history.json"
    history = (
        json.loads(history_path.read_text())
        if history_path.is_file()
        else {"rounds": []}
    )
    measured = {**_measured(c, history, took, peaks), "run_status": status}
    path = write_results("load-loopback", measured)
    assert code is not None, f"not done in {RUN_TIMEOUT:.0f} s (partial: {path})"
    assert status == "finished:completed", f"{status!r}\n{proc.tail(80)}"
    assert code == 0 and history_path.is_file(), proc.tail(80)

    rounds = history["rounds"]
    assert [r["round"] for r in rounds] == list(range(1, ROUNDS + 1)), proc.tail(80)
    for record in rounds:
        assert record["participating"] == list(HOSPITALS), record["round"]
        assert record["dropped"] == [] and record["failures"] == [], record
        assert record["evaluation"]["pooled_from"] == list(HOSPITALS)
        spent = record["resources"]
        assert 0 < spent["fit_s"] < spent["round_s"] < took, spent
        assert spent["server_peak_rss_mib"] > 0
    for h in HOSPITALS:  # DP: every ledger charged once per round
        summary = PrivacyLedger.open(c.ledgers[h], None).summary()
        assert len(summary["entries"]) == ROUNDS, (h, summary)
    assert peaks["superlink_peak_rss_mib"] > 0
    times = [r["round_s"] for r in rounds_table(history)]
    print(f"{path}: run {took:.0f} s, round_s {times}, peaks {peaks}")
