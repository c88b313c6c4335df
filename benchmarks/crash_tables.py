"""The "Crash trials" block of docs/reliability.md, from a results file."""

from __future__ import annotations

from typing import Any

BEGIN = "<!-- crash-trials:begin -->"
END = "<!-- crash-trials:end -->"


def _where(point: dict[str, Any]) -> str:
    phase, k = point["phase"], point["round"]
    if phase == "between rounds":
        return f"between rounds {k} and {k + 1}"
    if phase in ("startup", "after the last round"):
        return "before round 1 (startup)" if phase == "startup" else phase
    return f"round {k} {phase}"


def _kill_s(trial: dict[str, Any]) -> str:
    if trial.get("finished_before_kill"):
        return "not killed: the run ended first"
    return str(trial["kill_s"])


def _held(before: dict[str, Any], point: dict[str, Any]) -> str:
    """Open and settled reservations of the killed round (JSON keys are text)."""
    if point["phase"] not in ("training", "aggregation"):
        return "-"
    k = str(point["round"])
    reserved = {str(r): n for r, n in (before.get("reserved") or {}).items()}
    opened = {str(r): n for r, n in (before.get("open") or {}).items()}
    return f"{opened.get(k, 0)}, {reserved.get(k, 0) - opened.get(k, 0)}"


def _ledger_failure(ledgers: dict[str, Any]) -> str:
    """Which hospitals' ledgers failed, and how."""
    twice, declined, other = [], [], []
    for name, h in ledgers["hospitals"].items():
        if h.get("ok"):
            continue
        if 2 in h.get("charges_per_round", []):
            twice.append(name)
        elif h.get("settled_steps", 0) > h.get("reported_steps", 0):
            declined.append(name)
        else:
            other.append(name)
    parts = []
    if twice:
        parts.append(f"{', '.join(twice)} charged a round twice")
    if declined:
        parts.append(f"{', '.join(declined)} declined a round at the plan's cap")
    if other:
        parts.append(f"{', '.join(other)}: see the JSON")
    return "; ".join(parts)


def _cut_short(ran: int, planned: Any) -> list[str]:
    if not isinstance(planned, int) or ran >= planned:
        return []
    return [
        f"The run was stopped after {ran} of its {planned} planned trials "
        "(the results file holds every trial that finished).",
        "",
    ]


def crash_table(payload: dict[str, Any], source: str) -> str:
    """The Markdown block (markers included) for ``payload``."""
    trials = payload["trials"]
    s = payload.get("summary") or {}
    settings = payload.get("settings", {})
    lines = [
        BEGIN,
        f"Generated from `{source}` (`{payload.get('command', '')}`, commit "
        f"{payload.get('commit', '?')}, started {payload.get('started', '?')}; "
        f"load average {payload.get('load_at_start', '?')} at the start, "
        f"{payload.get('load_at_end', '?')} at the end, on 2 cores shared with "
        f"other jobs; {payload.get('wall_s', '?')} s in all). Each trial: "
        f"{settings.get('hospitals')} hospitals, `--scale {settings.get('scale')}`, "
        f"{settings.get('rounds')} rounds, DP and SecAgg+ on.",
        "",
        *_cut_short(len(trials), settings.get("trials")),
        f"**{s.get('all_ok', 0)} of {s.get('trials', len(trials))} trials passed "
        f"every check**; {s.get('inside_a_round', 0)} kills landed inside a round "
        f"(training, aggregation or evaluation), {s.get('on_target', 0)} in the "
        "phase and round they aimed at.",
        "",
        "| kill landed in | trials | passed |",
        "|---|--:|--:|",
    ]
    phases: dict[str, list[bool]] = {}
    for t in trials:
        phases.setdefault(t["kill_point"]["phase"], []).append(bool(t["ok"]))
    for phase, oks in phases.items():
        lines.append(f"| {phase} | {len(oks)} | {sum(oks)} |")
    checks = s.get("checks_ok", {})
    lines += [
        "",
        "Checks passed: "
        + ", ".join(f"`{c}` {n}/{len(trials)}" for c, n in checks.items())
        + ".",
        "",
        "| trial | seed | aimed at | kill landed in | killed at (s) | the "
        "round's reservations then: open, settled | resumed after round | rounds "
        "the resume added | resume (s) | result |",
        "|--:|--:|---|---|--:|--:|--:|---|--:|---|",
    ]
    for t in trials:
        checks_t = t["checks"]
        added = checks_t["resumed_from"]["rounds_added"]
        held = _held(t["before_resume"], t["kill_point"])
        failed = [c for c, v in checks_t.items() if not v["ok"]]
        result = "pass" if t["ok"] else "FAIL: " + ", ".join(failed or ["resume exit"])
        if "ledgers" in failed:
            result += f" ({_ledger_failure(checks_t['ledgers'])})"
        lines.append(
            f"| {t['trial']} | {t['seed']} | {_where(t['target'])} | "
            f"{_where(t['kill_point'])} | {_kill_s(t)} | {held} | "
            f"{checks_t['resumed_from']['last_complete']} | "
            f"{', '.join(map(str, added)) or '-'} | {t['resume']['s']} | {result} |"
        )
    refusals = payload.get("refusals") or []
    if refusals:
        lines += [
            "",
            "| refused resume | exit | files changed | error |",
            "|---|--:|--:|---|",
        ]
        for r in refusals:
            error = r["error"].replace("|", "\\|")[:160]
            lines.append(
                f"| {r['case']} | {r['exit']} | {len(r['changed_files'])} | {error} |"
            )
    lines.append(END)
    return "\n".join(lines)
