"""The run's audit log: one hash-chained record per round, append-only.

``RUN/audit.jsonl`` holds one JSON object per line, serialised as canonical
JSON (sorted keys, no spaces; the same chain as the hospitals' privacy ledger,
``shared_models.hash_chain``). ``hash`` is the sha256 of the record without
``hash``; ``prev`` is the previous record's ``hash`` ("" for the first), so an
edited, deleted, inserted or reordered line breaks the chain at that line.

A record says who took part in the round (hospital ids as reported by their
SuperNodes), who dropped out and why, the global model's sha256 before and
after the round, and the strategy, DP and SecAgg+ settings it ran under. A
resumed run appends to the same file and continues the chain.

Since version 2 a record also holds ``ledger_heads``: each hospital's ledger
head hash as its train reply reported it (``shared_models.wire.LEDGER_HEAD``),
and every instruction after a round carries that round's record ``hash`` to
the hospitals, which keep it (``shared_models.held_heads``). A chain alone
proves nothing against someone who re-computes it after an edit; these hashes
held apart do (:func:`check_heads`). Version 1 records verify as before and
carry no such evidence.

Appends are crash-safe: under a lock the existing file is verified, then the
new line is written with a single ``os.write`` on an ``O_APPEND`` descriptor
and fsynced; a file that does not end in a newline (a torn write) is refused
rather than extended.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from shared_models.errors import FedcareError
from shared_models.hash_chain import canonical_json, locked, record_hash, seal
from shared_models.held_heads import HeldHead, check, runs_of
from shared_models.run_config import RunConfig

FILE_NAME = "audit.jsonl"
VERSION = 2
FILE_MODE = 0o644
AUDITED_SETTINGS = (
    "task",
    "strategy",
    "proximal-mu",
    "dp",
    "run-epsilon",
    "max-grad-norm",
    "secagg",
    "secagg-num-shares",
    "secagg-reconstruction-threshold",
    "secagg-clipping-range",
    "secagg-quantization-range",
)
REQUIRED = (
    "type",
    "version",
    "run_id",
    "round",
    "time",
    "participating",
    "dropped",
    "model_before",
    "model_after",
    "checkpoint",
    "settings",
    "prev",
    "hash",
)
_FIX = (
    "The audit log must not be edited: keep this file as evidence, restore the "
    "log from a backup, and compare the two."
)


class AuditError(FedcareError):
    """The audit log is unreadable, edited or out of order."""


class ChainError(AuditError):
    """A line of the audit log breaks the chain (``line`` is 1-based)."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"audit log {path} line {line}: {reason}. {_FIX}")
        self.path, self.line, self.reason = path, line, reason


def settings_of(config: RunConfig) -> dict[str, Any]:
    """The run-config values an auditor needs (kebab-case keys, as in pyproject)."""
    raw = config.to_run_config()
    return {key: raw[key] for key in AUDITED_SETTINGS}


def model_before(rounds: list[dict[str, Any]], number: int, initial: str) -> str:
    """The global model's hash entering round ``number``.

    The newest earlier round that produced a model, else the run's initial
    weights (on resume: the checkpoint the run restarted from).
    """
    earlier = [
        r for r in rounds if r["round"] < number and r.get("global_model_sha256")
    ]
    if not earlier:
        return initial
    return max(earlier, key=lambda r: r["round"])["global_model_sha256"]


def round_record(
    run_id: str, history_round: dict[str, Any], before: str, config: RunConfig
) -> dict[str, Any]:
    """The (unsealed) audit record of one round, from its history record."""
    fit = history_round.get("fit", {})
    dropped = [
        {
            "hospital": h,
            "status": "declined",
            "reason": "sent 0 examples (visible only without SecAgg+)",
        }
        for h, f in sorted(fit.items())
        if f.get("status") == "declined"
    ]
    dropped += [
        {
            "hospital": "" if d.get("hospital") is None else str(d["hospital"]),
            "node_id": d.get("node_id"),
            "status": "no-reply",
            "reason": "sampled for the round, sent no reply",
        }
        for d in history_round.get("dropped", [])
    ]
    dropped += [
        {"hospital": "", "status": "failed", "reason": str(text)}
        for text in history_round.get("failures", [])
    ]
    after = history_round.get("global_model_sha256") or before
    number = int(history_round["round"])
    return {
        "type": "round",
        "version": VERSION,
        "run_id": run_id,
        "round": number,
        "time": datetime.now(timezone.utc).isoformat(),
        "participating": sorted(h for h, f in fit.items() if f["status"] != "declined"),
        "dropped": dropped,
        "model_before": before,
        "model_after": after,
        "checkpoint": (
            f"checkpoints/round_{number:04d}"
            if history_round.get("global_model_sha256")
            else ""
        ),
        "settings": settings_of(config),
        "ledger_heads": {
            h: f["ledger_head"] for h, f in sorted(fit.items()) if f.get("ledger_head")
        },
    }


