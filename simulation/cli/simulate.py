"""``fedcare simulate``: the researchers' one command."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import typer

from shared_models.cli import (
    SEED_RANGE,
    OutputFormat,
    check_output_dir,
    emit,
    setup_logging,
    user_errors,
)

TASK_HELP = (
    "ecg-arrhythmia (default), ecg-anomaly, signal-anomaly, icu-deterioration, icu-los"
)


def command(
    task: str = typer.Option("ecg-arrhythmia", "--task", help=TASK_HELP),
    hospitals: int = typer.Option(5, "--hospitals", min=2, help="Synthetic hospitals."),
    rounds: int = typer.Option(
        None, "--rounds", min=1, help="Server rounds (default: the task's recipe)."
    ),
    local_epochs: int = typer.Option(
        None,
        "--local-epochs",
        min=1,
        help="Epochs per round instead of the recipe's DP steps (default: the "
        "task's recipe).",
    ),
    local_steps: int = typer.Option(
        None,
        "--local-steps",
        min=0,
        help="DP steps per round; 0 = --local-epochs epochs (default: the "
        "task's recipe, e.g. 10).",
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Expected patients per DP step (default: the task's recipe, e.g. "
        "a tenth of each hospital's patients).",
    ),
    sample_rate: float = typer.Option(
        None,
        "--sample-rate",
        min=0.0,
        max=1.0,
        help="Expected fraction of each hospital's patients per DP step, when "
        "--batch-size is not given (default: the task's recipe, e.g. 0.1).",
    ),
    lr: float = typer.Option(
        None, "--lr", help="Local learning rate (default: the task's recipe)."
    ),
    server_lr: float = typer.Option(
        None, "--server-lr", help="FedAdam's server step (default: the task's recipe)."
    ),
    server_lr_schedule: str = typer.Option(
        None,
        "--server-lr-schedule",
        help="FedAdam's step over rounds t: const, or sqrt (step / sqrt(t)) "
        "(default: the task's recipe).",
    ),
    max_grad_norm: float = typer.Option(
        None, "--max-grad-norm", help="DP clipping norm (default: the task's recipe)."
    ),
    class_scaled_clip: bool = typer.Option(
        False,
        "--class-scaled-clip",
        help="Clip each patient in proportion to its class weight (same bound; "
        "helps at epsilon 8 and example level, hurts at epsilon 2).",
    ),
    out: Path = typer.Option(Path("runs/sim"), "--out", help="Run folder to write."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing --out."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    seed: int = typer.Option(0, "--seed", **SEED_RANGE),
    scale: float = typer.Option(1.0, "--scale", help="Cohort size multiplier."),
    label_skew: float = typer.Option(
        None,
        "--label-skew",
        help="Dirichlet alpha of label "
        "skew across hospitals (small = strongly non-IID; default: off).",
    ),
    data_dir: Path = typer.Option(
        None,
        "--data-dir",
        help="Use these hospital folders "
        "(one sub-folder each) instead of synthetic ones (default: synthetic).",
    ),
    ledger_dir: Path = typer.Option(
        None,
        "--ledger-dir",
        help="Hospitals' privacy ledgers (default: with --data-dir, each "
        "hospital's own default ledger, the one fedcare train uses for that data; "
        "for a generated cohort, RUN/ledgers).",
    ),
    epsilon: float = typer.Option(
        8.0, "--epsilon", help="Each hospital's total budget."
    ),
    delta: float = typer.Option(1e-5, "--delta"),
    run_epsilon: float = typer.Option(
        None,
        "--run-epsilon",
        help="Spend of this run (default: 2.0, the run config's).",
    ),
    no_dp: bool = typer.Option(
        False, "--no-dp", help="Train without DP (not private)."
    ),
    no_secagg: bool = typer.Option(
        False, "--no-secagg", help="Plain (unmasked) updates."
    ),
    privacy_unit: str = typer.Option(
        "patient",
        "--privacy-unit",
        help="What each hospital's guarantee protects: patient (all of a patient's "
        "records) or example (one beat, window or stay).",
    ),
    strategy: str = typer.Option(
        None,
        "--strategy",
        help="fedavg, fedprox or fedadam (default: the task's recipe).",
    ),
    proximal_mu: float = typer.Option(
        None, "--proximal-mu", help="FedProx mu (default: 0)."
    ),
    no_baselines: bool = typer.Option(
        False, "--no-baselines", help="Skip local-only and centralized baselines."
    ),
    client_cpus: float = typer.Option(1.0, "--client-cpus", help="CPUs per hospital."),
    client_gpus: float = typer.Option(
        None,
        "--client-gpus",
        help="GPUs per hospital (default: 1/hospitals when CUDA is present, else 0).",
    ),
    num_cpus: int = typer.Option(
        None, "--num-cpus", help="CPUs Ray may use (default: all)."
    ),
    ray_address: str = typer.Option(
        None,
        "--ray-address",
        help="Attach to a running Ray cluster (e.g. auto or HOST:6379; "
        "default: a local one).",
    ),
    format: OutputFormat = typer.Option(OutputFormat.text, "--format"),
    verbose: bool = typer.Option(
        False, "--verbose", help="Show Flower's and Ray's logs."
    ),
    dashboard: bool = typer.Option(
        False,
        "--dashboard",
        help="Serve fedcare dashboard of --out on 127.0.0.1 while the run goes "
        "(its URL is printed); it keeps serving after the run until Ctrl+C.",
    ),
    dashboard_port: int = typer.Option(
        8050, "--dashboard-port", min=1, max=65535, help="Port of --dashboard."
    ),
) -> None:
    """Simulate a federation of hospitals (DP, SecAgg+) with baselines and a report."""
    setup_logging(verbose)
    if not verbose:
        import flwr.common.logger  # noqa: F401  (importing flwr sets its own level)

        logging.getLogger("flwr").setLevel(logging.WARNING)
    with user_errors():
        from dataclasses import replace

        from client.privacy import check_privacy_unit, refuse_test_randomness
        from shared_models.run_config import RunConfig
        from simulation.runner import SimulationOptions, simulate

        refuse_test_randomness("fedcare simulate")
        check_privacy_unit(privacy_unit)
        check_output_dir(out)
        if ledger_dir is not None:
            check_output_dir(ledger_dir, "--ledger-dir")
        overrides: dict[str, Any] = {
            "task": task,
            "seed": seed,
            "resume": resume,
            "dp": not no_dp,
            "secagg": not no_secagg,
            "class_scaled_clip": class_scaled_clip,
        }
        for key, value in (
            ("num_server_rounds", rounds),
            ("local_epochs", local_epochs),
            ("local_steps", local_steps),
            ("batch_size", batch_size),
            ("sample_rate", _sample_rate(sample_rate)),
            ("learning_rate", lr),
            ("server_learning_rate", server_lr),
            ("server_lr_schedule", server_lr_schedule),
            ("max_grad_norm", max_grad_norm),
            ("run_epsilon", run_epsilon),
            ("strategy", strategy),
            ("proximal_mu", proximal_mu),
        ):
            if value is not None:
                overrides[key] = value
        # the unit's variant of the recipe fills the keys left unset (resolving
        # first would fill them from the patient-level recipe instead)
        run = replace(RunConfig(), **overrides).for_unit(privacy_unit)
        url = _start_dashboard(out, dashboard_port) if dashboard else ""
        opts = SimulationOptions(
            out=out,
            run=run,
            hospitals=hospitals,
            seed=seed,
            scale=scale,
            label_skew=label_skew,
            data_dir=data_dir,
            ledger_dir=ledger_dir,
            epsilon=epsilon,
            delta=delta,
            privacy_unit=privacy_unit,
            with_baselines=not no_baselines,
            overwrite=overwrite,
            client_cpus=client_cpus,
            client_gpus=_gpus(client_gpus, hospitals),
            num_cpus=num_cpus,
            ray_address=ray_address,
            verbose=verbose,
        )
        with _progress(run.num_server_rounds, format) as progress:
            summary = simulate(opts, progress)
        emit(summary, format, lambda: _print(summary, out))
    if url:
        _keep_serving(url)


def _start_dashboard(out: Path, port: int) -> str:
    from server.cli.dashboard import start_in_thread

    url = start_in_thread(out, "127.0.0.1", port)
    typer.echo(f"dashboard: {url}", err=True)
    return url


def _keep_serving(url: str) -> None:
    import threading

    typer.echo(f"the run is done; dashboard still on {url} (Ctrl+C to stop)", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


def _gpus(asked: float | None, hospitals: int) -> float:
    if asked is not None:
        return asked
    import torch

    return 1.0 / hospitals if torch.cuda.is_available() else 0.0


class _progress:
    """A rich progress bar over rounds, on a terminal only."""

    def __init__(self, total: int, fmt: OutputFormat) -> None:
        self.total = total
        self.enabled = sys.stderr.isatty() and fmt is OutputFormat.text
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import Progress

        self.bar = Progress(console=None, transient=False)
        self.bar.start()
        self.task = self.bar.add_task("federated rounds", total=self.total)
        return self.update

    def update(self, number: int, total: int, pooled: dict[str, Any]) -> None:
        shown = ", ".join(
            f"{k} {v:.3f}"
            for k, v in pooled.items()
            if k in ("f1", "auroc", "auprc", "mae_days") and v is not None
        )
        self.bar.update(
            self.task,
            completed=number,
            total=total,
            description=f"round {number}/{total}: {shown}",
        )

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    metric = summary["primary_metric"]
    table = Table(title=f"{summary['task']}: test {metric} per hospital")
    for column in (
        "hospital",
        "local-only",
        "federated",
        "centralized",
        "epsilon spent",
    ):
        table.add_column(column, justify="right")
    for hid, entry in summary["hospitals"].items():
        cells = [
            _fmt((entry.get(c) or {}).get(metric))
            for c in ("local_only", "federated", "centralized")
        ]
        spent = (
            f"{_fmt(entry.get('epsilon_spent'))} / {_fmt(entry.get('epsilon_budget'))}"
        )
        table.add_row(hid, *cells, spent)
    means = summary["means"]
    table.add_row(
        "mean",
        *(_fmt(means.get(c)) for c in ("local_only", "federated", "centralized")),
        "",
    )
    console = Console()
    console.print(table)
    for hid, entry in summary["hospitals"].items():
        if entry.get("declined_rounds"):
            console.print(
                f"[yellow]{hid} declined {entry['declined_rounds']} round(s): "
                f"{entry['decline_reason']}[/yellow]"
            )
    if summary.get("cost"):
        console.print(summary["cost"]["text"], markup=False)
    from simulation.report import phase_times

    times = phase_times(summary["timings"])
    console.print("wall time: " + "; ".join(f"{p} {t}" for p, t in times), markup=False)
    console.print(f"report: {out / 'report.html'}  summary: {out / 'summary.json'}")


def _fmt(value: Any) -> str:
    """3 decimals, or "n/a" for a metric the split cannot support (``None``)."""
    from simulation.report import fmt

    return fmt(value)


def _sample_rate(rate: float | None) -> float | None:
    if rate == 0:
        raise typer.BadParameter(
            "expected a fraction in (0, 1]", param_hint="--sample-rate"
        )
    return rate
