"""Federation overhead, SecAgg+ cost and scale on Flower's Simulation Engine.

For each number of simulated hospitals this runs the real ServerApp and
ClientApp (``fedcare simulate``'s code, no baselines) twice, SecAgg+ off and
on, each in a fresh subprocess (``federation_run.py``), and measures

* the round time and its phases, from Flower's log lines (the ServerApp runs
  in that subprocess);
* each hospital's local training time, from its own local report
  (``train-seconds``: it never leaves the hospital);
* the peak memory of the whole process tree (the driver, Ray's daemons and
  workers), sampled from ``/proc`` (PSS and RSS).

Then ``--scale-search`` tries the largest federation (2 rounds) up to a
limit. Run ``python benchmarks/federation.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.federation_tables import merge, summarise, write_markdown  # noqa: E402

SCHEMA = "fedcare.benchmarks.federation/1"


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (from ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _kb(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class TreeMemory(threading.Thread):
    """Samples the PSS and RSS of a process tree until stopped."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.stop = threading.Event()
        self.peak_pss_kb = self.peak_rss_kb = 0
        self.peak_workers = 0
        self.hwm_kb: dict[int, int] = {}
        self.names: dict[int, str] = {}

    def sample(self) -> None:
        pss = rss = workers = 0
        for pid in descendants(self.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            name = cmd.split(b"\0")[0].decode(errors="replace")
            self.names[pid] = name
            workers += name.startswith("ray::")
            pss += _kb(rollup, "Pss")
            rss += _kb(status, "VmRSS")
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), _kb(status, "VmHWM"))
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_workers = max(self.peak_workers, workers)

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()

    def result(self) -> dict[str, Any]:
        actors = [
            kb for pid, kb in self.hwm_kb.items() if "ClientAppActor" in self.names[pid]
        ]
        return {
            "peak_tree_pss_mb": round(self.peak_pss_kb / 1024, 1),
            "peak_tree_rss_mb": round(self.peak_rss_kb / 1024, 1),
            "processes_seen": len(self.hwm_kb),
            "ray_workers_peak": self.peak_workers,
            # the hospitals' actors (Ray's other workers are small and idle)
            "ray_worker_hwm_mb": sorted(round(k / 1024, 1) for k in actors),
            "driver_hwm_mb": round(self.hwm_kb.get(self.pid, 0) / 1024, 1),
        }


def spawn(cfg: dict[str, Any], timeout: float, log_dir: Path) -> dict[str, Any]:
    """One federation in a fresh interpreter, its memory sampled meanwhile."""
    script = Path(__file__).with_name("federation_run.py")
    name = f"{cfg['hospitals']}-{'secagg' if cfg['secagg'] else 'plain'}"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "FLWR_HOME": str(log_dir / "flwr"),
        "OMP_NUM_THREADS": "1",
    }
    load = list(os.getloadavg())
    with open(log_dir / f"{name}.log", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )
        memory = TreeMemory(proc.pid)
        memory.start()
        try:
            stdout, _ = proc.communicate(timeout=timeout)
            failed = f"exit code {proc.returncode}" if proc.returncode else ""
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
            failed = f"timed out after {timeout:.0f} s"
        memory.stop.set()
        memory.join()
    row: dict[str, Any] = {"loadavg_before": load, "loadavg_after": os.getloadavg()}
    row["memory"] = memory.result()
    lines = (stdout or "").strip().splitlines()
    if failed or not lines:
        tail = (log_dir / f"{name}.log").read_text().strip().splitlines()[-4:]
        return {**row, "status": "error", "error": f"{failed}: " + " | ".join(tail)}
    return {**row, **json.loads(lines[-1])}


def config(args: argparse.Namespace, hospitals: int, secagg: bool, out: Path):
    return {
        "task": args.task,
        "rounds": args.rounds,
        "dp": args.dp,
        "secagg": secagg,
        "hospitals": hospitals,
        "scale": args.scale,
        "client_cpus": args.client_cpus,
        "num_cpus": args.num_cpus,
        "ray_address": args.ray_address,
        "out": str(out / f"run-{hospitals}-{int(secagg)}"),
    }


