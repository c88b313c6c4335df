"""The ledger's on-disk form: a hash-chained JSON Lines file, locked and atomic.

Each line is one record, serialized as canonical JSON (sorted keys, no spaces).
``hash`` is the sha256 of the canonical JSON of the record without ``hash``;
``prev`` is the previous record's ``hash`` ("" for the header). Editing,
reordering, deleting or garbling any line breaks the chain at that line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from client.errors import LedgerError
from shared_models.atomic import atomic_write_bytes

FILE_MODE = 0o600
RECORD_TYPES = ("header", "plan", "spend")
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "header": ("version", "hospital_id", "budget", "created"),
    "plan": (
        "run_id",
        "noise_multiplier",
        "sample_rate",
        "planned_steps",
        "max_grad_norm",
        "target_epsilon",
        "accountant",
        "time",
    ),
    "spend": (
        "run_id",
        "sample_rate",
        "noise_multiplier",
        "steps",
        "delta",
        "accountant",
        "time",
        "epsilon_after",
    ),
}
_FIX = (
    "The ledger is the hospital's privacy record and must not be edited: restore "
    "it from a backup, or start a new ledger file (its budget starts from zero, "
    "so only do this if no data was used under the old one)."
)


def canonical_json(record: dict[str, Any]) -> bytes:
    """Canonical bytes of ``record``: sorted keys, no spaces, no NaN."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def record_hash(record: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of ``record`` without its ``hash``."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def seal(record: dict[str, Any], prev: str) -> dict[str, Any]:
    """Return ``record`` with ``prev`` and ``hash`` filled in."""
    sealed = {key: value for key, value in record.items() if key != "hash"}
    sealed["prev"] = prev
    sealed["hash"] = record_hash(sealed)
    return sealed


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read and verify every record of the ledger at ``path``.

    Raises :class:`LedgerError` naming the file and the 1-based line number of
    the first record that is garbled, edited, out of order or misplaced.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"Cannot read privacy ledger {path}: {exc}") from exc
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise LedgerError(f"Privacy ledger {path} is empty; it has no header. {_FIX}")
    records: list[dict[str, Any]] = []
    prev = ""
    for number, line in enumerate(lines, start=1):
        record = _parse_line(path, number, line)
        _verify(path, number, record, prev)
        prev = record["hash"]
        records.append(record)
    return records


def _parse_line(path: Path, number: int, line: bytes) -> dict[str, Any]:
    where = f"Privacy ledger {path} line {number}"
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerError(f"{where}: not valid JSON ({exc}). {_FIX}") from None
    if not isinstance(record, dict):
        raise LedgerError(f"{where}: expected a JSON object. {_FIX}")
    return record


def _verify(path: Path, number: int, record: dict[str, Any], prev: str) -> None:
    where = f"Privacy ledger {path} line {number}"
    kind = record.get("type")
    expected_kind = "header" if number == 1 else "plan or spend"
    if kind not in RECORD_TYPES or (kind == "header") != (number == 1):
        raise LedgerError(
            f"{where}: record type {kind!r} found, expected {expected_kind}. {_FIX}"
        )
    missing = [f for f in (*REQUIRED_FIELDS[kind], "prev", "hash") if f not in record]
    if missing:
        raise LedgerError(f"{where}: {kind} record lacks {', '.join(missing)}. {_FIX}")
    if record["hash"] != record_hash(record):
        raise LedgerError(
            f"{where}: checksum mismatch, the record was edited or corrupted "
            f"(stored hash {str(record['hash'])[:12]}..., content hashes to "
            f"{record_hash(record)[:12]}...). {_FIX}"
        )
    if record["prev"] != prev:
        raise LedgerError(
            f"{where}: chain broken, the record does not follow line {number - 1} "
            "(a line was deleted, inserted or reordered before it). " + _FIX
        )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (one writer per ledger at a time).

    The lock lives in a sibling file because appends replace the ledger's inode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_record(path: Path, prev: str, record: dict[str, Any]) -> dict[str, Any]:
    """Seal ``record`` after the record hashed ``prev`` and append it atomically.

    The caller holds :func:`locked` and has just verified the ledger, whose last
    hash is ``prev`` ("" when the file does not exist yet). The old bytes plus the
    new line are written to a temporary file that replaces the ledger
    (``os.replace``), so a crash leaves the old ledger or the new one, never a
    torn line.
    """
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    sealed = seal(record, prev)
    atomic_write_bytes(path, old + canonical_json(sealed) + b"\n", mode=FILE_MODE)
    return sealed
