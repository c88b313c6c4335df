"""A hospital's last trained round, kept so a retried round costs no epsilon.

When the aggregator crashes after a hospital trained (and its ledger settled)
round r but before the round was checkpointed, the resumed run asks for round
r again, from the same global model. Training it again would charge the
ledger a second time for the same round (and push the run past the steps its
noise was calibrated for, so its last round would be declined). Instead the
hospital sends the update it already released: the same output again, which
costs nothing more. The entry is keyed by run, round and the sha256 of the
global model the round started from; only the newest round is kept.

The entry is written after the round's last DP step and before its ledger
reservation is settled (``PrivateRun.on_trained``), so no kill leaves a round
settled without its entry: a retry that finds an entry whose reservation a
dead process left open settles it with the entry's steps and resends.

The file (``<ledger>.last-round.safetensors``, mode 0600) stays at the
hospital, beside its ledger.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load, save

from shared_models.atomic import atomic_write_bytes

log = logging.getLogger(__name__)


def cache_path(ledger_path: Path) -> Path:
    return Path(ledger_path).with_name(
        Path(ledger_path).name + ".last-round.safetensors"
    )


def store(
    path: Path,
    key: dict[str, Any],
    weights: list[np.ndarray],
    reply: dict[str, Any],
) -> None:
    """Keep round ``key`` (run, round, start sha256): its weights and reply."""
    arrays = {f"w.{i}": np.ascontiguousarray(a) for i, a in enumerate(weights)}
    meta = {"key": json.dumps(key, sort_keys=True), "reply": json.dumps(reply)}
    atomic_write_bytes(path, save(arrays, metadata=meta), mode=0o600)


def fetch(
    path: Path, key: dict[str, Any]
) -> tuple[list[np.ndarray], dict[str, Any]] | None:
    """The weights and reply of round ``key`` if it is the one kept, else None."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
        if meta.get("key") != json.dumps(key, sort_keys=True):
            return None
        arrays = load(path.read_bytes())
        weights = [arrays[f"w.{i}"] for i in range(len(arrays))]
        return weights, json.loads(meta["reply"])
    except (OSError, ValueError, KeyError) as exc:  # unreadable: train again
        log.warning("%s: unreadable (%s); the round is trained again", path, exc)
        return None
