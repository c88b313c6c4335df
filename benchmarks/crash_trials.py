"""Crash trials: kill ``fedcare simulate`` at random, ``--resume``, check the run.

Each trial starts a small federation (default: 3 hospitals, ``--scale 0.2``,
3 rounds, DP + SecAgg+, no baselines) as a subprocess in its own process group
(Ray's processes included), SIGKILLs the whole group at a time drawn
uniformly between 0 and the duration of one full run (measured first, or
``--full-run-s``), then runs ``fedcare simulate --resume`` on the same
``--out`` and ``--ledger-dir`` to completion and checks, from the run folder:

- ``rounds``: the history holds rounds 1..R, each exactly once;
- ``evaluations``: every round has its evaluation recorded (evaluated_by set),
  the killed round's included;
- ``audit``: ``fedcare audit verify RUN/audit.jsonl --checkpoints
  RUN/checkpoints`` exits 0;
- ``ledgers``: each hospital's ledger charges the run exactly the steps its
  own report says it trained (one charge per round, no open reservation), and
  every hospital trained every round;
- ``epsilon``: each ledger's spent epsilon is at most the run's epsilon.

``--refusals`` also resumes a killed copy with checkpoints/ deleted, with a
corrupted state.json, and with ``--no-dp`` / another ``--privacy-unit`` /
``--task`` / ``--batch-size``: each must exit 2 with a one-line error and
leave the folder unchanged. Results are written after every trial.
Run ``python benchmarks/crash_trials.py --help``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "fedcare.benchmarks.crash_trials/1"
CHECKS = ("rounds", "evaluations", "audit", "ledgers", "epsilon")


def cli(*args: str) -> list[str]:
    """The fedcare CLI of this checkout (``python -m simulation.cli.main``)."""
    return [sys.executable, "-m", "simulation.cli.main", *args]


def simulate_args(a: argparse.Namespace, trial: Path, *extra: str) -> list[str]:
    return cli(
        "simulate",
        "--task", a.task,
        "--hospitals", str(a.hospitals),
        "--scale", str(a.scale),
        "--rounds", str(a.rounds),
        "--seed", str(a.seed),
        "--no-baselines",
        "--num-cpus", str(a.num_cpus),
        "--out", str(trial / "run"),
        "--ledger-dir", str(trial / "ledgers"),
        "--format", "json",
        *extra,
    )  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def start(args: list[str], log: Path) -> subprocess.Popen:
    """A process in its own session (so its group holds Ray's processes too)."""
    handle = log.open("wb")
    return subprocess.Popen(
        args, cwd=ROOT, env=env(), stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_to_end(args: list[str], log: Path, timeout: float) -> tuple[int, float]:
    began = time.monotonic()
    proc = start(args, log)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        code = -9
    else:
        kill_group(proc)  # whatever Ray left behind in the group
    return code, time.monotonic() - began


def calibrate(a: argparse.Namespace) -> tuple[int, float, float]:
    """One full run: (exit code, seconds until run.json appeared, seconds in all)."""
    calib = a.work / "calibration"
    shutil.rmtree(calib, ignore_errors=True)
    calib.mkdir(parents=True)
    began = time.monotonic()
    proc = start(simulate_args(a, calib), calib / "run.log")
    ready = None
    while proc.poll() is None and time.monotonic() - began < a.timeout:
        if ready is None and (calib / "run" / "run.json").is_file():
            ready = time.monotonic() - began
        time.sleep(0.2)
    kill_group(proc)
    full = time.monotonic() - began
    return proc.returncode, ready if ready is not None else 0.0, full


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def snapshot(run: Path, ledgers: Path) -> dict[str, Any]:
    """What the killed run left: files, history rounds, latest checkpoint."""
    history = read_json(run / "history.json") or {}
    latest = read_json(run / "checkpoints" / "latest.json") or {}
    rounds = history.get("rounds", [])
    return {
        "run_json": (run / "run.json").is_file(),
        "history_rounds": [r["round"] for r in rounds],
        "evaluated_rounds": [
            r["round"] for r in rounds if "evaluated_by" in r.get("evaluation", {})
        ],
        "checkpoint_round": latest.get("round"),
        "open_reservations": {
            p.stem: len(_ledger(p).reserved_open) for p in ledger_files(ledgers)
        },
    }


def killed_round(snap: dict[str, Any], rounds: int) -> Any:
    """The round the kill landed in, from what the run had written."""
    if not snap["run_json"]:
        return "before run.json"
    done = snap["checkpoint_round"] or 0
    if done >= rounds and rounds in snap["evaluated_rounds"]:
        return "after the last round"
    if done in snap["history_rounds"] and done not in snap["evaluated_rounds"]:
        return f"{done} (between fit and evaluation)"
    return done + 1


def ledger_files(folder: Path) -> list[Path]:
    """The hospitals' ledgers (not the audit heads they keep beside them)."""
    return sorted(
        p for p in folder.glob("*.jsonl") if not p.name.endswith(".audit-heads.jsonl")
    )


def _ledger(path: Path) -> Any:
    from client.privacy import PrivacyLedger

    return PrivacyLedger.open(path, None)


def check_run(a: argparse.Namespace, trial: Path) -> dict[str, Any]:
    run, ledgers = trial / "run", trial / "ledgers"
    out: dict[str, Any] = {}
    history = read_json(run / "history.json") or {"rounds": []}
    numbers = [r["round"] for r in history["rounds"]]
    out["rounds"] = {"ok": numbers == list(range(1, a.rounds + 1)), "found": numbers}
    missing = [
        r["round"]
        for r in history["rounds"]
        if "evaluated_by" not in (r.get("evaluation") or {})
    ]
    out["evaluations"] = {"ok": not missing and bool(numbers), "missing": missing}
    verify = subprocess.run(
        cli("audit", "verify", str(run / "audit.jsonl"), "--checkpoints",
            str(run / "checkpoints"), "--format", "json"),
        cwd=ROOT, env=env(), capture_output=True, text=True,
    )  # fmt: skip
    out["audit"] = {"ok": verify.returncode == 0, "exit": verify.returncode}
    if verify.returncode:
        out["audit"]["output"] = (verify.stdout + verify.stderr)[-400:]
    out.update(check_ledgers(a, run, ledgers, history.get("run_name", "")))
    return out


def check_ledgers(
    a: argparse.Namespace, run: Path, ledgers: Path, run_name: str
) -> dict[str, Any]:
    """Each ledger's charges against its hospital's own record of the run."""
    meta = read_json(run / "run.json") or {}
    run_epsilon = float(meta.get("run_config", {}).get("run-epsilon", 2.0))
    per: dict[str, Any] = {}
    ok_ledger = ok_eps = bool(run_name)
    for path in ledger_files(ledgers):
        ledger = _ledger(path)
        report = read_json(run / "hospital-reports" / path.stem / f"{run_name}.json")
        fits = (report or {}).get("fit", {})
        trained = {r: int(f.get("steps", 0)) for r, f in fits.items()}
        charges = [e for e in ledger.entries if e["run_id"] == run_name]
        settled = sum(int(e["steps"]) for e in charges)
        held = [r for r in ledger.reserved_open if r["run_id"] == run_name]
        entry = {
            "settled_steps": settled,
            "open_reservations": len(held),
            "reported_steps": sum(trained.values()),
            "rounds_trained": sorted(int(r) for r, s in trained.items() if s > 0),
            "charges": len(charges),
            "spent_epsilon": ledger.spent_epsilon,
        }
        entry["ok"] = (
            not held
            and settled == entry["reported_steps"]
            and entry["rounds_trained"] == list(range(1, a.rounds + 1))
        )
        ok_ledger = ok_ledger and entry["ok"]
        ok_eps = ok_eps and ledger.spent_epsilon <= run_epsilon * (1 + 1e-9)
        per[path.stem] = entry
    ok_ledger = ok_ledger and len(per) == a.hospitals
    return {
        "ledgers": {"ok": ok_ledger, "hospitals": per},
        "epsilon": {"ok": ok_eps, "run_epsilon": run_epsilon},
    }


def one_trial(a: argparse.Namespace, index: int, kill_at: float) -> dict[str, Any]:
    trial = a.work / f"trial-{index:03d}"
    shutil.rmtree(trial, ignore_errors=True)
    trial.mkdir(parents=True)
    proc = start(simulate_args(a, trial), trial / "killed.log")
    try:
        proc.wait(timeout=kill_at)
        finished_first = True
    except subprocess.TimeoutExpired:
        finished_first = False
    kill_group(proc)
    snap = snapshot(trial / "run", trial / "ledgers")
    result: dict[str, Any] = {
        "trial": index,
        "commit": _commit(),  # the code each trial ran (fixes may land meanwhile)
        "kill_s": round(kill_at, 2),
        "finished_before_kill": finished_first,
        "killed_in_round": killed_round(snap, a.rounds),
        "before_resume": snap,
    }
    code, took = run_to_end(
        simulate_args(a, trial, "--resume"), trial / "resume.log", a.timeout
    )
    result["resume"] = {"exit": code, "s": round(took, 1)}
    if code:
        result["resume"]["error"] = _last_error(trial / "resume.log")
    result["checks"] = check_run(a, trial)
    result["ok"] = code == 0 and all(result["checks"][c]["ok"] for c in CHECKS)
    if not snap["run_json"]:
        result["before_run_json"] = "refused" if code == 2 else "started fresh"
    if result["ok"] and not a.keep:
        shutil.rmtree(trial, ignore_errors=True)
    return result


def _last_error(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1][:500]


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (lock files left out)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


REFUSALS: dict[str, tuple[str, ...]] = {
    "checkpoints deleted": (),
    "state.json corrupted": (),
    "--no-dp": ("--no-dp",),
    "--privacy-unit example": ("--privacy-unit", "example"),
    "--task icu-deterioration": ("--task", "icu-deterioration"),
    "--batch-size 7": ("--batch-size", "7"),
}


def refusals(a: argparse.Namespace, kill_at: float) -> list[dict[str, Any]]:
    """Resume a run killed after its first checkpoint, changed in each way."""
    base = a.work / "refusal-base"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    proc = start(simulate_args(a, base), base / "killed.log")
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (base / "run" / "checkpoints" / "latest.json").is_file():
            break
        time.sleep(0.5)
    kill_group(proc)
    out = []
    for name, extra in REFUSALS.items():
        trial = a.work / "refusal"
        shutil.rmtree(trial, ignore_errors=True)
        shutil.copytree(base, trial, symlinks=True)
        if name == "checkpoints deleted":
            shutil.rmtree(trial / "run" / "checkpoints")
        if name == "state.json corrupted":
            latest = read_json(trial / "run" / "checkpoints" / "latest.json")
            state = trial / "run" / "checkpoints" / latest["path"] / "state.json"
            state.write_text(state.read_text()[:40])
        before = tree_digest(trial)
        args = [x for x in simulate_args(a, trial, "--resume") if x]
        if extra[:1] == ("--task",):  # replace, not repeat, --task
            i = args.index("--task")
            args[i + 1] = extra[1]
            extra = ()
        code, took = run_to_end([*args, *extra], trial / "resume.log", a.timeout)
        after = tree_digest(trial)
        changed = sorted(
            k for k in before.keys() | after.keys()
            if before.get(k) != after.get(k) and k != "resume.log"
        )  # fmt: skip
        error = _last_error(trial / "resume.log")
        out.append(
            {
                "case": name,
                "exit": code,
                "s": round(took, 1),
                "error": error,
                "one_line_error": error.startswith("error:"),
                "changed_files": changed,
                "ok": code == 2 and error.startswith("error:") and not changed,
            }
        )
        print(f"refusal {name}: exit {code}, changed {len(changed)}: {error[:160]}")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0, help="Seeds the kill times.")
    p.add_argument("--task", default="ecg-arrhythmia")
    p.add_argument("--hospitals", type=int, default=3)
    p.add_argument("--scale", type=float, default=0.2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--timeout", type=float, default=900.0, help="Per run (s).")
    p.add_argument(
        "--full-run-s", type=float, default=None,
        help="Duration of one full run (default: measure it first).",
    )  # fmt: skip
    p.add_argument(
        "--startup-s",
        type=float,
        default=0.0,
        help="Seconds until run.json appears (measured with the full run).",
    )
    p.add_argument(
        "--from-startup",
        action="store_true",
        help="Kill between startup's end (run.json written) and the end, not "
        "between 0 and the end.",
    )
    p.add_argument("--refusals", action="store_true", help="Also the refusals.")
    p.add_argument("--no-trials", action="store_true", help="Only the refusals.")
    p.add_argument("--keep", action="store_true", help="Keep passing trials' folders.")
    p.add_argument("--work", type=Path, default=Path("/tmp/fedcare-crash-trials"))
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    p.add_argument(
        "--output", type=Path,
        default=ROOT / "benchmarks" / "results" / f"crash-trials-{day}.json",
    )  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    a.work = a.work.resolve()
    a.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    full, ready = a.full_run_s, a.startup_s
    if full is None:
        code, ready, full = calibrate(a)
        if code:
            print(f"calibration run failed (exit {code}); see {a.work}/calibration")
            return 1
        print(f"one full run: {full:.1f} s, run.json after {ready:.1f} s")
    low = ready if a.from_startup else 0.0
    rng = random.Random(a.seed)
    payload: dict[str, Any] = {
        "schema": SCHEMA,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/crash_trials.py", *sys.argv[1:]]),
        "commit": _commit(),
        "settings": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(a).items()
            if k not in ("work", "output")
        },
        "full_run_s": round(full, 1),
        "startup_s": round(ready or 0.0, 1),
        "kill_window_s": [round(low, 1), round(full, 1)],
        "trials": [],
        "refusals": [],
    }
    for index in range(0 if a.no_trials else a.trials):
        result = one_trial(a, index, rng.uniform(low, full))
        payload["trials"].append(result)
        _write(a.output, payload)
        bad = [c for c in CHECKS if not result["checks"][c]["ok"]]
        print(
            f"trial {index}: kill {result['kill_s']}s in round "
            f"{result['killed_in_round']}, resume exit {result['resume']['exit']}, "
            f"{'ok' if result['ok'] else 'FAILED ' + ', '.join(bad)}",
            flush=True,
        )
    if a.refusals:
        payload["refusals"] = refusals(a, full)
    payload["summary"] = summarise(payload)
    _write(a.output, payload)
    print(json.dumps(payload["summary"], indent=2))
    return 0


def summarise(payload: dict[str, Any]) -> dict[str, Any]:
    trials = payload["trials"]
    return {
        "trials": len(trials),
        "all_ok": sum(t["ok"] for t in trials),
        "checks_ok": {c: sum(t["checks"][c]["ok"] for t in trials) for c in CHECKS},
        "resume_exit": _count(str(t["resume"]["exit"]) for t in trials),
        "killed_in_round": _count(str(t["killed_in_round"]) for t in trials),
        "refusals_ok": sum(r["ok"] for r in payload["refusals"]),
        "refusals": len(payload["refusals"]),
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
        text=True,
    )  # fmt: skip
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
        capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    raise SystemExit(main())
