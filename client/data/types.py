"""Containers returned by the loaders: plain numpy arrays plus a JSON-able summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BeatSet:
    """Single heartbeats cut from ECG records, one row per annotated beat.

    ``beats`` is float32 ``(n, beat_length)`` in physical units (mV), not
    normalised; ``aami`` indexes :data:`AAMI_CLASSES`; ``symbols`` keeps the
    original annotation symbol (or CSV label); ``patient`` the patient id.
    """

    beats: np.ndarray
    aami: np.ndarray
    symbols: np.ndarray
    patient: np.ndarray
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SignalSet:
    """Monitoring signals, one row per time step, one series per file.

    ``train_end`` maps a series id to the end (exclusive) of its anomaly-free
    training part when the format defines one (UCR archive), else ``None``.
    """

    values: np.ndarray
    is_anomaly: np.ndarray | None
    series: np.ndarray
    channels: tuple[str, ...]
    train_end: dict[str, int] | None
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VitalsSet:
    """Hourly vital-sign tensors ``(n_stays, hours, n_features)`` with stay labels.

    NaN marks bins before the first observation of a feature in the stay; fill
    them with :func:`client.data.apply_vitals_stats` using train statistics.
    """

    x: np.ndarray
    features: tuple[str, ...]
    patient: np.ndarray
    stay: np.ndarray
    labels: dict[str, np.ndarray]
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    """Index arrays (int64) into the examples of a data set."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
