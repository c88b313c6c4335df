"""Hash-chained JSON Lines records and the lock their writers take.

Both the hospitals' privacy ledger (``client.privacy.ledger_file``) and the
aggregator's audit log (``server.audit``) are chains of this form: each line is
one record serialized as canonical JSON (sorted keys, no spaces); ``hash`` is
the sha256 of the canonical JSON of the record without ``hash``, ``prev`` the
previous record's ``hash`` ("" for the first). Editing, reordering, deleting or
garbling any line breaks the chain at that line. What a record must contain,
and how it is appended, is each file format's own business.
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

LOCK_MODE = 0o600


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


def first_break(records: list[Any]) -> tuple[int, str] | None:
    """``(line, reason)`` of the first record of ``records`` that breaks the
    chain (1-based), or ``None``: for a reader that needs a chain intact, not
    the file format's own checks (``server.audit`` and ``ledger_file`` have
    those)."""
    prev = ""
    for line, record in enumerate(records, start=1):
        if not isinstance(record, dict) or "hash" not in record:
            return line, "not a sealed record"
        try:
            if record["hash"] != record_hash(record):
                return line, "checksum mismatch"
        except (ValueError, TypeError):
            return line, "holds a value fedcare never writes"
        if record.get("prev") != prev:
            return line, "chain broken"
        prev = record["hash"]
    return None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (one writer per file at a time).

    The lock lives in a sibling file because appends may replace the file's inode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
