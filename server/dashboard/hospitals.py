"""The hospital table: what the aggregator knows of each hospital, and, in a
simulation only, what each simulated hospital reported about itself.

From the history (what a deployment's aggregator legitimately holds): the
identity a hospital's SuperNode reported, the last round it was seen in,
the rounds it joined, and declines (visible only without SecAgg+) and drops
with their reason. Epsilon is never in the history: in a deployment each
hospital keeps its spend in its own ledger. A simulation writes
``hospitals.json`` (each hospital's budget) and ``hospital-reports/`` (each
hospital's own record: epsilon spent per round, decline reasons); those
columns carry ``simulation_only``.
"""

from __future__ import annotations

from typing import Any

from server.dashboard.run_folder import _num

AMBER, RED = 0.75, 0.90  # fraction of the budget spent


def hospital_rows(files: dict[str, Any]) -> list[dict[str, Any]]:
    rounds = sorted(files["rounds"], key=lambda r: r.get("round", 0))
    nodes = {str(n.get("hospital-id")): n for n in files["nodes"] or []}
    ids = list(nodes)
    for record in rounds:
        seen = list(record.get("fit") or {})
        seen += (record.get("evaluation") or {}).get("evaluated_by") or []
        seen += [str(d.get("hospital")) for d in record.get("dropped") or []]
        ids += [h for h in seen if h and h != "None" and h not in ids]
    return [_row(hid, rounds, nodes.get(hid), files) for hid in sorted(ids)]


def _row(
    hid: str,
    rounds: list[dict[str, Any]],
    node: dict[str, Any] | None,
    files: dict[str, Any],
) -> dict[str, Any]:
    joined, last_round, last_time, problems = 0, None, None, []
    for record in rounds:
        number = record.get("round")
        fit = (record.get("fit") or {}).get(hid)
        evaluated = hid in ((record.get("evaluation") or {}).get("evaluated_by") or [])
        if fit is not None or evaluated:
            last_round, last_time = number, record.get("time")
        if hid in (record.get("participating") or []):
            joined += 1
        if hid in (record.get("declined") or []):
            problems.append(
                {
                    "round": number,
                    "status": "declined",
                    "reason": "sent 0 examples (visible only without SecAgg+)",
                }
            )
        for drop in record.get("dropped") or []:
            if str(drop.get("hospital")) == hid:
                # the history's words for it are the audit record's
                # (server.audit.round_record): sampled, no reply
                problems.append(
                    {
                        "round": number,
                        "status": str(drop.get("status", "no-reply")),
                        "reason": str(
                            drop.get("reason", "sampled for the round, sent no reply")
                        ),
                    }
                )
    row: dict[str, Any] = {
        "hospital": hid,
        "last_seen_round": last_round,
        "last_seen_time": _num(last_time),
        "rounds_joined": joined,
        "problems": problems,
        "epsilon": None,
    }
    if node is not None:
        row["epsilon"] = _epsilon(hid, node, files)
        row["simulation_declines"] = _simulated_declines(files["reports"].get(hid))
    return row


def _epsilon(hid: str, node: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    """A simulated hospital's spend of its budget (its own report, or summary)."""
    budget = _num(node.get("epsilon"))
    spent = None
    fits = (files["reports"].get(hid) or {}).get("fit") or {}
    for number in sorted(fits, key=lambda k: int(k) if str(k).isdigit() else 0):
        value = _num((fits[number] or {}).get("epsilon-spent"))
        spent = value if value is not None else spent
    entry = ((files["summary"] or {}).get("hospitals") or {}).get(hid) or {}
    if _num(entry.get("epsilon_spent")) is not None:
        spent = _num(entry["epsilon_spent"])
    fraction = spent / budget if spent is not None and budget else None
    level = "ok"
    if fraction is not None and fraction >= RED:
        level = "red"
    elif fraction is not None and fraction >= AMBER:
        level = "amber"
    return {
        "spent": spent,
        "budget": budget,
        "fraction": fraction,
        "level": level,
        "simulation_only": True,
    }


def _simulated_declines(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Declines a simulated hospital recorded itself (hidden by SecAgg+)."""
    fits = (report or {}).get("fit") or {}
    return [
        {"round": int(k), "reason": str(f["declined"])}
        for k, f in fits.items()
        if str(k).isdigit() and isinstance(f, dict) and f.get("declined")
    ]
