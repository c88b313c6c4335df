"""The ledger's on-disk form: a hash-chained JSON Lines file, locked and atomic.

Each line is one record, serialized as canonical JSON (sorted keys, no spaces;
the chain and the lock are ``shared_models.hash_chain``'s).
``hash`` is the sha256 of the canonical JSON of the record without ``hash``;
``prev`` is the previous record's ``hash`` ("" for the header). Editing,
reordering, deleting or garbling any line breaks the chain at that line. Reading
also checks the links between records: every ``spend`` settles one earlier
``reserve`` of the same run, at most once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared_models.atomic import atomic_write_bytes
from shared_models.errors import LedgerError
from shared_models.hash_chain import canonical_json, record_hash, seal

FILE_MODE = 0o600
SUPPORTED_VERSIONS = (1, 2)
RECORD_TYPES = ("header", "plan", "reserve", "spend")
# Fields every record of a type has, in every version (version 1 had no reserve).
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
    "reserve": (
        "run_id",
        "reservation",
        "steps",
        "noise_multiplier",
        "sample_rate",
        "privacy_unit",
        "epsilon_after",
        "time",
    ),
}
# Fields a version 2 ledger adds (a version 1 ledger may also hold such records:
# they are appended after its old ones when it is used by a newer fedcare).
V2_FIELDS: dict[str, tuple[str, ...]] = {
    "header": ("dataset_fingerprint", "privacy_unit"),
    "plan": ("privacy_unit", "run_epsilon"),
    "reserve": (),
    "spend": ("privacy_unit", "reservation"),
}
_FIX = (
    "The ledger is the hospital's privacy record and must not be edited: restore "
    "it from a backup, or start a new ledger file (its budget starts from zero, "
    "so only do this if no data was used under the old one)."
)


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
    version = 0
    for number, line in enumerate(lines, start=1):
        record = _parse_line(path, number, line)
        _verify(path, number, record, prev, version)
        if number == 1:
            version = record["version"]
        prev = record["hash"]
        records.append(record)
    _verify_links(path, records)
    return records


def _not_a_number(name: str) -> float:
    """``json.loads`` hook for NaN / Infinity, which no ledger record may hold."""
    raise ValueError(f"the non-finite number {name}")


def _parse_line(path: Path, number: int, line: bytes) -> dict[str, Any]:
    where = f"Privacy ledger {path} line {number}"
    try:
        record = json.loads(line.decode("utf-8"), parse_constant=_not_a_number)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerError(f"{where}: not valid JSON ({exc}). {_FIX}") from None
    except ValueError as exc:
        raise LedgerError(f"{where}: {exc}; fedcare never writes it. {_FIX}") from None
    if not isinstance(record, dict):
        raise LedgerError(f"{where}: expected a JSON object. {_FIX}")
    return record


def _verify(
    path: Path, number: int, record: dict[str, Any], prev: str, version: int
) -> None:
    where = f"Privacy ledger {path} line {number}"
    kind = record.get("type")
    expected_kind = "header" if number == 1 else "plan, reserve or spend"
    if kind not in RECORD_TYPES or (kind == "header") != (number == 1):
        raise LedgerError(
            f"{where}: record type {kind!r} found, expected {expected_kind}. {_FIX}"
        )
    if kind == "header":
        version = record.get("version")
        if type(version) is not int or version not in SUPPORTED_VERSIONS:
            raise LedgerError(
                f"{where}: ledger version {version!r}, but this fedcare reads "
                f"versions {', '.join(map(str, SUPPORTED_VERSIONS))}. Use the fedcare "
                "release that wrote it (or a newer one); never edit the header."
            )
    fields = (*REQUIRED_FIELDS[kind], *(V2_FIELDS[kind] if version >= 2 else ()))
    missing = [f for f in (*fields, "prev", "hash") if f not in record]
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


def _verify_links(path: Path, records: list[dict[str, Any]]) -> None:
    """Every spend names an earlier reserve of its run, settled at most once."""
    reserves: dict[str, dict[str, Any]] = {}
    settled: set[str] = set()
    for number, record in enumerate(records, start=1):
        where = f"Privacy ledger {path} line {number}"
        rid = record.get("reservation")
        if record["type"] == "reserve":
            if rid in reserves:
                raise LedgerError(f"{where}: reservation {rid!r} reused. {_FIX}")
            reserves[str(rid)] = record
        elif record["type"] == "spend" and rid is not None:
            reserve = reserves.get(str(rid))
            if reserve is None or reserve["run_id"] != record["run_id"]:
                raise LedgerError(
                    f"{where}: spend settles reservation {rid!r}, which no earlier "
                    f"reserve record of run {record['run_id']!r} made. {_FIX}"
                )
            if rid in settled:
                raise LedgerError(
                    f"{where}: reservation {rid!r} settled a second time. {_FIX}"
                )
            settled.add(str(rid))


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


def create_ledger(path: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create the ledger at ``path`` holding ``records`` (header first), sealed.

    The caller holds :func:`locked`. The complete file is written and fsynced
    under a temporary name, then hard-linked to ``path``: ``link`` fails if
    ``path`` exists, so even a writer that ignores the lock cannot replace a
    ledger someone else just created (O_EXCL semantics, with no empty or
    half-written ledger ever visible).
    """
    sealed: list[dict[str, Any]] = []
    for record in records:
        sealed.append(seal(record, sealed[-1]["hash"] if sealed else ""))
    data = b"".join(canonical_json(record) + b"\n" for record in sealed)
    try:
        atomic_write_bytes(path, data, FILE_MODE, exclusive=True)
    except FileExistsError:
        raise LedgerError(
            f"Privacy ledger {path} appeared while this process was creating it: "
            "another writer does not take the lock file "
            f"{path.name}.lock. Stop it, then retry; the existing ledger is kept."
        ) from None
    except OSError as exc:
        raise LedgerError(f"Cannot create privacy ledger {path}: {exc}") from exc
    return sealed


# -- what the records say (no policy: that is ledger.py's) --------------------
def open_reservations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``reserve`` records no ``spend`` has settled yet, oldest first."""
    settled = {r.get("reservation") for r in records if r["type"] == "spend"}
    return [
        r for r in records if r["type"] == "reserve" and r["reservation"] not in settled
    ]


def history_of(
    records: list[dict[str, Any]], *, settled_only: bool = False
) -> list[tuple[float, float, int]]:
    """``(noise_multiplier, sample_rate, steps)`` of every spend, oldest first.

    Open reservations count at their reserved steps, unless ``settled_only``.
    """
    counted = [r for r in records if r["type"] == "spend"]
    if not settled_only:
        held = {id(r) for r in open_reservations(records)}
        counted = [r for r in records if r["type"] == "spend" or id(r) in held]
    return [
        (float(r["noise_multiplier"]), float(r["sample_rate"]), int(r["steps"]))
        for r in counted
    ]


def run_steps(records: list[dict[str, Any]], run_id: str) -> tuple[int, int]:
    """``(settled, reserved_open)`` steps of run ``run_id``."""
    settled = sum(
        int(r["steps"])
        for r in records
        if r["type"] == "spend" and r["run_id"] == run_id
    )
    held = sum(
        int(r["steps"]) for r in open_reservations(records) if r["run_id"] == run_id
    )
    return settled, held
