"""Opacus DP-SGD over privacy units, with secret noise, set up from a SpendPlan.

The parts are Opacus' own: ``GradSampleModule`` computes per-example
gradients, ``DPOptimizer`` clips, sums, noises and scales them. fedcare adds
two things in :class:`UnitDPOptimizer`:

- per-UNIT clipping: before clipping, the per-example gradients of one unit
  (a patient) are averaged into one row, so each unit, not each example, is
  clipped to ``max_grad_norm``; for example-level DP every example is its own
  unit and nothing is averaged;
- secret noise: the Gaussian noise comes from :mod:`client.privacy.randomness`
  (OS entropy), never from a seed.

The noise multiplier, clipping norm and sample rate all come from the plan, so
the steps that are trained are exactly the steps the ledger charges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.validators import ModuleValidator
from torch import nn

from client.privacy import grad_samplers as _grad_samplers  # noqa: F401 (registers)
from client.privacy.budget import SpendPlan
from client.privacy.ledger import PrivacyLedger
from client.privacy.randomness import SECURE, Randomness
from client.privacy.sampling import UnitBatch
from shared_models.errors import PrivacyError

logger = logging.getLogger(__name__)

# Called with the per-unit gradients (one tensor per parameter, first dimension
# the units of this step) before clipping; returns them, possibly with rows
# added. The privacy audit inserts its canaries here.
UnitGradHook = Callable[[list[torch.Tensor]], list[torch.Tensor]]
# Called with the clipped, summed, noised gradients of a step (before scaling).
NoisyGradHook = Callable[[list[torch.Tensor]], None]


class UnitDPOptimizer(DPOptimizer):
    """Opacus' DPOptimizer, clipping per privacy unit, with OS-entropy noise."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        noise_multiplier: float,
        max_grad_norm: float,
        expected_batch_size: int | float,
        randomness: Randomness = SECURE,
    ) -> None:
        super().__init__(
            optimizer,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",
        )
        self.randomness = randomness
        self.steps = 0
        self.unit_grad_hooks: list[UnitGradHook] = []
        self.noisy_grad_hooks: list[NoisyGradHook] = []
        self._batch: tuple[torch.Tensor, torch.Tensor, int] | None = None

    def set_batch(
        self,
        batch: UnitBatch,
        device: torch.device,
        clip_scale: torch.Tensor | None = None,
    ) -> None:
        """Tell the optimizer which unit each example row of this step belongs to.

        ``clip_scale`` (one value in (0, 1] per row, e.g. the row's class
        weight over the largest class weight) clips each unit to
        ``max_grad_norm`` times the mean scale of its rows, instead of
        ``max_grad_norm``: a unit's contribution stays bounded by
        ``max_grad_norm``, so the sensitivity, the noise and the accounting are
        unchanged, and the class weights that equal clipping would erase are
        kept (see docs/benchmarks.md).
        """
        pos = torch.as_tensor(batch.unit_pos, dtype=torch.long, device=device)
        weight = torch.as_tensor(batch.weight, device=device)
        scale = None
        if clip_scale is not None:
            scale = torch.as_tensor(clip_scale, device=device).to(weight.dtype)
            if len(scale) != len(pos) or bool(((scale <= 0) | (scale > 1)).any()):
                raise PrivacyError("clip scales must be in (0, 1], one per row")
        self._batch = (pos, weight, batch.n_units, scale)
        if len(batch.rows) == 0:  # no unit sampled: the step is noise only
            for p in self.params:
                p.grad_sample = torch.zeros(
                    (0, *p.shape), device=p.device, dtype=p.dtype
                )

    def clip_and_accumulate(self) -> None:
        if self._batch is None:
            raise PrivacyError("UnitDPOptimizer.step() without set_batch() first")
        pos, weight, n_units, scale = self._batch
        rows = []
        for p in self.params:
            gs = self._get_flat_grad_sample(p)
            if len(gs) != len(pos):
                raise PrivacyError(
                    f"per-example gradients have {len(gs)} rows, the batch {len(pos)}"
                )
            scaled = gs * weight.to(gs.dtype).view(-1, *([1] * (gs.dim() - 1)))
            units = torch.zeros(
                (n_units, *gs.shape[1:]), device=gs.device, dtype=gs.dtype
            )
            rows.append(units.index_add_(0, pos, scaled))
        for hook in self.unit_grad_hooks:
            rows = hook(rows)
        bound = torch.full(
            (len(rows[0]),), float(self.max_grad_norm), device=rows[0].device
        )
        if scale is not None and n_units:
            # a unit's scale: the mean of its rows' (weight = 1 / its rows)
            unit_scale = torch.zeros(n_units, device=pos.device, dtype=weight.dtype)
            unit_scale.index_add_(0, pos, weight * scale)
            bound[:n_units] *= unit_scale.to(bound.device, bound.dtype)
        self._clip_and_sum(rows, bound)
        self._batch = None

    def _clip_and_sum(self, rows: list[torch.Tensor], bound: torch.Tensor) -> None:
        """Clip row i of every parameter's rows to norm ``bound[i]``; sum the rows."""
        if len(bound):
            norms = torch.stack(
                [r.reshape(len(r), -1).norm(2, dim=-1).to(bound.device) for r in rows],
                dim=1,
            ).norm(2, dim=1)
            factor = (bound / (norms + 1e-6)).clamp(max=1.0)
        else:
            factor = bound
        for p, unit_rows in zip(self.params, rows, strict=True):
            p.grad_sample = unit_rows
            _check_processed_flag(p.grad_sample)
            unit_rows = unit_rows.to(p.dtype)
            clip = factor.to(unit_rows.device, p.dtype)
            summed = torch.einsum("i,i...", clip, unit_rows)
            p.summed_grad = summed if p.summed_grad is None else p.summed_grad + summed
            _mark_as_processed(p.grad_sample)

    def add_noise(self) -> None:
        std = self.noise_multiplier * self.max_grad_norm
        for p in self.params:
            _check_processed_flag(p.summed_grad)
            noise = self.randomness.normal(p.summed_grad.shape, std, p.summed_grad)
            p.grad = (p.summed_grad + noise).view_as(p)
            _mark_as_processed(p.summed_grad)
        for hook in self.noisy_grad_hooks:
            hook([p.grad.detach().clone() for p in self.params])
        self.steps += 1


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    plan: SpendPlan,
    n_units: int,
    *,
    randomness: Randomness = SECURE,
) -> tuple[GradSampleModule, UnitDPOptimizer]:
    """Wrap ``model`` for per-example gradients and ``optimizer`` for DP-SGD.

    ``n_units`` is the number of privacy units the plan's sample rate applies to;
    the expected number of units per step, ``q * n_units``, scales the noisy sum.
    """
    if getattr(randomness, "secure", False) is not True:
        logger.warning(
            "DP randomness is not OS entropy (test-only): this training is not private"
        )
    dp_model = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    dp_optimizer = UnitDPOptimizer(
        optimizer,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        expected_batch_size=plan.sample_rate * n_units,
        randomness=randomness,
    )
    return dp_model, dp_optimizer


