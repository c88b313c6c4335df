"""Empirical privacy audit of fedcare's DP-SGD, by canaries, in one training run.

Steinke, Nasr and Jagielski (2023), "Privacy auditing with one (1) training
run", with white-box gradient canaries as in Nasr et al. (2023), "Tight
auditing of differentially private machine learning". The run is the
production one: the task's data, split, model, recommended training settings
and loss, noise calibrated from ``(epsilon, delta)`` and the planned steps
exactly as a run's plan is, Poisson sampling and per-unit clipping by
:class:`~client.privacy.engine.UnitDPOptimizer`, noise from OS entropy.

Canaries: ``m`` "Dirac" gradients of norm C (the clipping norm), each on its
own coordinate of the trainable parameters. Each is in the training population
with probability 1/2 (its secret ``S_i``, from OS entropy). An included canary
is one more privacy unit: Poisson-sampled at every step at the patients' rate
``q``, and when sampled its gradient is appended to the per-unit gradients, so
it is clipped, summed and noised with the patients. The auditor sees every
step's noisy gradient (DP-SGD's guarantee covers their release, so this is a
valid and stronger adversary than the final weights) and scores canary ``i``
by the sum of the noisy gradients at its coordinate; the guesses and the
lower bound are :func:`client.privacy.audit_stats.audit_from_scores`.

The lower bound holds at ``confidence``: if the mechanism were (eps, delta)-DP,
the bound would exceed eps with probability at most ``1 - confidence``. It is
an EMPIRICAL LOWER bound: well below the claim is the expected outcome of a
correct mechanism (one run with ~1000 canaries cannot be tight), above the
claim means the mechanism is broken. Measured resolution (``--canaries
1000``, claim 2): a mechanism whose noise leaks ("known-noise") is caught; one
that clips at twice the norm its noise is calibrated for
("double-sensitivity", true epsilon about 4) is NOT: its expected bound is
1.3-1.6, and even 20000 canaries would only reach about 2. Those two broken
mechanisms exist for fedcare's tests only.

The audit trains on the hospital's data, at the hospital, and writes no model.
It does NOT charge the privacy ledger: its summary is a function of a DP-SGD
run on patient data ((epsilon, delta)-DP with respect to each patient, the
canaries aside), so treat it as internal to the hospital or account for it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from client.pipeline import build_model
from client.privacy.accounting import DEFAULT_ACCOUNTANT, calibrate_noise
from client.privacy.audit_stats import audit_from_scores
from client.privacy.budget import SpendPlan, check_privacy_unit
from client.privacy.engine import detach, make_private
from client.privacy.randomness import SECURE, Randomness
from client.privacy.sampling import (
    PoissonUnitSampler,
    Units,
    sample_rate_for,
    steps_per_epoch,
)
from client.tasks import Arrays, get_task
from client.training import TrainConfig, _optimizer, resolve_device, seed_everything
from shared_models import get_spec
from shared_models.errors import ConfigError

log = logging.getLogger(__name__)

# "fedcare" is the real mechanism; the other two are broken on purpose, for tests.
MECHANISMS = ("fedcare", "known-noise", "double-sensitivity")
ACCOUNTANT = DEFAULT_ACCOUNTANT  # what fedcare's ledgers calibrate with


class RecordedNoise:
    """Randomness whose Gaussian draws the auditor sees ("known-noise" only)."""

    secure = False

    def __init__(self, inner: Randomness) -> None:
        self.inner = inner
        self.drawn: list[torch.Tensor] = []

    def uniform(self, n: int) -> np.ndarray:
        return self.inner.uniform(n)

    def normal(self, shape: torch.Size, std: float, like: torch.Tensor) -> torch.Tensor:
        noise = self.inner.normal(shape, std, like)
        self.drawn.append(noise.detach().clone())
        return noise


class GradientCanaries:
    """``count`` Dirac gradient canaries of norm ``norm`` on distinct coordinates.

    ``params`` are the optimizer's trainable parameters, in its order.
    :meth:`add_rows` is a ``unit_grad_hooks`` hook, :meth:`observe` a
    ``noisy_grad_hooks`` hook; ``scores`` and ``included`` feed the statistics.
    With ``noise`` the observed noise is subtracted (the "known-noise" attack).
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        count: int,
        norm: float,
        sample_rate: float,
        randomness: Randomness = SECURE,
        noise: RecordedNoise | None = None,
    ) -> None:
        sizes = [p.numel() for p in params]
        if not 2 <= count <= sum(sizes):
            raise ConfigError(
                f"{count} canaries: each needs its own parameter coordinate, so "
                f"use between 2 and {sum(sizes)} (the model's trainable "
                "parameters); 1000 is the default."
            )
        self.norm, self.sample_rate = norm, sample_rate
        self.randomness, self.noise = randomness, noise
        offsets = np.cumsum([0, *sizes])
        flat = np.argsort(randomness.uniform(int(offsets[-1])))[:count]
        self.param = np.searchsorted(offsets, flat, side="right") - 1
        self.coord = flat - offsets[self.param]
        self.included = randomness.uniform(count) < 0.5  # the secret S_i
        self.scores = np.zeros(count)
        self._mine = [np.flatnonzero(self.param == i) for i in range(len(params))]
        self._at = [
            torch.as_tensor(self.coord[mine], device=p.device)
            for mine, p in zip(self._mine, params, strict=True)
        ]

    def add_rows(self, rows: list[torch.Tensor]) -> list[torch.Tensor]:
        """Append one row per included canary Poisson-sampled at this step."""
        members = np.flatnonzero(self.included)
        drawn = self.randomness.uniform(len(members)) < self.sample_rate
        sampled = members[drawn]
        if len(sampled) == 0:
            return rows
        out = []
        for i, unit_rows in enumerate(rows):
            width = math.prod(unit_rows.shape[1:])
            extra = unit_rows.new_zeros((len(sampled), width))
            here = np.flatnonzero(self.param[sampled] == i)
            at = torch.as_tensor(self.coord[sampled[here]], device=extra.device)
            extra[torch.as_tensor(here, device=extra.device), at] = self.norm
            extra = extra.view(len(sampled), *unit_rows.shape[1:])
            out.append(torch.cat([unit_rows, extra]))
        return out

    def observe(self, grads: list[torch.Tensor]) -> None:
        """Add this step's noisy gradient at each canary's coordinate to its score."""
        drawn = self.noise.drawn if self.noise is not None else None
        for i, grad in enumerate(grads):
            values = grad.reshape(-1)[self._at[i]]
            if drawn is not None:
                values = values - drawn[i].reshape(-1)[self._at[i]]
            self.scores[self._mine[i]] += values.double().cpu().numpy()
        if self.noise is not None:
            self.noise.drawn.clear()


