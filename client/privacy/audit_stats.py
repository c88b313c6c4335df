"""Statistics of a one-run empirical privacy audit (Steinke, Nasr, Jagielski 2023).

"Privacy Auditing with One (1) Training Run", NeurIPS 2023, arXiv:2305.08846.
Setting: ``m`` canaries, each included in training independently with
probability 1/2 (``S_i = +1`` in, ``-1`` out). After one training run the
auditor scores every canary, guesses "in" for the ``k_plus`` highest scores and
"out" for the ``k_minus`` lowest, and abstains on the rest: ``r = k_plus +
k_minus`` guesses, ``v`` of them correct.

The main theorem (Theorem 3.1 of the paper): let ``S`` be uniform on
``{-1, +1}^m``, let the training run be (eps, delta)-DP with respect to each
``S_i``, let the guesses ``T`` in ``{-1, 0, +1}^m`` be computed from its output
alone with ``||T||_1 <= r``, and let ``W = sum_i max(0, T_i * S_i)`` count the
correct guesses. With ``B ~ Binomial(r, e^eps / (1 + e^eps))``, for every v::

    P[W >= v] <= P[B >= v] + 2 * m * delta * max_{i = 1..m} P[v > B >= v - i] / i

So the right-hand side is a p-value for the claim "the run is (eps, delta)-DP":
a claim is rejected at level ``alpha = 1 - confidence`` when it is below alpha.
With delta = 0 it is the exact binomial tail of eps-randomized response, which
the theorem shows is the worst case.

This module only does statistics on counts and scores; it has no opacus or torch
dependency and is not part of the training path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy import special, stats

from shared_models.errors import ConfigError

# Bisection interval for epsilon. With v = r correct guesses the bound is about
# log(r / log(1/alpha)), so 50 is out of reach for any feasible number of guesses.
MAX_EPSILON = 50.0
_TOLERANCE = 1e-9
# Fractions of the canaries guessed (half "in", half "out"), fixed in advance so
# the Bonferroni correction in audit_from_scores counts every choice tried.
DEFAULT_GUESS_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def log_p_value(r: int, v: int, m: int, epsilon: float, delta: float) -> float:
    """Log of the Theorem 3.1 bound on ``P[W >= v]`` under (epsilon, delta)-DP.

    Returns ``log(min(1, P[B >= v] + 2 m delta max_i P[v > B >= v - i] / i))``
    with ``B ~ Binomial(r, e^epsilon / (1 + e^epsilon))``, computed in log space.
    Only ``i <= v`` can attain the maximum: for ``i >= v`` the window
    ``[v - i, v)`` already holds all of ``P[B < v]``.
    """
    _check_counts(r, v, m)
    _check_delta(delta)
    if not (isinstance(epsilon, Real) and 0 <= epsilon < math.inf):
        raise ConfigError(f"epsilon = {epsilon!r}: expected a finite value >= 0.")
    return _LogPValue(r, v, m, delta)(float(epsilon))


class _LogPValue:
    """``log_p_value`` as a function of epsilon, for fixed counts (bisection)."""

    def __init__(self, r: int, v: int, m: int, delta: float) -> None:
        self.r, self.v = r, v
        self.log_weight = math.log(2 * m * delta) if delta > 0 and v > 0 else None
        # log C(r, k) for k = v - 1 down to 0, and log(1 / i) for i = 1..v.
        k = np.arange(v - 1, -1, -1)
        self.k = k
        self.log_choose = (
            special.gammaln(r + 1) - special.gammaln(k + 1) - special.gammaln(r - k + 1)
        )
        self.log_inverse_i = -np.log(np.arange(1, v + 1))

    def __call__(self, epsilon: float) -> float:
        r, v, k = self.r, self.v, self.k
        log_tail = float(stats.binom.logsf(v - 1, r, special.expit(epsilon)))
        if self.log_weight is None:
            return min(log_tail, 0.0)
        log_q = -np.logaddexp(0.0, -epsilon)  # log(e^eps / (1 + e^eps))
        log_not_q = -np.logaddexp(0.0, epsilon)
        log_pmf = self.log_choose + k * log_q + (r - k) * log_not_q
        # log P[v - i <= B <= v - 1] for i = 1..v, accumulated from k = v - 1 down.
        log_windows = np.logaddexp.accumulate(log_pmf)
        log_alpha = float(np.max(log_windows + self.log_inverse_i))
        return min(float(np.logaddexp(log_tail, self.log_weight + log_alpha)), 0.0)


def epsilon_lower_bound(
    r: int, v: int, m: int, delta: float, confidence: float = 0.95
) -> float:
    """Largest epsilon that ``v`` correct of ``r`` guesses on ``m`` canaries rejects.

    Implements Theorem 3.1 of Steinke, Nasr and Jagielski (2023), formula in the
    module docstring: the claim "(epsilon, delta)-DP" is rejected when
    :func:`log_p_value` is below ``log(1 - confidence)``. The result is the
    largest rejected epsilon in ``[0, MAX_EPSILON]``, found by bisection to
    within 1e-9 and kept on the rejected side. Guarantee: if the run is
    (eps, delta)-DP, the result exceeds eps with probability at most
    ``1 - confidence``. 0.0 when not even epsilon = 0 is rejected.

    Non-decreasing in ``v``, because the p-value does not increase with ``v``
    (which the guarantee also relies on). That is exact when ``2 m delta <= 1``:
    each extra correct guess lowers the p-value by at least
    ``(1 - 2 m delta) P[B = v]``; for larger ``2 m delta`` it was checked on a
    grid of counts and epsilons.
    """
    _check_counts(r, v, m)
    _check_delta(delta)
    log_level = math.log1p(-_check_confidence(confidence))
    log_p = _LogPValue(r, v, m, delta)
    if log_p(0.0) >= log_level:
        return 0.0
    if log_p(MAX_EPSILON) < log_level:
        return MAX_EPSILON
    low, high = 0.0, MAX_EPSILON  # rejected at low, not rejected at high
    while high - low > _TOLERANCE:
        middle = (low + high) / 2
        if log_p(middle) < log_level:
            low = middle
        else:
            high = middle
    return low


def guesses_from_scores(scores: np.ndarray, k_plus: int, k_minus: int) -> np.ndarray:
    """Guess +1 ("in") for the ``k_plus`` highest scores, -1 for the ``k_minus``
    lowest, 0 (abstain) elsewhere.

    Equal scores are ordered by position (a stable ascending sort, so the later
    canary ranks higher), never by inclusion: the guesses depend on the scores
    alone, as Theorem 3.1 requires.
    """
    values = _check_scores(scores)
    m = values.size
    for name, k in (("k_plus", k_plus), ("k_minus", k_minus)):
        if not _is_int(k) or k < 0:
            raise ConfigError(f"{name} = {k!r}: expected an integer >= 0.")
    if k_plus + k_minus > m:
        raise ConfigError(
            f"k_plus + k_minus = {k_plus + k_minus} guesses but only {m} canaries; "
            "guess each canary at most once."
        )
    order = np.argsort(values, kind="stable")
    guesses = np.zeros(m, dtype=np.int8)
    guesses[order[:k_minus]] = -1
    guesses[order[m - k_plus :]] = 1
    return guesses


def symmetric_k_choices(
    m: int, fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS
) -> list[tuple[int, int]]:
    """``(k, k)`` with ``k = floor(f * m / 2)`` per fraction ``f``; distinct, k >= 1."""
    if not _is_int(m) or m < 2:
        raise ConfigError(f"m = {m!r} canaries: a symmetric audit needs at least 2.")
    choices: list[tuple[int, int]] = []
    for f in fractions:
        if not (isinstance(f, Real) and 0 < f <= 1):
            raise ConfigError(f"Guess fraction {f!r}: expected a number in (0, 1].")
        k = max(1, math.floor(f * m / 2))
        if (k, k) not in choices:
            choices.append((k, k))
    return choices


def audit_from_scores(
    scores: np.ndarray,
    included: np.ndarray,
    delta: float,
    confidence: float = 0.95,
    k_choices: Sequence[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """Best Theorem 3.1 lower bound over a fixed set of ``(k_plus, k_minus)``.

    ``k_choices`` must be fixed before looking at the scores; the default is
    :func:`symmetric_k_choices` of ``DEFAULT_GUESS_FRACTIONS``. Each of the K
    distinct choices is tested at confidence ``1 - (1 - confidence) / K``
    (Bonferroni), so the maximum over them holds at ``confidence``. Returns the
    best choice: ``epsilon_lower_bound``, ``guesses`` (r), ``correct`` (v),
    ``k_plus``, ``k_minus``, ``canaries`` (m), ``confidence`` (overall) and
    ``choices`` (K). Ties go to the earliest choice.
    """
    values = _check_scores(scores)
    mask = np.asarray(included)
    if mask.dtype != np.bool_ or mask.shape != values.shape:
        raise ConfigError(
            f"included has dtype {mask.dtype} and shape {mask.shape}; expected a "
            f"boolean mask of shape {values.shape}, True for canaries in training."
        )
    m = values.size
    _check_delta(delta)
    _check_confidence(confidence)
    choices = _distinct_choices(m, k_choices)
    per_choice = 1 - (1 - confidence) / len(choices)
    truth = np.where(mask, 1, -1)
    results = []
    for k_plus, k_minus in choices:
        guesses = guesses_from_scores(values, k_plus, k_minus)
        correct = int(np.sum(guesses == truth))
        bound = epsilon_lower_bound(k_plus + k_minus, correct, m, delta, per_choice)
        results.append(
            {
                "epsilon_lower_bound": bound,
                "guesses": k_plus + k_minus,
                "correct": correct,
                "k_plus": k_plus,
                "k_minus": k_minus,
            }
        )
    best = max(results, key=lambda result: result["epsilon_lower_bound"])
    return {**best, "canaries": m, "confidence": confidence, "choices": len(choices)}


def _distinct_choices(
    m: int, k_choices: Sequence[tuple[int, int]] | None
) -> list[tuple[int, int]]:
    if k_choices is None:
        return symmetric_k_choices(m)
    choices: list[tuple[int, int]] = []
    for item in k_choices:
        pair = isinstance(item, Sequence) and len(item) == 2
        if not pair or not all(_is_int(k) and k >= 0 for k in item):
            raise ConfigError(
                f"k_choices entry {item!r}: expected a pair (k_plus, k_minus) of "
                "integers >= 0."
            )
        k_plus, k_minus = int(item[0]), int(item[1])
        if not 1 <= k_plus + k_minus <= m:
            raise ConfigError(
                f"k_choices entry {item!r}: needs between 1 and {m} guesses in total."
            )
        if (k_plus, k_minus) not in choices:
            choices.append((k_plus, k_minus))
    if not choices:
        raise ConfigError("k_choices is empty; give at least one (k_plus, k_minus).")
    return choices


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_counts(r: int, v: int, m: int) -> None:
    for name, value in (("r", r), ("v", v), ("m", m)):
        if not _is_int(value):
            raise ConfigError(f"{name} = {value!r}: expected an integer count.")
    if not (0 <= v <= r <= m and m >= 1):
        raise ConfigError(
            f"Got v={v} correct of r={r} guesses on m={m} canaries; need "
            "0 <= v <= r <= m and m >= 1."
        )


def _check_delta(delta: float) -> None:
    if not (isinstance(delta, Real) and 0 <= delta < 1):
        raise ConfigError(f"delta = {delta!r}: expected a number in [0, 1).")


def _check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, Real) and 0 < confidence < 1):
        raise ConfigError(
            f"confidence = {confidence!r}: expected a number in (0, 1), e.g. 0.95."
        )
    return float(confidence)


def _check_scores(scores: np.ndarray) -> np.ndarray:
    try:
        values = np.asarray(scores, dtype=float)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"scores are not numbers: {error}.") from error
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ConfigError(
            f"scores has shape {values.shape}; expected a non-empty 1-D array of "
            "finite numbers, one per canary."
        )
    return values
