"""The figures of a run folder, drawn once for ``report.html``.

Their numbers come from the functions the live dashboard charts
(``server.dashboard.run_folder``: ``metric_series`` and ``comparison``) and
from ``summary.json``, so the report and the dashboard show the same series
in the same colours and words. Each :class:`Figure` carries its numbers as a
table too (what a screen reader, or a reader who wants the values, gets).
A metric the data cannot support (``None``) is a gap in a line and an "n/a"
label where a bar would be, never a zero.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.dashboard import run_folder

# The dashboard's palette and names (server/dashboard/static/dashboard.js).
COLOURS = ("#0b57d0", "#b3261e", "#1b6e20", "#8a5300", "#6a1b9a", "#00695c")
LABELS = {
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "f1": "F1",
    "mae_days": "MAE (days)",
    "rmse_days": "RMSE (days)",
    "local_only": "local-only",
    "federated": "federated",
    "centralized": "centralized",
}
ARMS = ("local_only", "federated", "centralized")
ARM_COLOURS = {"local_only": COLOURS[3], "federated": COLOURS[0],
               "centralized": COLOURS[2]}  # fmt: skip


def label(name: str) -> str:
    return LABELS.get(name, name)


@dataclass(frozen=True)
class Figure:
    """One figure: a PNG (base64), what it shows in words, and its numbers."""

    id: str
    title: str
    alt: str
    png: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def figures(run_dir: Path, summary: dict[str, Any]) -> list[Figure]:
    """Every figure of the report, in order, from the run folder's files."""
    files = run_folder.read_folder(Path(run_dir))
    series = run_folder.metric_series(files)
    out = [f for f in (pooled_figure(series, summary), loss_figure(series)) if f]
    if any(e.get("federated_rounds") for e in summary["hospitals"].values()):
        out.append(hospitals_figure(summary))
    if any(e.get("local_only") for e in summary["hospitals"].values()):
        out.append(arms_figure(summary))
    if any(e.get("epsilon_spent") is not None for e in summary["hospitals"].values()):
        out.append(epsilon_figure(summary))
    return out


