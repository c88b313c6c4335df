"""``fedcare audit verify``: check a run's hash-chained audit log.

Exit status 0 when the log is intact, 1 when it was tampered with (or does not
match the checkpoints or the heads the hospitals hold, or a run's log is
missing), 2 on a usage error or when nothing could be checked (file or folder
not found, an unreadable heads file or checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shared_models.cli import FORMAT_OPTION, OutputFormat, emit, user_errors
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
    help="Also check each round's model hash against "
    "RUN/checkpoints/*/state.json (default: not checked).",
)
_HEADS = typer.Option(
    None,
    "--heads",
    help="A hospital's <ledger>.audit-heads.jsonl (repeat for each hospital): the "
    "log must hold every head of its run at its round (an edit whose chain was "
    "re-computed, or a cut, does not) (default: none held).",
)
_FORMAT = FORMAT_OPTION


@app.callback()
def _group() -> None:
    """The federation's per-round audit log (RUN/audit.jsonl)."""


@app.command("verify")
def verify(
    log: Path = _LOG,
    checkpoints: Path | None = _CHECKPOINTS,
    heads: list[Path] | None = _HEADS,
    format: OutputFormat = _FORMAT,
) -> None:
    """Check the hash chain of LOG: OK and the record count, or the first bad line."""
    from server.audit import Verdict
    from server.audit import verify as check
    from shared_models import held_heads

    with user_errors():
        if log.is_dir():
            raise ConfigError(
                f"audit log {log} is a folder; pass RUN/audit.jsonl of a federated run"
            )
        deleted = "" if log.exists() else _started_run(log)
        if deleted:  # exit 1, not "not found"
            verdict = Verdict(False, str(log), line=1, reason=deleted)
            emit(verdict.to_dict(), format, lambda: _print(verdict))
            raise typer.Exit(TAMPERED_EXIT)
        if not log.is_file():
            raise ConfigError(
                f"audit log {log} not found; pass RUN/audit.jsonl of a federated run"
            )
        if checkpoints is not None and not checkpoints.is_dir():
            raise ConfigError(
                f"--checkpoints {checkpoints} is not a folder; pass RUN/checkpoints"
            )
        held = [head for path in heads or [] for head in held_heads.read(path)]
        if heads and not held:
            raise ConfigError(
                f"--heads {', '.join(map(str, heads))}: no head held, nothing to "
                "check against (a hospital's file fills from the run's round 2 on)"
            )
        verdict = check(log, checkpoints, held)
    emit(verdict.to_dict(), format, lambda: _print(verdict))
    if not verdict.ok:
        raise typer.Exit(TAMPERED_EXIT)


def _started_run(log: Path) -> str:
    """Why a missing ``log`` is a deleted one, or "" when it is just not found.

    A run's ``audit.jsonl`` is missing from a folder that holds the run:
    ``run.json`` (written before round 1) or its checkpoints (each round's is
    saved just before its audit record).
    """
    from server.audit import FILE_NAME

    folder = log.parent
    if log.name != FILE_NAME:
        return ""
    rounds = sorted((folder / "checkpoints").glob("round_*"))
    if rounds:
        return (
            f"the run's audit log is missing, but {folder / 'checkpoints'} holds "
            f"{len(rounds)} round(s): the log was deleted"
        )
    if (folder / "run.json").is_file():
        return (
            f"the run's audit log is missing, but {folder / 'run.json'} shows a "
            "run started there: the log was deleted, or the run stopped before "
            "its first round was recorded"
        )
    return ""


def _print(verdict: Verdict) -> None:
    if verdict.ok:
        extra = (
            f", {verdict.checkpoints_checked} checkpoint(s) match"
            if verdict.checkpoints_checked
            else ""
        )
        if verdict.heads_checked:
            extra += f", {verdict.heads_checked} held head(s) match"
        typer.echo(f"OK {verdict.path}: {verdict.records} record(s){extra}")
    else:
        typer.echo(f"TAMPERED {verdict.path} line {verdict.line}: {verdict.reason}")