def steps_taken(optimizer: DPOptimizer) -> int:
    """Noisy optimizer steps since :func:`make_private`."""
    if not isinstance(optimizer, UnitDPOptimizer):
        raise PrivacyError(
            "This optimizer was not made private by client.privacy.make_private, "
            "so its steps are not counted."
        )
    return optimizer.steps


class PrivateSession:
    """One private training call of a planned run; see :func:`private_training`."""

    def __init__(self, plan: SpendPlan) -> None:
        self.plan = plan
        self._optimizers: list[UnitDPOptimizer] = []

    def make_private(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        n_units: int,
        *,
        randomness: Randomness = SECURE,
    ) -> tuple[GradSampleModule, UnitDPOptimizer]:
        result = make_private(
            model, optimizer, self.plan, n_units, randomness=randomness
        )
        self._optimizers.append(result[1])
        return result

    @property
    def steps(self) -> int:
        return sum(opt.steps for opt in self._optimizers)


@contextmanager
def private_training(
    ledger: PrivacyLedger, plan: SpendPlan, steps: int, *, note: str = ""
) -> Iterator[PrivateSession]:
    """Reserve ``steps`` under the ledger's lock, train, settle the steps taken.

    The reservation is made before any training and counts in full until it is
    settled, so two processes on one ledger can never both pass, and a crash
    leaves the reservation spent. Settling happens even when training raises.
    """
    reservation = ledger.reserve(plan, steps, note=note)
    session = PrivateSession(plan)
    try:
        yield session
    finally:
        # Steps beyond the reservation are recorded too, then raised by settle().
        ledger.settle(reservation, session.steps, note=note)


def detach(dp_model: GradSampleModule) -> None:
    """Leave the caller's model as it was: no Opacus hooks or per-sample grads."""
    dp_model._close()


def dp_errors(model: nn.Module) -> list[str]:
    """Why ``model`` cannot be trained with DP-SGD; empty when it can."""
    return [str(error) for error in ModuleValidator.validate(model, strict=False)]


def fix_for_dp(model: nn.Module) -> nn.Module:
    """Replace DP-incompatible layers (e.g. BatchNorm -> GroupNorm) via Opacus."""
    return ModuleValidator.fix(model)
