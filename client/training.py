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

from client.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one local training call."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 2e-3
    optimizer: str = "adam"
    max_grad_norm: float = 1.0
    proximal_mu: float = 0.0
    seed: int = 0
    device: str = "auto"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch-size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(
                f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}"
            )
        if not self.max_grad_norm > 0:
            raise ConfigError(f"max-grad-norm must be > 0, got {self.max_grad_norm}")
        if self.proximal_mu < 0:
            raise ConfigError(f"proximal-mu must be >= 0, got {self.proximal_mu}")


@dataclass(frozen=True)
class PrivateRun:
    """How a training call is charged: ledger, run id and the run's plan.

    ``planned_steps`` is the whole run's number of local steps (all rounds of a
    federation), used once to calibrate the noise; ``None`` means this call.
    """

    ledger: Any  # client.privacy.PrivacyLedger
    run_id: str
    run_epsilon: float | None = None
    planned_steps: int | None = None


def resolve_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (Poisson sampling: 1 / sample rate)."""
    return max(1, math.ceil(n_examples / batch_size))


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


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray | None,
    config: TrainConfig,
    private: PrivateRun | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on ``(x, y)``; return training metrics.

    With ``private`` the model must be built with ``dp=True``; the noise is
    calibrated once per run id, the call is refused before it starts when the
    budget cannot pay for it, and the steps taken are charged to the ledger.
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
    loader = _loader(x, y, min(config.batch_size, len(x)), True, config.seed)
    if private is None:
        return _run_epochs(model, model, optimizer, loader, config, device, reference)
    return _train_private(model, optimizer, loader, config, device, reference, private)


def _train_private(
    model, optimizer, loader, config, device, reference, private
) -> dict[str, Any]:
    from client.privacy import make_private, sample_rate_of
    from client.privacy import steps_per_epoch as poisson_steps

    n = len(loader.dataset)
    batch = min(config.batch_size, n)
    sample_rate = sample_rate_of(loader)
    # Opacus' Poisson loader yields int(1/q) batches, which float rounding can
    # make one less than len(loader): plan (and check) the steps it will take.
    steps = config.epochs * poisson_steps(sample_rate)
    plan = private.ledger.plan(
        private.run_id,
        sample_rate=sample_rate,
        planned_steps=private.planned_steps or steps,
        max_grad_norm=config.max_grad_norm,
        run_epsilon=private.run_epsilon,
    )
    private.ledger.check(plan, steps)
    dp_model, dp_optimizer, dp_loader = make_private(
        model, optimizer, loader, plan, seed=config.seed
    )
    counter = {"steps": 0}
    try:
        result = _run_epochs(
            dp_model._module,
            dp_model,
            dp_optimizer,
            dp_loader,
            config,
            device,
            reference,
            counter,
        )
    finally:
        if counter["steps"]:
            private.ledger.charge(plan, counter["steps"])
        _detach_hooks(dp_model)
    log.info(
        "batch %d, sample rate %.4f, sigma %.3f",
        batch,
        sample_rate,
        plan.noise_multiplier,
    )
    result.update(
        noise_multiplier=plan.noise_multiplier,
        sample_rate=plan.sample_rate,
        epsilon_spent=private.ledger.spent_epsilon,
        epsilon_budget=private.ledger.budget.epsilon,
        delta=private.ledger.budget.delta,
    )
    return result


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=config.lr)


def _run_epochs(
    core, wrapped, optimizer, loader, config, device, reference, counter=None
) -> dict[str, Any]:
    """The training loop. ``core`` has ``loss``; ``wrapped`` may be Opacus' module."""
    counter = counter if counter is not None else {"steps": 0}
    wrapped.train()
    losses: list[float] = []
    for _ in range(config.epochs):
        for batch in loader:
            xb = batch[0].to(device)
            yb = batch[1].to(device) if len(batch) > 1 else None
            optimizer.zero_grad(set_to_none=True)
            loss = core.loss(xb, yb, **config.loss_kwargs)
            loss.backward()
            optimizer.step()
            counter["steps"] += 1
            if reference is not None:
                _proximal_step(core, reference, config)
            if len(xb) and math.isfinite(loss.item()):
                losses.append(loss.item())
    return {
        "train_loss": float(np.mean(losses[-max(1, len(losses) // config.epochs) :]))
        if losses
        else None,
        "steps": counter["steps"],
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


def _detach_hooks(dp_model: nn.Module) -> None:
    """Leave the caller's model as it was: no Opacus hooks or per-sample grads."""
    close = getattr(dp_model, "_close", None)
    if callable(close):
        close()


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
