"""A self-contained ``report.html`` (PNG plots inlined as base64) for a run folder."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from shared_models.atomic import atomic_write_text

COLUMNS = ("local_only", "federated", "centralized")


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _figure(width: float = 6.4, height: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def plot_global(rounds: list[dict[str, Any]], metric: str) -> str:
    fig, ax = _figure()
    xs = [r["round"] for r in rounds if r.get("evaluation", {}).get("pooled")]
    for name in dict.fromkeys([metric, "auroc", "auprc"]):
        ys = [
            r["evaluation"]["pooled"].get(name)
            for r in rounds
            if r.get("evaluation", {}).get("pooled")
        ]
        if any(y is not None for y in ys):
            ax.plot(xs, ys, marker="o", label=f"pooled {name}")
    ax.set_xlabel("round")
    ax.set_title("Global model on all hospitals' test splits")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_hospitals(summary: dict[str, Any], metric: str) -> str:
    """Each hospital's own metric of the global model, round by round (from
    the hospitals' local reports: the aggregator never sees them)."""
    fig, ax = _figure()
    for hid, entry in sorted(summary["hospitals"].items()):
        rounds = entry.get("federated_rounds") or {}
        points = sorted(
            (int(r), m[metric]) for r, m in rounds.items() if m.get(metric) is not None
        )
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=hid)
    ax.set_xlabel("round")
    ax.set_ylabel(metric)
    ax.set_title(f"Global model at each hospital ({metric}, its own report)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_epsilon(summary: dict[str, Any]) -> str:
    fig, ax = _figure()
    names = list(summary["hospitals"])
    spent = [summary["hospitals"][h].get("epsilon_spent") or 0.0 for h in names]
    budget = [summary["hospitals"][h].get("epsilon_budget") or 0.0 for h in names]
    ax.bar(names, budget, color="#ddd", label="budget (ledger)")
    ax.bar(names, spent, color="#c0392b", label="spent (all runs)")
    ax.set_ylabel("epsilon")
    ax.set_title("Privacy spent per hospital against its budget")
    ax.legend()
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def plot_comparison(summary: dict[str, Any]) -> str:
    import numpy as np

    fig, ax = _figure(7.0, 3.6)
    metric = summary["primary_metric"]
    names = list(summary["hospitals"])
    width = 0.27
    for k, column in enumerate(COLUMNS):
        values = [
            (summary["hospitals"][h].get(column) or {}).get(metric) for h in names
        ]
        ax.bar(
            np.arange(len(names)) + (k - 1) * width,
            [np.nan if v is None else v for v in values],
            width,
            label=column,
        )
    ax.set_xticks(np.arange(len(names)), names, rotation=45)
    ax.set_ylabel(metric)
    ax.set_title("What joining the federation gained each hospital")
    ax.legend()
    return _png(fig)


def _table(summary: dict[str, Any]) -> str:
    metric = summary["primary_metric"]
    head = "".join(f"<th>{c.replace('_', '-')}</th>" for c in COLUMNS)
    rows = []
    for hid, entry in summary["hospitals"].items():
        cells = "".join(
            f"<td>{_fmt((entry.get(c) or {}).get(metric))}</td>" for c in COLUMNS
        )
        rows.append(
            f"<tr><td>{html.escape(hid)}</td>{cells}"
            f"<td>{_fmt(entry.get('epsilon_spent'))} / "
            f"{_fmt(entry.get('epsilon_budget'))}"
            "</td></tr>"
        )
    means = "".join(f"<td><b>{_fmt(summary['means'].get(c))}</b></td>" for c in COLUMNS)
    return (
        f"<table><tr><th>hospital</th>{head}<th>epsilon spent / budget</th></tr>"
        + "".join(rows)
        + f"<tr><td><b>mean</b></td>{means}<td></td></tr></table>"
        f"<p>Test {html.escape(metric)} of each hospital's own test split.</p>"
    )


def _fmt(value: Any) -> str:
    return (
        "n/a"
        if value is None
        else f"{value:.3f}"
        if isinstance(value, float)
        else str(value)
    )


def write_report(run_dir: Path, summary: dict[str, Any]) -> Path:
    rounds = json.loads((Path(run_dir) / "history.json").read_text())["rounds"]
    metric = summary["primary_metric"]
    images = [
        plot_global(rounds, metric),
        plot_hospitals(summary, metric),
        plot_epsilon(summary),
    ]
    if any(h.get("local_only") for h in summary["hospitals"].values()):
        images.append(plot_comparison(summary))
    body = "".join(
        f'<img alt="plot" src="data:image/png;base64,{img}">' for img in images
    )
    privacy = summary.get("privacy") or {}
    guarantee = html.escape(str(privacy.get("guarantee", "not recorded")))
    secagg = "on" if summary["run_config"]["secagg"] else "off"
    strategy = html.escape(summary["run_config"]["strategy"])
    minutes = sum(v for v in summary["timings"].values()) / 60
    cost = html.escape(summary.get("cost", {}).get("text", "baselines not run"))
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>fedcare run {html.escape(summary["run_name"])}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}
table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
img{{max-width:100%;display:block;margin:1em 0}}</style></head><body>
<h1>fedcare: {html.escape(summary["task"])}, run {html.escape(summary["run_name"])}</h1>
<p><b>Privacy:</b> {guarantee}. SecAgg+ {secagg}.</p>
<p><b>What it cost:</b> {cost}</p>
<p>{summary["rounds"]} rounds of {strategy}; {minutes:.1f} minutes in all.</p>
<h2>Local-only vs federated vs centralized</h2>{_table(summary)}
<h2>Plots</h2>{body}</body></html>"""
    path = Path(run_dir) / "report.html"
    atomic_write_text(path, page)
    return path