@dataclass(frozen=True)
class _Setup:
    model: torch.nn.Module
    fit: Arrays
    units: Units
    config: TrainConfig


def _prepare(
    task_name: str,
    data: Path,
    privacy_unit: str,
    split_seed: int,
    overrides: dict[str, int | None],
) -> _Setup:
    """Data, model and settings exactly as ``fedcare train`` prepares them."""
    task = get_task(task_name)
    prepared = task.prepare(data, seed=split_seed)
    get_spec(task.model)  # registering models draws random weights: before seeding
    config = task.recommended_config(**overrides)
    config = TrainConfig(**{**asdict(config), "loss_kwargs": task.loss_kwargs()})
    seed_everything(config.seed)
    model = build_model(task, prepared, dp=True)
    fit = task.fit_arrays(prepared)
    return _Setup(model, fit, Units.of(fit.groups, len(fit), privacy_unit), config)


def _plan(
    mechanism: str, sigma: float, rate: float, steps: int, clip: float, epsilon: float
) -> SpendPlan:
    if mechanism == "double-sensitivity":  # clips at 2C, noise std still sigma * C
        sigma, clip = sigma / 2, 2 * clip
    return SpendPlan("privacy-audit", sigma, rate, steps, clip, epsilon, ACCOUNTANT)


def _train(
    setup: _Setup, plan: SpendPlan, canaries_count: int, noise: RecordedNoise | None
) -> GradientCanaries:
    """The production DP-SGD loop of ``client.training``, with canaries hooked in."""
    model, fit, units, config = setup.model, setup.fit, setup.units, setup.config
    device = resolve_device(config.device)
    model.to(device)
    optimizer = _optimizer(model, config)
    params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
    randomness = noise if noise is not None else SECURE
    canaries = GradientCanaries(
        params, canaries_count, plan.max_grad_norm, plan.sample_rate, SECURE, noise
    )
    population = units.count + int(canaries.included.sum())
    dp_model, dp_optimizer = make_private(
        model, optimizer, plan, population, randomness=randomness
    )
    dp_optimizer.unit_grad_hooks.append(canaries.add_rows)
    dp_optimizer.noisy_grad_hooks.append(canaries.observe)
    sampler = PoissonUnitSampler(
        units, plan.sample_rate, config.examples_per_unit, SECURE
    )
    x_t = torch.as_tensor(fit.x, dtype=torch.float32)
    y_t = None if fit.y is None else torch.as_tensor(fit.y)
    try:
        dp_model.train()
        for batch in sampler.batches(plan.planned_steps):
            dp_optimizer.zero_grad(set_to_none=True)
            if len(batch.rows):
                rows = torch.as_tensor(batch.rows)
                xb = x_t[rows].to(device)
                yb = None if y_t is None else y_t[rows].to(device)
                model.loss(xb, yb, **config.loss_kwargs).backward()
            dp_optimizer.set_batch(batch, device)
            dp_optimizer.step()
    finally:
        detach(dp_model)
    return canaries


