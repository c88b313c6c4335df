"""``report.html``: a run folder's results in plain words, self-contained.

The page states what ran (task, hospitals, rounds, wall time per phase), the
privacy guarantee in words (unit, epsilon, delta, each hospital's spend
against its budget, SecAgg+ on or off) beside every metric table, the
private arms beside the non-private ones, and the figures of
``simulation.plots`` inlined as PNG (nothing is fetched). A metric the data
cannot support is ``None`` in ``summary.json`` and reads "n/a" here.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from server.dashboard.run_folder import UNIT_WORDS
from shared_models.atomic import atomic_write_text
from shared_models.errors import ConfigError
from simulation import plots

# summary["timings"] key -> the phase in words, in the order they run.
PHASES = {
    "cohort_s": "writing the synthetic hospitals",
    "federation_s": "federated training and evaluation",
    "local_only_s": "local-only baselines (each hospital alone, with DP)",
    "centralized_s": "centralized baseline (all data pooled, no DP)",
}
# The metrics of the pooled table of the arms (length of stay: errors in days).
POOLED_METRICS = {"icu-los": ("mae_days", "rmse_days")}
CLASS_METRICS = ("auroc", "auprc", "f1", "precision", "recall")

STYLE = """body{font:16px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff;
max-width:1000px;margin:2em auto;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #0b57d0}
table{border-collapse:collapse;margin:.5em 0 1em}
caption{text-align:left;font-weight:600;padding:.3em 0}
td,th{border:1px solid #767676;padding:4px 10px}
td{text-align:right}th[scope=row]{text-align:left;font-weight:normal}
thead th{background:#e8eefb}
.guarantee{border-left:6px solid #1b6e20;background:#eef6ee;padding:.5em 1em}
.na{color:#595959;font-style:italic}
figure{margin:1.5em 0}img{max-width:100%;height:auto}
figcaption{font-weight:600}"""


def fmt(value: Any) -> str:
    """A metric as the report and the CLI print it: 3 decimals, or "n/a"."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def duration(seconds: float) -> str:
    """``75`` -> "1 min 15 s"; ``3725`` -> "1 h 2 min"."""
    seconds = round(float(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def phase_times(timings: dict[str, float]) -> list[tuple[str, str]]:
    """(phase in words, duration) of each phase that ran, then the total."""
    rows = [(PHASES.get(k, k), duration(v)) for k, v in timings.items()]
    rows.sort(key=lambda r: list(PHASES.values()).index(r[0])
              if r[0] in PHASES.values() else len(PHASES))  # fmt: skip
    return rows + [("total", duration(sum(timings.values())))] if rows else []


def _e(value: Any) -> str:
    return html.escape(str(value))


def _cell(value: Any) -> str:
    text = fmt(value)
    return '<td class="na">n/a</td>' if text == "n/a" else f"<td>{_e(text)}</td>"


def table(
    caption: str, columns: tuple[str, ...] | list[str], rows: Any, note: str = ""
) -> str:
    """An accessible table: a caption, column headers, row headers."""
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in columns)
    body = "".join(
        f'<tr><th scope="row">{_e(r[0])}</th>{"".join(_cell(v) for v in r[1:])}</tr>'
        for r in rows
    )
    after = f"<p>{note}</p>" if note else ""
    return (
        f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{after}"
    )


def arm_privacy(summary: dict[str, Any]) -> dict[str, str]:
    """Each arm's privacy in a few words (the column headers say it)."""
    p = summary.get("privacy") or {}
    spend = f"epsilon {_g(p.get('run_epsilon'))} per {p.get('privacy_unit')}"
    secagg = "SecAgg+" if p.get("secagg") else "no SecAgg+"
    return {
        "federated": f"DP, {spend}, {secagg}" if p.get("dp") else f"no DP, {secagg}",
        "local_only": f"DP alone, {spend}" if p.get("dp") else "no DP",
        "centralized": "no DP, all data in one place",
    }


def _g(value: Any) -> str:
    return "n/a" if value is None else f"{value:g}"


def guarantee(summary: dict[str, Any]) -> str:
    """The guarantee in one paragraph: what is protected, epsilon, delta,
    SecAgg+ (repeated beside every metric table)."""
    p = summary.get("privacy")
    if not p:
        return (
            "<p class=guarantee><b>Privacy guarantee:</b> not recorded in this "
            "run's summary.json.</p>"
        )
    secagg = (
        "SecAgg+ on: the aggregator sees only the sum of the hospitals' updates"
        if p.get("secagg")
        else "SecAgg+ off: the aggregator sees each hospital's update"
    )
    if not p.get("dp"):
        return (
            "<p class=guarantee><b>Privacy guarantee:</b> none. This run trained "
            f"without differential privacy. {secagg}.</p>"
        )
    unit = str(p.get("privacy_unit"))
    spent = "; ".join(
        f"{h} {fmt(e.get('epsilon_spent'))} of {fmt(e.get('epsilon_budget'))}"
        for h, e in summary["hospitals"].items()
    )
    text = str(p.get("guarantee", ""))
    meaning = UNIT_WORDS.get(unit, "")
    words = f" ({meaning})" if meaning and meaning not in text else ""
    return (
        f"<p class=guarantee><b>Privacy guarantee:</b> {_e(text)}. Unit: "
        f"{_e(unit)}{_e(words)}; epsilon {_g(p.get('run_epsilon'))} for this run, "
        f"delta {_g(p.get('delta'))}. Epsilon spent (every run in its ledger) of "
        f"budget: {_e(spent)}. {secagg}. The centralized arm has no guarantee.</p>"
    )


def header(summary: dict[str, Any]) -> str:
    """What ran, in words: task, hospitals, rounds, strategy, time per phase."""
    config = summary.get("run_config") or {}
    names = list(summary["hospitals"])
    facts = [
        ("Task", summary["task"]),
        ("Hospitals", f"{len(names)}: {', '.join(names)}"),
        ("Rounds", f"{summary['rounds']} of {config.get('strategy', '?')}"),
        ("Run", summary["run_name"]),
    ]
    best = summary.get("best_round")
    if best is not None:
        facts.append(("Best round", f"{best} (ranked on the pooled validation "
                      "splits; models/best holds it)"))  # fmt: skip
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    times = phase_times(summary.get("timings") or {})
    return f"<dl>{items}</dl>" + (
        table("Wall time per phase", ("phase", "time"), times) if times else ""
    )


def hospital_table(summary: dict[str, Any]) -> str:
    """Per hospital: the primary metric under each arm, and its epsilon."""
    metric = summary["primary_metric"]
    words = arm_privacy(summary)
    has_baselines = any(e.get("local_only") for e in summary["hospitals"].values())
    arms = plots.ARMS if has_baselines else ("federated",)
    columns = ["hospital"] + [f"{plots.label(a)} ({words[a]})" for a in arms]
    columns += ["epsilon spent (all runs)", "epsilon budget", "declined rounds"]
    rows = [
        (hid, *((e.get(a) or {}).get(metric) for a in arms),
         e.get("epsilon_spent"), e.get("epsilon_budget"), e.get("declined_rounds"))
        for hid, e in summary["hospitals"].items()
    ]  # fmt: skip
    means = summary.get("means") or {}
    rows.append(("mean over hospitals", *(means.get(a) for a in arms), "", "", ""))
    reasons = "".join(
        f"<li>{_e(h)} declined {e['declined_rounds']} round(s): "
        f"{_e(e.get('decline_reason'))}</li>"
        for h, e in summary["hospitals"].items()
        if e.get("declined_rounds")
    )
    note = (
        f"Test {_e(plots.label(metric))} of each hospital's own test split "
        "(federated: the last round, as the hospital computed it). n/a: the split "
        "cannot support the metric (e.g. no positives)."
    )
    caption = f"Test {plots.label(metric)} per hospital"
    out = table(caption, columns, rows, note)
    return out + (f"<ul>{reasons}</ul>" if reasons else "")


def pooled_table(summary: dict[str, Any]) -> str:
    """Pooled test metrics (all hospitals' test examples) of every arm."""
    names = POOLED_METRICS.get(summary["task"], CLASS_METRICS)
    words = arm_privacy(summary)
    arms = summary.get("pooled_baselines") or {}
    singles = arms.get("single_hospital") or {}
    rows: list[tuple[Any, ...]] = [
        (f"federated, last round ({words['federated']})",
         summary.get("pooled_federated") or {}),
        (f"federated, best round {summary.get('best_round')} "
         f"({words['federated']})", summary.get("pooled_federated_best") or {}),
    ]  # fmt: skip
    rows += [(f"{h}'s model alone, at every hospital ({words['local_only']})", m)
             for h, m in singles.items()]  # fmt: skip
    if arms.get("centralized"):
        rows.append((f"centralized ({words['centralized']})", arms["centralized"]))
    return table(
        "Pooled test metrics of every arm (all hospitals' test examples)",
        ["arm", *(plots.label(n) for n in names)],
        [(arm, *(m.get(n) for n in names)) for arm, m in rows],
    )


def figure_html(fig: plots.Figure) -> str:
    return (
        f'<figure aria-labelledby="fig-{fig.id}"><figcaption id="fig-{fig.id}">'
        f'{_e(fig.title)}</figcaption><img alt="{_e(fig.alt)}" '
        f'src="data:image/png;base64,{fig.png}"><details><summary>{_e(fig.title)}'
        f": the numbers</summary>{table(fig.title, fig.columns, fig.rows)}"
        "</details></figure>"
    )


def render(run_dir: Path, summary: dict[str, Any]) -> str:
    """The whole page."""
    promise = guarantee(summary)
    cost = (summary.get("cost") or {}).get("text", "")
    figures = "".join(figure_html(f) for f in plots.figures(run_dir, summary))
    title = f"fedcare: {summary['task']}, run {summary['run_name']}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body><main>"
        f"<h1>{_e(title)}</h1>{header(summary)}"
        f"<h2>Each hospital</h2>{promise}{hospital_table(summary)}"
        f"<h2>All hospitals pooled</h2>{promise}"
        + (f"<p><b>What it cost:</b> {_e(cost)}</p>" if cost else "")
        + f"{pooled_table(summary)}<h2>Figures</h2>{figures}</main></body></html>"
    )


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``RUN/summary.json``, or a one-line error naming the file."""
    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the run's summary ({err})") from err
    if not isinstance(summary, dict) or not isinstance(summary.get("hospitals"), dict):
        raise ConfigError(f"{path}: not a fedcare summary (no 'hospitals' object)")
    return summary


def write_report(run_dir: Path, summary: dict[str, Any] | None = None) -> Path:
    """Write ``RUN/report.html`` (atomically) from ``summary`` or ``summary.json``."""
    summary = read_summary(run_dir) if summary is None else summary
    path = Path(run_dir) / "report.html"
    atomic_write_text(path, render(Path(run_dir), summary))
    return path
