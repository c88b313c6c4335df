"""The checks of one crash trial, on a run folder ``--resume`` has finished.

``before`` is :func:`benchmarks.crash_observe.observe` of the folder right
after the kill (files do not change once the process group is dead), so each
check compares what the killed run left with what the resumed one added.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.crash_observe import (
    KEPT_NOTE,
    ROUND_NOTE,
    ledger_files,
    ledger_rounds,
    read_json,
    read_jsonl,
)

CHECKS = (
    "rounds",
    "resumed_from",
    "evaluations",
    "audit",
    "ledgers",
    "epsilon",
)


def check_run(
    trial: Path,
    rounds: int,
    hospitals: int,
    before: dict[str, Any],
    verify: Callable[[Path], subprocess.CompletedProcess],
) -> dict[str, Any]:
    """Every check of :data:`CHECKS`: ``{name: {"ok": bool, ...}}``."""
    run, ledgers = trial / "run", trial / "ledgers"
    history = read_json(run / "history.json") or {"rounds": []}
    want = list(range(1, rounds + 1))
    numbers = [int(r["round"]) for r in history["rounds"]]
    audited = [int(r["round"]) for r in read_jsonl(run / "audit.jsonl")]
    out: dict[str, Any] = {
        "rounds": {
            "ok": numbers == want and audited == want,
            "history": numbers,
            "audit_log": audited,
        }
    }
    # The resumed run continued after the last complete (audited) round: the
    # audit records it appended are exactly the rounds after that one.
    done = max(before["audited"], default=0)
    added = audited[len(before["audited"]) :]
    out["resumed_from"] = {
        "ok": audited[: len(before["audited"])] == before["audited"]
        and added == list(range(done + 1, rounds + 1)),
        "last_complete": done,
        "rounds_added": added,
    }
    missing = [
        int(r["round"])
        for r in history["rounds"]
        if "evaluated_by" not in (r.get("evaluation") or {})
        or not (r.get("evaluation") or {}).get("pooled")
    ]
    killed_eval = done if done and done not in before["evaluated"] else None
    out["evaluations"] = {
        "ok": not missing and bool(numbers),
        "missing": missing,
        "killed_round_evaluated": None
        if killed_eval is None
        else killed_eval not in missing,
    }
    verified = verify(run)
    out["audit"] = {"ok": verified.returncode == 0, "exit": verified.returncode}
    if verified.returncode:
        out["audit"]["output"] = (verified.stdout + verified.stderr)[-400:]
    out.update(check_ledgers(run, ledgers, history.get("run_name", ""), rounds))
    out["ledgers"]["ok"] = (
        out["ledgers"]["ok"] and len(out["ledgers"]["hospitals"]) == hospitals
    )
    return out


def check_ledgers(run: Path, ledgers: Path, run_name: str, rounds: int) -> dict:
    """Each ledger, against its plan and its hospital's own report: every
    round charged once with the planned steps, nothing left open, a killed
    holder's reservation released (0 steps) or, when it kept its update,
    settled with that update's steps by the retry that resends it, and settled
    steps = reported."""
    from client.privacy import PrivacyLedger  # verifies the hash chain

    meta = read_json(run / "run.json") or {}
    run_epsilon = float(meta.get("run_config", {}).get("run-epsilon", 2.0))
    per: dict[str, Any] = {}
    ok_ledger = ok_eps = bool(run_name)
    for path in ledger_files(ledgers):
        try:
            ledger = PrivacyLedger.open(path, None)
        except Exception as exc:  # noqa: BLE001 (a broken chain is a failed check)
            per[path.stem] = {"ok": False, "error": str(exc)[:300]}
            ok_ledger = False
            continue
        records = [r for r in ledger.records if r.get("run_id") == run_name]
        plan = next((p for p in ledger.plans if p["run_id"] == run_name), {})
        per_round = int(plan.get("planned_steps", 0)) // rounds
        spends = [e for e in ledger.entries if e["run_id"] == run_name]
        charged = [e for e in spends if int(e["steps"]) > 0]
        released = [e for e in spends if str(e.get("note", "")).startswith("released")]
        report = read_json(run / "hospital-reports" / path.stem / f"{run_name}.json")
        reported = sum(
            int(f.get("steps", 0)) for f in (report or {}).get("fit", {}).values()
        )
        by_round = ledger_rounds(records)
        entry = {
            "charged_rounds": sorted(by_round["charged"]),
            "charges_per_round": sorted(set(by_round["charged"].values())),
            "steps_per_charge": sorted({int(e["steps"]) for e in charged}),
            "planned_per_round": per_round,
            "settled_steps": sum(int(e["steps"]) for e in spends),
            "reported_steps": reported,
            "open_reservations": sum(by_round["open"].values()),
            "released": len(released),
            "settled_for_dead": sum(
                1 for e in charged if KEPT_NOTE.match(str(e.get("note", "")))
            ),
            "unnoted_spends": sum(
                1
                for e in charged
                if not ROUND_NOTE.match(str(e.get("note", "")))
                and not KEPT_NOTE.match(str(e.get("note", "")))
            ),
            "spent_epsilon": ledger.spent_epsilon,
        }
        entry["ok"] = (
            entry["charged_rounds"] == list(range(1, rounds + 1))
            and entry["charges_per_round"] == [1]
            and entry["steps_per_charge"] == [per_round]
            and entry["settled_steps"] == per_round * rounds == reported
            and entry["open_reservations"] == 0
            and entry["unnoted_spends"] == 0
            and all(int(e["steps"]) == 0 for e in released)
        )
        ok_ledger = ok_ledger and entry["ok"]
        ok_eps = ok_eps and ledger.spent_epsilon <= run_epsilon * (1 + 1e-9)
        per[path.stem] = entry
    return {
        "ledgers": {"ok": ok_ledger, "hospitals": per},
        "epsilon": {"ok": ok_eps, "run_epsilon": run_epsilon},
    }
