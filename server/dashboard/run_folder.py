"""What a run folder says about its run: status, settings, rounds and metrics.

Reads only files the aggregator writes (``run.json``, ``history.json``,
``models/``) and, when a simulation wrote them, ``hospitals.json``,
``hospital-reports/`` and ``summary.json`` (everything read from those three
is marked ``simulation_only``: in a deployment no hospital's own numbers
reach the aggregator). Every reader tolerates a file being written right now
(the writers replace files atomically, but a file may not exist yet): a file
that cannot be read counts as absent, never as an error page.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from server import evaluation
from server.history import JSON_NAME as HISTORY_NAME

log = logging.getLogger(__name__)

RUN_NAME, SUMMARY_NAME, NODES_NAME = "run.json", "summary.json", "hospitals.json"
REPORTS_DIR, REPORT_NAME, AUDIT_NAME = "hospital-reports", "report.html", "audit.jsonl"
# The privacy unit in words (the hospitals' wording: client.privacy.sampling).
UNIT_WORDS = {
    "patient": "adding or removing one patient's data (all their records)",
    "example": "adding or removing one example (one beat, window or stay)",
}
# Per-round metrics worth a chart, in the order they are drawn.
CHART_METRICS = ("auroc", "auprc", "f1", "mae_days", "rmse_days")


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or ``None`` if it is absent or half-written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def read_folder(run_dir: Path) -> dict[str, Any]:
    """Every file the dashboard reads, parsed once per request."""
    run_dir = Path(run_dir)
    history = read_json(run_dir / HISTORY_NAME)
    nodes = read_json(run_dir / NODES_NAME)
    files = {
        "run": read_json(run_dir / RUN_NAME),
        "rounds": (history or {}).get("rounds", [])
        if isinstance(history, dict)
        else [],
        "nodes": nodes if isinstance(nodes, list) else None,
        "summary": read_json(run_dir / SUMMARY_NAME),
    }
    name = (files["run"] or {}).get("run_name", "")
    files["reports"] = _hospital_reports(run_dir, files["nodes"], name)
    return files


def _hospital_reports(
    run_dir: Path, nodes: list[dict[str, Any]] | None, run_name: str
) -> dict[str, dict[str, Any]]:
    """Simulated hospitals' own records of this run (never in a deployment)."""
    if not nodes or not run_name:
        return {}
    reports = {}
    for node in nodes:
        hid = str(node.get("hospital-id", ""))
        if not hid or "/" in hid or hid.startswith("."):
            continue
        report = read_json(run_dir / REPORTS_DIR / hid / f"{run_name}.json")
        if isinstance(report, dict):
            reports[hid] = report
    return reports


