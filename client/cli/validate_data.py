"""`fedcare validate-data`: check a hospital's data before a run starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shared_models.cli import OutputFormat, emit, user_errors

# client.data imports pandas and wfdb: named here, loaded only when a command runs.
TASK_NAMES = "ecg-arrhythmia, ecg-anomaly, signal-anomaly, icu-deterioration, icu-los"


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['task']}: {report['path']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in report.items():
        if key not in ("task", "path"):
            table.add_row(key.replace("_", " "), _cell(value))
    Console(soft_wrap=False).print(table)


PATH_ARGUMENT = typer.Argument(
    ..., help="Hospital folder (with ecg/, signals/ or vitals/), data folder or file."
)
TASK_OPTION = typer.Option(
    ..., "--task", help=f"What the data is for: one of {TASK_NAMES}."
)
FORMAT_OPTION = typer.Option(
    OutputFormat.text, "--format", help="text (a table) or json."
)


def command(
    path: Path = PATH_ARGUMENT,
    task: str = TASK_OPTION,
    format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Load the data a task needs, check it and report what was found."""
    from client.data import validate

    with user_errors():
        report = validate(path, task)
    emit(report, format, lambda: _print_report(report))
