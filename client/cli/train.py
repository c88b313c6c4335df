"""``fedcare train``: train a task privately on this hospital's data and export it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import typer

from shared_models.cli import (
    FORMAT_OPTION,
    SEED_RANGE,
    OutputFormat,
    check_output_dir,
    emit,
    setup_logging,
    user_errors,
)

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
    "budget; fixed when the ledger is created (default: 8.0).",
)
_DELTA = typer.Option(None, "--delta", help="Budget delta (default: 1e-5).")
_RUN_EPSILON = typer.Option(
    1.0,
    "--run-epsilon",
    help="How much of the budget this run may spend (cumulative epsilon rises by it).",
)
_LEDGER = typer.Option(
    None,
    "--ledger",
    help="The dataset's privacy ledger; every private run is charged to it "
    "(default: ~/.fedcare/ledgers/<hash of the data path>.jsonl, one per dataset).",
)
_UNIT = typer.Option(
    "patient",
    "--privacy-unit",
    help="What the guarantee protects: patient (all of a patient's records) or "
    "example (one beat, window or stay).",
)
_SPLIT_SEED = typer.Option(
    0, "--split-seed", help="Seed of the patient split.", **SEED_RANGE
)
_PER_PATIENT = typer.Option(
    None,
    "--examples-per-patient",
    min=1,
    help="Patient-level DP: at most this many of a sampled patient's examples "
    "per step (default: 8).",
)
_NO_DP = typer.Option(False, "--no-dp", help="Train without differential privacy.")
_EPOCHS = typer.Option(None, "--epochs", min=1, help="(default: the task's recipe)")
_BATCH_SIZE = typer.Option(
    None,
    "--batch-size",
    min=1,
    help="Expected patients per DP step (default: the task's recipe).",
)
_LR = typer.Option(None, "--lr", help="(default: the task's recipe)")
_MAX_GRAD_NORM = typer.Option(
    None, "--max-grad-norm", help="Per-patient clip (default: the task's recipe)."
)
_SEED = typer.Option(
    0,
    "--seed",
    help="Seeds initial weights and augmentation, never the DP noise.",
    **SEED_RANGE,
)
_DEVICE = typer.Option("auto", "--device", help="auto (CUDA if present), cpu, cuda.")
_RUN_ID = typer.Option(None, "--run-id", help="Ledger run id (default: new).")
_FORMAT = FORMAT_OPTION


def command(
    task: str = _TASK,
    data: Path = _DATA,
    out: Path = _OUT,
    epsilon: float = _EPSILON,
    delta: float = _DELTA,
    run_epsilon: float = _RUN_EPSILON,
    ledger: Path = _LEDGER,
    privacy_unit: str = _UNIT,
    split_seed: int = _SPLIT_SEED,
    examples_per_patient: int = _PER_PATIENT,
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
        from client.privacy import check_privacy_unit, refuse_test_randomness
        from client.tasks import get_task

        refuse_test_randomness("fedcare train")
        check_privacy_unit(privacy_unit)
        check_output_dir(out)
        config = get_task(task).recommended_config(
            not no_dp,
            examples_per_unit=examples_per_patient,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            max_grad_norm=max_grad_norm,
            seed=seed,
            device=device,
        )
        private = (
            None
            if no_dp
            else _private_run(
                data, ledger, epsilon, delta, run_epsilon, run_id, privacy_unit
            )
        )
        result = train_local(task, data, config, private, out, split_seed=split_seed)
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
    data: Path,
    ledger: Path | None,
    epsilon: float | None,
    delta: float | None,
    run_epsilon: float,
    run_id: str | None,
    privacy_unit: str,
) -> Any:
    """The run's ledger (one per dataset) and plan inputs; nothing is written yet."""
    from client.privacy import PrivacyBudget, PrivacyLedger
    from client.privacy.fingerprint import dataset_fingerprint
    from client.privacy.location import default_ledger_path
    from client.training import PrivateRun
    from shared_models.errors import DataError

    if not data.exists():
        raise DataError(f"--data {data}: no such file or directory")
    fingerprint = dataset_fingerprint(data)
    path = ledger if ledger is not None else default_ledger_path(data)
    check_output_dir(path.parent, "--ledger")  # its folder is made at the first plan
    budget = None
    if epsilon is not None or delta is not None or not path.exists():
        budget = PrivacyBudget(
            epsilon=8.0 if epsilon is None else epsilon,
            delta=1e-5 if delta is None else delta,
        )
    book = PrivacyLedger.open(path, budget, dataset_fingerprint=fingerprint)
    return PrivateRun(
        book,
        run_id or f"train-{uuid.uuid4().hex[:12]}",
        run_epsilon,
        privacy_unit=privacy_unit,
    )


def _print(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{payload['task']}: test split")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in payload["metrics"].items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        table.add_row(key, "n/a" if value is None else str(value))
    console = Console()
    console.print(table)
    privacy = payload["privacy"]
    if privacy:
        console.print(
            f"privacy: {privacy['guarantee']}; epsilon spent "
            f"{privacy['epsilon_spent']:.3f} of {privacy['epsilon_budget']:.3f} "
            f"({privacy['accountant']}, noise multiplier "
            f"{privacy['noise_multiplier']:.3f})",
            markup=False,
        )
        if privacy.get("warning"):
            console.print(f"warning: {privacy['warning']}", markup=False)
    else:
        console.print("privacy: none (--no-dp)")
    console.print(f"model: {payload['model_dir']}")
