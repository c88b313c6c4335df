"""``fedcare budget``: a hospital's privacy budget, spending and ledger entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from client.cli.common import OutputFormat, emit, user_errors
from client.errors import LedgerError

_LEDGER = typer.Option(
    ..., "--ledger", help="The hospital's privacy ledger (JSON Lines)."
)
_FORMAT = typer.Option(
    OutputFormat.text, "--format", help="text for people, json for machines."
)


def command(ledger: Path = _LEDGER, format: OutputFormat = _FORMAT) -> None:
    """Show the privacy budget, epsilon spent and remaining, and every charge."""
    from client.privacy import PrivacyLedger

    with user_errors():
        if not ledger.exists():
            raise LedgerError(
                f"Privacy ledger {ledger} does not exist. Pass the path of the "
                "hospital's ledger (it is created by its first private training)."
            )
        summary = PrivacyLedger.open(ledger, None).summary()
        emit(summary, format, lambda: _print_text(summary))


def _print_text(summary: dict[str, Any]) -> None:
    budget = summary["budget"]
    typer.echo(f"ledger     {summary['ledger']}")
    typer.echo(f"hospital   {summary['hospital_id'] or '-'}")
    typer.echo(
        f"budget     epsilon {budget['epsilon']:g}, delta {budget['delta']:g}, "
        f"accountant {budget['accountant']}"
    )
    typer.echo(f"spent      epsilon {summary['spent_epsilon']:.4f}")
    typer.echo(f"remaining  epsilon {summary['remaining_epsilon']:.4f}")
    entries = summary["entries"]
    if not entries:
        typer.echo("entries    none")
        return
    typer.echo("")
    typer.echo(
        f"{'time':<25} {'run':<20} {'steps':>7} {'sigma':>8} {'q':>9} {'eps after':>10}"
    )
    for e in entries:
        typer.echo(
            f"{e['time']:<25} {e['run_id'][:20]:<20} {e['steps']:>7} "
            f"{e['noise_multiplier']:>8.4g} {e['sample_rate']:>9.4g} "
            f"{e['epsilon_after']:>10.4f}"
        )
