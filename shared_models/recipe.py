"""How a task trains under DP-SGD: one recipe for ``fedcare train``, the
federation and the baselines, by task name (:data:`RECIPES`).

Both sides read it: the hospital trains by it (``client.tasks``), the
aggregator resolves the run configuration's unset keys from it
(``shared_models.run_config``).

A recipe is one private optimisation, run in either of two places:

- **in a federation**: every round, each hospital takes ``local_steps`` DP
  steps (``local_epochs`` epochs when 0) with ``local_optimizer`` at
  ``local_lr`` on its clipped, noised gradients and sends its update; the
  server averages the updates (SecAgg+) and applies the average (``fedavg``),
  or moves the global model along it with Adam at ``server_lr`` (``fedadam``,
  scaled in round t by ``server_lr_schedule``; ``sqrt``: 1/sqrt(t), counted
  across resumes).
- **at one hospital alone** (``fedcare train``, the local-only and
  single-hospital baselines): the same number of steps, Adam at ``alone_lr``
  on the hospital's own noised gradients.

Both sample each privacy unit (patient) with probability ``sample_rate`` per
step, i.e. an expected batch of ``sample_rate`` of the hospital's patients,
and clip at ``max_grad_norm``. The noise on one step's averaged gradient is
``sigma * C / (q * patients)``; at a fixed epsilon the accountant's sigma
grows slowly with q and with the number of steps, so the recipe is a trade of
q, steps and the learning rate. Every figure behind these values is in
``docs/benchmarks.md`` (chosen on synthetic, public data only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared_models.errors import ConfigError

STRATEGIES = ("fedavg", "fedprox", "fedadam")
# How FedAdam's server learning rate changes with the round t (1-based).
SCHEDULES = ("const", "sqrt")


def server_lr_at(lr: float, schedule: str, server_round: int) -> float:
    """FedAdam's learning rate in round ``server_round`` (1-based, counted
    across resumes) under ``schedule``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r} not one of {SCHEDULES}")
    if schedule == "sqrt":
        return lr / max(1, server_round) ** 0.5
    return lr


def run_epochs(
    rounds: int, local_steps: int, local_epochs: int, sample_rate: float
) -> int:
    """Epochs of a whole run: its steps in epochs of ``sample_rate`` when it
    counts steps (``local_steps`` > 0), else ``rounds`` x ``local_epochs``."""
    if local_steps > 0:
        return max(1, round(rounds * local_steps * sample_rate))
    return rounds * local_epochs


@dataclass(frozen=True)
class Recipe:
    """A task's private training recipe (see the module docstring)."""

    rounds: int = 10
    local_epochs: int = 1
    # DP steps per round; 0 means ``local_epochs`` epochs (1 / sample_rate
    # steps each). With one step per round the federation would be Adam on the
    # average of all hospitals' noised gradients; measured, it learnt no
    # better than 2 steps per round and took twice the rounds.
    local_steps: int = 0
    # Expected fraction of the hospital's units (patients) in one step, unless
    # ``batch_size`` (units) is set.
    sample_rate: float = 0.5
    batch_size: int = 0
    local_lr: float = 1.0
    local_optimizer: str = "sgd"
    server_lr: float = 0.05
    server_lr_schedule: str = "const"
    strategy: str = "fedadam"
    # Adam's learning rate at one hospital alone [default: server_lr].
    alone_lr: float | None = None
    max_grad_norm: float = 0.3
    # Non-private training (centralized baseline, --no-dp): Adam.
    plain_lr: float = 3e-3
    plain_batch: int = 128
    plain_epochs: int = 4
    # Model size: DP noise grows with the parameter count.
    model: dict[str, Any] = field(default_factory=dict)
    # Run-config keys (kebab-case) that replace the ones above when every
    # hospital protects single examples (``--privacy-unit example``): with
    # thousands of units per hospital the noise on a mean is tiny, and the
    # federation is then better served by the recipe that works alone.
    example: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate {self.sample_rate} not in (0, 1]")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} not one of {STRATEGIES}")
        if self.server_lr_schedule not in SCHEDULES:
            raise ValueError(
                f"server_lr_schedule {self.server_lr_schedule!r} not one of {SCHEDULES}"
            )

    @property
    def epochs(self) -> int:
        """Epochs a hospital trains in a whole run (alone: all of them)."""
        return run_epochs(
            self.rounds, self.local_steps, self.local_epochs, self.sample_rate
        )

    @property
    def steps(self) -> int:
        """DP steps of a whole run at one hospital (0: ``epochs`` epochs)."""
        return self.rounds * self.local_steps


