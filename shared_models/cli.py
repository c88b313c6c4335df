"""Helpers shared by every package's CLI commands: error handling, logging and
output formats (exit status 2 on a user error)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from shared_models.errors import ConfigError, FedcareError

USER_ERROR_EXIT = 2
# Seeds reach numpy and torch, which take 0..2**32-1: typer refuses the rest.
SEED_RANGE: dict[str, int] = {"min": 0, "max": 2**32 - 1}


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


# The ``--format`` option every command that reports something takes.
FORMAT_OPTION = typer.Option(
    OutputFormat.text, "--format", help="text for people, json for machines."
)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`FedcareError` into a one-line message and exit status 2."""
    try:
        yield
    except FedcareError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(USER_ERROR_EXIT) from None


def setup_logging(verbose: bool = False) -> None:
    """fedcare's own messages at INFO (DEBUG with ``verbose``); libraries at WARNING."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for package in ("client", "server", "shared_models", "simulation"):
        logging.getLogger(package).setLevel(logging.DEBUG if verbose else logging.INFO)


def emit(payload: dict[str, Any], fmt: OutputFormat, text: Callable[[], None]) -> None:
    """Print ``payload`` as JSON, or call ``text`` to print it for humans."""
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=_jsonable))
    else:
        text()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def check_output_dir(path: Path, flag: str = "--out") -> None:
    """Refuse, before any work (and any privacy budget) is spent, an output
    folder that cannot be made: it, or a folder above it, is a regular file."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                raise ConfigError(
                    f"{flag} {path}: {place} is a file, not a folder; choose a "
                    "folder that does not exist or is a folder"
                )
            return
