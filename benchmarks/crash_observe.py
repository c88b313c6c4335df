"""What a running (or killed) ``fedcare simulate`` has written, and when to kill it.

:func:`observe` reads the run folder and the hospitals' ledgers (nothing
else: no log line, no Flower state), so the same function times the phases of
a calibration run, triggers a kill at a chosen phase, and classifies where a
kill actually landed. The events it sees, in a round ``k``'s order:

- ``reserve``: a hospital's ledger holds a ``reserve`` record noted
  ``round k`` (its DP steps start: the round's training);
- ``audited``: the audit log records round ``k`` (the aggregate and its
  checkpoint are written: the round's fit is complete and evaluation starts);
- ``evaluated``: ``history.json`` names who evaluated round ``k``.

A kill's *phase* follows from the events seen when it landed: ``startup``
(no reservation yet), ``training`` (round ``k`` reserved, some hospital's
reservation still open or not yet made), ``aggregation`` (every hospital's
reservation of round ``k`` settled, the round not yet audited: replies and
SecAgg+), ``evaluation``
(round ``k`` audited, not yet evaluated), ``between rounds`` (round ``k``
evaluated, round ``k + 1`` not reserved) and ``after the last round``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

ROUND_NOTE = re.compile(r"^round (\d+)$")
# A dead holder's reservation settled with the steps of the update it kept
# (client/round_cache.py), by the retry that resends that update.
KEPT_NOTE = re.compile(
    r"^settled for the holder pid \d+, which died after training it; "
    r"its kept update resent as round (\d+)$"
)
PHASES = (
    "startup",
    "training",
    "aggregation",
    "evaluation",
    "between rounds",
    "after the last round",
)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The whole lines of a JSON Lines file (a line being appended is skipped)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def ledger_files(folder: Path) -> list[Path]:
    """The hospitals' ledgers (not the audit heads they keep beside them)."""
    return sorted(
        p for p in folder.glob("*.jsonl") if not p.name.endswith(".audit-heads.jsonl")
    )


def ledger_rounds(records: list[dict[str, Any]]) -> dict[str, dict[int, int]]:
    """Per round (from the reservation's note): reserved, open and charged
    (spends of more than 0 steps) reservations of one ledger."""
    note_of = {}
    out: dict[str, dict[int, int]] = {"reserved": {}, "open": {}, "charged": {}}
    for r in records:
        match = ROUND_NOTE.match(str(r.get("note", "")))
        if r.get("type") == "reserve" and match:
            k = int(match.group(1))
            note_of[r["reservation"]] = k
            out["reserved"][k] = out["reserved"].get(k, 0) + 1
            out["open"][k] = out["open"].get(k, 0) + 1
        elif r.get("type") == "spend" and r.get("reservation") in note_of:
            k = note_of[r["reservation"]]
            out["open"][k] -= 1
            if int(r.get("steps", 0)) > 0:
                out["charged"][k] = out["charged"].get(k, 0) + 1
    out["open"] = {k: n for k, n in out["open"].items() if n}
    return out


def observe(run: Path, ledgers: Path) -> dict[str, Any]:
    """The run's events as its files hold them now (see the module's doc)."""
    history = read_json(run / "history.json") or {}
    audited = [int(r["round"]) for r in read_jsonl(run / "audit.jsonl")]
    reserved: dict[int, int] = {}
    open_: dict[int, int] = {}
    for path in ledger_files(ledgers):
        rounds = ledger_rounds(read_jsonl(path))
        for k, n in rounds["reserved"].items():
            reserved[k] = reserved.get(k, 0) + n
        for k, n in rounds["open"].items():
            open_[k] = open_.get(k, 0) + n
    latest = read_json(run / "checkpoints" / "latest.json") or {}
    return {
        "run_json": (run / "run.json").is_file(),
        "audited": audited,
        "checkpoint_round": latest.get("round"),
        "history_rounds": [int(r["round"]) for r in history.get("rounds", [])],
        "evaluated": [
            int(r["round"])
            for r in history.get("rounds", [])
            if "evaluated_by" in (r.get("evaluation") or {})
        ],
        "reserved": reserved,
        "open": open_,
    }


def classify(obs: dict[str, Any], rounds: int, hospitals: int) -> dict[str, Any]:
    """Where a kill landed: ``{"phase", "round"}`` from the events seen."""
    done = max(obs["audited"], default=0)  # the last complete round
    if done >= rounds:
        if rounds in obs["evaluated"]:
            return {"phase": "after the last round", "round": rounds}
        return {"phase": "evaluation", "round": rounds}
    if done and done not in obs["evaluated"]:
        return {"phase": "evaluation", "round": done}
    nxt = done + 1
    if obs["reserved"].get(nxt):
        training = obs["open"].get(nxt) or obs["reserved"][nxt] < hospitals
        phase = "training" if training else "aggregation"
        return {"phase": phase, "round": nxt}
    if done == 0:
        return {"phase": "startup", "round": None}
    return {"phase": "between rounds", "round": done}


def event_time_key(target: dict[str, Any]) -> str:
    """The event a target waits for (the start of its phase)."""
    k = target.get("round")
    return {
        "startup": "start",
        "training": f"reserve {k}",
        "evaluation": f"audited {k}",
        "between rounds": f"evaluated {k}",
    }[target["phase"]]


def events_seen(obs: dict[str, Any]) -> set[str]:
    seen = {"start"}
    seen |= {f"reserve {k}" for k in obs["reserved"]}
    seen |= {f"audited {k}" for k in obs["audited"]}
    seen |= {f"evaluated {k}" for k in obs["evaluated"]}
    return seen


def timeline(
    proc: subprocess.Popen, run: Path, ledgers: Path, timeout: float, poll: float
) -> dict[str, float]:
    """Watch a run to its end: the first time (s from now) each event was seen."""
    began = time.monotonic()
    times: dict[str, float] = {}
    while proc.poll() is None and time.monotonic() - began < timeout:
        now = time.monotonic() - began
        for event in events_seen(observe(run, ledgers)):
            times.setdefault(event, round(now, 2))
        time.sleep(poll)
    times["end"] = round(time.monotonic() - began, 2)
    return times


def phase_lengths(times: dict[str, float], rounds: int) -> dict[str, float]:
    """From a calibration timeline: how long each phase (keyed by its start
    event) lasted, until the next phase's event."""
    order = ["start"]
    for k in range(1, rounds + 1):
        order += [f"reserve {k}", f"audited {k}", f"evaluated {k}"]
    order.append("end")
    seen = [e for e in order if e in times]
    return {
        a: round(max(times[b] - times[a], 0.0), 2)
        for a, b in zip(seen, seen[1:], strict=False)
    }


def wait_and_kill(
    proc: subprocess.Popen,
    run: Path,
    ledgers: Path,
    target: dict[str, Any],
    timeout: float,
    poll: float,
) -> float | None:
    """Wait for the target's event, then ``target["delay_s"]`` more; returns
    the seconds from start to the kill decision (None: the run ended first)."""
    began = time.monotonic()
    event = event_time_key(target)
    fired: float | None = 0.0 if event == "start" else None
    while proc.poll() is None and time.monotonic() - began < timeout:
        if fired is None and event in events_seen(observe(run, ledgers)):
            fired = time.monotonic()
        if fired is not None:
            start = began if event == "start" else fired
            if time.monotonic() >= start + float(target.get("delay_s", 0.0)):
                return time.monotonic() - began
        time.sleep(poll)
    return None
