"""``fedcare budget``: a hospital's privacy budget, spending and ledger entries."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import typer

from shared_models.cli import FORMAT_OPTION, OutputFormat, emit, user_errors
from shared_models.errors import LedgerError

_LEDGER = typer.Option(
    ..., "--ledger", help="The hospital's privacy ledger (JSON Lines)."
)
_FORMAT = FORMAT_OPTION
# What "neighbouring datasets" means at each privacy unit, in words.
UNIT_WORDS = {
    "patient": "one patient's data",
    "example": "one example (beat, window or stay)",
}


def command(ledger: Path = _LEDGER, format: OutputFormat = _FORMAT) -> None:
    """Show the privacy budget and guarantee, spending, reservations and charges."""
    from client.privacy import PrivacyLedger

    with user_errors():
        if not ledger.exists():
            if not ledger.parent.is_dir():
                raise LedgerError(
                    f"Privacy ledger {ledger} does not exist and neither does its "
                    f"folder {ledger.parent}. Pass the path of the hospital's ledger "
                    "(the node config's ledger-path)."
                )
            # before the hospital's first private training: nothing spent yet
            empty = {"ledger": str(ledger), "exists": False, "spent_epsilon": 0.0}
            emit(
                empty,
                format,
                lambda: typer.echo(
                    f"no ledger yet at {ledger}: nothing has been spent. It is "
                    "created at this hospital's first private training, with the "
                    "budget (epsilon, delta) of the node config or of --epsilon."
                ),
            )
            return
        summary = PrivacyLedger.open(ledger, None).summary()
        emit(summary, format, lambda: _print_text(summary))


def guarantee(summary: dict[str, Any]) -> str:
    """The DP guarantee of the ledger's spending so far, in one sentence.

    Epsilon is rounded up (to 4 decimals) so the sentence never understates it.
    """
    if summary["spent_epsilon"] <= 0:
        return "nothing spent yet"
    epsilon = Decimal(repr(summary["spent_epsilon"])).quantize(
        Decimal("0.0001"), rounding=ROUND_CEILING
    )
    unit = summary["privacy_unit"]
    words = UNIT_WORDS.get(unit, f"one {unit}")
    return (
        f"(epsilon {epsilon}, delta {summary['budget']['delta']:g})-DP with respect "
        f"to adding or removing {words}"
    )


def _print_text(summary: dict[str, Any]) -> None:
    budget = summary["budget"]
    typer.echo(f"ledger     {summary['ledger']}")
    typer.echo(f"hospital   {summary['hospital_id'] or '-'}")
    typer.echo(f"dataset    {summary['dataset_fingerprint'] or '- (not recorded)'}")
    typer.echo(f"unit       {summary['privacy_unit']}")
    typer.echo(
        f"budget     epsilon {budget['epsilon']:g}, delta {budget['delta']:g}, "
        f"accountant {budget['accountant']}"
    )
    typer.echo(
        f"spent      epsilon {summary['spent_epsilon']:.4f} "
        f"({summary['settled_epsilon']:.4f} settled, "
        f"+{summary['reserved_epsilon']:.4f} open reservations)"
    )
    typer.echo(f"remaining  epsilon {summary['remaining_epsilon']:.4f}")
    typer.echo(f"guarantee  {guarantee(summary)}")
    _print_reservations(summary["reserved_open"])
    entries = summary["entries"]
    if not entries:
        typer.echo("entries    none")
        return
    typer.echo("")
    typer.echo(
        f"{'time':<25} {'run':<20} {'unit':<8} {'steps':>7} {'sigma':>8} {'q':>9} "
        f"{'eps after':>10}"
    )
    for e in entries:
        typer.echo(
            f"{e['time']:<25} {e['run_id'][:20]:<20} {e['privacy_unit']:<8} "
            f"{e['steps']:>7} {e['noise_multiplier']:>8.4g} {e['sample_rate']:>9.4g} "
            f"{e['epsilon_after']:>10.4f}"
        )


def _print_reservations(reserved: list[dict[str, Any]]) -> None:
    if not reserved:
        typer.echo("open       none")
        return
    typer.echo(
        f"open       {len(reserved)} reservation(s), counted in full until settled "
        "(a crashed training leaves its reservation open):"
    )
    for r in reserved:
        typer.echo(
            f"           {r['time']} run {r['run_id']} reservation "
            f"{r['reservation'][:12]} {r['steps']} steps ({r['privacy_unit']})"
        )
