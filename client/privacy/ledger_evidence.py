"""A hospital's ledger checked against the heads the aggregator recorded.

Each train reply carries a commitment to the hash of the ledger's last record
after that round, bound to the run and round (``wire.LEDGER_HEAD``,
``wire.ledger_commitment``; of ``""`` before the ledger exists); the aggregator
writes it into the round's audit record (``ledger_heads``, audit records of
version 2). A ledger
whose chain was re-computed after an edit (a budget raised, spends deleted)
has other hashes, and one cut short lacks the newest: either way a recorded
head is no longer one of its records. The ledger's own chain is checked first
(``ledger_file.read_records``).

Exit meaning, as ``fedcare audit verify``: intact, tampered, or could not
check (:class:`~shared_models.errors.ConfigError`: no audit log, a broken one,
or one that records no head of this hospital).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from client.privacy.ledger_file import read_records
from shared_models.errors import ConfigError, LedgerError
from shared_models.hash_chain import first_break
from shared_models.wire import ledger_commitment

AUDIT_FILE = "audit.jsonl"


@dataclass
class LedgerVerdict:
    """The outcome of :func:`verify_against` (``round``/``reason`` when not ok)."""

    ok: bool
    ledger: str
    hospital: str
    records: int = 0
    audit_log: str = ""
    heads_checked: int = 0
    round: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recorded_heads(audit_log: Path, hospital: str) -> list[tuple[str, int, str]]:
    """``(run, round, commitment)`` of every ledger head the audit log at
    ``audit_log`` recorded for ``hospital``, in log order; ConfigError when the
    log cannot be used."""
    audit_log = Path(audit_log)
    if audit_log.is_dir():
        audit_log = audit_log / AUDIT_FILE
    try:
        lines = audit_log.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot check against audit log {audit_log}: {exc}; pass RUN/audit.jsonl "
            "of the run (or RUN)"
        ) from None
    broken = first_break(records)
    if broken or not records:
        where = f"line {broken[0]}: {broken[1]}" if broken else "it holds no record"
        raise ConfigError(
            f"cannot check against audit log {audit_log}: {where}; the log itself "
            "was damaged (fedcare audit verify says more)"
        )
    heads = [
        (str(r["run_id"]), int(r["round"]), str(r["ledger_heads"][hospital]))
        for r in records
        if isinstance(r.get("ledger_heads"), dict) and hospital in r["ledger_heads"]
    ]
    if not heads:
        raise ConfigError(
            f"audit log {audit_log} records no ledger head of hospital {hospital!r} "
            "(records before audit version 2 carry none; a run without DP, or one "
            "this hospital never trained in, has none): nothing to check against"
        )
    return heads


def verify_against(
    ledger: Path, audit_log: Path | None, hospital: str | None = None
) -> LedgerVerdict:
    """Check the chain of ``ledger`` and, with ``audit_log``, that every ledger
    head it recorded for this hospital is a record of the ledger.

    ``hospital`` defaults to the ledger header's ``hospital_id`` (pass it when
    the ledger is missing: a deleted ledger is then tampered, not unknown).
    """
    ledger = Path(ledger)
    if not ledger.exists() and not hospital:
        raise ConfigError(
            f"privacy ledger {ledger} not found; pass the node config's "
            "ledger-path (or --hospital to check whether it was deleted)"
        )
    verdict = LedgerVerdict(True, str(ledger), hospital or "")
    verdict.audit_log = str(audit_log or "")
    records: list[dict[str, Any]] = []
    if ledger.exists():
        try:
            ledger.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read privacy ledger {ledger}: {exc}") from None
        try:
            records = read_records(ledger)
        except LedgerError as exc:
            verdict.ok, verdict.reason = False, str(exc)
            return verdict
        verdict.records = len(records)
        verdict.hospital = hospital or str(records[0].get("hospital_id", ""))
    if audit_log is None:
        return verdict
    heads = recorded_heads(audit_log, verdict.hospital)
    verdict.heads_checked = len(heads)
    hashes = ["", *(str(r["hash"]) for r in records)]  # "": no ledger yet
    for run, number, head in heads:
        if all(ledger_commitment(h, run, number) != head for h in hashes):
            verdict.ok, verdict.round = False, number
            verdict.reason = (
                f"round {number}: the audit log records ledger head {head[:12]}..., "
                "which no record of the ledger has: the ledger was edited and its "
                "chain re-computed, or cut short"
                + ("" if records else " (the ledger is missing)")
            )
            return verdict
    return verdict