def append_round(
    run_dir: Path,
    run_id: str,
    history_round: dict[str, Any],
    before: str,
    config: RunConfig,
) -> dict[str, Any]:
    """Append round ``history_round`` to ``run_dir/audit.jsonl``; the sealed record."""
    record = round_record(run_id, history_round, before, config)
    return append(Path(run_dir) / FILE_NAME, record)


def append(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Verify the log at ``path``, then append ``record`` chained to its last line."""
    path = Path(path)
    with locked(path):
        records = read_records(path) if path.exists() else []
        sealed = seal(record, records[-1]["hash"] if records else "")
        line = canonical_json(sealed) + b"\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            written = os.write(fd, line)
            if written != len(line):  # pragma: no cover - full disk
                raise AuditError(f"{path}: only {written} of {len(line)} bytes written")
            os.fsync(fd)
        finally:
            os.close(fd)
    return sealed


def head(path: Path) -> tuple[int, str] | None:
    """``(round, hash)`` of the log's last record; ``None`` without a log."""
    path = Path(path)
    if not path.exists():
        return None
    records = read_records(path)
    return int(records[-1]["round"]), str(records[-1]["hash"])


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of the log at ``path``, verified; :class:`ChainError` if not."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read audit log {path}: {exc}") from exc
    if not data:
        # fedcare creates the log with its first record: an empty one was emptied
        raise ChainError(
            path,
            1,
            "the log exists but holds no record (fedcare writes the file "
            "with its first record, so its records were removed)",
        )
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    if not torn:
        lines.pop()
    records: list[dict[str, Any]] = []
    prev = ""
    for number, line in enumerate(lines, start=1):
        record = _parse(path, number, line)
        _check(path, number, record, prev)
        prev = record["hash"]
        records.append(record)
    if torn:
        raise ChainError(path, len(lines), "the last line does not end in a newline")
    return records


