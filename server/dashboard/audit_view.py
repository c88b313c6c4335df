"""The audit log as the dashboard shows it: :func:`server.audit.verify`'s
verdict in words, and the records (one line per round).

The chain is checked on every change of the log. Each record's model hash is
also matched with its checkpoint (``verify(..., checkpoints=...)``, which
loads the weights) once the run is finished; during a run the newest
checkpoint is written just before its audit record, so that check would
report a cut log for a moment.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from server import audit

_CACHE: dict[tuple, dict[str, Any]] = {}
_LOCK = threading.Lock()


def _fingerprint(path: Path) -> tuple:
    try:
        stat = path.stat()
        return (str(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return (str(path), None, None)


def audit_view(run_dir: Path, finished: bool) -> dict[str, Any]:
    """``{"status": verified|broken|unchecked|none, "text", "records"}``."""
    path = Path(run_dir) / audit.FILE_NAME
    checkpoints = Path(run_dir) / "checkpoints"
    key = (
        _fingerprint(path),
        _fingerprint(checkpoints / "latest.json") if finished else None,
    )
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    view = _view(path, checkpoints if finished and checkpoints.is_dir() else None)
    with _LOCK:
        _CACHE.clear()  # one run folder per dashboard: keep the newest only
        _CACHE[key] = view
    return view


def _view(path: Path, checkpoints: Path | None) -> dict[str, Any]:
    run_dir = path.parent
    if not path.exists():
        if (run_dir / "checkpoints").is_dir():
            return {
                "status": "broken",
                "text": f"The audit log {path.name} is missing although the run "
                "has checkpoints: it was deleted.",
                "records": [],
            }
        return {
            "status": "none",
            "text": "No audit record yet: the first is written when round 1 "
            "has been checkpointed.",
            "records": [],
        }
    try:
        verdict = audit.verify(path, checkpoints)
    except audit.AuditError as exc:
        return {"status": "unchecked", "text": f"Could not check: {exc}", "records": []}
    if not verdict.ok:
        return {
            "status": "broken",
            "text": f"Broken at record {verdict.line}: {verdict.reason}.",
            "line": verdict.line,
            "records": _records_anyway(path),
        }
    checked = (
        f", each round's model matched with its checkpoint "
        f"({verdict.checkpoints_checked} checked)"
        if checkpoints is not None
        else " (the models are matched with their checkpoints once the run ends)"
    )
    return {
        "status": "verified",
        "text": f"Verified: {verdict.records} record(s), the hash chain is "
        f"intact{checked}.",
        "records": [_summary(r) for r in audit.read_records(path)],
    }


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "round": record.get("round"),
        "time": record.get("time"),
        "participating": record.get("participating"),
        "dropped": record.get("dropped"),
        "model_after": str(record.get("model_after", ""))[:16],
        "hash": str(record.get("hash", ""))[:16],
    }


def _records_anyway(path: Path) -> list[dict[str, Any]]:
    """The lines of a broken log that still parse, for the operator to see."""
    import json

    records = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(_summary(record))
    return records
