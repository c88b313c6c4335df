"""Crash trials: kill ``fedcare simulate`` at chosen phases, ``--resume``, check.

Each trial starts a small federation (default: 3 hospitals, ``--scale 0.2``,
3 rounds, DP + SecAgg+, no baselines) as a subprocess in its own session,
watches its run folder and ledgers (:mod:`benchmarks.crash_observe`) for the
start of the phase the trial aims at (a round's training, its evaluation, the
gap after it, or the startup), waits a random fraction of that phase's length
(measured by one watched calibration run), SIGKILLs the whole process group
(Ray's workers, the hospitals, included), records where the kill landed from
what the files then held, runs ``fedcare simulate --resume`` on the same
``--out`` and ``--ledger-dir`` to its end, and checks
(:mod:`benchmarks.crash_checks`):

- ``rounds``: history and audit log hold rounds 1..R, each exactly once;
- ``resumed_from``: the audit records the resume appended are exactly the
  rounds after the last complete (audited) one: none repeated, none lost;
- ``evaluations``: every round's pooled evaluation and who evaluated it are
  recorded, the killed round's included;
- ``audit``: ``fedcare audit verify RUN/audit.jsonl --checkpoints
  RUN/checkpoints`` exits 0;
- ``ledgers``: each hospital's ledger (hash chain verified) charges every
  round exactly once, with the planned steps; no reservation is left open (a
  killed holder's is released with 0 steps); settled steps = its own report;
- ``epsilon``: each ledger's spent epsilon is at most the run's epsilon.

``--refusals`` also resumes a killed copy with checkpoints/ deleted, with a
corrupted state.json, and with ``--no-dp`` / another ``--privacy-unit`` /
``--task`` / ``--batch-size``: each must exit 2 with a one-line error and
leave the folder unchanged. Results are written after every trial;
``--markdown DOC`` rewrites the "Crash trials" table of DOC (between its
``crash-trials`` markers), ``--from JSON`` does so without running anything.
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
if str(ROOT) not in sys.path:  # run as a script: import this checkout
    sys.path.insert(0, str(ROOT))

from benchmarks.crash_checks import CHECKS, check_run  # noqa: E402
from benchmarks.crash_observe import (  # noqa: E402
    PHASES,
    classify,
    event_time_key,
    observe,
    phase_lengths,
    read_json,
    timeline,
    wait_and_kill,
)
from benchmarks.crash_tables import BEGIN, END, crash_table  # noqa: E402

SCHEMA = "fedcare.benchmarks.crash_trials/2"


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


def verify_audit(run: Path) -> subprocess.CompletedProcess:
    """``fedcare audit verify RUN/audit.jsonl --checkpoints RUN/checkpoints``."""
    return subprocess.run(
        cli("audit", "verify", str(run / "audit.jsonl"), "--checkpoints",
            str(run / "checkpoints"), "--format", "json"),
        cwd=ROOT, env=env(), capture_output=True, text=True,
    )  # fmt: skip


def calibrate(a: argparse.Namespace) -> dict[str, Any]:
    """One full run, watched: when each event was first seen, and how long
    each phase lasted (the kill delays are fractions of these)."""
    calib = a.work / "calibration"
    shutil.rmtree(calib, ignore_errors=True)
    calib.mkdir(parents=True)
    proc = start(simulate_args(a, calib), calib / "run.log")
    try:
        times = timeline(proc, calib / "run", calib / "ledgers", a.timeout, a.poll)
    finally:
        kill_group(proc)
    return {
        "exit": proc.returncode,
        "events_s": times,
        "phase_s": phase_lengths(times, a.rounds),
    }


def plan_targets(
    trials: int, rounds: int, seed: int, phase_s: dict[str, float]
) -> list[dict[str, Any]]:
    """The phase each trial aims at, most of them inside a round.

    A cycle of 5 * rounds targets: every round's training three times and its
    evaluation once (4 * rounds aims inside a round), every gap between rounds
    and the startup (before round 1) once; whole cycles, each shuffled with
    ``seed`` (3 rounds: a cycle is 15 trials, 12 of them inside a round).
    Each target waits for its phase's first event, then a fraction (uniform
    in 0.1..0.9) of that phase's calibrated length.
    """
    cycle: list[dict[str, Any]] = []
    for k in range(1, rounds + 1):
        cycle += [{"phase": "training", "round": k}] * 3
        cycle.append({"phase": "evaluation", "round": k})
    cycle += [{"phase": "between rounds", "round": k} for k in range(1, rounds)]
    cycle.append({"phase": "startup", "round": None})
    rng = random.Random(seed)
    order: list[dict[str, Any]] = []
    while len(order) < trials:  # whole cycles, each shuffled
        order += rng.sample(cycle, len(cycle))
    targets = []
    for index, aim in enumerate(order[:trials]):
        trial_seed = seed * 1000 + index
        fraction = random.Random(trial_seed).uniform(0.1, 0.9)
        length = phase_s.get(event_time_key(aim), 0.0)
        targets.append(
            {**aim, "seed": trial_seed, "fraction": round(fraction, 3),
             "delay_s": round(fraction * length, 2)}
        )  # fmt: skip
    return targets


def one_trial(
    a: argparse.Namespace, index: int, target: dict[str, Any]
) -> dict[str, Any]:
    """Start a run, kill its process group at ``target``, ``--resume``, check."""
    trial = a.work / f"trial-{index:03d}"
    shutil.rmtree(trial, ignore_errors=True)
    trial.mkdir(parents=True)
    run, ledgers = trial / "run", trial / "ledgers"
    proc = start(simulate_args(a, trial), trial / "killed.log")
    try:
        kill_s = wait_and_kill(proc, run, ledgers, target, a.timeout, a.poll)
    finally:
        kill_group(proc)
    before = observe(run, ledgers)
    landed = classify(before, a.rounds, a.hospitals)
    result: dict[str, Any] = {
        "trial": index,
        "seed": target.get("seed"),
        "commit": _commit(),  # the code each trial ran (fixes may land meanwhile)
        "target": target,
        "kill_s": None if kill_s is None else round(kill_s, 2),
        "finished_before_kill": kill_s is None,
        "kill_point": landed,
        "before_resume": before,
    }
    code, took = run_to_end(
        simulate_args(a, trial, "--resume"), trial / "resume.log", a.timeout
    )
    result["resume"] = {"exit": code, "s": round(took, 1)}
    if code:
        result["resume"]["error"] = _last_error(trial / "resume.log")
    result["checks"] = check_run(trial, a.rounds, a.hospitals, before, verify_audit)
    result["ok"] = code == 0 and all(result["checks"][c]["ok"] for c in CHECKS)
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


def refusals(a: argparse.Namespace) -> list[dict[str, Any]]:
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
    p.add_argument("--seed", type=int, default=0, help="Seeds the kill points.")
    p.add_argument("--task", default="ecg-arrhythmia")
    p.add_argument("--hospitals", type=int, default=3)
    p.add_argument("--scale", type=float, default=0.2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--timeout", type=float, default=900.0, help="Per run (s).")
    p.add_argument(
        "--calibration", type=Path, default=None, metavar="JSON",
        help="Take the phase lengths from this results file's calibration "
        "(same settings) instead of measuring one full run first.",
    )  # fmt: skip
    p.add_argument("--poll", type=float, default=0.05, help="Watch period (s).")
    p.add_argument("--refusals", action="store_true", help="Also the refusals.")
    p.add_argument("--no-trials", action="store_true", help="Only the refusals.")
    p.add_argument("--keep", action="store_true", help="Keep passing trials' folders.")
    p.add_argument("--work", type=Path, default=Path("/tmp/fedcare-crash-trials"))
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    p.add_argument(
        "--output", type=Path,
        default=ROOT / "benchmarks" / "results" / f"crash-trials-{day}.json",
    )  # fmt: skip
    p.add_argument(
        "--markdown", type=Path, default=None, metavar="DOC",
        help="Rewrite DOC's crash-trials table (e.g. docs/reliability.md).",
    )  # fmt: skip
    p.add_argument(
        "--from", dest="from_json", type=Path, default=None, metavar="JSON",
        help="Run nothing: rewrite --markdown's table from this results file.",
    )  # fmt: skip
    return p.parse_args(argv)


def run_trials(a: argparse.Namespace, payload: dict[str, Any]) -> None:
    """Calibrate, plan the targets, run every trial (results saved after each)."""
    if a.calibration is not None:  # a watched run of the same settings
        calib = {**(read_json(a.calibration) or {}).get("calibration", {})}
        calib["from"] = str(a.calibration)
    else:
        calib = calibrate(a)
    payload["calibration"] = calib
    if calib["exit"]:
        raise SystemExit(
            f"calibration run failed (exit {calib['exit']}); see {a.work}/calibration"
        )
    print(f"calibration: {calib['events_s']}", flush=True)
    targets = plan_targets(a.trials, a.rounds, a.seed, calib["phase_s"])
    for index, target in enumerate(targets):
        result = one_trial(a, index, target)
        payload["trials"].append(result)
        _write(a.output, payload)
        bad = [c for c in CHECKS if not result["checks"][c]["ok"]]
        landed = result["kill_point"]
        print(
            f"trial {index}: aimed {target['phase']} {target['round']}, killed at "
            f"{result['kill_s']} s in {landed['phase']} {landed['round']}, resume "
            f"exit {result['resume']['exit']} ({result['resume']['s']} s), "
            f"{'ok' if result['ok'] else 'FAILED ' + ', '.join(bad)}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.from_json is not None:
        if a.markdown is None:
            raise SystemExit("--from needs --markdown DOC (the doc to rewrite)")
        payload = read_json(a.from_json)
        if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
            print(f"error: {a.from_json}: not a {SCHEMA} results file", file=sys.stderr)
            return 2
        payload["summary"] = summarise(payload)  # also of a run cut short
        _markdown(a.markdown, payload, a.from_json)
        return 0
    a.work = a.work.resolve()
    a.work.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "schema": SCHEMA,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/crash_trials.py", *sys.argv[1:]]),
        "commit": _commit(),
        "load_at_start": _load(),
        "settings": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(a).items()
            if k not in ("work", "output", "markdown", "from_json")
        },
        "trials": [],
        "refusals": [],
    }
    began = time.monotonic()
    if not a.no_trials:
        run_trials(a, payload)
    if a.refusals:
        payload["refusals"] = refusals(a)
    payload["load_at_end"] = _load()
    payload["wall_s"] = round(time.monotonic() - began, 1)
    payload["summary"] = summarise(payload)
    _write(a.output, payload)
    print(json.dumps(payload["summary"], indent=2))
    if a.markdown is not None:
        _markdown(a.markdown, payload, a.output)
    return 0


def summarise(payload: dict[str, Any]) -> dict[str, Any]:
    trials = payload["trials"]
    phases = _count(t["kill_point"]["phase"] for t in trials)
    return {
        "trials": len(trials),
        "all_ok": sum(t["ok"] for t in trials),
        "checks_ok": {c: sum(t["checks"][c]["ok"] for t in trials) for c in CHECKS},
        "resume_exit": _count(str(t["resume"]["exit"]) for t in trials),
        "kill_phase": {p: phases[p] for p in PHASES if p in phases},
        "inside_a_round": sum(
            t["kill_point"]["phase"] in ("training", "aggregation", "evaluation")
            for t in trials
        ),
        "on_target": sum(
            t["kill_point"]["phase"] == t["target"]["phase"]
            and t["kill_point"]["round"] == t["target"]["round"]
            for t in trials
        ),
        "refusals_ok": sum(r["ok"] for r in payload["refusals"]),
        "refusals": len(payload["refusals"]),
    }


def _markdown(doc: Path, payload: dict[str, Any], source: Path) -> None:
    from benchmarks.markdown import replace_block

    try:
        shown = source.resolve().relative_to(ROOT)
    except ValueError:
        shown = source
    replace_block(doc, BEGIN, END, crash_table(payload, str(shown)))
    print(f"wrote the crash-trials table of {doc}")


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


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
