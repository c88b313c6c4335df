"""``fedcare evaluate``: score all of a data set with an exported model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from client.cli.common import OutputFormat, emit, setup_logging, user_errors


def command(
    model: Path = typer.Option(..., "--model", help="Model directory (card.json + weights)."),
    data: Path = typer.Option(..., "--data", help="Hospital folder or data file/directory."),
    format: OutputFormat = typer.Option(OutputFormat.text, "--format"),
) -> None:
    """Score every example of DATA (no split) and print the task's metrics."""
    setup_logging()
    with user_errors():
        from client.pipeline import evaluate_dir

        payload = evaluate_dir(model, data)
        emit(payload, format, lambda: _print(payload))


def _print(payload: dict[str, Any]) -> None:
    typer.echo(f"{payload['task']} ({payload['model']}), {payload['examples']} examples")
    for key, value in payload["metrics"].items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        typer.echo(f"  {key}: {shown}")