def status(run_dir: Path, files: dict[str, Any]) -> dict[str, str]:
    """``missing``, ``empty``, ``starting``, ``running`` or ``finished``, in words."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return {
            "state": "missing",
            "message": f"There is no run folder at {run_dir} yet. Start a run "
            f"into it (fedcare simulate --out {run_dir}) or check the path; "
            "this page updates when it appears.",
        }
    if not run_dir.is_dir():
        return {
            "state": "missing",
            "message": f"{run_dir} is a file, not a run folder.",
        }
    if files["run"] is None and files["nodes"] is None and not any(run_dir.iterdir()):
        return {
            "state": "empty",
            "message": f"The run folder {run_dir} is empty: no run has started in "
            "it yet. This page updates when one does.",
        }
    if files["run"] is None:
        return {
            "state": "starting",
            "message": "The run is starting: no run.json yet (the cohort is being "
            "written or the federation is starting).",
        }
    done, planned = rounds_done(files), planned_rounds(files)
    if planned and done >= planned:
        if files["nodes"] is not None and files["summary"] is None:
            return {
                "state": "finishing",
                "message": f"All {planned} rounds are done; the simulation is "
                "training its baselines and writing the report.",
            }
        return {
            "state": "finished",
            "message": f"Finished: {done} of {planned} rounds.",
        }
    if not files["rounds"]:
        return {"state": "starting", "message": "Round 1 is under way."}
    return {
        "state": "running",
        "message": f"Round {done + 1} of {planned} is under way.",
    }


def planned_rounds(files: dict[str, Any]) -> int:
    config = (files["run"] or {}).get("run_config") or {}
    try:
        return int(config.get("num-server-rounds") or 0)
    except (TypeError, ValueError):
        return 0


def rounds_done(files: dict[str, Any]) -> int:
    """Rounds whose evaluation finished (a round's fit alone is not done)."""
    return sum(
        1 for r in files["rounds"] if "evaluated_by" in (r.get("evaluation") or {})
    )


def run_info(files: dict[str, Any]) -> dict[str, Any]:
    """The run's settings, the privacy guarantee in words, its progress."""
    meta = files["run"] or {}
    config = meta.get("run_config") or {}
    task = config.get("task", "")
    info: dict[str, Any] = {
        "run_name": meta.get("run_name", ""),
        "task": task,
        "model": (meta.get("model_card") or {}).get("model", ""),
        "strategy": config.get("strategy", ""),
        "proximal_mu": config.get("proximal-mu"),
        "rounds_planned": planned_rounds(files),
        "rounds_done": rounds_done(files),
        "privacy": _privacy(config, files),
        "secagg": {
            "enabled": bool(config.get("secagg")),
            "num_shares": config.get("secagg-num-shares"),
            "reconstruction_threshold": config.get("secagg-reconstruction-threshold"),
            "clipping_range": config.get("secagg-clipping-range"),
            "quantization_range": config.get("secagg-quantization-range"),
            "min_hospitals": config.get("min-secagg-hospitals"),
        },
    }
    if task:
        try:
            info["primary_metric"], info["higher_is_better"] = (
                evaluation.primary_metric(task)
            )
        except Exception:  # an unknown task in a foreign run.json
            info["primary_metric"], info["higher_is_better"] = "", True
    return info


def _privacy(config: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    dp = bool(config.get("dp"))
    epsilon = config.get("run-epsilon")
    privacy: dict[str, Any] = {"dp": dp, "epsilon": epsilon if dp else None}
    nodes = files["nodes"] or []
    summary = (files["summary"] or {}).get("privacy") or {}
    if not dp:
        privacy["text"] = "None: this run trains without differential privacy."
        return privacy
    deltas = {n.get("delta") for n in nodes}
    units = {n.get("privacy-unit") for n in nodes}
    if summary.get("guarantee"):
        privacy.update(delta=summary.get("delta"), unit=summary.get("privacy_unit"))
        privacy["text"] = str(summary["guarantee"])
    elif len(deltas) == 1 and len(units) == 1 and None not in units | deltas:
        (delta,), (unit,) = deltas, units
        privacy.update(delta=delta, unit=unit)
        privacy["text"] = (
            f"({epsilon:g}, {delta:g})-DP with respect to "
            f"{UNIT_WORDS.get(str(unit), str(unit))}, per hospital for this run "
            "(each hospital's ledger holds its cumulative total)"
        )
    else:
        privacy.update(delta=None, unit=None)
        privacy["text"] = (
            f"Each hospital spends at most epsilon {epsilon:g} on this run; its "
            "delta and privacy unit are set by the hospital itself and not "
            "known to the aggregator."
        )
    return privacy


def metric_series(files: dict[str, Any]) -> dict[str, Any]:
    """Per-round pooled test metrics (and loss where one is known)."""
    rounds = sorted(
        (r for r in files["rounds"] if (r.get("evaluation") or {}).get("pooled")),
        key=lambda r: r["round"],
    )
    names = [
        m for m in CHART_METRICS if any(m in r["evaluation"]["pooled"] for r in rounds)
    ]
    series: dict[str, Any] = {
        "rounds": [r["round"] for r in rounds],
        "pooled": {
            m: [_num(r["evaluation"]["pooled"].get(m)) for r in rounds] for m in names
        },
        "loss": {},
    }
    server_loss = [_num((r.get("server_evaluation") or {}).get("loss")) for r in rounds]
    if any(v is not None for v in server_loss):
        series["loss"]["server held-out loss"] = server_loss
    if files["reports"]:
        series["loss"]["mean train loss (simulation only)"] = [
            _mean_report_value(files["reports"], r["round"], "train-loss")
            for r in rounds
        ]
    return series


def _mean_report_value(reports: dict[str, Any], number: int, key: str) -> float | None:
    values = [
        _num(((rep.get("fit") or {}).get(str(number)) or {}).get(key))
        for rep in reports.values()
    ]
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def comparison(files: dict[str, Any]) -> dict[str, Any] | None:
    """Local-only, federated and centralized, once ``summary.json`` has them."""
    summary = files["summary"]
    if not isinstance(summary, dict) or not summary.get("hospitals"):
        return None
    metric = summary.get("primary_metric", "")
    arms = ("local_only", "centralized")
    if not any(arm in e for e in summary["hospitals"].values() for arm in arms):
        return None  # --no-baselines: the federated arm alone, nothing to compare
    rows = {
        hid: {
            arm: _num((entry.get(arm) or {}).get(metric))
            for arm in ("local_only", "federated", "centralized")
        }
        for hid, entry in summary["hospitals"].items()
    }
    means = summary.get("means") or {}
    return {
        "metric": metric,
        "hospitals": rows,
        "means": {
            k: _num(means.get(k)) for k in ("local_only", "federated", "centralized")
        },
        "cost": (summary.get("cost") or {}).get("text", ""),
        "simulation_only": True,
    }


def _num(value: Any) -> float | None:
    """A finite number, else ``None`` (JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None
