"""Utility benchmark: what a hospital gains by joining, at the privacy it chose.

For each task and privacy setting, over several seeds (a seed draws a new
synthetic federation, new initial weights and new splits; the DP noise is
always fresh OS entropy), it runs ``fedcare simulate``'s own code and writes
one row per (task, arm, privacy unit, epsilon):

* ``federated``: the federated global model of the last round (Flower's
  Simulation Engine, the real ServerApp/ClientApp, SecAgg+ on) on every
  hospital's test split; a second row (``method`` "fedcare, best round on
  validation") is ``models/best``, the round ranked best on the pooled
  validation histograms;
* ``local_only``: every hospital trains alone with ``fedcare train``'s recipe
  at the same unit and epsilon; each is judged on its own test split, and the
  pooled AUROC is over all hospitals' test examples, each scored by its own
  hospital's model;
* ``single_hospital``: the best of those local models (highest pooled AUROC)
  used at every hospital;
* ``centralized``: all training splits pooled, trained without DP (the upper
  bound); for the autoencoder tasks also a PCA reconstruction of the same
  inputs (``method: pca``), fitted on the pooled normal training examples.

``epsilon`` is each hospital's total spend for the run (the federated run's
``run-epsilon``; the local-only arm spends the same, on its own ledger copy).

Run ``python benchmarks/utility.py --help``; ``--quick`` is CI's smoke size.
The JSON goes to ``benchmarks/results/utility-<date>.json`` and
``--markdown docs/benchmarks.md`` regenerates that file's table.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMA = "fedcare.benchmarks.utility/1"
log = logging.getLogger("benchmarks.utility")


@dataclass(frozen=True)
class Setting:
    """One privacy setting of one task: ``unit`` None means without DP."""

    task: str
    unit: str | None
    epsilon: float | None

    @property
    def label(self) -> str:
        if self.unit is None:
            return f"{self.task} no-DP"
        return f"{self.task} {self.unit} eps{self.epsilon:g}"


ECG = "ecg-arrhythmia"
OTHER_TASKS = ("ecg-anomaly", "signal-anomaly", "icu-deterioration", "icu-los")


def settings(tasks: list[str]) -> list[Setting]:
    out: list[Setting] = []
    for task in tasks:
        if task == ECG:
            out += [
                Setting(ECG, "patient", 8.0),
                Setting(ECG, "patient", 2.0),
                Setting(ECG, "example", 2.0),
                Setting(ECG, None, None),
            ]
        else:
            out += [Setting(task, "patient", 2.0)]
    return out


def metric_names(task: str) -> tuple[str, ...]:
    """The metrics a row carries for ``task`` (pooled, from the histograms)."""
    if task == "icu-los":
        return ("mae_days", "rmse_days")
    return ("auroc", "auprc", "f1")


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``--set num-server-rounds=12`` pairs as typed ``RunConfig`` fields."""
    from dataclasses import fields

    from shared_models.run_config import RunConfig

    types = {f.name: f.type for f in fields(RunConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        name = key.strip().replace("-", "_")
        if not sep or name not in types or name in ("task", "seed", "dp"):
            raise SystemExit(
                f"--set: expected KEY=VALUE of the run config, got {pair!r}"
            )
        kind = {"int": int, "float": float, "str": str}.get(str(types[name]))
        if kind is None:
            raise SystemExit(f"--set: {key} cannot be set here")
        try:
            out[name] = kind(value)
        except ValueError:
            raise SystemExit(
                f"--set: {key} expects {kind.__name__}, got {value!r}"
            ) from None
    return out


def run_seed(
    setting: Setting,
    seed: int,
    work: Path,
    scale: float,
    hospitals: int,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every arm of ``setting`` for one seed: {arm: pooled metrics, ...}.

    ``overrides`` are run-configuration keys (``RunConfig`` fields) set for
    the federation and, through it, for the local-only arm (``--set``)."""
    from dataclasses import replace

    from shared_models.run_config import RunConfig
    from simulation import baselines
    from simulation.runner import SimulationOptions, simulate

    dp = setting.unit is not None
    run = RunConfig(
        task=setting.task,
        seed=seed,
        dp=dp,
        secagg=True,
        run_epsilon=setting.epsilon or 2.0,
        **(overrides or {}),
    )
    out = work / f"{setting.task}-{setting.unit or 'none'}-{setting.epsilon}-{seed}"
    opts = SimulationOptions(
        out=out,
        run=run,
        hospitals=hospitals,
        seed=seed,
        scale=scale,
        epsilon=max(8.0, 2 * (setting.epsilon or 0.0)),  # room for local-only too
        privacy_unit=setting.unit or "patient",
        with_baselines=False,
        overwrite=True,
    )
    start = time.monotonic()
    summary = simulate(opts)
    result: dict[str, Any] = {
        "federated": summary["pooled_federated"] or {},
        "federated_best": {
            **(summary["pooled_federated_best"] or {}),
            "round": summary["best_round"],
        },
        "federated_hospitals": {
            h: (e.get("federated") or {}) for h, e in summary["hospitals"].items()
        },
        "epsilon_spent": {
            h: e.get("epsilon_spent") for h, e in summary["hospitals"].items()
        },
        "federation_s": round(time.monotonic() - start, 1),
    }
    sites = [
        baselines.Site.of(node)
        for node in json.loads((out / "hospitals.json").read_text())
    ]
    # the alone arms train as the federation's hospitals did: the recipe's
    # variant for this unit, with the --set keys
    run = replace(run.for_unit(setting.unit or "patient"), run_name=summary["run_name"])
    start = time.monotonic()
    local = baselines.all_local_only(run, sites, cross=True)
    result["local_s"] = round(time.monotonic() - start, 1)
    result["local_only_hospitals"] = {
        h: {k: v for k, v in m.items() if k not in ("cross", "test_histogram")}
        for h, m in local.items()
    }
    result["local_only"] = baselines.pool_own(setting.task, local)
    singles = {h: m["cross"]["pooled"] for h, m in local.items()}
    best = _best(setting.task, singles)
    result["single_hospital"] = {**singles[best], "hospital": best}
    if not dp or setting.task != ECG:  # other tasks have no no-DP setting
        start = time.monotonic()
        central = baselines.centralized(run, sites)
        result["centralized"] = central["pooled"]
        result["centralized_s"] = round(time.monotonic() - start, 1)
        if setting.task in ("ecg-anomaly", "signal-anomaly"):
            result["pca"] = baselines.pca_baseline(run, sites)["pooled"]
    return result


def _best(task: str, pooled: dict[str, dict[str, Any]]) -> str:
    name, higher = ("mae_days", False) if task == "icu-los" else ("auroc", True)
    scored = {h: m.get(name) for h, m in pooled.items() if m.get(name) is not None}
    if not scored:
        return next(iter(pooled))
    return (max if higher else min)(scored, key=scored.__getitem__)


def summarise(
    setting: Setting, arm: str, per_seed: list[dict[str, Any]], method: str
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "task": setting.task,
        "arm": arm,
        "method": method,
        "privacy_unit": "none"
        if arm == "centralized" or setting.unit is None
        else setting.unit,
        "epsilon": None if arm == "centralized" else setting.epsilon,
        "seeds": len(per_seed),
    }
    for name in metric_names(setting.task):
        values = [m.get(name) for m in per_seed if m.get(name) is not None]
        row[f"pooled_{name}_mean"] = statistics.fmean(values) if values else None
        row[f"pooled_{name}_sd"] = statistics.stdev(values) if len(values) > 1 else None
        row[f"pooled_{name}_values"] = values
    if arm == "single_hospital":
        row["best_hospital"] = [m.get("hospital") for m in per_seed]
    if "best round" in method:
        row["best_round"] = [m.get("round") for m in per_seed]
    return row


def hospital_check(per_seed: list[dict[str, Any]], task: str) -> dict[str, Any]:
    """Per seed: hospitals whose federated metric is worse than their local-only."""
    name, higher = ("mae_days", False) if task == "icu-los" else ("auroc", True)
    worse = []
    for seed_result in per_seed:
        fed = seed_result["federated_hospitals"]
        loc = seed_result["local_only_hospitals"]
        bad = []
        for h, f in fed.items():
            a, b = f.get(name), (loc.get(h) or {}).get(name)
            if a is None or b is None:
                continue
            if (a < b) if higher else (a > b):
                bad.append({"hospital": h, "federated": a, "local_only": b})
        worse.append(bad)
    return {"metric": name, "worse_federated_than_local": worse}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=[ECG, *OTHER_TASKS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--hospitals", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI's smoke size: ecg-arrhythmia without DP and at patient eps 8, "
        "2 seeds, cohort scale 0.3",
    )
    parser.add_argument(
        "--dp-only",
        action="store_true",
        help="Leave out the no-DP settings (and so the centralized arm)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="SETTING",
        help='Only these settings, by label, e.g. "ecg-arrhythmia patient eps2" '
        "(labels: TASK no-DP, TASK UNIT epsE)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--work", type=Path, default=None, help="Run folders")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="run-config keys for every setting, e.g. num-server-rounds=12 "
        "sample-rate=0.2 (the local-only arm follows the federation's)",
    )
    parser.add_argument(
        "--markdown", type=Path, default=None, help="Regenerate this table file"
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="Regenerate this file's headline table (ecg-arrhythmia; README.md)",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        nargs="+",
        default=None,
        help="Tables from these JSON files (rows merged)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    import flwr.common.logger  # noqa: F401  (importing flwr sets its own level)

    logging.getLogger("flwr").setLevel(logging.WARNING)
    if args.source is not None:
        reports = [json.loads(path.read_text()) for path in args.source]
        report = merge(reports)
    else:
        out = args.out or ROOT / "benchmarks" / "results" / (
            f"utility-{datetime.now(timezone.utc).date()}"
            + ("-quick" if args.quick else "")
            + ".json"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        report = measure(args, out)
        print(f"wrote {out}")
    if args.markdown is not None:
        from benchmarks.utility_tables import write_markdown

        write_markdown(report, args.markdown)
        print(f"wrote {args.markdown}")
    if args.readme is not None:
        from benchmarks.utility_tables import write_readme

        write_readme(report, args.readme)
        print(f"wrote {args.readme}")
    return 0


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows of several runs; a later run's row replaces an earlier one's."""

    def key(row: dict[str, Any]) -> tuple:
        return (row["task"], row["arm"], row.get("method"), row["privacy_unit"],
                row["epsilon"])  # fmt: skip

    rows: dict[tuple, dict[str, Any]] = {}
    checks: dict[str, dict[str, Any]] = {}
    for report in reports:
        for row in report["rows"]:
            rows[key(row)] = row
        for check in report["hospital_checks"]:
            checks[check["setting"]] = {**check, "seeds": report["seeds"]}
    merged = dict(reports[0])
    merged.update(
        rows=list(rows.values()),
        hospital_checks=list(checks.values()),
        total_s=sum(r["total_s"] for r in reports),
        dates=sorted({r["date"][:10] for r in reports}),
        command="; ".join(r["command"] for r in reports),
    )
    return merged


def measure(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Every setting's rows; ``out`` is rewritten (atomically) after each setting,
    so a stopped run keeps what it measured (``"complete": false``)."""
    if args.quick:
        chosen = [Setting(ECG, None, None), Setting(ECG, "patient", 8.0)]
        seeds, scale = args.seeds[:2], 0.3
    else:
        chosen, seeds, scale = settings(args.tasks), args.seeds, args.scale
    if args.dp_only:
        chosen = [c for c in chosen if c.unit is not None]
    if args.only:
        unknown = set(args.only) - {c.label for c in chosen}
        if unknown:
            known = ", ".join(c.label for c in chosen)
            raise SystemExit(f"--only: unknown setting(s) {sorted(unknown)}; {known}")
        chosen = [c for c in chosen if c.label in args.only]
    overrides = parse_sets(args.set)  # a bad --set fails before any run
    work = args.work or Path(tempfile.mkdtemp(prefix="fedcare-utility-"))
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []
    for setting in sorted(chosen, key=lambda s: s.unit is not None):  # no-DP first
        per_seed = []
        for seed in seeds:
            log.info("%s, seed %d ...", setting.label, seed)
            t0 = time.monotonic()
            result = run_seed(setting, seed, work, scale, args.hospitals, overrides)
            per_seed.append(result)
            timings.append(
                {
                    "setting": setting.label,
                    "seed": seed,
                    "seconds": round(time.monotonic() - t0, 1),
                }
            )
            log.info(
                "  federated %s, local-only %s, single %s",
                _short(result["federated"]),
                _short(result["local_only"]),
                _short(result["single_hospital"]),
            )
        for arm in ("federated", "local_only", "single_hospital"):
            rows.append(summarise(setting, arm, [r[arm] for r in per_seed], "fedcare"))
        rows.append(
            summarise(setting, "federated", [r["federated_best"] for r in per_seed],
                      "fedcare, best round on validation")
        )  # fmt: skip
        checks.append(
            {"setting": setting.label, **hospital_check(per_seed, setting.task)}
        )
        if "centralized" in per_seed[0]:
            central = Setting(setting.task, None, None)
            rows.append(
                summarise(central, "centralized", [r["centralized"] for r in per_seed],
                          "fedcare")
            )  # fmt: skip
            if "pca" in per_seed[0]:
                rows.append(
                    summarise(central, "centralized", [r["pca"] for r in per_seed],
                              "pca")
                )  # fmt: skip
        _save(out, _report(args, seeds, scale, rows, checks, timings, started, False))
    report = _report(args, seeds, scale, rows, checks, timings, started, True)
    _save(out, report)
    return report


def _save(out: Path, report: dict[str, Any]) -> None:
    from shared_models.atomic import atomic_write_text

    atomic_write_text(out, json.dumps(report, indent=2))


def _report(
    args: argparse.Namespace,
    seeds: list[int],
    scale: float,
    rows: list[dict[str, Any]],
    checks: list[dict[str, Any]],
    timings: list[dict[str, Any]],
    started: float,
    complete: bool,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "complete": complete,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/utility.py " + " ".join(sys.argv[1:]),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
        },
        "hospitals": args.hospitals,
        "scale": scale,
        "seeds": seeds,
        "rows": rows,
        "hospital_checks": checks,
        "timings": timings,
        "total_s": round(time.monotonic() - started, 1),
    }


def _short(metrics: dict[str, Any]) -> str:
    for name in ("auroc", "mae_days"):
        if metrics.get(name) is not None:
            return f"{name} {metrics[name]:.3f}"
    return "n/a"


if __name__ == "__main__":
    raise SystemExit(main())
