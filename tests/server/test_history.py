"""Run history: JSON and CSV, and cutting it at a checkpoint on resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from server.history import RunHistory


def _history(run_dir: Path) -> RunHistory:
    history = RunHistory(run_dir, "r")
    for number in (1, 2):
        record = history.round(number)
        record["fit"] = {"h1": {"status": "trained"}, "h2": {"status": "declined"}}
        record["evaluation"] = {
            "pooled": {"n": 20, "auroc": 0.7},
            "hospitals": {"h1": {"n": 12, "auroc": 0.6}, "h3": {"n": 8, "auroc": 0.9}},
        }
    history.save()
    return history


def test_json_holds_every_round_once(tmp_path: Path) -> None:
    history = _history(tmp_path)
    history.round(2)["extra"] = 1  # an existing round is updated, not duplicated
    history.save()

    payload = json.loads((tmp_path / "history.json").read_text())

    assert payload["run_name"] == "r"
    assert [r["round"] for r in payload["rounds"]] == [1, 2]
    assert payload["rounds"][1]["extra"] == 1


def test_csv_has_one_row_per_hospital_and_round_plus_pooled(tmp_path: Path) -> None:
    _history(tmp_path)

    rows = list(csv.DictReader((tmp_path / "history.csv").read_text().splitlines()))

    assert [(r["round"], r["hospital"]) for r in rows] == [
        (str(n), h) for n in (1, 2) for h in ("h1", "h2", "h3", "pooled")
    ]
    h1, h2, h3, pooled = rows[:4]
    assert (h1["status"], h1["auroc"], h1["n"]) == ("trained", "0.6", "12")
    assert (h2["status"], h2["auroc"]) == ("declined", "")
    assert (h3["status"], h3["auroc"]) == ("", "0.9")  # evaluated only
    assert (pooled["status"], pooled["auroc"], pooled["n"]) == ("pooled", "0.7", "20")


def test_load_cuts_rounds_after_the_checkpoint(tmp_path: Path) -> None:
    _history(tmp_path)

    loaded = RunHistory.load(tmp_path, "r", up_to_round=1)

    assert [r["round"] for r in loaded.rounds] == [1]
    assert RunHistory.load(tmp_path / "absent", "r", 3).rounds == []
