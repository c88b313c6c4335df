"""What ``fedcare serve`` accepts: JSON bodies turned into model inputs.

No web framework here: :func:`parse_inputs` takes the decoded JSON body and the
model card and returns the array the model is fed, normalised exactly as in
training (per-beat z-score for beats; the card's or the hospital's statistics
for vitals and signals), or raises :class:`RequestError` naming the field, what
was found and the shape expected.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from client.data import apply_signal_stats, apply_vitals_stats
from client.tasks.ecg import normalise_beats
from shared_models.errors import FedcareError
from shared_models.export import ModelCard

MAX_ITEMS = 4096
# No physiological value (mV, mmHg, counts of an ADC) comes near this; larger
# finite values would overflow float32 arithmetic in the model (HTTP 422).
MAX_ABS_VALUE = 1e6
BEAT_TASKS = ("ecg-arrhythmia", "ecg-arrhythmia-aami5", "ecg-anomaly")
VITALS_TASKS = ("icu-deterioration", "icu-los")
SIGNAL_TASKS = ("signal-anomaly",)
STAT_KEYS = {
    "vitals": ("median", "low", "high", "mean", "std"),
    "signals": ("mean", "std"),
}


class RequestError(FedcareError):
    """A request the model cannot answer; ``status`` is the HTTP status to send."""

    def __init__(self, field: str, message: str, expected: str, status: int = 422):
        super().__init__(f"{field}: {message}; expected {expected}")
        self.field, self.message, self.expected, self.status = (
            field,
            message,
            expected,
            status,
        )

    def detail(self) -> dict[str, str]:
        return {"field": self.field, "error": self.message, "expected": self.expected}


def data_kind(task: str) -> str:
    if task in BEAT_TASKS:
        return "beats"
    if task in VITALS_TASKS:
        return "vitals"
    if task in SIGNAL_TASKS:
        return "signals"
    raise FedcareError(
        f"task {task!r} cannot be served; servable tasks: "
        f"{', '.join(BEAT_TASKS + VITALS_TASKS + SIGNAL_TASKS)}"
    )


def stats_for(card: ModelCard, local: dict[str, Any] | None) -> dict[str, Any] | None:
    """The normalisation statistics to use: the hospital's file, else the card's.

    ``None`` when the model needs statistics and neither has them (a federated
    model's card carries none: ``scope: local``).
    """
    kind = data_kind(card.task)
    if kind == "beats":
        return {}
    keys = STAT_KEYS[kind]
    for source in (local, card.normalisation):
        if source and all(k in source for k in keys):
            return {k: source[k] for k in keys}
    return None


def missing_stats_message(card: ModelCard) -> str:
    keys = ", ".join(STAT_KEYS[data_kind(card.task)])
    return (
        f"this {card.task} model was trained federatedly (normalisation scope: "
        f"local), so its card has no normalisation statistics; a hospital serving "
        f"it passes its own: `fedcare serve --normalisation STATS.json`, a JSON "
        f"object with {keys} (one value per feature), or the card.json of a model "
        f"this hospital trained with `fedcare train` on the same data"
    )


def expected_shape(card: ModelCard) -> dict[str, Any]:
    """The request body for this model, for /health and error messages."""
    seq, feats = int(card.input_spec["seq_len"]), int(card.input_spec["n_features"])
    kind = data_kind(card.task)
    if kind == "beats":
        return {
            "beats": f"1..{MAX_ITEMS} beats, each a list of {seq} numbers (mV)",
            "beat": f"or one beat: a list of {seq} numbers",
        }
    if kind == "vitals":
        names = card.normalisation.get("features", [])
        return {
            "stays": f"1..{MAX_ITEMS} objects {{'hours': rows}}, 1..{seq} hourly "
            f"rows of {feats} numbers or null ({', '.join(names)})"
        }
    return {
        "windows": f"1..{MAX_ITEMS} windows, each {seq} rows of {feats} numbers "
        f"({', '.join(card.normalisation.get('channels', []))})"
    }


def parse_inputs(
    body: Any, card: ModelCard, stats: dict[str, Any] | None
) -> np.ndarray:
    """The model input ``(n, seq_len, n_features)`` float32 for ``body``."""
    if not isinstance(body, dict):
        raise RequestError("body", f"got {type(body).__name__}", "a JSON object", 400)
    seq, feats = int(card.input_spec["seq_len"]), int(card.input_spec["n_features"])
    kind = data_kind(card.task)
    if kind == "beats":
        return _beats(body, seq)
    if stats is None:
        raise RequestError(
            "normalisation", "no statistics", missing_stats_message(card)
        )
    if kind == "vitals":
        return apply_vitals_stats(_stays(body, seq, feats, card), stats)
    windows = _items(body, "windows", "windows, each a list of rows")
    out = np.empty((len(windows), seq, feats))
    for i, window in enumerate(windows):
        out[i] = _matrix(window, f"windows[{i}]", seq, seq, feats, nulls=False)
    return apply_signal_stats(out, stats)


def _beats(body: dict[str, Any], seq: int) -> np.ndarray:
    shape = f"a list of {seq} numbers (one beat, mV)"
    if "beat" in body and "beats" not in body:
        return normalise_beats(
            _row(body["beat"], "beat", seq, shape, nulls=False)[None]
        )
    beats = _items(body, "beats", f"beats, each {shape}")
    rows = [
        _row(b, f"beats[{i}]", seq, shape, nulls=False) for i, b in enumerate(beats)
    ]
    return normalise_beats(np.stack(rows))


def _stays(body: dict[str, Any], hours: int, feats: int, card: ModelCard) -> np.ndarray:
    stays = _items(body, "stays", "stay objects {'hours': [[...], ...]}")
    out = np.empty((len(stays), hours, feats))
    for i, stay in enumerate(stays):
        field = f"stays[{i}]"
        if not isinstance(stay, dict) or "hours" not in stay:
            raise RequestError(field, "no 'hours' key", "an object {'hours': rows}")
        x = _matrix(stay["hours"], f"{field}.hours", 1, hours, feats, nulls=True)
        padded = np.full((hours, feats), np.nan)
        padded[: len(x)] = x
        out[i] = _forward_fill(padded)
    return out


def _forward_fill(x: np.ndarray) -> np.ndarray:
    """Carry the last observed value forward per feature, as the vitals loader does."""
    seen = ~np.isnan(x)
    last = np.maximum.accumulate(np.where(seen, np.arange(len(x))[:, None], 0), axis=0)
    return np.take_along_axis(x, last, axis=0)


def _items(body: dict[str, Any], key: str, what: str) -> list[Any]:
    if key not in body:
        raise RequestError(
            key, f"missing (body keys: {sorted(body)})", f"a list of {what}"
        )
    items = body[key]
    if not isinstance(items, list) or not items:
        found = "an empty list" if items == [] else type(items).__name__
        raise RequestError(key, f"got {found}", f"a list of 1..{MAX_ITEMS} {what}")
    if len(items) > MAX_ITEMS:
        raise RequestError(
            key,
            f"{len(items)} items; split the request",
            f"at most {MAX_ITEMS} per request",
            413,
        )
    return items


def _matrix(
    value: Any, field: str, min_rows: int, max_rows: int, cols: int, *, nulls: bool
) -> np.ndarray:
    rows = "exactly" if min_rows == max_rows else f"{min_rows} to"
    shape = f"{rows} {max_rows} rows, each a list of {cols} numbers"
    if not isinstance(value, list) or not min_rows <= len(value) <= max_rows:
        found = (
            f"{len(value)} rows" if isinstance(value, list) else type(value).__name__
        )
        raise RequestError(field, f"got {found}", shape)
    row_shape = f"a list of {cols} numbers" + (
        " (null = not measured)" if nulls else ""
    )
    return np.stack(
        [_row(r, f"{field}[{i}]", cols, row_shape, nulls) for i, r in enumerate(value)]
    )


def _row(value: Any, field: str, length: int, shape: str, nulls: bool) -> np.ndarray:
    if not isinstance(value, list):
        raise RequestError(field, f"got {type(value).__name__}", shape)
    if len(value) != length:
        raise RequestError(field, f"has {len(value)} values", shape)
    for j, v in enumerate(value):
        if v is None and nulls:
            continue
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        missing = number and nulls and math.isnan(v)
        if not number or not (missing or abs(v) <= MAX_ABS_VALUE):
            raise RequestError(
                f"{field}[{j}]",
                f"got {v!r}",
                f"a finite number within +-{MAX_ABS_VALUE:g}"
                + (" or null" if nulls else ""),
            )
    return np.asarray(value, dtype=np.float64)
