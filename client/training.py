"""Local training and evaluation: plain functions, no Flower.

``train`` runs DP-SGD through ``client.privacy`` when given a ledger (every
step is charged to the hospital's ledger, what was spent is charged even when
training fails half-way), or plain SGD otherwise. An optional FedProx
proximal term pulls the weights towards the global model.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shared_models.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one local training call."""

    epochs: int = 3
    # Expected batch; 0 means: under DP, ``sample_rate`` of the privacy units
    # (patients) per step, without DP, ``PLAIN_BATCH`` examples.
    batch_size: int = 0
    lr: float = 2e-3
    optimizer: str = "adam"
    momentum: float = 0.0  # SGD only
    # DP steps of this call; 0 means ``epochs`` epochs (1 / sample rate each).
    steps: int = 0
    # Clip each unit in proportion to its class weight (``_clip_scale``).
    class_scaled_clip: bool = False
    sample_rate: float = 0.5
    max_grad_norm: float = 1.0
    proximal_mu: float = 0.0
    seed: int = 0
    device: str = "auto"
    # Patient-level DP: at most this many of a sampled patient's examples per step.
    examples_per_unit: int = 8
    loss_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("sample_rate", "momentum", "max_grad_norm", "proximal_mu"):
            value = getattr(self, key)
            if not math.isfinite(value):
                raise ConfigError(
                    f"{key.replace('_', '-')} must be a finite number, got {value}"
                )
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 0:
            raise ConfigError(
                f"batch-size must be >= 1 (or 0 for the task's), got {self.batch_size}"
            )
        if not 0 < self.sample_rate <= 1:
            raise ConfigError(f"sample rate must be in (0, 1], got {self.sample_rate}")
        if self.steps < 0:
            raise ConfigError(f"steps must be >= 0, got {self.steps}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(
                f"learning rate must be a finite number > 0, got {self.lr}"
            )
        check_device(self.device)
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(
                f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}"
            )
        if not self.max_grad_norm > 0:
            raise ConfigError(f"max-grad-norm must be > 0, got {self.max_grad_norm}")
        if self.examples_per_unit < 1:
            raise ConfigError(
                f"examples-per-patient must be >= 1, got {self.examples_per_unit}"
            )
        if self.proximal_mu < 0:
            raise ConfigError(f"proximal-mu must be >= 0, got {self.proximal_mu}")

    def unit_batch(self, n_units: int) -> int:
        """The expected batch of privacy units of a DP step."""
        if self.batch_size:
            return self.batch_size
        return max(1, math.ceil(self.sample_rate * n_units))

    def plain_batch(self) -> int:
        """The batch of non-private training."""
        return self.batch_size or PLAIN_BATCH


# Batch of non-private training when none is given.
PLAIN_BATCH = 64


