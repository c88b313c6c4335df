"""The audit-log heads a hospital holds apart from the aggregator.

Every instruction of the aggregator carries the hash of its audit log's newest
record and that record's round (``wire.AUDIT_HEAD``, ``wire.AUDIT_HEAD_ROUND``).
The hospital appends each new one to a file of its own beside its ledger,
``<ledger>.audit-heads.jsonl``: one canonical JSON object a line, ``run`` (the
run name), ``round``, ``head`` and ``time``. The hospital writes it
(``client.app``); anyone verifying an audit log reads it
(``fedcare audit verify --heads``), so its format lives here, on the ground
both sides stand on.

A held head commits to every record up to its round: a log edited and
re-sealed, or cut short, no longer holds it (:func:`check`). The file is
bounded: past :data:`MAX_LINES` lines only each run's newest head is kept,
which still commits to all of that run's earlier records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from shared_models.atomic import atomic_write_bytes
from shared_models.errors import FedcareError
from shared_models.hash_chain import canonical_json, locked

SUFFIX = ".audit-heads.jsonl"
MAX_LINES = 10_000
FILE_MODE = 0o600
_HEX = frozenset("0123456789abcdef")


class HeadsError(FedcareError):
    """A heads file that cannot be read (so nothing can be checked against it)."""


@dataclass(frozen=True)
class HeldHead:
    """One audit head a hospital received: run, round, hash; ``source`` its file."""

    run: str
    round: int
    head: str
    source: str = ""
    time: str = ""


def path_for(ledger: Path) -> Path:
    """The heads file that belongs beside the ledger at ``ledger``."""
    ledger = Path(ledger)
    return ledger.with_name(ledger.name + SUFFIX)


def _valid(run: Any, number: Any, head: Any) -> bool:
    return (
        isinstance(run, str)
        and bool(run)
        and type(number) is int
        and number >= 1
        and isinstance(head, str)
        and len(head) == 64
        and set(head) <= _HEX
    )


def record(path: Path, run: str, number: int, head: str) -> bool:
    """Append ``(run, number, head)`` to the heads file at ``path``, atomically.

    Returns ``False`` when that exact head is already held. A different head
    for a round already held is appended too: both stay as evidence (the
    aggregator showed this hospital two logs).
    """
    if not _valid(run, number, head):
        raise ValueError(
            f"audit head {head!r} of round {number!r} of run {run!r}: expected a "
            "run name, a round >= 1 and a sha256 in hex"
        )
    path = Path(path)
    with locked(path):
        held = read(path) if path.exists() else []
        if any((h.run, h.round, h.head) == (run, number, head) for h in held):
            return False
        stamp = datetime.now(timezone.utc).isoformat()
        held.append(HeldHead(run, number, head, time=stamp))
        if len(held) > MAX_LINES:
            newest = {h.run: h for h in sorted(held, key=lambda h: h.round)}
            held = [h for h in held if newest[h.run] is h]
        data = b"".join(
            canonical_json(
                {"run": h.run, "round": h.round, "head": h.head, "time": h.time}
            )
            + b"\n"
            for h in held
        )
        atomic_write_bytes(path, data, mode=FILE_MODE)
    return True


def read(path: Path) -> list[HeldHead]:
    """Every head held in the file at ``path``; :class:`HeadsError` if unreadable."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise HeadsError(f"cannot read heads file {path}: {exc}") from None
    held = []
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or not _valid(
            entry.get("run"), entry.get("round"), entry.get("head")
        ):
            raise HeadsError(
                f"heads file {path} line {number}: expected a JSON object with run, "
                "round and head (a sha256); pass the <ledger>.audit-heads.jsonl a "
                "hospital keeps"
            )
        held.append(
            HeldHead(
                entry["run"],
                entry["round"],
                entry["head"],
                str(path),
                str(entry.get("time", "")),
            )
        )
    return held


def check(
    records: list[dict[str, Any]], held: list[HeldHead]
) -> tuple[int, str] | None:
    """The first held head the (chain-verified) log ``records`` lacks.

    Only heads of the log's run count. ``None`` when every one is at its
    round, else ``(line, reason)``: a head for a round past the log's end means
    the log was cut short; a different hash at its round, that it was edited
    and re-sealed.
    """
    run = records[0]["run_id"] if records else ""
    lines: dict[int, list[tuple[int, str]]] = {}
    for line, r in enumerate(records, start=1):
        lines.setdefault(int(r["round"]), []).append((line, str(r["hash"])))
    last = max(lines, default=0)
    for h in sorted((h for h in held if h.run == run), key=lambda h: h.round):
        found = lines.get(h.round, [])
        if h.round > last:
            return len(records) + 1, (
                f"{h.source} holds the head of round {h.round}, but the log ends at "
                f"round {last}: records were removed from its end (truncated)"
            )
        if not found:
            after = next(i for i, r in enumerate(records, 1) if r["round"] > h.round)
            return after, (
                f"{h.source} holds the head of round {h.round}, which has no record: "
                "records were removed and the chain re-computed"
            )
        if all(h.head != digest for _, digest in found):
            line, digest = found[0]
            return line, (
                f"round {h.round} hashes to {digest[:12]}..., but {h.source} holds "
                f"{h.head[:12]}... for it: the log was edited and its chain "
                "re-computed (or this hospital was shown another log)"
            )
    return None


def runs_of(held: list[HeldHead]) -> list[str]:
    return sorted({h.run for h in held})
