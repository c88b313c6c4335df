"""Self-describing checkpoints of the global model, one per round.

``RUN/checkpoints/round_NNNN/`` is a model directory (``weights.safetensors``
+ ``card.json``, see ``shared_models.export``) plus ``state.json``: round,
fedcare run name, run config, the sha256 of the weights and of the previous
checkpoint, and the strategy's server-side state (FedAdam moments) in
``strategy.safetensors``. ``RUN/checkpoints/latest.json`` names the newest
complete checkpoint; it is replaced atomically after the directory is
complete, so a crash mid-write leaves the previous checkpoint in force.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from shared_models.atomic import atomic_write_text
from shared_models.errors import FedcareError
from shared_models.export import ModelCard, arrays_hash, save_model_dir

LATEST = "latest.json"


class CheckpointError(FedcareError):
    """A checkpoint is missing, incomplete or does not match its hashes."""


@dataclass
class Checkpoint:
    round: int
    run_name: str
    weights: list[np.ndarray]
    strategy_state: dict[str, list[np.ndarray]]
    state: dict[str, Any]


def save(
    run_dir: Path,
    round_: int,
    run_name: str,
    weights: list[np.ndarray],
    card: ModelCard,
    run_config: dict[str, Any],
    strategy_state: dict[str, list[np.ndarray]] | None = None,
) -> Path:
    """Write round ``round_``'s checkpoint, then point ``latest.json`` at it."""
    root = Path(run_dir) / "checkpoints"
    previous = _state_before(root, round_)
    directory = root / f"round_{round_:04d}"
    from shared_models import create_model
    from shared_models.export import set_weights

    model = create_model(card.model, **card.model_config, dp=False)
    set_weights(model, weights)
    save_model_dir(directory, model, card)
    flat = {
        f"{name}.{i}": np.ascontiguousarray(a)
        for name, arrays in (strategy_state or {}).items()
        for i, a in enumerate(arrays)
    }
    if flat:
        save_file(flat, str(directory / "strategy.safetensors"))
    state = {
        "round": round_,
        "run_name": run_name,
        "run_config": run_config,
        "weights_sha256": arrays_hash(weights),
        "previous_sha256": previous["weights_sha256"] if previous else "",
        "strategy_state": sorted(strategy_state or {}),
    }
    atomic_write_text(
        directory / "state.json", json.dumps(state, indent=2, sort_keys=True)
    )
    atomic_write_text(
        root / LATEST, json.dumps({"round": round_, "path": directory.name})
    )
    return directory


def latest_state(run_dir: Path) -> dict[str, Any] | None:
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    entry = _read(pointer, ("round", "path"))
    state_file = pointer.parent / str(entry["path"]) / "state.json"
    if not state_file.is_file():
        raise CheckpointError(
            f"{pointer} names {entry['path']}, which has no state.json"
        )
    return _read(state_file, ("round", "run_name", "weights_sha256", "strategy_state"))


def _read(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """A checkpoint's JSON file, or a CheckpointError saying what is wrong."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path}: unreadable ({exc}); the checkpoint is damaged: restore it "
            "from a backup, or start a new run"
        ) from None
    missing = [k for k in keys if not isinstance(value, dict) or k not in value]
    if missing:
        raise CheckpointError(
            f"{path}: lacks {', '.join(missing)}; the checkpoint is damaged: "
            "restore it from a backup, or start a new run"
        )
    return value


def _state_before(root: Path, round_: int) -> dict[str, Any] | None:
    """The newest checkpoint's state before round ``round_`` (a round retried
    after a crash chains to the round before it, not to its lost first try)."""
    earlier = sorted(
        p
        for p in root.glob("round_*")
        if p.name[6:].isdigit() and int(p.name[6:]) < round_
    )
    for directory in reversed(earlier):
        if (directory / "state.json").is_file():
            return _read(directory / "state.json", ("weights_sha256",))
    return None


def load_latest(run_dir: Path, order: list[str] | None = None) -> Checkpoint | None:
    """The newest complete checkpoint of ``run_dir`` (None when there is none)."""
    state = latest_state(run_dir)
    if state is None:
        return None
    return _load(Path(run_dir), state)


def load_round(run_dir: Path, round_: int) -> Checkpoint:
    """Round ``round_``'s checkpoint (CheckpointError if missing or damaged)."""
    state_file = Path(run_dir) / "checkpoints" / f"round_{round_:04d}" / "state.json"
    if not state_file.is_file():
        raise CheckpointError(f"{state_file} not found")
    keys = ("round", "run_name", "weights_sha256", "strategy_state")
    return _load(Path(run_dir), _read(state_file, keys))


def _load(run_dir: Path, state: dict[str, Any]) -> Checkpoint:
    from shared_models.export import get_weights, load_model_dir

    directory = Path(run_dir) / "checkpoints" / f"round_{state['round']:04d}"
    model, _ = load_model_dir(directory)
    weights = get_weights(model)
    if arrays_hash(weights) != state["weights_sha256"]:
        raise CheckpointError(f"{directory}: weights do not match state.json's sha256")
    strategy: dict[str, list[np.ndarray]] = {}
    extra = directory / "strategy.safetensors"
    if extra.is_file():
        flat = load_file(str(extra))
        for name in state["strategy_state"]:
            count = sum(1 for k in flat if k.rsplit(".", 1)[0] == name)
            strategy[name] = [flat[f"{name}.{i}"] for i in range(count)]
    return Checkpoint(state["round"], state["run_name"], weights, strategy, state)
