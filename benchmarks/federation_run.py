"""One federation for ``benchmarks/federation.py``; prints its timings as JSON.

Runs ``simulation.runner.simulate`` (the real ServerApp and ClientApp on
Flower's Simulation Engine) in this process and takes the round boundaries
from Flower's own log lines, captured here with their timestamps: the
ServerApp runs in this process, the hospitals in Ray's worker processes.
Each hospital's local training time comes from its own local report
(``train-seconds``, which never leaves the hospital), read from the run
folder as the researcher of a simulation may.

Usage: ``python benchmarks/federation_run.py '<json config>'``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

# Flower's log lines that mark where a round is (SecAgg+ stages are DEBUG).
MARKS = (
    "[ROUND ",
    "[SUMMARY]",
    "configure_fit:",
    "aggregate_fit:",
    "configure_evaluate:",
    "aggregate_evaluate:",
    "[Stage ",
    "Secure aggregation",
)


class Capture(logging.Handler):
    """Every marked Flower log line, with the time it was emitted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if any(text.startswith(m) for m in MARKS):
            self.events.append((record.created, text))


def split_rounds(events: list[tuple[float, str]]) -> list[dict[str, Any]]:
    """Per round: its wall time and phases, from the captured log lines.

    A round runs from its ``[ROUND r]`` line to the next one (or
    ``[SUMMARY]``): fit (ends at the first ``aggregate_fit``), the
    pool-evaluation round (the second ``aggregate_fit``), Flower's evaluate
    round (``aggregate_evaluate``), then the rest (checkpoint, history,
    export of the models) until the next round starts.
    """
    starts = [i for i, (_, t) in enumerate(events) if t.startswith("[ROUND ")]
    ends = starts[1:] + [
        next(
            (i for i, (_, t) in enumerate(events) if t.startswith("[SUMMARY]")),
            len(events) - 1,
        )
    ]
    rounds = []
    for number, (a, b) in enumerate(zip(starts, ends, strict=True), start=1):
        t0, part = events[a][0], events[a : b + 1]
        fits = [t for t, m in part if m.startswith("aggregate_fit:")]
        evals = [t for t, m in part if m.startswith("aggregate_evaluate:")]
        marks = [fits[0] if fits else None, fits[1] if len(fits) > 1 else None]
        marks.append(evals[0] if evals else None)
        phases: dict[str, float | None] = {}
        last = t0
        for name, mark in zip(("fit", "pool", "evaluate"), marks, strict=True):
            phases[name] = None if mark is None else round(mark - last, 3)
            last = mark if mark is not None else last
        phases["after_evaluate"] = round(events[b][0] - last, 3)
        stages = [
            (m.split("]")[0] + "] " + m.split("]")[1].split(" from")[0].strip(), t)
            for t, m in part
            if m.startswith("[Stage ")
        ]
        rounds.append(
            {
                "round": number,
                "round_s": round(events[b][0] - t0, 3),
                "phases_s": phases,
                "secagg_stage_marks_s": [(m, round(t - t0, 3)) for m, t in stages],
            }
        )
    return rounds


def train_seconds(out: Path, run_name: str) -> dict[str, dict[str, float]]:
    """Round -> hospital -> its local training seconds, from its own report."""
    from client.federated import LocalReport

    nodes = json.loads((out / "hospitals.json").read_text())
    by_round: dict[str, dict[str, float]] = {}
    for node in nodes:
        own = LocalReport(Path(node["report-dir"]), run_name, node["hospital-id"])
        for number, fit in own.load()["fit"].items():
            if "train-seconds" in fit:
                by_round.setdefault(number, {})[node["hospital-id"]] = fit[
                    "train-seconds"
                ]
    return by_round


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    from shared_models.run_config import RunConfig
    from simulation.runner import SimulationOptions, simulate

    capture = Capture()
    flwr_log = logging.getLogger("flwr")
    flwr_log.setLevel(logging.DEBUG)
    flwr_log.addHandler(capture)
    run_config = replace(
        RunConfig(),
        task=cfg["task"],
        num_server_rounds=cfg["rounds"],
        dp=cfg["dp"],
        secagg=cfg["secagg"],
        seed=0,
    ).resolved()
    out = Path(cfg["out"])
    opts = SimulationOptions(
        out=out,
        run=run_config,
        hospitals=cfg["hospitals"],
        scale=cfg["scale"],
        with_baselines=False,
        overwrite=True,
        client_cpus=cfg["client_cpus"],
        num_cpus=cfg.get("num_cpus"),
        ray_address=cfg.get("ray_address"),
    )
    started = time.monotonic()
    summary = simulate(opts)
    wall = time.monotonic() - started
    history = json.loads((out / "history.json").read_text())
    trains = train_seconds(out, summary["run_name"])
    rounds = split_rounds(capture.events)
    for record, timing in zip(history["rounds"], rounds, strict=False):
        seconds = trains.get(str(record["round"]), {})
        timing["participating"] = len(record.get("participating") or [])
        timing["failures"] = len(record.get("failures") or [])
        timing["hospitals_timed"] = len(seconds)
        timing["train_max_s"] = max(seconds.values(), default=None)
        timing["train_sum_s"] = round(sum(seconds.values()), 3)
    return {
        "status": "ok" if len(rounds) == cfg["rounds"] else "error",
        "error": "" if len(rounds) == cfg["rounds"] else f"{len(rounds)} rounds ran",
        "wall_s": round(wall, 2),
        "simulate_timings": summary["timings"],
        "rounds": rounds,
    }


if __name__ == "__main__":
    result = run(json.loads(sys.argv[1]))
    print(json.dumps(result))
