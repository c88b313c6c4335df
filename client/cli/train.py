"""``fedcare train``: train a task privately on this hospital's data and export it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import typer

from client.cli.common import OutputFormat, emit, setup_logging, user_errors

DEFAULT_LEDGER = Path.home() / ".fedcare" / "privacy-ledger.jsonl"


_TASK = typer.Option(
    ...,
    "--task",
    help="ecg-arrhythmia, ecg-arrhythmia-aami5, "
    "ecg-anomaly, signal-anomaly, icu-deterioration, icu-los",
)
_DATA = typer.Option(..., "--data", help="Hospital folder or data file/directory.")
_OUT = typer.Option(..., "--out", help="Model directory to write.")
_EPSILON = typer.Option(
    None,
    "--epsilon",
    help="The hospital's total privacy "
    "budget; fixed when the ledger is created [default 8.0].",
)
_DELTA = typer.Option(None, "--delta", help="Budget delta [default 1e-5].")
_RUN_EPSILON = typer.Option(
    1.0,
    "--run-epsilon",
    help="How much of the budget this run may spend (cumulative epsilon rises by it).",
)
_LEDGER = typer.Option(
    DEFAULT_LEDGER,
    "--ledger",
    help="The hospital's privacy ledger; every private run is charged to it.",
)
_NO_DP = typer.Option(False, "--no-dp", help="Train without differential privacy.")
_EPOCHS = typer.Option(
    None, "--epochs", min=1, help="[default: the task's recommendation]"
)
_BATCH_SIZE = typer.Option(
    None, "--batch-size", min=1, help="Expected batch size [default: the task's]."
)
_LR = typer.Option(None, "--lr", help="[default: the task's]")
_MAX_GRAD_NORM = typer.Option(
    None, "--max-grad-norm", help="Per-sample clip [default: the task's]."
)
_SEED = typer.Option(0, "--seed")
_DEVICE = typer.Option("auto", "--device", help="auto (CUDA if present), cpu, cuda.")
_RUN_ID = typer.Option(None, "--run-id", help="Ledger run id [default: new].")
_FORMAT = typer.Option(OutputFormat.text, "--format")


def command(
    task: str = _TASK,
    data: Path = _DATA,
    out: Path = _OUT,
    epsilon: float = _EPSILON,
    delta: float = _DELTA,
    run_epsilon: float = _RUN_EPSILON,
    ledger: Path = _LEDGER,
    no_dp: bool = _NO_DP,
    epochs: int = _EPOCHS,
    batch_size: int = _BATCH_SIZE,
    lr: float = _LR,
    max_grad_norm: float = _MAX_GRAD_NORM,
    seed: int = _SEED,
    device: str = _DEVICE,
    run_id: str = _RUN_ID,
    format: OutputFormat = _FORMAT,
) -> None:
    """Train on this hospital's data (split by patient) and print test metrics."""
    setup_logging()
    with user_errors():
        from client.pipeline import train_local
        from client.tasks import get_task

        config = get_task(task).recommended_config(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            max_grad_norm=max_grad_norm,
            seed=seed,
            device=device,
        )
        private = (
            None if no_dp else _private_run(ledger, epsilon, delta, run_epsilon, run_id)
        )
        result = train_local(task, data, config, private, out)
        payload: dict[str, Any] = {
            "task": task,
            "model_dir": str(result.model_dir),
            "metrics": result.metrics,
            "training": result.training,
            "privacy": result.card.privacy,
            "config": {
                k: getattr(config, k)
                for k in ("epochs", "batch_size", "lr", "max_grad_norm", "seed")
            },
        }
        emit(payload, format, lambda: _print(payload))


def _private_run(
    ledger: Path,
    epsilon: float | None,
    delta: float | None,
    run_epsilon: float,
    run_id: str | None,
) -> Any:
    from client.privacy import PrivacyBudget, PrivacyLedger
    from client.training import PrivateRun

    budget = None
    if epsilon is not None or delta is not None or not ledger.exists():
        budget = PrivacyBudget(
            epsilon=8.0 if epsilon is None else epsilon,
            delta=1e-5 if delta is None else delta,
        )
    book = PrivacyLedger.open(ledger, budget)
    return PrivateRun(book, run_id or f"train-{uuid.uuid4().hex[:12]}", run_epsilon)


def _print(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{payload['task']}: test split")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in payload["metrics"].items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        table.add_row(key, str(value))
    console = Console()
    console.print(table)
    privacy = payload["privacy"]
    if privacy:
        console.print(
            f"privacy: epsilon spent {privacy['epsilon_spent']:.3f} of "
            f"{privacy['epsilon_budget']:.3f} (delta {privacy['delta']:g}, "
            f"{privacy['accountant']}, "
            f"noise multiplier {privacy['noise_multiplier']:.3f})"
        )
    else:
        console.print("privacy: none (--no-dp)")
    console.print(f"model: {payload['model_dir']}")
