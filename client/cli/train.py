"""``fedcare train``: train a task privately on this hospital's data and export it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import typer

from client.cli.common import OutputFormat, emit, setup_logging, user_errors

DEFAULT_LEDGER = Path.home() / ".fedcare" / "privacy-ledger.jsonl"


def command(
    task: str = typer.Option(..., "--task", help="ecg-arrhythmia, ecg-arrhythmia-aami5, "
                             "ecg-anomaly, signal-anomaly, icu-deterioration, icu-los"),
    data: Path = typer.Option(..., "--data", help="Hospital folder or data file/directory."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    epsilon: float = typer.Option(None, "--epsilon", help="The hospital's total privacy "
                                  "budget; fixed when the ledger is created [default 8.0]."),
    delta: float = typer.Option(None, "--delta", help="Budget delta [default 1e-5]."),
    run_epsilon: float = typer.Option(1.0, "--run-epsilon", help="How much of the budget "
                                      "this run may spend (cumulative epsilon rises by it)."),
    ledger: Path = typer.Option(DEFAULT_LEDGER, "--ledger", help="The hospital's privacy "
                                "ledger; every private run is charged to it."),
    no_dp: bool = typer.Option(False, "--no-dp", help="Train without differential privacy."),
    epochs: int = typer.Option(3, "--epochs", min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Expected batch size."),
    lr: float = typer.Option(2e-3, "--lr"),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="Per-sample clip."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu, cuda."),
    run_id: str = typer.Option(None, "--run-id", help="Ledger run id [default: new]."),
    format: OutputFormat = typer.Option(OutputFormat.text, "--format"),
) -> None:
    """Train on this hospital's data (its own split by patient) and print test metrics."""
    setup_logging()
    with user_errors():
        from client.pipeline import train_local
        from client.training import PrivateRun, TrainConfig

        config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                             max_grad_norm=max_grad_norm, seed=seed, device=device)
        private = None if no_dp else _private_run(ledger, epsilon, delta, run_epsilon, run_id)
        result = train_local(task, data, config, private, out)
        payload: dict[str, Any] = {
            "task": task, "model_dir": str(result.model_dir), "metrics": result.metrics,
            "training": result.training, "privacy": result.card.privacy,
        }
        emit(payload, format, lambda: _print(payload))


def _private_run(ledger: Path, epsilon: float | None, delta: float | None,
                 run_epsilon: float, run_id: str | None) -> Any:
    from client.privacy import PrivacyBudget, PrivacyLedger
    from client.training import PrivateRun

    budget = None
    if epsilon is not None or delta is not None or not ledger.exists():
        budget = PrivacyBudget(epsilon=8.0 if epsilon is None else epsilon,
                               delta=1e-5 if delta is None else delta)
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
            f"{privacy['accountant']}, noise multiplier {privacy['noise_multiplier']:.3f})"
        )
    else:
        console.print("privacy: none (--no-dp)")
    console.print(f"model: {payload['model_dir']}")
