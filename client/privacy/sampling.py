"""Privacy units and Poisson sampling of units, with OS randomness.

The privacy unit is what the guarantee protects: one ``patient`` (default; all
of a patient's beats, windows or stays) or one ``example``. DP-SGD samples
UNITS, each independently with probability ``q`` at every step (Poisson
sampling, what the accountant assumes), and a sampled unit brings at most
``examples_per_unit`` of its examples, chosen at random. Each unit's gradient
is then clipped as one (``engine.UnitDPOptimizer``), so one patient moves a
step by at most the clipping norm however many records they have.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from client.privacy.budget import check_privacy_unit
from client.privacy.randomness import SECURE, Randomness
from shared_models.errors import ConfigError

UNIT_WORDS = {
    "patient": "adding or removing one patient's data (all their records)",
    "example": "adding or removing one example (one beat, window or stay)",
}


def guarantee_text(epsilon: float, delta: float, unit: str) -> str:
    """The guarantee in words, e.g. for a CLI, a report or a model card."""
    return (
        f"({epsilon:.4g}, {delta:g})-DP with respect to "
        f"{UNIT_WORDS[check_privacy_unit(unit)]}"
    )


@dataclass(frozen=True)
class Units:
    """The privacy unit of each example: ``index[i]`` in ``0 .. count-1``."""

    kind: str
    index: np.ndarray
    count: int

    @classmethod
    def of(cls, groups: np.ndarray | None, n_examples: int, kind: str) -> Units:
        """Units of ``kind`` for ``n_examples`` examples with patient ids ``groups``."""
        check_privacy_unit(kind)
        if kind == "example":
            return cls(kind, np.arange(n_examples), n_examples)
        if groups is None or len(groups) != n_examples:
            raise ConfigError(
                "patient-level DP needs the patient of every training example; "
                "the data gave none (use privacy unit 'example' only if each "
                "example is a different patient)."
            )
        _, index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        return cls(kind, index.astype(np.int64), int(index.max()) + 1)


def sample_rate_for(n_units: int, batch_size: int) -> float:
    """Poisson rate with ``batch_size`` expected units per step: 1 / steps per epoch."""
    if n_units < 1:
        raise ConfigError("there is no privacy unit (patient or example) to train on")
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size} must be >= 1")
    return 1.0 / math.ceil(n_units / batch_size)


def steps_per_epoch(sample_rate: float) -> int:
    """Steps that make one epoch in expectation at rate ``q``: ``round(1/q)``."""
    return max(1, round(1.0 / sample_rate))


@dataclass(frozen=True)
class UnitBatch:
    """One Poisson batch: example rows, their unit's position and weight."""

    rows: np.ndarray  # example indices into the training arrays
    unit_pos: np.ndarray  # 0 .. n_units-1: which sampled unit each row belongs to
    weight: np.ndarray  # 1 / (rows of that unit in this batch)
    n_units: int


class PoissonUnitSampler:
    """Batches of Poisson-sampled units; the draws come from ``randomness``."""

    def __init__(
        self,
        units: Units,
        sample_rate: float,
        examples_per_unit: int,
        randomness: Randomness = SECURE,
    ) -> None:
        if not 0 < sample_rate <= 1:
            raise ConfigError(f"sample rate {sample_rate!r} must be in (0, 1]")
        if examples_per_unit < 1:
            raise ConfigError(f"examples per unit {examples_per_unit} must be >= 1")
        self.units = units
        self.sample_rate = sample_rate
        self.examples_per_unit = examples_per_unit
        self.randomness = randomness
        self._order = np.argsort(units.index, kind="stable")
        sizes = np.bincount(units.index, minlength=units.count)
        self._starts = np.concatenate([[0], np.cumsum(sizes)])

    def batch(self) -> UnitBatch:
        """Draw one step's units and, within each, at most ``examples_per_unit``."""
        chosen = np.flatnonzero(
            self.randomness.uniform(self.units.count) < self.sample_rate
        )
        if self.units.kind == "example":
            ones = np.ones(len(chosen))
            return UnitBatch(chosen, np.arange(len(chosen)), ones, len(chosen))
        rows, pos, weight = [], [], []
        for k, unit in enumerate(chosen):
            members = self._order[self._starts[unit] : self._starts[unit + 1]]
            if len(members) > self.examples_per_unit:
                keys = self.randomness.uniform(len(members))
                members = members[np.argsort(keys)[: self.examples_per_unit]]
            rows.append(members)
            pos.append(np.full(len(members), k))
            weight.append(np.full(len(members), 1.0 / len(members)))
        if not rows:
            empty = np.zeros(0, dtype=np.int64)
            return UnitBatch(empty, empty, np.zeros(0), 0)
        return UnitBatch(
            np.concatenate(rows),
            np.concatenate(pos),
            np.concatenate(weight),
            len(chosen),
        )

    def batches(self, steps: int) -> Iterator[UnitBatch]:
        for _ in range(steps):
            yield self.batch()