def measure(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows = []
    for n in args.hospitals:
        for secagg in (False, True):
            print(f"{n} hospitals, secagg={secagg}", file=sys.stderr, flush=True)
            cfg = config(args, n, secagg, work)
            rows.append({**cfg, **spawn(cfg, args.timeout, work)})
    return rows


def scale_search(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """The largest federation that completes its rounds: try the limit, then
    halve the step down from it until one completes (SecAgg+ off: see docs)."""
    tried, n, ok = [], args.scale_search, None
    while n >= 2 and ok is None:
        print(f"scale search: {n} hospitals", file=sys.stderr, flush=True)
        cfg = config(args, n, False, work)
        row = {**cfg, "search": True, **spawn(cfg, args.scale_timeout, work)}
        tried.append(row)
        if row["status"] == "ok":
            ok = n
        n = n // 2 if ok is None else n
    return tried


def machine() -> dict[str, Any]:
    import flwr
    import ray
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "mem_total_gb": round(
            _kb(Path("/proc/meminfo").read_text(), "MemTotal") / 2**20, 1
        ),
        "flwr": flwr.__version__,
        "ray": ray.__version__,
        "torch": torch.__version__,
        "loadavg_at_start": list(os.getloadavg()),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hospitals", type=int, nargs="+", default=[5, 10, 50])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--task", default="signal-anomaly", help="lightest: dense AE")
    p.add_argument("--scale", type=float, default=0.1, help="cohort size multiplier")
    p.add_argument("--no-dp", dest="dp", action="store_false")
    p.add_argument("--client-cpus", type=float, default=1.0)
    p.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1)
    p.add_argument("--ray-address", default=None, help="attach to a Ray cluster")
    p.add_argument(
        "--scale-search",
        type=int,
        default=100,
        help="largest federation to try (2 rounds, SecAgg+ off); 0 skips",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    p.add_argument("--scale-timeout", type=float, default=2400)
    p.add_argument(
        "--scale-only",
        action="store_true",
        help="run only the scale search and add it to the --out JSON",
    )
    p.add_argument("--quick", action="store_true", help="CI smoke: 3 hospitals")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None, help="rewrite its section")
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        nargs="+",
        help="render saved JSON files (rows merged, a later file's row wins)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.hospitals, args.scale_search, args.scale = [3], 0, 0.05
    if args.out is None and args.source is None:
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        args.out = Path(f"benchmarks/results/federation-{day}.json")
    if min(args.hospitals) < 3:
        p.error("--hospitals: at least 3 each (SecAgg+ needs 3)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.source is not None:
        result = merge([json.loads(path.read_text()) for path in args.source])
    elif args.scale_only:
        result = json.loads(args.out.read_text())
        with tempfile.TemporaryDirectory(prefix="fedcare-federation-") as tmp:
            found = scale_search(args, Path(tmp))
        # appended: earlier searches of this result stay in it
        result["scale_search"] = result.get("scale_search", []) + found
        result.setdefault("scale_search_commands", []).append(
            " ".join(["python", "benchmarks/federation.py", *sys.argv[1:]])
        )
        result["summary"] = summarise(result)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    else:
        info = machine()
        with tempfile.TemporaryDirectory(prefix="fedcare-federation-") as tmp:
            work = Path(tmp)
            rows = measure(args, work)
            search = scale_search(args, work) if args.scale_search else []
        result = {
            "schema": SCHEMA,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/federation.py", *sys.argv[1:]]),
            "machine": {**info, "loadavg_at_end": list(os.getloadavg())},
            "config": json.loads(json.dumps(vars(args), default=str)),
            "rows": rows,
            "scale_search": search,
        }
        result["summary"] = summarise(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown is not None:
        write_markdown(result, args.markdown)
    print(json.dumps(result.get("summary") or summarise(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