def _parse(path: Path, number: int, line: bytes) -> dict[str, Any]:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChainError(path, number, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ChainError(path, number, "expected a JSON object")
    return record


def _check(path: Path, number: int, record: dict[str, Any], prev: str) -> None:
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise ChainError(path, number, f"record lacks {', '.join(missing)}")
    try:
        expected = record_hash(record)
    except (ValueError, TypeError) as exc:  # NaN/Infinity, or values JSON cannot hold
        raise ChainError(
            path, number, f"holds a value fedcare never writes ({exc})"
        ) from None
    if record["hash"] != expected:
        raise ChainError(
            path,
            number,
            "checksum mismatch, the record was edited or corrupted (stored hash "
            f"{str(record['hash'])[:12]}..., content hashes to "
            f"{record_hash(record)[:12]}...)",
        )
    if record["prev"] != prev:
        where = f"line {number - 1}" if number > 1 else "the start of the log"
        raise ChainError(
            path,
            number,
            f"chain broken, the record does not follow {where} (a line was "
            "deleted, inserted or reordered before it)",
        )


@dataclass
class Verdict:
    """The outcome of :func:`verify` (``line``/``reason`` set when not ok)."""

    ok: bool
    path: str
    records: int = 0
    rounds: list[int] = field(default_factory=list)
    checkpoints_checked: int = 0
    line: int | None = None
    reason: str = ""
    heads_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(
    path: Path, checkpoints: Path | None = None, held: list[HeldHead] | None = None
) -> Verdict:
    """Check the chain of ``path``, the ``held`` heads and each round's model.

    ``held``: audit heads the hospitals kept (``shared_models.held_heads``);
    the log must hold each of its run's at that round, or it was edited and
    re-sealed, or cut short. Held heads, but none of this log's run, raise
    :class:`AuditError` (nothing to check against).

    With ``checkpoints`` (``RUN/checkpoints``), every record that names a
    checkpoint must match that checkpoint's ``state.json`` (run name and
    ``weights_sha256`` = ``model_after``), and the newest checkpoint must have a
    record (a log cut short at its end is otherwise undetectable).
    """
    path = Path(path)
    try:
        records = read_records(path)
    except ChainError as exc:
        return Verdict(False, str(path), line=exc.line, reason=exc.reason)
    verdict = Verdict(True, str(path), len(records), [r["round"] for r in records])
    if held:
        run = records[0]["run_id"]
        verdict.heads_checked = sum(h.run == run for h in held)
        if not verdict.heads_checked:
            raise AuditError(
                f"{path}: none of the held heads belong to its run {run!r} (they "
                f"are of {', '.join(runs_of(held))}): pass the heads files of the "
                "hospitals of this run"
            )
        problem = check(records, held)
        if problem:
            verdict.ok, (verdict.line, verdict.reason) = False, problem
            return verdict
    if checkpoints is None:
        return verdict
    for number, record in enumerate(records, start=1):
        if not record["checkpoint"]:
            continue
        problem = _checkpoint_problem(Path(checkpoints), record)
        if problem:
            return Verdict(
                False,
                str(path),
                len(records),
                verdict.rounds,
                verdict.checkpoints_checked,
                number,
                problem,
            )
        verdict.checkpoints_checked += 1
    latest = Path(checkpoints) / "latest.json"
    if latest.is_file():
        pointer = _read_json(latest)
        if not isinstance(pointer.get("round"), int):
            raise AuditError(
                f"{latest}: cannot check against it: expected an integer 'round', "
                f"found {pointer.get('round')!r}"
            )
        newest = pointer["round"]
        if not any(r["checkpoint"] and r["round"] == newest for r in records):
            verdict.ok = False
            verdict.line = len(records) + 1
            verdict.reason = (
                f"the newest checkpoint (round {newest}) has no audit record: the "
                "log was cut short, or the run stopped between the checkpoint and "
                "the audit append"
            )
    return verdict


def _read_json(path: Path) -> dict[str, Any]:
    """A checkpoint file; unreadable means "could not check" (AuditError)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditError(f"{path}: cannot check against it: {exc}") from None
    if not isinstance(value, dict):
        raise AuditError(f"{path}: cannot check against it: expected a JSON object")
    return value


def _checkpoint_problem(checkpoints: Path, record: dict[str, Any]) -> str:
    state_file = checkpoints / Path(record["checkpoint"]).name / "state.json"
    if not state_file.is_file():
        return f"round {record['round']}: {state_file} not found"
    state = _read_json(state_file)
    if state.get("run_name") != record["run_id"]:
        return (
            f"round {record['round']}: checkpoint belongs to run "
            f"{state.get('run_name')!r}, the record to {record['run_id']!r}"
        )
    if state.get("weights_sha256") != record["model_after"]:
        return (
            f"round {record['round']}: model_after {record['model_after'][:12]}... "
            f"differs from {state_file}'s weights_sha256 "
            f"{str(state.get('weights_sha256'))[:12]}..."
        )
    return _weights_problem(state_file.parent, record)


def _weights_problem(directory: Path, record: dict[str, Any]) -> str:
    """The checkpoint's weights themselves must hash to ``model_after``: a
    state.json that matches says nothing about a weights file replaced beside it."""
    from shared_models.errors import ModelError
    from shared_models.export import arrays_hash, get_weights, load_model_dir

    try:
        model, _ = load_model_dir(directory)
    except ModelError as exc:
        return f"round {record['round']}: {exc}"
    found = arrays_hash(get_weights(model))
    if found != record["model_after"]:
        return (
            f"round {record['round']}: {directory / 'weights.safetensors'} hashes "
            f"to {found[:12]}..., the record's model_after is "
            f"{record['model_after'][:12]}..."
        )
    return ""
