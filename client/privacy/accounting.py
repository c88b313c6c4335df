"""Epsilon of a whole training history, and noise calibration against a budget.

The only place that turns ``(noise_multiplier, sample_rate, steps)`` triples into
an epsilon. Both functions take the accountant by name, always: Opacus'
``PrivacyEngine`` defaults to PRV while ``get_noise_multiplier`` defaults to RDP,
so an implicit default would silently mix two different guarantees.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from numbers import Integral

import numpy as np
from opacus.accountants import RDPAccountant, create_accountant
from opacus.accountants.analysis import rdp as rdp_analysis

from shared_models.errors import BudgetExceededError, ConfigError

logger = logging.getLogger(__name__)

ACCOUNTANTS = ("rdp", "prv")
DEFAULT_ACCOUNTANT = "rdp"
# Largest noise multiplier calibrate_noise will try. At sigma=1e3 one step costs
# almost nothing; a target that is still out of reach is exhausted, not tight.
MAX_SIGMA = 1e3
_MAX_BISECTIONS = 200

Step = tuple[float, float, int]


def check_accountant(accountant: str) -> str:
    """Return ``accountant`` if fedcare supports it, else raise :class:`ConfigError`."""
    if accountant not in ACCOUNTANTS:
        raise ConfigError(
            f"Unknown privacy accountant {accountant!r}; known accountants are "
            f"{', '.join(ACCOUNTANTS)}. Pick one of them explicitly."
        )
    return accountant


def normalize_history(history: Sequence[Sequence[float]]) -> list[Step]:
    """Validate ``history`` and merge entries that share (sigma, q).

    Composition is commutative, so summing the steps of identical mechanisms
    changes nothing mathematically; it keeps the PRV accountant's numerics
    identical whether a run's steps were charged in one call or in ten.
    Entries with zero steps are dropped.
    """
    merged: dict[tuple[float, float], int] = {}
    for index, item in enumerate(history):
        if len(item) != 3:
            raise ConfigError(
                f"history[{index}] = {item!r}: expected a triple "
                "(noise_multiplier, sample_rate, steps)."
            )
        sigma, q, steps = float(item[0]), float(item[1]), item[2]
        _check_step(f"history[{index}]", sigma, q, steps)
        if steps:
            merged[(sigma, q)] = merged.get((sigma, q), 0) + int(steps)
    return [(sigma, q, steps) for (sigma, q), steps in merged.items()]


def _check_step(where: str, sigma: float, q: float, steps: object) -> None:
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(
            f"{where}: noise_multiplier {sigma!r} must be a positive number."
        )
    if not (0 < q <= 1):
        raise ConfigError(f"{where}: sample_rate {q!r} must be in (0, 1].")
    if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 0:
        raise ConfigError(f"{where}: steps {steps!r} must be a non-negative integer.")


def compute_epsilon(
    history: Sequence[tuple[float, float, int]],
    delta: float,
    accountant: str = DEFAULT_ACCOUNTANT,
) -> float:
    """Epsilon (at ``delta``) of composing every entry of ``history``.

    ``history`` holds ``(noise_multiplier, sample_rate, steps)`` of Poisson
    subsampled Gaussian steps, all runs and rounds together. An empty history
    costs 0.0.
    """
    check_accountant(accountant)
    if not 0 < delta < 1:
        raise ConfigError(f"delta {delta!r} must be in (0, 1).")
    steps = normalize_history(history)
    if not steps:
        return 0.0
    acc = create_accountant(mechanism=accountant)
    acc.history = steps
    return float(acc.get_epsilon(delta=delta))


def _epsilon_of_sigma(
    prior: list[Step], delta: float, accountant: str, q: float, steps: int
) -> Callable[[float], float]:
    """Epsilon after ``prior`` plus ``steps`` at (sigma, q), as a function of sigma.

    For RDP the prior's RDP curve is computed once (RDP composes by addition,
    exactly as opacus' RDPAccountant sums it); PRV recomposes everything.
    """
    if accountant != "rdp":
        return lambda sigma: compute_epsilon(
            [*prior, (sigma, q, steps)], delta, accountant
        )
    orders = RDPAccountant.DEFAULT_ALPHAS
    base = np.zeros(len(orders))
    for sigma, rate, count in normalize_history(prior):
        base = base + rdp_analysis.compute_rdp(
            q=rate, noise_multiplier=sigma, steps=count, orders=orders
        )

    def eps_at(sigma: float) -> float:
        new = rdp_analysis.compute_rdp(
            q=q, noise_multiplier=sigma, steps=steps, orders=orders
        )
        eps, _ = rdp_analysis.get_privacy_spent(
            orders=orders, rdp=base + new, delta=delta
        )
        return float(eps)

    return eps_at


def calibrate_noise(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = DEFAULT_ACCOUNTANT,
    history: Sequence[tuple[float, float, int]] = (),
    tol: float = 0.01,
) -> float:
    """Smallest-ish sigma whose ``steps`` keep the CUMULATIVE epsilon <= target.

    ``target_epsilon`` is the total after ``history`` plus the new steps. The
    result always satisfies the target; it is within ``tol`` epsilon of it
    (``tol`` is capped at 10% of the epsilon still available, so a small
    remainder is not wasted). Raises :class:`BudgetExceededError` when even
    ``MAX_SIGMA`` cannot meet the target.
    """
    check_accountant(accountant)
    _check_step("calibrate_noise", 1.0, sample_rate, steps)
    if steps == 0:
        raise ConfigError("steps must be positive to calibrate a noise multiplier.")
    spent = compute_epsilon(history, delta, accountant)
    prior = list(history)

    eps_at = _epsilon_of_sigma(prior, delta, accountant, sample_rate, steps)

    if target_epsilon <= spent or eps_at(MAX_SIGMA) > target_epsilon:
        raise BudgetExceededError(
            f"Cannot calibrate noise: target cumulative epsilon {target_epsilon:.6g} "
            f"(delta={delta:g}, accountant={accountant}) is out of reach for "
            f"{steps} steps at sample rate {sample_rate:.6g}; already spent "
            f"{spent:.6g}, and even noise multiplier {MAX_SIGMA:g} would exceed it. "
            "Raise the target, plan fewer steps or a smaller sample rate, or use a "
            "new ledger with a new budget."
        )
    tol = min(tol, 0.1 * (target_epsilon - spent))
    low, high = 0.0, min(1.0, MAX_SIGMA)
    eps_high = eps_at(high)
    while eps_high > target_epsilon:
        low, high = high, min(2 * high, MAX_SIGMA)
        eps_high = eps_at(high)
    for _ in range(_MAX_BISECTIONS):
        if target_epsilon - eps_high <= tol:
            break
        mid = (low + high) / 2
        eps_mid = eps_at(mid)
        if eps_mid <= target_epsilon:
            high, eps_high = mid, eps_mid
        else:
            low = mid
    logger.debug(
        "calibrated sigma=%.6g: epsilon %.6g -> %.6g (target %.6g, %s)",
        high,
        spent,
        eps_high,
        target_epsilon,
        accountant,
    )
    return high