def run_audit(
    task: str,
    data: Path,
    epsilon: float,
    delta: float = 1e-5,
    *,
    canaries: int = 1000,
    privacy_unit: str = "patient",
    confidence: float = 0.95,
    mechanism: str = "fedcare",
    split_seed: int = 0,
    epochs: int | None = None,
    batch_size: int | None = None,
    examples_per_unit: int | None = None,
) -> dict[str, Any]:
    """Audit DP-SGD as ``fedcare train`` runs it at ``(epsilon, delta)``.

    One private training run on ``task``'s training split of ``data`` with
    ``canaries`` gradient canaries (see the module docstring); returns the
    claimed epsilon, the empirical lower bound at ``confidence`` and the run's
    settings. ``epochs``, ``batch_size`` and ``examples_per_unit`` override the
    task's recommended training settings (``None``: keep them). ``mechanism``
    is ``fedcare`` (the real one) or, for tests, a broken one: ``known-noise``
    or ``double-sensitivity``. The ledger is NOT charged and no model is
    written; the summary is a function of a DP-SGD run on patient data, to be
    kept at the hospital.
    """
    _check(epsilon, delta, canaries, confidence, mechanism, privacy_unit)
    start = time.perf_counter()
    overrides = {
        "epochs": epochs,
        "batch_size": batch_size,
        "examples_per_unit": examples_per_unit,
    }
    setup = _prepare(task, data, privacy_unit, split_seed, overrides)
    rate = sample_rate_for(
        setup.units.count, setup.config.unit_batch(setup.units.count)
    )
    steps = setup.config.steps or setup.config.epochs * steps_per_epoch(rate)
    sigma = calibrate_noise(epsilon, delta, rate, steps, accountant=ACCOUNTANT)
    clip = setup.config.max_grad_norm
    plan = _plan(mechanism, sigma, rate, steps, clip, epsilon)
    noise = RecordedNoise(SECURE) if mechanism == "known-noise" else None
    found = _train(setup, plan, canaries, noise)
    stats = audit_from_scores(found.scores, found.included, delta, confidence)
    result = {
        "task": task,
        "mechanism": mechanism,
        "epsilon_claimed": float(epsilon),
        "epsilon_lower_bound": stats["epsilon_lower_bound"],
        "delta": float(delta),
        "confidence": stats["confidence"],
        "canaries": stats["canaries"],
        "guesses": stats["guesses"],
        "correct": stats["correct"],
        "privacy_unit": setup.units.kind,
        "units": setup.units.count,
        "sample_rate": rate,
        "steps": steps,
        "noise_multiplier": sigma,
        "max_grad_norm": clip,
        "seconds": round(time.perf_counter() - start, 2),
    }
    log.info(
        "privacy audit (%s): claimed epsilon %.4g, lower bound %.4g at %.0f%% "
        "(%d of %d guesses correct, %d canaries, %d steps)",
        mechanism, epsilon, result["epsilon_lower_bound"], 100 * confidence,
        result["correct"], result["guesses"], canaries, steps,
    )  # fmt: skip
    return result


def _check(
    epsilon: float,
    delta: float,
    canaries: int,
    confidence: float,
    mechanism: str,
    privacy_unit: str,
) -> None:
    """Refuse bad settings before any data is read or trained on."""
    if mechanism not in MECHANISMS:
        raise ConfigError(
            f"Unknown audit mechanism {mechanism!r}; known: {', '.join(MECHANISMS)} "
            "('fedcare' is the real one, the others are broken on purpose)."
        )
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < math.inf):
        raise ConfigError(f"epsilon {epsilon!r} must be a positive number, e.g. 2.0.")
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ConfigError(f"delta {delta!r} must be in (0, 1), e.g. 1e-5.")
    if not (isinstance(canaries, int) and canaries >= 2):
        raise ConfigError(f"{canaries!r} canaries: an audit needs at least 2.")
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ConfigError(f"confidence {confidence!r} must be in (0, 1), e.g. 0.95.")
    check_privacy_unit(privacy_unit)
