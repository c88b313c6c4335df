"""The run history: one record per round, written as JSON and CSV atomically.

A round record holds what the aggregator may know: the hospitals that
replied (and, without SecAgg+, which sent 0 examples), failures, the pooled
evaluation (from SecAgg+-summed histograms), the metrics hospitals chose to
share, server-side evaluation, and the global model hash.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from shared_models.atomic import atomic_write_text

JSON_NAME, CSV_NAME = "history.json", "history.csv"


class RunHistory:
    def __init__(
        self, run_dir: Path, run_name: str, rounds: list[dict[str, Any]] | None = None
    ):
        self.run_dir = Path(run_dir)
        self.run_name = run_name
        self.rounds: list[dict[str, Any]] = rounds or []

    @classmethod
    def load(cls, run_dir: Path, run_name: str, up_to_round: int) -> RunHistory:
        """The history of an earlier run, cut at its last checkpointed round."""
        path = Path(run_dir) / JSON_NAME
        rounds = json.loads(path.read_text())["rounds"] if path.is_file() else []
        return cls(run_dir, run_name, [r for r in rounds if r["round"] <= up_to_round])

    def evaluated(self, number: int) -> bool:
        """Whether round ``number``'s evaluation round finished (a run stopped
        between its fit and its evaluation has a record without it)."""
        record = next((r for r in self.rounds if r["round"] == number), {})
        return "evaluated_by" in (record.get("evaluation") or {})

    def round(self, number: int) -> dict[str, Any]:
        for record in self.rounds:
            if record["round"] == number:
                return record
        record: dict[str, Any] = {"round": number}
        self.rounds.append(record)
        return record

    def save(self) -> None:
        payload = {"run_name": self.run_name, "rounds": self.rounds}
        atomic_write_text(
            self.run_dir / JSON_NAME, json.dumps(payload, indent=2, default=str)
        )
        atomic_write_text(self.run_dir / CSV_NAME, self._csv())

    def _csv(self) -> str:
        columns = ["round", "hospital", "status"]
        metric_names: list[str] = []
        for record in self.rounds:
            evaluation = record.get("evaluation", {})
            shown = [evaluation.get("pooled") or {}]
            shown += list((evaluation.get("hospitals") or {}).values())
            for metrics in shown:
                metric_names += [k for k in metrics if k not in metric_names]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns + metric_names)
        for record in self.rounds:
            evaluation = record.get("evaluation", {})
            rows = dict(record.get("fit", {}))
            for hospital in evaluation.get("hospitals", {}):
                rows.setdefault(hospital, {})
            rows["pooled"] = {"status": "pooled"}
            for hospital, fit in sorted(rows.items()):
                metrics = (
                    evaluation.get("pooled", {})
                    if hospital == "pooled"
                    else evaluation.get("hospitals", {}).get(hospital, {})
                )
                writer.writerow(
                    [record["round"], hospital, fit.get("status", "")]
                    + [metrics.get(k, "") for k in metric_names]
                )
        return out.getvalue()
