"""Run folders for the dashboard's tests, written by the aggregator's own code
(``server.run_state.FederatedRun``: history, checkpoints, a real audit chain)
plus the files a simulation adds (``hospitals.json``, ``hospital-reports/``,
``summary.json``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from server.run_state import FederatedRun
from shared_models import create_model
from shared_models.export import get_weights, save_model_dir, set_weights
from shared_models.registry import get_spec
from shared_models.run_config import RunConfig

CARD = {
    "model": "dense_autoencoder",
    "model_config": {"seq_len": 8, "n_features": 1, "hidden": [4], "code_size": 2},
    "task": "signal-anomaly",
    "input_spec": {"seq_len": 8, "n_features": 1},
    "normalisation": {},
    "classes": None,
}
HOSPITALS = ("hospital_01", "hospital_02", "hospital_03")
PLANNED = 3


def weights(seed: int) -> list[np.ndarray]:
    get_spec(CARD["model"])
    torch.manual_seed(seed)
    return get_weights(create_model(CARD["model"], **CARD["model_config"], dp=False))


def nodes(run_dir: Path, budget: float = 8.0) -> None:
    """``hospitals.json`` as ``fedcare simulate`` writes it (paths and all)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "hospitals.json").write_text(
        json.dumps(
            [
                {
                    "hospital-id": h,
                    "data-path": f"/secret/data/{h}",
                    "ledger-path": f"/secret/ledgers/{h}.jsonl",
                    "epsilon": budget,
                    "delta": 1e-5,
                    "privacy-unit": "patient",
                }
                for h in HOSPITALS
            ]
        )
    )


def run(
    run_dir: Path,
    done: int,
    simulation: bool = True,
    spent: tuple[float, ...] = (1.0, 6.2, 7.5),
) -> FederatedRun:
    """A run of ``PLANNED`` rounds with ``done`` of them recorded."""
    config = replace(RunConfig(task="signal-anomaly"), num_server_rounds=PLANNED)
    config = config.resolved()
    run_dir.mkdir(parents=True, exist_ok=True)
    if simulation:
        nodes(run_dir)
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "run_name": "run-t",
                "run_config": config.to_run_config(),
                "model_card": CARD,
            }
        )
    )
    state = FederatedRun(config, run_dir, "run-t", CARD)
    state.set_initial(weights(0))
    reports: dict[str, dict] = {h: {"fit": {}} for h in HOSPITALS}
    for number in range(1, done + 1):
        replies = [(1, {"hospital-id": h}) for h in HOSPITALS[:2]]
        gone = [{"node_id": 7, "hospital": HOSPITALS[2]}] if number == 2 else []
        if number != 2:
            replies.append((1, {"hospital-id": HOSPITALS[2]}))
        state.on_fit(number, weights(number), replies, [], gone)
        record = state.history.round(number)
        record["evaluation"] = {
            "pooled": {"auroc": 0.5 + 0.1 * number, "f1": 0.2 * number},
            "evaluated_by": list(HOSPITALS),
            "hospitals": {},
        }
        state.history.save()
        for i, h in enumerate(HOSPITALS):
            reports[h]["fit"][str(number)] = {
                "declined": "",
                "train-loss": 1.0 / number,
                "epsilon-spent": spent[i] * number / PLANNED,
                "epsilon-budget": 8.0,
            }
    if simulation:
        for h, report in reports.items():
            folder = run_dir / "hospital-reports" / h
            folder.mkdir(parents=True, exist_ok=True)
            report.update(run_name="run-t", hospital_id=h)
            (folder / "run-t.json").write_text(json.dumps(report))
    if done:
        model = create_model(CARD["model"], **CARD["model_config"], dp=False)
        set_weights(model, weights(done))
        save_model_dir(run_dir / "models" / "final", model, state.card(None))
    return state


def summary(run_dir: Path) -> None:
    """``summary.json`` of a finished simulation, with the three arms."""
    (run_dir / "summary.json").write_text(
        json.dumps(
            {
                "primary_metric": "auroc",
                "privacy": {
                    "guarantee": "(2, 1e-05)-DP with respect to adding or removing "
                    "one patient's data (all their records) per hospital",
                    "delta": 1e-5,
                    "privacy_unit": "patient",
                },
                "hospitals": {
                    h: {
                        "local_only": {"auroc": 0.6},
                        "federated": {"auroc": 0.7},
                        "centralized": {"auroc": 0.9},
                        "epsilon_spent": 2.0,
                        "epsilon_budget": 8.0,
                    }
                    for h in HOSPITALS
                },
                "means": {"local_only": 0.6, "federated": 0.7, "centralized": 0.9},
                "cost": {"text": "pooled test AUROC: federated 0.700"},
            }
        )
    )
    (run_dir / "report.html").write_text("<!doctype html><title>report</title>")


def tamper(run_dir: Path, line: int = 2) -> None:
    """Change who took part in round ``line`` without re-sealing the record."""
    path = run_dir / "audit.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[line - 1])
    record["participating"] = record["participating"][:1]
    lines[line - 1] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
