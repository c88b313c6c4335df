"""Each round's ``resources`` record: wall times and the ServerApp's peak memory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from flwr.app import ConfigRecord, RecordDict
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, Key
from tiny_model import tiny_card, tiny_weights

from server.run_state import FederatedRun, peak_rss_mib
from server.workflow import Timed
from shared_models.run_config import RunConfig

CONFIG = RunConfig(task="signal-anomaly").resolved()


def _context(number: int) -> SimpleNamespace:
    state = RecordDict()
    state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {Key.CURRENT_ROUND: number}
    )
    return SimpleNamespace(state=state)


def test_round_records_fit_and_round_seconds_and_peak_memory(tmp_path: Path) -> None:
    run = FederatedRun(CONFIG, tmp_path, "run-a", tiny_card("signal-anomaly"))
    run.set_initial(tiny_weights(0))

    def fit(grid: object, context: object) -> None:
        time.sleep(0.2)
        run.on_fit(1, tiny_weights(1), [(1, {"hospital-id": "h1"})], [])

    def evaluate(grid: object, context: object) -> None:
        time.sleep(0.3)

    Timed(fit, before=run.round_started)(None, _context(1))
    Timed(evaluate, after=run.round_finished)(None, _context(1))

    saved = json.loads((tmp_path / "history.json").read_text())["rounds"][0]
    spent = saved["resources"]
    assert set(spent) == {"fit_s", "round_s", "server_peak_rss_mib"}
    assert 0.2 <= spent["fit_s"] < spent["round_s"]
    assert spent["round_s"] >= 0.5
    assert spent["server_peak_rss_mib"] > 0


def test_peak_memory_grows_with_what_the_process_holds() -> None:
    before = peak_rss_mib()
    held = np.ones(int(before + 200) * 2**20 // 8)  # more than the peak so far
    after = peak_rss_mib()
    del held
    assert after >= before + 150


def test_resumed_round_numbers_continue(tmp_path: Path) -> None:
    run = FederatedRun(CONFIG, tmp_path, "run-a", tiny_card("signal-anomaly"), offset=3)
    run.set_initial(tiny_weights(0))
    run.round_started(1)
    run.round_finished(1)
    saved = json.loads((tmp_path / "history.json").read_text())["rounds"]
    assert [r["round"] for r in saved] == [4]
    assert saved[0]["resources"]["round_s"] >= 0
