"""The exported-model format: a directory with weights and a JSON card.

```
MODEL_DIR/
  weights.safetensors   the state_dict (nn.LSTM parameter names), float32
  card.json             model name and arguments, task, input spec,
                        normalisation statistics, threshold, training data
                        summary, privacy spent, metrics, weights' sha256
```
Written into a temporary sibling directory and renamed into place, so a crash
never leaves a half-written model. Every later stage (federation checkpoints,
``fedcare evaluate``, serving) reads this format.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from shared_models.errors import ModelError
from shared_models.registry import create_model, get_spec

CARD = "card.json"
WEIGHTS = "weights.safetensors"
FORMAT_VERSION = 1


@dataclass
class ModelCard:
    """Everything needed to rebuild, feed and judge an exported model."""

    model: str
    model_config: dict[str, Any]
    task: str
    input_spec: dict[str, Any]
    normalisation: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None
    # Where the threshold was chosen (whose validation data): a threshold
    # carried to another hospital rarely fits there (``fedcare calibrate``).
    threshold_source: str = ""
    classes: list[str] | None = None
    training_data: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    format_version: int = FORMAT_VERSION
    weights_sha256: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> ModelCard:
        known = set(cls.__dataclass_fields__)
        missing = {"model", "model_config", "task", "input_spec"} - set(data)
        if missing:
            raise ModelError(f"{source}: card lacks required keys {sorted(missing)}")
        _check_card_types(data, source)
        return cls(**{k: v for k, v in data.items() if k in known})


_CARD_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "task": (str,),
    "model_config": (dict,),
    "input_spec": (dict,),
    "normalisation": (dict,),
    "metrics": (dict,),
    "weights_sha256": (str,),
}


def _check_card_types(data: dict[str, Any], source: Path) -> None:
    """Each field of a card has the type fedcare writes, and the threshold is
    a finite number: a card edited by hand is refused, not half-used."""
    for key, types in _CARD_TYPES.items():
        if key in data and not isinstance(data[key], types):
            raise ModelError(
                f"{source}: field {key!r} is {type(data[key]).__name__}, "
                f"expected {' or '.join(t.__name__ for t in types)}"
            )
    threshold = data.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not math.isfinite(threshold)
    ):
        raise ModelError(
            f"{source}: field 'threshold' is {threshold!r}, expected a finite "
            "number or null (re-run fedcare calibrate)"
        )
    classes = data.get("classes")
    if classes is not None and not (
        isinstance(classes, list) and all(isinstance(c, str) for c in classes)
    ):
        raise ModelError(
            f"{source}: field 'classes' is {classes!r}, expected a list of "
            "class names or null"
        )


def state_dict_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU float tensors, as safetensors stores them."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].numpy().tobytes())
    return digest.hexdigest()


def save_model_dir(
    path: str | os.PathLike[str], model: nn.Module, card: ModelCard
) -> Path:
    """Write ``model`` and ``card`` to ``path`` atomically (replacing it if present)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = state_dict_of(model)
    card.weights_sha256 = weights_hash(state)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        save_file(state, str(tmp / WEIGHTS), metadata={"model": card.model})
        (tmp / CARD).write_text(json.dumps(asdict(card), indent=2, sort_keys=True))
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    directory = Path(path)
    card_path = directory / CARD
    if not card_path.is_file():
        raise ModelError(
            f"{directory} is not a fedcare model directory: {CARD} not found "
            f"(expected {CARD} and {WEIGHTS}, as written by `fedcare train --out`)"
        )
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{card_path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{card_path}: expected a JSON object (a model card)")
    return ModelCard.from_dict(data, card_path)


def load_model_dir(
    path: str | os.PathLike[str], *, dp: bool = False
) -> tuple[nn.Module, ModelCard]:
    """Rebuild the model of ``path`` (plain ``nn.LSTM`` unless ``dp``) and its card."""
    directory = Path(path)
    card = read_card(directory)
    get_spec(card.model)  # unknown name -> error listing the known ones
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise ModelError(f"{directory}: {WEIGHTS} not found")
    if not card.weights_sha256:
        # Without the hash nothing ties the weights to the card: refuse, so
        # emptying the field cannot switch the check off.
        raise ModelError(
            f"{directory / CARD}: no weights_sha256; a fedcare model card names "
            f"the sha256 of its {WEIGHTS} (re-export the model with fedcare)"
        )
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise ModelError(
            f"{weights}: not a readable safetensors file ({exc})"
        ) from None
    if weights_hash(state) != card.weights_sha256:
        raise ModelError(
            f"{weights}: sha256 does not match {CARD}; the file was altered"
        )
    try:
        model = create_model(card.model, **card.model_config, dp=dp)
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"{directory / CARD}: model_config does not build model {card.model}: {exc}"
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(
            f"{weights}: weights do not fit model {card.model}: {exc}"
        ) from None
    return model, card


def get_weights(model: nn.Module) -> list[Any]:
    """The model's tensors as numpy arrays, in sorted parameter-name order.

    Sorted names make the order the same for the DP (``LinearLSTM``) and the
    plain (``nn.LSTM``) variant of a model, whose ``state_dict`` orders differ.
    """
    state = model.state_dict()
    return [state[k].detach().cpu().numpy() for k in sorted(state)]


def set_weights(model: nn.Module, arrays: list[Any]) -> None:
    """Load arrays produced by :func:`get_weights` (any variant of the same model)."""
    state = model.state_dict()
    keys = sorted(state)
    if len(arrays) != len(keys):
        raise ModelError(f"got {len(arrays)} weight arrays, the model has {len(keys)}")
    new = {}
    for key, array in zip(keys, arrays, strict=True):
        tensor = torch.as_tensor(array, dtype=state[key].dtype)
        if tuple(tensor.shape) != tuple(state[key].shape):
            raise ModelError(
                f"weight {key}: shape {tuple(tensor.shape)}, "
                f"expected {tuple(state[key].shape)}"
            )
        new[key] = tensor
    model.load_state_dict(new)


def arrays_hash(arrays: list[Any]) -> str:
    """sha256 over the arrays (float32 bytes, in order): a global model's identity."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()
