"""How a task trains under DP-SGD: one recipe for ``fedcare train``, the
federation and the baselines.

A recipe is one private optimisation, run in either of two places:

- **in a federation** (DP-FedAdam): every round, each hospital takes
  ``local_epochs`` epochs of plain SGD (``local_lr``, no momentum) on its
  clipped, noised gradients and sends its weights; the server averages them
  (SecAgg+), and Flower's FedAdam moves the global model along the average
  update with Adam at ``server_lr``. Adam's state lives at the server, across
  rounds, where it sees only the noised average of all hospitals, so the
  noise the update carries is the hospitals' noise averaged.
- **at one hospital alone** (``fedcare train``, the local-only and
  single-hospital baselines): the same number of steps, Adam at ``server_lr``
  on the hospital's own noised gradients (what FedAdam does with one
  hospital).

Both sample each privacy unit (patient) with probability ``sample_rate`` per
step, i.e. an expected batch of ``sample_rate`` of the hospital's patients,
and clip at ``max_grad_norm``. At a fixed epsilon, few large steps beat many
small ones: the noise on the averaged gradient is
``sigma * C / (q * patients)``, and for q = 1/2 the accountant needs a sigma
only ~1.4x that of q = 1/8 for 4x the signal. Every figure behind these
values is in ``docs/benchmarks.md`` (chosen on synthetic, public data only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STRATEGIES = ("fedavg", "fedprox", "fedadam")


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

    def __post_init__(self) -> None:
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate {self.sample_rate} not in (0, 1]")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} not one of {STRATEGIES}")

    @property
    def epochs(self) -> int:
        """Epochs a hospital trains in a whole run (alone: all of them)."""
        if self.local_steps:
            return max(1, round(self.rounds * self.local_steps * self.sample_rate))
        return self.rounds * self.local_epochs

    @property
    def steps(self) -> int:
        """DP steps of a whole run at one hospital (0: ``epochs`` epochs)."""
        return self.rounds * self.local_steps

    def train_config(self, dp: bool = True, **overrides: Any) -> Any:
        """``fedcare train``'s ``TrainConfig``: the whole recipe at one hospital.

        ``None`` overrides are ignored. Without DP: Adam at ``plain_lr``,
        batches of ``plain_batch`` examples.
        """
        from client.training import TrainConfig

        base: dict[str, Any] = {
            "epochs": self.epochs,
            "steps": self.steps if dp else 0,
            "max_grad_norm": self.max_grad_norm,
            "optimizer": "adam",
        }
        if dp:
            base.update(
                batch_size=self.batch_size,
                sample_rate=self.sample_rate,
                lr=self.alone_lr or self.server_lr,
            )
        else:
            base.update(
                epochs=self.plain_epochs, batch_size=self.plain_batch, lr=self.plain_lr
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "epochs" in given and "steps" not in given:
            base["steps"] = 0  # asked for epochs: train epochs, not the steps
        return TrainConfig(**{**base, **given})


# The measured best recipe for the beat classifier (docs/benchmarks.md).
ECG_BEATS = Recipe(model={"hidden_size": 32, "num_layers": 1})


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
