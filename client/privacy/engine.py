"""Opacus DP-SGD set up from a ledger's :class:`SpendPlan`, and model checks.

The noise multiplier, clipping norm and sample rate all come from the plan, so
the steps that are trained are exactly the steps the ledger charges.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from opacus import PrivacyEngine
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader

from client.errors import ConfigError, PrivacyError
from client.privacy.budget import SpendPlan
from client.privacy.ledger import PrivacyLedger

logger = logging.getLogger(__name__)

__all__ = [
    "DPOptimizer",
    "PrivateSession",
    "dp_errors",
    "fix_for_dp",
    "make_private",
    "private_training",
    "sample_rate_of",
    "steps_per_epoch",
    "steps_taken",
]


def sample_rate_of(data_loader: DataLoader) -> float:
    """Poisson sample rate Opacus will use for ``data_loader``: 1/len(loader).

    Pass this to :meth:`PrivacyLedger.plan`; it is the probability each record
    is in a batch once :func:`make_private` replaces the loader.
    """
    batches = len(data_loader)
    if batches < 1:
        raise ConfigError("The data loader is empty: it yields no batch.")
    return 1 / batches


def steps_per_epoch(sample_rate: float) -> int:
    """Batches per epoch of Opacus' Poisson loader: ``int(1/q)``.

    Note this can be one less than the original loader's length (``int(1/(1/93))``
    is 92), so plan steps with this, not with ``len(loader)``.
    """
    return int(1 / sample_rate)


class _StepCounter:
    """Optimizer step hook that counts noisy steps, then calls Opacus' hook."""

    def __init__(self, inner: Callable[[DPOptimizer], None] | None) -> None:
        self.inner = inner
        self.steps = 0

    def __call__(self, optimizer: DPOptimizer) -> None:
        self.steps += 1
        if self.inner is not None:
            self.inner(optimizer)


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader,
    plan: SpendPlan,
    *,
    seed: int | None = None,
    grad_sample_mode: str = "hooks",
) -> tuple[nn.Module, DPOptimizer, DataLoader]:
    """Wrap model, optimizer and loader for DP-SGD with Poisson sampling.

    Uses the plan's noise multiplier, clipping norm and accountant. Raises
    :class:`PrivacyError` if the loader's sample rate differs from the plan's,
    so the ledger never records a wrong q. ``seed`` seeds both the noise and the
    Poisson sampling (for tests and simulation; leave it ``None`` in production).
    Count steps with :func:`steps_taken` on the returned optimizer.
    """
    expected = sample_rate_of(data_loader)
    if not math.isclose(expected, plan.sample_rate, rel_tol=1e-12):
        raise PrivacyError(
            f"Run {plan.run_id!r} was planned with sample rate {plan.sample_rate:.6g} "
            f"(1/{round(1 / plan.sample_rate)} batches) but this data loader gives "
            f"{expected:.6g} (1/{len(data_loader)}). Keep the batch size and dataset "
            "of the run's first round, or plan a new run."
        )
    noise_generator = None
    if seed is not None:
        noise_generator = torch.Generator().manual_seed(seed)
    engine = PrivacyEngine(accountant=plan.accountant)
    model, dp_optimizer, dp_loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=data_loader,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        poisson_sampling=True,
        noise_generator=noise_generator,
        grad_sample_mode=grad_sample_mode,
    )
    actual = getattr(dp_loader, "sample_rate", None)
    if actual is None or not math.isclose(actual, plan.sample_rate, rel_tol=1e-12):
        raise PrivacyError(
            f"Opacus' Poisson loader samples at {actual!r}, the plan at "
            f"{plan.sample_rate!r}; refusing to train with an unrecorded rate."
        )
    if seed is not None:
        # Opacus' Poisson sampler draws from its own generator attribute.
        dp_loader.batch_sampler.generator = torch.Generator().manual_seed(seed + 1)
    dp_optimizer.attach_step_hook(_StepCounter(dp_optimizer.step_hook))
    return model, dp_optimizer, dp_loader


def steps_taken(optimizer: DPOptimizer) -> int:
    """Noisy optimizer steps since :func:`make_private` (skipped steps excluded)."""
    hook = getattr(optimizer, "step_hook", None)
    if not isinstance(hook, _StepCounter):
        raise PrivacyError(
            "This optimizer was not made private by client.privacy.make_private, "
            "so its steps are not counted."
        )
    return hook.steps


class PrivateSession:
    """One private training call of a planned run; see :func:`private_training`."""

    def __init__(self, plan: SpendPlan) -> None:
        self.plan = plan
        self._optimizers: list[DPOptimizer] = []

    def make_private(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        data_loader: DataLoader,
        *,
        seed: int | None = None,
        grad_sample_mode: str = "hooks",
    ) -> tuple[nn.Module, DPOptimizer, DataLoader]:
        result = make_private(
            model, optimizer, data_loader, self.plan,
            seed=seed, grad_sample_mode=grad_sample_mode,
        )  # fmt: skip
        self._optimizers.append(result[1])
        return result

    @property
    def steps(self) -> int:
        return sum(steps_taken(opt) for opt in self._optimizers)


@contextmanager
def private_training(
    ledger: PrivacyLedger, plan: SpendPlan, steps: int, *, note: str = ""
) -> Iterator[PrivateSession]:
    """Check ``steps`` against the budget, train, then charge the steps taken.

    The charge happens even when training raises, so a failed round still
    records what it spent. Use ``session.make_private(...)`` inside the block.
    """
    ledger.check(plan, steps)
    session = PrivateSession(plan)
    try:
        yield session
    finally:
        taken = session.steps
        if taken > steps:
            logger.warning(
                "run %s: took %d steps, checked %d", plan.run_id, taken, steps
            )
        ledger.charge(plan, taken, note=note)


def dp_errors(model: nn.Module) -> list[str]:
    """Why ``model`` cannot be trained with DP-SGD; empty when it can."""
    return [str(error) for error in ModuleValidator.validate(model, strict=False)]


def fix_for_dp(model: nn.Module) -> nn.Module:
    """Replace DP-incompatible layers (e.g. BatchNorm -> GroupNorm) via Opacus."""
    return ModuleValidator.fix(model)
