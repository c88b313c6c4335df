"""``fedcare audit verify``: check a run's hash-chained audit log.

Exit status 0 when the log is intact, 1 when it was tampered with (or does not
match the checkpoints), 2 on a usage error (file or folder not found).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shared_models.cli import OutputFormat, emit, user_errors
from shared_models.errors import ConfigError

if TYPE_CHECKING:
    from server.audit import Verdict

TAMPERED_EXIT = 1

app = typer.Typer(
    name="audit",
    help="The federation's per-round audit log (RUN/audit.jsonl).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_LOG = typer.Argument(..., help="The audit log, e.g. RUN/audit.jsonl.")
_CHECKPOINTS = typer.Option(
    None,
    "--checkpoints",
    help="Also check each round's model hash against RUN/checkpoints/*/state.json.",
)
_FORMAT = typer.Option(
    OutputFormat.text, "--format", help="text for people, json for machines."
)


@app.callback()
def _group() -> None:
    """The federation's per-round audit log (RUN/audit.jsonl)."""


@app.command("verify")
def verify(
    log: Path = _LOG,
    checkpoints: Path | None = _CHECKPOINTS,
    format: OutputFormat = _FORMAT,
) -> None:
    """Check the hash chain of LOG: OK and the record count, or the first bad line."""
    from server.audit import verify as check

    with user_errors():
        if log.is_dir():
            raise ConfigError(
                f"audit log {log} is a folder; pass RUN/audit.jsonl of a federated run"
            )
        if not log.is_file():
            raise ConfigError(
                f"audit log {log} not found; pass RUN/audit.jsonl of a federated run"
            )
        if checkpoints is not None and not checkpoints.is_dir():
            raise ConfigError(
                f"--checkpoints {checkpoints} is not a folder; pass RUN/checkpoints"
            )
        verdict = check(log, checkpoints)
    emit(verdict.to_dict(), format, lambda: _print(verdict))
    if not verdict.ok:
        raise typer.Exit(TAMPERED_EXIT)


def _print(verdict: Verdict) -> None:
    if verdict.ok:
        extra = (
            f", {verdict.checkpoints_checked} checkpoint(s) match"
            if verdict.checkpoints_checked
            else ""
        )
        typer.echo(f"OK {verdict.path}: {verdict.records} record(s){extra}")
    else:
        typer.echo(f"TAMPERED {verdict.path} line {verdict.line}: {verdict.reason}")
