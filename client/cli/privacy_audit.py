"""``fedcare privacy-audit``: an empirical lower bound on DP-SGD's epsilon, by canaries.

One private training run on this hospital's data, as ``fedcare train`` runs
it, with secret gradient canaries (Steinke, Nasr and Jagielski 2023). Exit
status 0 when the lower bound is at most the claimed epsilon, 1 when it
exceeds it (the mechanism is broken), 2 on a user error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shared_models.cli import (
    FORMAT_OPTION,
    SEED_RANGE,
    OutputFormat,
    emit,
    setup_logging,
    user_errors,
)

BROKEN_EXIT = 1

_TASK = typer.Option(
    ...,
    "--task",
    help="ecg-arrhythmia, ecg-arrhythmia-aami5, "
    "ecg-anomaly, signal-anomaly, icu-deterioration, icu-los",
)
_DATA = typer.Option(..., "--data", help="Hospital folder or data file/directory.")
_EPSILON = typer.Option(
    ...,
    "--epsilon",
    help="The claimed epsilon to audit: the noise is calibrated for it, for the "
    "task's planned steps, as a training run's plan is.",
)
_DELTA = typer.Option(1e-5, "--delta", help="The claimed delta.")
_CANARIES = typer.Option(
    1000,
    "--canaries",
    min=2,
    help="Gradient canaries, each in training with probability 1/2. More "
    "canaries: a tighter bound, more memory.",
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
_CONFIDENCE = typer.Option(
    0.95, "--confidence", help="Confidence of the lower bound, in (0, 1)."
)
_EPOCHS = typer.Option(
    None, "--epochs", min=1, help="(default: the task's recommendation)"
)
_BATCH_SIZE = typer.Option(
    None, "--batch-size", min=1, help="Expected batch size (default: the task's)."
)
_PER_PATIENT = typer.Option(
    None,
    "--examples-per-patient",
    min=1,
    help="Patient-level DP: at most this many of a sampled patient's examples "
    "per step (default: the task's).",
)
_FORMAT = FORMAT_OPTION


def command(
    task: str = _TASK,
    data: Path = _DATA,
    epsilon: float = _EPSILON,
    delta: float = _DELTA,
    canaries: int = _CANARIES,
    privacy_unit: str = _UNIT,
    split_seed: int = _SPLIT_SEED,
    confidence: float = _CONFIDENCE,
    epochs: int = _EPOCHS,
    batch_size: int = _BATCH_SIZE,
    examples_per_patient: int = _PER_PATIENT,
    format: OutputFormat = _FORMAT,
) -> None:
    """Audit DP-SGD on this hospital's data: claimed epsilon vs an empirical lower
    bound. Trains once with secret canaries; does NOT charge the privacy ledger
    and writes no model: keep the result at the hospital."""
    setup_logging()
    with user_errors():
        from client.privacy import refuse_test_randomness
        from client.privacy.audit import run_audit
        from shared_models.errors import DataError

        refuse_test_randomness("fedcare privacy-audit")
        if not data.exists():
            raise DataError(f"--data {data}: no such file or directory")
        result = run_audit(
            task,
            data,
            epsilon,
            delta,
            canaries=canaries,
            privacy_unit=privacy_unit,
            confidence=confidence,
            split_seed=split_seed,
            epochs=epochs,
            batch_size=batch_size,
            examples_per_unit=examples_per_patient,
        )
    emit(result, format, lambda: _print(result))
    if result["epsilon_lower_bound"] > result["epsilon_claimed"]:
        raise typer.Exit(BROKEN_EXIT)


def _print(result: dict[str, Any]) -> None:
    from client.privacy.sampling import guarantee_text

    claimed, bound = result["epsilon_claimed"], result["epsilon_lower_bound"]
    delta, percent = result["delta"], f"{100 * result['confidence']:g}%"
    typer.echo(
        f"privacy audit of {result['task']}: {result['units']} "
        f"{result['privacy_unit']}s, {result['steps']} steps at sample rate "
        f"{result['sample_rate']:.4g}, noise multiplier "
        f"{result['noise_multiplier']:.4g}, {result['canaries']} canaries "
        f"({result['correct']} of {result['guesses']} guesses correct, "
        f"{result['seconds']:.0f} s)"
    )
    typer.echo(f"claimed      {guarantee_text(claimed, delta, result['privacy_unit'])}")
    typer.echo(
        f"lower bound  epsilon {bound:.3f}: at {percent} confidence the mechanism "
        f"is not ({bound:.3f}, {delta:g})-DP for any smaller epsilon: an empirical "
        "lower bound; the claim holds if lower bound <= claimed"
    )
    if bound <= claimed:
        typer.echo(
            f"result       consistent with the claim ({bound:.3f} <= {claimed:g}); "
            "an audit finds violations, it does not prove privacy"
        )
    else:
        typer.echo(
            f"result       BROKEN: the lower bound {bound:.3f} exceeds the claimed "
            f"epsilon {claimed:g}; the mechanism does not give its guarantee"
        )
    typer.echo("ledger       not charged; no model written")
