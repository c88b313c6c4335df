"""``fedcare evaluate``: score all of a data set with an exported model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shared_models.cli import (
    FORMAT_OPTION,
    OutputFormat,
    emit,
    setup_logging,
    user_errors,
)

_MODEL = typer.Option(..., "--model", help="Model directory (card.json + weights).")
_DATA = typer.Option(..., "--data", help="Hospital folder or data file/directory.")
_FORMAT = FORMAT_OPTION


def command(
    model: Path = _MODEL,
    data: Path = _DATA,
    format: OutputFormat = _FORMAT,
) -> None:
    """Score every example of DATA (no split) and print the task's metrics."""
    setup_logging()
    with user_errors():
        from client.pipeline import evaluate_dir

        payload = evaluate_dir(model, data)
        emit(payload, format, lambda: _print(payload))


def _print(payload: dict[str, Any]) -> None:
    typer.echo(
        f"{payload['task']} ({payload['model']}), {payload['examples']} examples"
    )
    if payload["threshold"] is not None:
        typer.echo(
            f"  threshold {payload['threshold']:.4g}, chosen on: "
            f"{payload['threshold_source']}"
        )
        if not payload["threshold_source"].startswith("this hospital"):
            typer.echo(
                "  (not chosen on this hospital's data: fedcare calibrate picks one "
                "on its own validation patients)"
            )
    for key, value in payload["metrics"].items():
        shown = (
            "n/a"  # the split cannot support it (shared_models.metrics)
            if value is None
            else f"{value:.4f}"
            if isinstance(value, float)
            else value
        )
        typer.echo(f"  {key}: {shown}")
