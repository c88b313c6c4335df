"""``fedcare ledger verify``: check a hospital's privacy ledger, alone or against
the heads a run's audit log recorded of it.

Exit status 0 when the ledger is intact, 1 when it was tampered with (its
chain is broken, or a ledger head the aggregator recorded is not one of its
records: edited and re-sealed, cut short or deleted), 2 when it could not be
checked (no ledger, no usable audit log, no head of this hospital in it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shared_models.cli import FORMAT_OPTION, OutputFormat, emit, user_errors

if TYPE_CHECKING:
    from client.privacy.ledger_evidence import LedgerVerdict

TAMPERED_EXIT = 1

app = typer.Typer(
    name="ledger",
    help="The hospital's privacy ledger (the node config's ledger-path).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_LEDGER = typer.Option(
    ..., "--ledger", help="The hospital's privacy ledger (JSON Lines)."
)
_AGAINST = typer.Option(
    None,
    "--against",
    help="A run's audit log (RUN/audit.jsonl, or RUN): every ledger head it "
    "recorded of this hospital must be a record of the ledger (default: the "
    "ledger's own chain only).",
)
_HOSPITAL = typer.Option(
    None,
    "--hospital",
    help="The hospital id in the audit log (default: the ledger header's).",
)
_FORMAT = FORMAT_OPTION


@app.callback()
def _group() -> None:
    """The hospital's privacy ledger (the node config's ledger-path)."""


@app.command("verify")
def verify(
    ledger: Path = _LEDGER,
    against: Path | None = _AGAINST,
    hospital: str | None = _HOSPITAL,
    format: OutputFormat = _FORMAT,
) -> None:
    """Check the ledger's chain and, with --against, the heads a run recorded."""
    from client.privacy.ledger_evidence import verify_against

    with user_errors():
        verdict = verify_against(ledger, against, hospital)
    emit(verdict.to_dict(), format, lambda: _print(verdict))
    if not verdict.ok:
        raise typer.Exit(TAMPERED_EXIT)


def _print(verdict: LedgerVerdict) -> None:
    if not verdict.ok:
        typer.echo(f"TAMPERED {verdict.ledger}: {verdict.reason}")
        return
    extra = (
        f", {verdict.heads_checked} ledger head(s) of {verdict.audit_log} found"
        if verdict.heads_checked
        else ""
    )
    typer.echo(f"OK {verdict.ledger}: {verdict.records} record(s){extra}")