def _tail_loss(losses: list[float], epochs: int) -> float | None:
    """The mean loss of the last epoch's steps (None if no step had a loss)."""
    if not losses:
        return None
    return float(np.mean(losses[-max(1, len(losses) // epochs) :]))


@dataclass(frozen=True)
class PrivateRun:
    """How a training call is charged: ledger, run id and the run's plan.

    ``planned_steps`` is the whole run's number of local steps (all rounds of a
    federation), used once to calibrate the noise; ``None`` means this call.
    ``privacy_unit`` is what the guarantee protects: ``patient`` (Poisson
    sampling and clipping per patient) or ``example``.
    """

    ledger: Any  # client.privacy.PrivacyLedger
    run_id: str
    run_epsilon: float | None = None
    planned_steps: int | None = None
    privacy_unit: str = "patient"
    # DP noise and sampling; client.privacy.SECURE (OS entropy) unless a test
    # passes client.privacy.SeededRandomness.
    randomness: Any = None
    # Written on the ledger's reservation: what it is for (a federation's
    # round), so a retry of that work after a crash can find it.
    note: str = ""
    # Called with the training's result (steps, train_loss) after its last
    # step and before the ledger settles: a federation keeps the round's
    # update here (client/round_cache.py), so a process killed between the two
    # leaves a kept update that a retry resends and settles, never trains again.
    on_trained: Any = None

    def __post_init__(self) -> None:
        if self.run_epsilon is not None and not (
            math.isfinite(self.run_epsilon) and self.run_epsilon > 0
        ):
            raise ConfigError(
                f"run epsilon (--run-epsilon) must be a finite number > 0, got "
                f"{self.run_epsilon}: the share of the budget this run may spend"
            )
        if self.randomness is None:
            from client.privacy import SECURE

            object.__setattr__(self, "randomness", SECURE)


def check_device(name: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; anything else is a ConfigError."""
    if name in ("auto", "cpu", "cuda") or (
        name.startswith("cuda:") and name[5:].isdigit()
    ):
        return
    raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N")


def resolve_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def steps_per_epoch(n_units: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (Poisson sampling: 1 / sample rate)."""
    return max(1, math.ceil(n_units / batch_size))


def _loader(
    x: np.ndarray, y: np.ndarray | None, batch: int, shuffle: bool, seed: int
) -> DataLoader:
    tensors = [torch.as_tensor(x, dtype=torch.float32)]
    if y is not None:
        tensors.append(torch.as_tensor(y))
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(*tensors), batch_size=batch, shuffle=shuffle, generator=gen
    )


@dataclass
class OptimizerCarry:
    """The local optimizer's state, carried from one training call to the next.

    Kept by the caller between rounds and never sent; under DP it is a
    function of the noised gradients only, i.e. post-processing. Only
    ``benchmarks/recipe_search.py --keep-state`` uses it: the ClientApp starts
    Adam afresh each round (carried, it learnt no better; docs/benchmarks.md,
    row 42). ``state`` is ``None`` until a call has trained.
    """

    state: dict[str, Any] | None = None


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray | None,
    config: TrainConfig,
    private: PrivateRun | None = None,
    groups: np.ndarray | None = None,
    carry: OptimizerCarry | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on ``(x, y)``; return training metrics.

    With ``private`` the model must be built with ``dp=True``; the noise is
    calibrated once per run id, the call is refused before it starts when the
    budget cannot pay for it, and the steps taken are charged to the ledger.
    With ``carry`` the optimizer starts from ``carry.state`` (when set) and
    leaves its state there.
    """
    if len(x) == 0:
        raise ConfigError("no training examples")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    model.to(device)
    reference = (
        [p.detach().clone() for p in model.parameters()] if config.proximal_mu else None
    )
    optimizer = _optimizer(model, config)
    if carry is not None and carry.state is not None:
        optimizer.load_state_dict(carry.state)
        for group in optimizer.param_groups:  # this call's rate, not the saved one
            group["lr"] = config.lr
    if private is None:
        loader = _loader(x, y, min(config.plain_batch(), len(x)), True, config.seed)
        out = _run_epochs(model, optimizer, loader, config, device, reference)
    else:
        out = _train_private(
            model, optimizer, x, y, groups, config, device, reference, private
        )
    if carry is not None:
        carry.state = optimizer.state_dict()
    return out


def _train_private(
    model, optimizer, x, y, groups, config, device, reference, private
) -> dict[str, Any]:
    from client.privacy import (
        PoissonUnitSampler,
        Units,
        detach,
        private_training,
        sample_rate_for,
        steps_per_epoch,
    )

    units = Units.of(groups, len(x), private.privacy_unit)
    rate = sample_rate_for(units.count, config.unit_batch(units.count))
    steps = config.steps or config.epochs * steps_per_epoch(rate)
    plan = private.ledger.plan(
        private.run_id,
        sample_rate=rate,
        planned_steps=private.planned_steps or steps,
        max_grad_norm=config.max_grad_norm,
        run_epsilon=private.run_epsilon,
        privacy_unit=units.kind,
    )
    # Every step samples at the rate the ledger accounts, whatever this call asked.
    rate = plan.sample_rate
    sampler = PoissonUnitSampler(
        units, rate, config.examples_per_unit, private.randomness
    )
    x_t = torch.as_tensor(x, dtype=torch.float32)
    y_t = None if y is None else torch.as_tensor(y)
    losses: list[float] = []
    with private_training(private.ledger, plan, steps, note=private.note) as session:
        dp_model, dp_optimizer = session.make_private(
            model, optimizer, units.count, randomness=private.randomness
        )
        try:
            dp_model.train()
            for batch in sampler.batches(steps):
                dp_optimizer.zero_grad(set_to_none=True)
                if len(batch.rows):
                    rows = torch.as_tensor(batch.rows)
                    xb = x_t[rows].to(device)
                    yb = None if y_t is None else y_t[rows].to(device)
                    loss = model.loss(xb, yb, **config.loss_kwargs)
                    loss.backward()
                    if math.isfinite(loss.item()):
                        losses.append(loss.item())
                dp_optimizer.set_batch(batch, device, _clip_scale(y, batch, config))
                dp_optimizer.step()
                if reference is not None:
                    _proximal_step(model, reference, config)
        finally:
            detach(dp_model)
        train_loss = _tail_loss(losses, config.epochs)
        if private.on_trained is not None:
            private.on_trained(session.steps, train_loss)
    noise_on_mean = plan.noise_multiplier / (rate * units.count)
    log.info(
        "%d %ss, %.1f per step (q=%.4f), sigma %.3f: noise std %.3g of the clipping "
        "norm on the averaged gradient",
        units.count, units.kind, rate * units.count, rate, plan.noise_multiplier,
        noise_on_mean,
    )  # fmt: skip
    warning = too_few_units(noise_on_mean)
    if warning:
        log.warning("%s (%d %ss)", warning, units.count, units.kind)
    ledger = private.ledger
    return {
        "train_loss": train_loss,
        "steps": session.steps,
        "examples": len(x),
        "epochs": config.epochs,
        "privacy_unit": units.kind,
        "units": units.count,
        "noise_multiplier": plan.noise_multiplier,
        "sample_rate": plan.sample_rate,
        "noise_on_mean_gradient": noise_on_mean,
        "too_few_units": warning,
        "epsilon_spent": ledger.spent_epsilon,
        "epsilon_budget": ledger.budget.epsilon,
        "delta": ledger.budget.delta,
    }


def _clip_scale(
    y: np.ndarray | None, batch: Any, config: TrainConfig
) -> np.ndarray | None:
    """Per row: its class weight over the largest; ``None`` unless asked for.

    DP-SGD clips every unit to the same norm, which erases class weights in
    the loss once gradients exceed the clip: the majority class then wins the
    clipped sum (measured: a federated beat classifier predicting "normal"
    for every beat). Clipping each unit in proportion to its weight keeps
    them, within the same bound. It also shrinks the majority's signal
    against the same noise: measured, it lifts patient-level epsilon 8 and
    example level and sinks patient-level epsilon 2, so it is off by default
    (docs/benchmarks.md).
    """
    weights = config.loss_kwargs.get("class_weight")
    if not config.class_scaled_clip or weights is None or y is None:
        return None
    if len(batch.rows) == 0:
        return None
    w = np.asarray(weights, dtype=float)
    return w[np.asarray(y)[batch.rows].astype(int)] / w.max()


# Above this noise std on the averaged gradient (in clipping norms), DP-SGD
# rarely learns a useful model in the few hundred steps a hospital can afford.
USEFUL_NOISE_ON_MEAN = 0.05


def too_few_units(noise_on_mean: float) -> str:
    """A plain warning when the hospital has too few units for useful DP-SGD."""
    if noise_on_mean <= USEFUL_NOISE_ON_MEAN:
        return ""
    return (
        f"the DP noise on each averaged gradient is {noise_on_mean:.2g} clipping "
        f"norms (useful models usually need <= {USEFUL_NOISE_ON_MEAN:g}): this "
        "hospital has too few patients for this budget and batch size; expect a "
        "weak model. More patients, a larger batch or a larger budget help."
    )


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum
        )
    return torch.optim.Adam(model.parameters(), lr=config.lr)


def _run_epochs(model, optimizer, loader, config, device, reference) -> dict[str, Any]:
    """The non-private training loop (``fedcare`` uses it only without DP)."""
    model.train()
    losses: list[float] = []
    steps = 0
    for _ in range(config.epochs):
        for batch in loader:
            xb = batch[0].to(device)
            yb = batch[1].to(device) if len(batch) > 1 else None
            optimizer.zero_grad(set_to_none=True)
            loss = model.loss(xb, yb, **config.loss_kwargs)
            loss.backward()
            optimizer.step()
            steps += 1
            if reference is not None:
                _proximal_step(model, reference, config)
            if len(xb) and math.isfinite(loss.item()):
                losses.append(loss.item())
    return {
        "train_loss": _tail_loss(losses, config.epochs),
        "steps": steps,
        "examples": len(loader.dataset),
        "epochs": config.epochs,
    }


@torch.no_grad()
def _proximal_step(
    model: nn.Module, reference: list[torch.Tensor], config: TrainConfig
) -> None:
    """FedProx: a step on ``mu/2 * ||w - w_global||^2`` after the data step.

    The proximal term does not depend on patient data, so applying it after the
    (privatised) data gradient costs no privacy; inside the DP loss it would be
    silently dropped, because Opacus rebuilds gradients from per-sample ones.
    """
    for param, ref in zip(model.parameters(), reference, strict=True):
        param.sub_(config.lr * config.proximal_mu * (param - ref.to(param.device)))


@torch.no_grad()
def predict(
    model: nn.Module, x: np.ndarray, batch_size: int = 512, device: str = "auto"
) -> np.ndarray:
    """``model.predict`` over ``x`` in batches, eval mode, as a numpy array."""
    dev = resolve_device(device)
    model.to(dev).eval()
    outputs = [
        model.predict(
            torch.as_tensor(x[i : i + batch_size], dtype=torch.float32, device=dev)
        ).cpu()
        for i in range(0, len(x), batch_size)
    ]
    if not outputs:
        return np.zeros((0,), dtype=np.float32)
    return torch.cat(outputs).numpy()


def evaluate(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray | None,
    kind: str,
    *,
    threshold: float | None = None,
    classes: list[str] | None = None,
) -> dict[str, Any]:
    """The metrics of ``kind`` (binary, multiclass, regression, reconstruction)."""
    from shared_models import metrics

    out = predict(model, x)
    if kind == "binary":
        return metrics.binary_metrics(
            y, out[:, 1], 0.5 if threshold is None else threshold
        )
    if kind == "multiclass":
        return metrics.multiclass_metrics(
            y, out, classes or [str(k) for k in range(out.shape[1])]
        )
    if kind == "regression":
        return metrics.regression_metrics(y, out)
    if kind == "reconstruction":
        if threshold is None:
            raise ConfigError(
                "an autoencoder needs its calibrated threshold to be evaluated"
            )
        return metrics.anomaly_metrics(y, out, threshold)
    raise ConfigError(f"unknown task kind {kind!r}")