def _canvas(
    width: float, height: float, nrows: int = 1, ncols: int = 1
) -> tuple[Any, list[Any]]:
    """A figure drawn without pyplot (no global state; Agg via ``savefig``)."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False, sharey=True).flat)
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def _legend(fig: Any, ax: Any) -> None:
    """The legend right of the plot, never over a line or a bar."""
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode()


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def pooled_figure(series: dict[str, Any], summary: dict[str, Any]) -> Figure | None:
    """Pooled test metrics by round, and the baselines' means as dashed lines
    (the dashboard's "Pooled test metrics" chart)."""
    rounds, pooled = series["rounds"], series["pooled"]
    if not pooled:
        return None
    lines = {f"pooled {label(m)}": v for m, v in pooled.items()}
    metric = summary["primary_metric"]
    for arm in ("local_only", "centralized"):
        mean = (summary.get("means") or {}).get(arm)
        if mean is not None:
            name = f"{label(arm)} {label(metric)} (mean over hospitals)"
            lines[name] = [mean] * len(rounds)
    fig, (ax,) = _canvas(8.0, 3.4)
    for k, (name, values) in enumerate(lines.items()):
        dashed = "mean over" in name
        ax.plot(rounds, [_nan(v) for v in values], color=COLOURS[k % len(COLOURS)],
                linestyle="--" if dashed else "-", marker=None if dashed else "o",
                label=name)  # fmt: skip
    ax.set_xlabel("round")
    ax.set_title("Pooled test metrics by round (all hospitals' test splits)")
    _legend(fig, ax)
    return Figure(
        "pooled",
        "Pooled test metrics by round",
        "Line chart of the global model's pooled test metrics by round; the "
        "numbers are in the table below.",
        _png(fig),
        ("round", *lines),
        tuple(zip(rounds, *lines.values(), strict=True)),
    )


def loss_figure(series: dict[str, Any]) -> Figure | None:
    """Loss by round (server held-out loss, mean training loss)."""
    rounds, losses = series["rounds"], series["loss"]
    if not losses:
        return None
    fig, (ax,) = _canvas(8.0, 3.0)
    for k, (name, values) in enumerate(losses.items()):
        ax.plot(rounds, [_nan(v) for v in values], marker="o", label=name,
                color=COLOURS[k % len(COLOURS)])  # fmt: skip
    ax.set_xlabel("round")
    ax.set_ylabel("loss")
    ax.set_title("Loss by round")
    _legend(fig, ax)
    return Figure(
        "loss",
        "Loss by round",
        "Line chart of the loss by round; the numbers are in the table below.",
        _png(fig),
        ("round", *losses),
        tuple(zip(rounds, *losses.values(), strict=True)),
    )


def hospitals_figure(summary: dict[str, Any]) -> Figure:
    """Each hospital's own metric of the global model by round (its local
    report), against its local-only and centralized models (one panel each)."""
    metric = summary["primary_metric"]
    hospitals = sorted(summary["hospitals"].items())
    ncols = min(4, len(hospitals))
    nrows = math.ceil(len(hospitals) / ncols)
    fig, axes = _canvas(2.2 * ncols + 2.2, 2.1 * nrows + 0.6, nrows, ncols)
    numbers = sorted({int(r) for _, e in hospitals for r in e.get("federated_rounds")
                      or {}})  # fmt: skip
    rows = []
    for ax, (hid, entry) in zip(axes, hospitals, strict=False):
        own = entry.get("federated_rounds") or {}
        values = [(own.get(str(r)) or {}).get(metric) for r in numbers]
        ax.plot(numbers, [_nan(v) for v in values], marker="o",
                color=ARM_COLOURS["federated"], label="federated")  # fmt: skip
        alone = [(entry.get(arm) or {}).get(metric) for arm in ARMS[::2]]
        for k, (arm, value) in enumerate(zip(ARMS[::2], alone, strict=True)):
            if value is not None:
                ax.axhline(value, color=ARM_COLOURS[arm], linestyle=("--", ":")[k],
                           label=label(arm))  # fmt: skip
        ax.set_title(hid, fontsize=9)
        ax.set_xlabel("round", fontsize=8)
        rows.append((hid, *values, *alone))
    for ax in axes[len(hospitals) :]:
        ax.set_visible(False)
    axes[0].set_ylabel(label(metric))
    _legend(fig, axes[0])
    fig.suptitle(f"Test {label(metric)} at each hospital, by round")
    return Figure(
        "hospitals",
        f"Each hospital: federated {label(metric)} by round, local-only, centralized",
        f"One small chart per hospital of its test {label(metric)}; the numbers "
        "are in the table below.",
        _png(fig),
        ("hospital", *(f"round {r}" for r in numbers), "local-only", "centralized"),
        tuple(rows),
    )


def _bars(
    ax: Any, groups: list[str], arms: dict[str, list[Any]], colours: Any = COLOURS
) -> None:
    """Grouped bars; a missing value is an "n/a" label, not a bar of 0."""
    width = 0.8 / len(arms)
    for k, (name, values) in enumerate(arms.items()):
        xs = [g + (k - (len(arms) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [_nan(v) for v in values], width, label=name,
               color=colours[k % len(colours)])  # fmt: skip
        for x, v in zip(xs, values, strict=True):
            if v is None:
                ax.text(x, 0, "n/a", ha="center", va="bottom", rotation=90,
                        fontsize=7)  # fmt: skip
    ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right", fontsize=8)


def arms_figure(summary: dict[str, Any]) -> Figure:
    """Local-only, federated and centralized per hospital, and their means
    (the dashboard's comparison table, drawn)."""
    metric = summary["primary_metric"]
    names = list(summary["hospitals"])
    means = summary.get("means") or {}
    arms = {
        label(arm): [(summary["hospitals"][h].get(arm) or {}).get(metric)
                     for h in names] + [means.get(arm)]
        for arm in ARMS
    }  # fmt: skip
    fig, (ax,) = _canvas(max(6.0, 0.9 * len(names) + 4.0), 3.4)
    _bars(ax, [*names, "mean"], arms, [ARM_COLOURS[a] for a in ARMS])
    ax.set_ylabel(label(metric))
    ax.set_title(f"Test {label(metric)} per hospital under each arm")
    _legend(fig, ax)
    return Figure(
        "arms",
        f"Local-only, federated and centralized test {label(metric)}",
        f"Bar chart of each hospital's test {label(metric)} under the three "
        "arms; the numbers are in the table below.",
        _png(fig),
        ("hospital", *arms),
        tuple(zip([*names, "mean"], *arms.values(), strict=True)),
    )


def epsilon_figure(summary: dict[str, Any]) -> Figure:
    """Epsilon spent by each hospital (its ledger, every run) against its budget."""
    names = list(summary["hospitals"])
    spent = [summary["hospitals"][h].get("epsilon_spent") for h in names]
    budget = [summary["hospitals"][h].get("epsilon_budget") for h in names]
    fig, (ax,) = _canvas(max(6.0, 0.7 * len(names) + 4.5), 3.0)
    _bars(ax, names, {"spent (all runs, from its ledger)": spent, "budget": budget})
    ax.set_ylabel("epsilon")
    ax.set_title("Epsilon spent by each hospital against its budget")
    _legend(fig, ax)
    return Figure(
        "epsilon",
        "Epsilon spent against budget",
        "Bar chart of the epsilon each hospital has spent against its budget; "
        "the numbers are in the table below.",
        _png(fig),
        ("hospital", "epsilon spent", "epsilon budget"),
        tuple(zip(names, spent, budget, strict=True)),
    )
