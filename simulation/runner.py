"""``fedcare simulate``: a whole federation of synthetic (or given) hospitals.

Steps: hospitals (generated, or ``--data-dir``), the federated run on Flower's
Simulation Engine with the real ServerApp/ClientApp, the local-only and
centralized baselines on the same splits, then ``summary.json`` and
``report.html`` in the run folder.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shared_models.atomic import atomic_write_text
from shared_models.errors import ConfigError
from shared_models.run_config import RunConfig
from simulation import baselines

log = logging.getLogger(__name__)

# task preset -> the data kind its hospitals need
PRESETS = {
    "ecg-arrhythmia": "ecg",
    "ecg-anomaly": "ecg",
    "signal-anomaly": "signals",
    "icu-deterioration": "vitals",
    "icu-los": "vitals",
}


@dataclass(frozen=True)
class SimulationOptions:
    out: Path
    run: RunConfig
    hospitals: int = 5
    seed: int = 0
    scale: float = 1.0
    label_skew: float | None = None
    data_dir: Path | None = None
    ledger_dir: Path | None = None
    epsilon: float = 8.0
    delta: float = 1e-5
    privacy_unit: str = "patient"
    with_baselines: bool = True
    overwrite: bool = False
    client_cpus: float = 1.0
    client_gpus: float = 0.0
    num_cpus: int | None = None
    ray_address: str | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        """Bad numbers are refused here, before the run folder or a cohort is
        written (inf and nan pass every comparison, so finiteness first)."""
        from client.privacy import PrivacyBudget
        from simulation.cohorts.skew import check_label_skew

        if not (math.isfinite(self.scale) and 0 < self.scale <= 10):
            raise ConfigError(f"--scale {self.scale}: expected a number in (0, 10]")
        check_label_skew(self.label_skew, self.hospitals)
        PrivacyBudget(epsilon=self.epsilon, delta=self.delta)  # checks both
        if not (math.isfinite(self.client_cpus) and self.client_cpus > 0):
            raise ConfigError(
                f"--client-cpus {self.client_cpus}: expected a finite number > 0"
            )
        if not (math.isfinite(self.client_gpus) and self.client_gpus >= 0):
            raise ConfigError(
                f"--client-gpus {self.client_gpus}: expected a finite number >= 0"
            )
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"--num-cpus {self.num_cpus}: expected at least 1")

    @property
    def ledgers(self) -> Path:
        """Where a generated cohort's ledgers live: in the run folder (its
        synthetic patients are replaced, with their ledgers, by ``--overwrite``,
        and kept by ``--resume``), unless ``--ledger-dir`` says otherwise."""
        return self.ledger_dir if self.ledger_dir is not None else self.out / "ledgers"


def ledger_path(opts: SimulationOptions, data: Path) -> Path:
    """A hospital's ledger: ``--ledger-dir``'s, else for real data (``--data-dir``)
    the same default ledger ``fedcare train`` uses for that data, else (a
    generated cohort) one in the run folder."""
    from client.privacy.location import default_ledger_path

    if opts.ledger_dir is None and opts.data_dir is not None:
        return default_ledger_path(data)
    return (opts.ledgers / f"{data.name}.jsonl").resolve()


def given_hospitals(data_dir: Path) -> list[Path]:
    """The hospital folders of ``--data-dir``: one sub-folder each, at least 2."""
    if not data_dir.is_dir():
        raise ConfigError(
            f"--data-dir {data_dir}: not a folder; expected one holding a "
            "sub-folder per hospital"
        )
    dirs = sorted(
        p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if len(dirs) < 2:
        raise ConfigError(
            f"--data-dir {data_dir}: expected one sub-folder per hospital (at "
            f"least 2), found {len(dirs)}"
        )
    return dirs


def hospital_dirs(opts: SimulationOptions, timings: dict[str, float]) -> list[Path]:
    """The hospital folders: ``--data-dir``'s sub-folders, or a generated cohort."""
    if opts.data_dir is not None:
        return given_hospitals(Path(opts.data_dir))
    cohort = opts.out / "cohort"
    if cohort.is_dir() and opts.run.resume:
        return sorted(
            p for p in cohort.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    from simulation.cohorts import write_cohort

    start = time.monotonic()
    extra = {} if opts.label_skew is None else {"label_skew": opts.label_skew}
    # Written aside and renamed when complete: a run killed while writing it
    # leaves no half cohort for --resume to take (it writes it again, seeded).
    partial = opts.out / "cohort.partial"
    shutil.rmtree(partial, ignore_errors=True)
    dirs = write_cohort(
        partial,
        hospitals=opts.hospitals,
        seed=opts.seed,
        scale=opts.scale,
        kinds=(PRESETS[opts.run.task],),
        **extra,
    )
    partial.rename(cohort)
    timings["cohort_s"] = round(time.monotonic() - start, 1)
    return [cohort / d.name for d in dirs]


def prepare_out(opts: SimulationOptions) -> None:
    if opts.out.exists() and not opts.run.resume:
        if not opts.overwrite:
            raise ConfigError(
                f"{opts.out} exists; pass --overwrite to replace it, or "
                "--resume to continue its run"
            )
        shutil.rmtree(opts.out)
    opts.out.mkdir(parents=True, exist_ok=True)


# What each simulated hospital's guarantee was made under (hospitals.json):
# its ledger is fixed to them, so a resume that changes one is refused.
NODE_PRIVACY = {"privacy-unit": "--privacy-unit", "epsilon": "--epsilon",
                "delta": "--delta"}  # fmt: skip


def check_resume(opts: SimulationOptions) -> None:
    """Refuse a ``--resume`` the run in ``--out`` cannot continue: damaged or
    missing checkpoints, other training or privacy settings (the run config's,
    and the hospitals' own in ``hospitals.json``)."""
    from server.resume import check_resumable

    if not opts.out.is_dir():
        return
    check_resumable(opts.run.for_unit(opts.privacy_unit), opts.out)
    try:
        nodes = json.loads((opts.out / "hospitals.json").read_text())
    except (OSError, ValueError):
        return  # written with the first round; nothing to compare yet
    now = {"privacy-unit": opts.privacy_unit, "epsilon": opts.epsilon,
           "delta": opts.delta}  # fmt: skip
    changed = sorted(
        f"{flag} {node.get(key)!r} -> {now[key]!r}"
        for node in nodes if isinstance(node, dict)
        for key, flag in NODE_PRIVACY.items()
        if key in node and node[key] != now[key]
    )  # fmt: skip
    if changed:
        raise ConfigError(
            f"{opts.out}: cannot resume with other hospital privacy settings than "
            f"the run started with ({', '.join(sorted(set(changed)))}); each "
            "hospital's ledger and guarantee are fixed to them: pass the run's "
            "own values, or start a new run"
        )


def check_budgets(opts: SimulationOptions, dirs: list[Path]) -> None:
    """Refuse, before the first round, a run that a hospital's existing ledger
    cannot pay for (its remaining epsilon is below the run's spend): in a
    simulation the researcher holds every ledger, so this is checked here
    rather than discovered as a declined round."""
    from client.privacy import PrivacyLedger

    short = []
    for d in dirs:
        path = ledger_path(opts, d)
        if not path.exists():
            continue
        remaining = PrivacyLedger.open(path, None).remaining_epsilon
        if remaining < opts.run.run_epsilon:
            short.append(f"{d.name} ({remaining:.3g} left in {path})")
    if short:
        raise ConfigError(
            f"--run-epsilon {opts.run.run_epsilon:g} exceeds what these "
            f"hospitals have left: {', '.join(short)}; lower --run-epsilon or "
            "use fresh ledgers"
        )


def simulate(opts: SimulationOptions, progress: Any = None) -> dict[str, Any]:
    """Run everything; returns the summary (also written to ``summary.json``)."""
    from simulation.engine import run_simulated
    from simulation.hospitals_file import node_config

    opts = replace(opts, run=opts.run.for_unit(opts.privacy_unit))
    if opts.run.dp and opts.run.run_epsilon > opts.epsilon:
        # Refused before anything is written or trained: every hospital would
        # decline every round, and the "federated" model would be untrained.
        raise ConfigError(
            f"--run-epsilon {opts.run.run_epsilon:g} exceeds each hospital's "
            f"budget --epsilon {opts.epsilon:g}; ask for at most the budget"
        )
    if opts.data_dir is not None:
        given_hospitals(Path(opts.data_dir))  # refused before --out is touched
    if opts.run.resume:
        check_resume(opts)  # refused before --out is touched or Ray started
    prepare_out(opts)
    timings: dict[str, float] = {}
    dirs = hospital_dirs(opts, timings)
    if opts.run.dp:
        check_budgets(opts, dirs)
    nodes = [
        {
            **node_config(d, ledger_path(opts, d), opts.epsilon, opts.delta),
            # The hospitals' own policies: in a simulation the researcher speaks
            # for every hospital, so the command's flags set them.
            "require-dp": opts.run.dp,
            "require-secagg": opts.run.secagg,
            "min-secagg-hospitals": 3,
            "privacy-unit": opts.privacy_unit,
            "split-seed": opts.seed,
            # Each hospital's own record of the run, which the researcher
            # (not the aggregator) reads for the per-hospital results.
            "report-dir": str((opts.out / "hospital-reports").resolve()),
        }
        for d in dirs
    ]
    n = len(nodes)
    if opts.run.secagg and n < 3:
        raise ConfigError(
            f"SecAgg+ needs at least 3 hospitals, got {n}: with 2, the masked sum "
            "reveals each hospital's update to the other. Add hospitals or pass "
            "--no-secagg."
        )
    from shared_models import wire

    if opts.run.secagg and n > wire.POOL_MAX_HOSPITALS:
        raise ConfigError(
            f"SecAgg+ pools the evaluation of at most {wire.POOL_MAX_HOSPITALS} "
            f"hospitals exactly (shared_models.wire), got {n}; use fewer "
            "hospitals or pass --no-secagg"
        )
    run = replace(
        opts.run,
        run_dir=str(opts.out),
        min_fit_hospitals=n,
        min_available_hospitals=n,
        min_evaluate_hospitals=n,
        min_secagg_hospitals=min(opts.run.min_secagg_hospitals, n),
    )
    start = time.monotonic()
    run = run_simulated(
        run,
        nodes,
        client_cpus=opts.client_cpus,
        client_gpus=opts.client_gpus,
        num_cpus=opts.num_cpus,
        ray_address=opts.ray_address,
        progress=progress,
        verbose=opts.verbose,
    )
    timings["federation_s"] = round(time.monotonic() - start, 1)
    sites = [baselines.Site.of(node) for node in nodes]
    table: dict[str, dict[str, Any]] = {}
    arms: dict[str, Any] = {}
    if opts.with_baselines:
        history = json.loads((opts.out / "history.json").read_text())
        run = replace(run, run_name=history["run_name"])  # names the baselines' runs
        start = time.monotonic()
        local = baselines.all_local_only(run, sites, cross=True)
        timings["local_only_s"] = round(time.monotonic() - start, 1)
        start = time.monotonic()
        central = baselines.centralized(run, sites)
        timings["centralized_s"] = round(time.monotonic() - start, 1)
        cross = {h: m.pop("cross") for h, m in local.items()}
        for metrics in local.values():
            metrics.pop("test_histogram", None)  # only for pooling, not summary
        table = {
            s.hospital_id: {
                "local_only": local[s.hospital_id],
                "centralized": central["hospitals"][s.hospital_id],
            }
            for s in sites
        }
        arms = {
            "centralized": central["pooled"],
            "single_hospital": {h: c["pooled"] for h, c in cross.items()},
        }
    summary = build_summary(run, opts, nodes, table, timings)
    summary["pooled_baselines"] = arms
    summary["cost"] = privacy_cost(summary)
    atomic_write_text(
        opts.out / "summary.json", json.dumps(summary, indent=2, default=str)
    )
    from simulation.report import write_report

    write_report(opts.out, summary)
    return summary


def build_summary(
    run: RunConfig,
    opts: SimulationOptions,
    nodes: list[dict[str, Any]],
    table: dict[str, dict[str, Any]],
    timings: dict[str, float],
) -> dict[str, Any]:
    from server import evaluation

    history = json.loads((opts.out / "history.json").read_text())
    rounds = history["rounds"]
    final = next((r["evaluation"] for r in reversed(rounds) if r.get("evaluation")), {})
    metric, higher = evaluation.primary_metric(run.task)
    best_round, best = _best_round(run.task, rounds)
    hospitals: dict[str, Any] = {}
    for node in nodes:
        hid = node["hospital-id"]
        entry = dict(table.get(hid, {}))
        own = local_report(node, history["run_name"])
        by_round = sorted(own["evaluation"].items(), key=lambda kv: int(kv[0]))
        entry["federated"] = _own_metrics(by_round[-1][1]) if by_round else None
        entry["federated_rounds"] = {r: _own_metrics(m) for r, m in by_round}
        fits = [own["fit"][r] for r in sorted(own["fit"], key=int)]
        entry["epsilon_spent"] = next(
            (f["epsilon-spent"] for f in reversed(fits) if "epsilon-spent" in f),
            None,
        )
        declines = [f["declined"] for f in fits if f.get("declined")]
        entry["declined_rounds"] = len(declines)
        entry["decline_reason"] = declines[-1] if declines else ""
        entry["epsilon_budget"] = node["epsilon"]
        entry["privacy_unit"] = node["privacy-unit"] if run.dp else "none"
        hospitals[hid] = entry
    from client.privacy import guarantee_text

    return {
        "task": run.task,
        "run_name": history["run_name"],
        "privacy": {
            "privacy_unit": opts.privacy_unit if run.dp else "none",
            "dp": run.dp,
            "secagg": run.secagg,
            "run_epsilon": run.run_epsilon if run.dp else None,
            "epsilon_budget": opts.epsilon,
            "delta": opts.delta,
            "guarantee": guarantee_text(run.run_epsilon, opts.delta, opts.privacy_unit)
            + " per hospital for this run (its ledger holds the cumulative total)"
            if run.dp
            else "none: trained without differential privacy",
        },
        "rounds": len(rounds),
        "primary_metric": metric,
        "higher_is_better": higher,
        "run_config": run.to_run_config(),
        "pooled_federated": final.get("pooled"),
        # models/best: the round ranked best on the pooled VALIDATION splits.
        "best_round": best_round,
        "pooled_federated_best": best.get("pooled"),
        "hospitals": hospitals,
        "means": _means(hospitals, metric),
        "timings": timings,
    }


def privacy_cost(summary: dict[str, Any]) -> dict[str, Any]:
    """What the guarantee cost: pooled federated against the non-private arm.

    ``text`` says it in one sentence for the report and the command's output.
    """
    name = "mae_days" if summary["task"] == "icu-los" else "auroc"
    fed = (summary.get("pooled_federated") or {}).get(name)
    best = (summary.get("pooled_federated_best") or {}).get(name)
    arms = summary.get("pooled_baselines") or {}
    central = (arms.get("centralized") or {}).get(name)
    singles = {
        h: m.get(name)
        for h, m in (arms.get("single_hospital") or {}).items()
        if m.get(name) is not None
    }
    pick = min if name == "mae_days" else max
    single = pick(singles.values()) if singles else None
    label = "pooled MAE (days)" if name == "mae_days" else "pooled test AUROC"
    guarantee = summary["privacy"]["guarantee"]
    parts = [f"{label}: federated {_num(fed)} (last round; best round on validation "
             f"{_num(best)})"]  # fmt: skip
    if single is not None:
        parts.append(f"the best hospital alone {_num(single)}")
    if central is not None:
        parts.append(f"centralized without DP {_num(central)}")
    text = ", ".join(parts) + f". Guarantee: {guarantee}."
    if fed is not None and central is not None and name == "auroc" and central:
        text += f" Federated / centralized = {fed / central:.3f}."
    return {
        "metric": name,
        "federated": fed,
        "federated_best": best,
        "best_single_hospital": single,
        "centralized": central,
        "text": text,
    }


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _best_round(
    task: str, rounds: list[dict[str, Any]]
) -> tuple[int | None, dict[str, Any]]:
    """(round, evaluation) of the round ``models/best`` holds."""
    from server import evaluation

    best_round, best, ranked = None, {}, None
    for record in rounds:
        result = record.get("evaluation") or {}
        score = evaluation.selection_metrics(result, task)
        if score and evaluation.is_better(task, score, ranked):
            best_round, best, ranked = record["round"], result, score
    if best_round is None:  # nothing to rank on: models/best is the latest round
        last = next((r for r in reversed(rounds) if r.get("evaluation")), None)
        if last is not None:
            best_round, best = last["round"], last["evaluation"]
    return best_round, best


def local_report(node: dict[str, Any], run_name: str) -> dict[str, Any]:
    """A simulated hospital's own record of the run (``client.federated``)."""
    from client.federated import LocalReport

    return LocalReport(Path(node["report-dir"]), run_name, node["hospital-id"]).load()


def _own_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "loss"}


def _means(hospitals: dict[str, Any], metric: str) -> dict[str, float | None]:
    out = {}
    for column in ("local_only", "federated", "centralized"):
        values = [
            h[column][metric]
            for h in hospitals.values()
            if h.get(column) and h[column].get(metric) is not None
        ]
        out[column] = sum(values) / len(values) if values else None
    return out
