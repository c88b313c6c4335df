"""Every benchmark in one command (``make bench``), then every generated table.

Runs, one after the other on the same machine (so their ratios are measured
side by side, each benchmark in its own process):

1. ``dp_overhead.py``: the private step against plain PyTorch, every model
   (``--modes fast ghost --no-frame-study``);
2. ``federation.py``: federation overhead and SecAgg+ cost at 10 hospitals
   (where the issue's goals are; 5 and 50 hospitals come with ``--full``);
3. ``utility.py``: the default guarantee of ``fedcare simulate``
   (``ecg-arrhythmia``, patient level, epsilon 2), 3 seeds, every arm.

Each writes its JSON under ``--results`` (default ``benchmarks/results/``).
The tables of ``docs/benchmarks.md`` and the README's headline table are then
regenerated from the JSON files listed in ``benchmarks/results/tables.json``
(the committed measurements each table is made of, oldest first) with this
run's files appended, so a row measured now replaces the same row measured
before and the rows not re-run (50 hospitals, the scale search, the other
tasks and guarantees: ``--full``) keep their earlier figures, each with the
date it was measured. The manifest is updated to match.

``--full`` adds 50 hospitals and the scale search (up to 100) to the
federation benchmark and runs the whole utility grid (every task and
guarantee): hours on 2 cores. ``--quick`` is CI's smoke size: every
benchmark at its ``--quick`` size, results and regenerated copies of the docs
under ``--results`` (default ``runs/bench-quick/``); the committed docs and
manifest are left alone.

A summary (``bench-<date>.json``: each step's command, seconds and exit code,
the total) is written beside the results. Exit 1 if any step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared_models.atomic import atomic_write_text  # noqa: E402

MANIFEST = ROOT / "benchmarks" / "results" / "tables.json"
BUDGET_S = 20 * 60  # the budget for the default `make bench`


def plan(args: argparse.Namespace, day: str) -> list[tuple[str, list[str], Path]]:
    """(name, arguments of its script, JSON it writes) for each step."""
    out = args.results
    if args.quick:
        return [
            ("dp_overhead", ["--steps", "3", "--warmup", "1", "--modes", "fast",
                             "--no-frame-study"], out / f"dp_overhead_{day}.json"),
            ("federation", ["--quick"], out / f"federation-{day}.json"),
            ("utility", ["--quick", "--seeds", "0", "--hospitals", "3", "--work",
                         str(out / "utility-runs")], out / f"utility-{day}.json"),
        ]  # fmt: skip
    # 10 hospitals is where the goals are; 5 and 50 (--full) keep earlier rows
    federation = ["--hospitals", "10"]
    utility = ["--tasks", "ecg-arrhythmia", "--only", "ecg-arrhythmia patient eps2"]
    if args.full:
        federation = ["--hospitals", "5", "10", "50", "--scale-search", "100"]
        utility = []
    else:
        federation += ["--scale-search", "0"]
    return [
        ("dp_overhead", ["--modes", "fast", "ghost", "--no-frame-study"],
         out / f"dp_overhead_{day}.json"),
        ("federation", federation, out / f"federation-{day}.json"),
        ("utility", utility, out / f"utility-{day}.json"),
    ]  # fmt: skip


def run_step(name: str, extra: list[str], out: Path, log_dir: Path) -> dict[str, Any]:
    script = ROOT / "benchmarks" / f"{name}.py"
    # run from the project root with paths relative to it where they can be, so
    # the commands the JSON files record read as a user would type them
    cmd = [sys.executable, str(script), *extra, "--out", _shown(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = log_dir / f"{name}.log"
    print(f"[bench] {name}: {' '.join(cmd[1:])} (log {log})", flush=True)
    started = time.monotonic()
    with log.open("w") as handle:
        code = subprocess.call(
            cmd, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT
        )
    seconds = round(time.monotonic() - started, 1)
    print(f"[bench] {name}: exit {code} after {seconds:.0f} s", flush=True)
    return {
        "name": name,
        "command": " ".join(
            ["python", f"benchmarks/{name}.py", *extra, "--out", _shown(out)]
        ),  # fmt: skip
        "seconds": seconds,
        "exit_code": code,
        "out": _shown(out),
        "log": _shown(log),
    }


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def regenerate(sources: dict[str, list[Path]], docs: Path, readme: Path) -> None:
    """Every generated table of ``docs`` and ``readme`` from ``sources``."""
    from benchmarks import dp_overhead, federation_tables, utility, utility_tables
    from benchmarks.markdown import replace_block

    if sources.get("dp_overhead"):
        latest = json.loads(sources["dp_overhead"][-1].read_text())
        replace_block(
            docs, dp_overhead.BEGIN, dp_overhead.END, dp_overhead.block(latest)
        )
    if sources.get("federation"):
        merged = federation_tables.merge(
            [json.loads(p.read_text()) for p in sources["federation"]]
        )
        federation_tables.write_markdown(merged, docs)
    if sources.get("utility"):
        report = utility.merge([json.loads(p.read_text()) for p in sources["utility"]])
        utility_tables.write_markdown(report, docs)
        utility_tables.write_readme(report, readme)


def read_manifest(path: Path) -> dict[str, list[Path]]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {name: [path.parent / f for f in files] for name, files in data.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI's smoke size")
    size.add_argument(
        "--full", action="store_true", help="50 hospitals, scale search, every task"
    )
    parser.add_argument("--results", type=Path, default=None, help="where JSON goes")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("dp_overhead", "federation", "utility"),
        default=None,
        help="run only these steps (the tables are still all regenerated)",
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="run nothing: regenerate the tables from the manifest's files",
    )
    args = parser.parse_args(argv)
    if args.results is None:
        args.results = ROOT / (
            "runs/bench-quick" if args.quick else "benchmarks/results"
        )
    args.results.mkdir(parents=True, exist_ok=True)
    log_dir = args.results / "logs"
    log_dir.mkdir(exist_ok=True)
    day = datetime.now(timezone.utc).date().isoformat()

    if args.quick:  # the committed docs stay as they are: copies are regenerated
        docs, readme, manifest = (
            args.results / "benchmarks.md",
            args.results / "README.md",
            args.results / "tables.json",
        )
        shutil.copyfile(ROOT / "docs" / "benchmarks.md", docs)
        shutil.copyfile(ROOT / "README.md", readme)
        sources: dict[str, list[Path]] = {}
    else:
        docs, readme, manifest = (
            ROOT / "docs/benchmarks.md",
            ROOT / "README.md",
            MANIFEST,
        )
        sources = read_manifest(MANIFEST)

    started = time.monotonic()
    steps = []
    for name, extra, out in plan(args, day):
        if args.tables_only or (args.only and name not in args.only):
            continue
        step = run_step(name, extra, out, log_dir)
        steps.append(step)
        if step["exit_code"] == 0:
            files = [p for p in sources.get(name, []) if p.resolve() != out.resolve()]
            sources[name] = [*files, out]
    total = round(time.monotonic() - started, 1)

    regenerate(sources, docs, readme)
    atomic_write_text(
        manifest,
        json.dumps(
            {
                name: [os.path.relpath(p, manifest.parent) for p in files]
                for name, files in sources.items()
            },  # fmt: skip
            indent=2,
        )
        + "\n",
    )
    summary = {
        "schema": "fedcare.benchmarks.bench/1",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(
            ["python", "benchmarks/run_all.py", *(argv or sys.argv[1:])]
        ),
        "size": "quick" if args.quick else "full" if args.full else "default",
        "cpus": os.cpu_count(),
        "loadavg_at_end": list(os.getloadavg()),
        "steps": steps,
        "total_s": total,
        "budget_s": None if (args.quick or args.full) else BUDGET_S,
        "within_budget": None if (args.quick or args.full) else total <= BUDGET_S,
        "tables": {"docs": _shown(docs), "readme": _shown(readme)},
    }
    if args.tables_only:
        return 0
    atomic_write_text(
        args.results / f"bench-{day}{'-quick' if args.quick else ''}.json",
        json.dumps(summary, indent=2) + "\n",
    )
    print(f"[bench] total {total / 60:.1f} min; tables regenerated in {_shown(docs)}, "
          f"{_shown(readme)}", flush=True)  # fmt: skip
    return 0 if all(s["exit_code"] == 0 for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
