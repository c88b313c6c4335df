"""What the load tests measure from outside a run: memory from /proc, the
machine's load, and the results JSON they write (``benchmarks/results``)."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from shared_models.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _status_kib(pid: int, key: str) -> int:
    """``key`` (VmRSS, VmHWM) of /proc/PID/status in KiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    return round(_status_kib(pid, "VmHWM") / 1024, 1)


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class TreeMemory:
    """Samples the summed RSS of processes (and their descendants) every
    ``period`` seconds in a thread; ``peak_mib`` is the largest sum seen."""

    def __init__(self, roots: Any, period: float = 1.0) -> None:
        self.roots = roots  # callable returning the root pids, or a list
        self.period = period
        self.peak_mib = 0.0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            roots = self.roots() if callable(self.roots) else self.roots
            pids = {p for r in roots for p in (r, *descendants(r))}
            total = sum(_status_kib(p, "VmRSS") for p in pids) / 1024
            if total > self.peak_mib:
                self.peak_mib, self.peak_processes = round(total, 1), len(pids)


def machine() -> dict[str, Any]:
    """The load the figures were measured under (the machine may be shared)."""
    return {
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def rounds_table(history: dict[str, Any]) -> list[dict[str, Any]]:
    """Per round: who took part and the run's ``resources`` record."""
    return [
        {
            "round": r["round"],
            "participating": len(r.get("participating", [])),
            "dropped": r.get("dropped", []),
            **r.get("resources", {}),
        }
        for r in history["rounds"]
    ]


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """``benchmarks/results/<name>-<UTC date>.json``, written atomically."""
    now = datetime.now(timezone.utc)
    path = RESULTS / f"{name}-{now:%Y-%m-%d}.json"
    payload = {"measured_at": now.isoformat(timespec="seconds"), **payload}
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
    return path