# The measured best recipe for the beat classifier (docs/benchmarks.md, rows
# 19-46). FedAdam over one or a few local SGD steps (rows 19-31) learnt
# unevenly across seeds (0.891 +- 0.081 pooled AUROC at patient level,
# epsilon 2); FedAvg over 10 steps of local Adam at 0.05 per round (row 36:
# 8 rounds, each step an expected tenth of the patients) learnt at 0.996 +-
# 0.003 in the benchmark but converged only in its last rounds; 12 rounds of
# steps of an expected fifth of the patients (row 46) reached 0.9996 +-
# 0.0004, level with the best hospital alone. At example level the same
# optimiser over 20 steps of 1/20 of the beats (row 32), for 15 rounds: 5
# rounds stopped while the model was still climbing (row 47).
ECG_BEATS = Recipe(
    rounds=12,
    local_steps=10,
    sample_rate=0.2,
    local_optimizer="adam",
    local_lr=0.05,
    alone_lr=0.05,
    strategy="fedavg",
    server_lr=0.05,  # FedAdam's, when an operator picks it
    max_grad_norm=0.3,
    model={"hidden_size": 32, "num_layers": 1},
    example={
        "sample-rate": 0.05,
        "local-steps": 20,
        "num-server-rounds": 15,
    },
)


def local_adam(
    epochs: int,
    rounds: int,
    batch: int,
    lr: float,
    plain_epochs: int = 4,
    plain_batch: int = 128,
) -> Recipe:
    """A recipe of local Adam and FedAvg: ``epochs`` spread over ``rounds``."""
    return Recipe(
        plain_epochs=plain_epochs,
        plain_batch=plain_batch,
        rounds=rounds,
        local_epochs=max(1, epochs // rounds),
        local_steps=0,
        batch_size=batch,
        local_lr=lr,
        local_optimizer="adam",
        server_lr=0.05,  # FedAdam's, when an operator picks it
        alone_lr=lr,
        strategy="fedavg",
        max_grad_norm=1.0,
    )


# The beat autoencoder keeps its earlier recipe (local Adam, 20 epochs of batches
# of 128 patients, up to 8 beats each), spread over 4 rounds in a federation.
ECG_ANOMALY = local_adam(epochs=20, rounds=4, batch=128, lr=1e-2)
# ~50 training stays: a batch of 64 would be the whole split (sample rate 1,
# one step per epoch); small batches give DP-SGD amplification by sampling.
ICU_VITALS = local_adam(
    epochs=30, rounds=5, batch=8, lr=5e-3, plain_epochs=30, plain_batch=32
)
# ~1-2k windows per hospital and a small dense model: epochs are cheap.
# The batch counts monitored patients under patient-level DP (tens per site).
SIGNAL_ANOMALY = local_adam(
    epochs=15, rounds=3, batch=8, lr=5e-3, plain_epochs=15, plain_batch=64
)

# Each task's recipe; ``client.tasks``' tasks carry the same objects.
RECIPES: dict[str, Recipe] = {
    "ecg-arrhythmia": ECG_BEATS,
    "ecg-arrhythmia-aami5": ECG_BEATS,
    "ecg-anomaly": ECG_ANOMALY,
    "signal-anomaly": SIGNAL_ANOMALY,
    "icu-deterioration": ICU_VITALS,
    "icu-los": ICU_VITALS,
}


def recipe_of(task: str) -> Recipe:
    """The recipe of ``task``; an unknown task name raises a :class:`ConfigError`."""
    try:
        return RECIPES[task]
    except KeyError:
        raise ConfigError(
            f"unknown task {task!r}; known tasks: {', '.join(RECIPES)}"
        ) from None
