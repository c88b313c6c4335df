"""Known answers, an independent oracle and seeded simulations for audit_stats.

The simulated mechanism is randomized response with a known epsilon: canary i
outputs ``S_i`` with probability ``e^eps / (1 + e^eps)`` and ``-S_i`` otherwise,
which is exactly eps-DP in each ``S_i`` and is the worst case of Theorem 3.1, so
guessing every output makes ``v ~ Binomial(m, e^eps / (1 + e^eps))`` exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from client.privacy.audit_stats import (
    audit_from_scores,
    epsilon_lower_bound,
    guesses_from_scores,
    log_p_value,
    symmetric_k_choices,
)
from shared_models.errors import ConfigError

CONFIDENCE = 0.95


def _closed_form_all_correct(r: int, alpha: float) -> float:
    """delta = 0, v = r: the p-value is q^r, so the bound is logit(alpha^(1/r))."""
    q = alpha ** (1 / r)
    return math.log(q / (1 - q))


def _oracle_p_value(r: int, v: int, m: int, eps: float, delta: float) -> float:
    """Theorem 3.1's right-hand side by direct summation, max over all i = 1..m."""
    q = math.exp(eps) / (1 + math.exp(eps))
    pmf = [math.comb(r, k) * q**k * (1 - q) ** (r - k) for k in range(r + 1)]
    tail = sum(pmf[v:])
    alpha = max(sum(pmf[max(v - i, 0) : v]) / i for i in range(1, m + 1))
    return min(1.0, tail + 2 * m * delta * alpha)


def _randomized_response(rng: np.random.Generator, m: int, eps: float):
    included = rng.random(m) < 0.5
    truth = np.where(included, 1, -1)
    keep = rng.random(m) < math.exp(eps) / (1 + math.exp(eps))
    return included, np.where(keep, truth, -truth)


# --- known behaviour -------------------------------------------------------------


@pytest.mark.parametrize("delta", [0.0, 1e-5])
def test_chance_level_rejects_nothing(delta: float) -> None:
    assert epsilon_lower_bound(1000, 500, 1000, delta) == 0.0
    assert epsilon_lower_bound(0, 0, 10, delta) == 0.0


def test_all_correct_is_positive_and_grows_with_the_number_of_guesses() -> None:
    bounds = [epsilon_lower_bound(r, r, 1000, 1e-5) for r in (10, 100, 1000)]
    assert 0 < bounds[0] < bounds[1] < bounds[2]


@pytest.mark.parametrize("delta", [0.0, 1e-5, 1e-3])  # 2*m*delta = 0, 0.02, 2
def test_monotone_in_correct_guesses(delta: float) -> None:
    bounds = [epsilon_lower_bound(200, v, 1000, delta) for v in range(201)]
    assert all(a <= b for a, b in zip(bounds, bounds[1:], strict=False))
    assert bounds[0] == 0.0 and bounds[-1] > 1


@pytest.mark.parametrize(("r", "v"), [(100, 75), (100, 100), (1000, 700), (50, 45)])
def test_delta_only_weakens_the_bound(r: int, v: int) -> None:
    pure = epsilon_lower_bound(r, v, 1000, 0.0)
    assert epsilon_lower_bound(r, v, 1000, 1e-6) <= pure
    assert epsilon_lower_bound(r, v, 1000, 1e-4) <= epsilon_lower_bound(
        r, v, 1000, 1e-6
    )


def test_higher_confidence_gives_a_smaller_bound() -> None:
    assert epsilon_lower_bound(100, 90, 1000, 1e-5, 0.99) < epsilon_lower_bound(
        100, 90, 1000, 1e-5, 0.9
    )


# --- known answers -----------------------------------------------------------------


@pytest.mark.parametrize("r", [10, 100, 1000])
def test_pure_all_correct_matches_the_closed_form(r: int) -> None:
    expected = _closed_form_all_correct(r, 1 - CONFIDENCE)
    assert epsilon_lower_bound(r, r, r, 0.0) == pytest.approx(expected, abs=1e-8)


def test_pinned_all_correct_100_guesses() -> None:
    # logit(0.05 ** (1 / 100)): 100 of 100 correct rejects eps < 3.49297 at 95%.
    assert epsilon_lower_bound(100, 100, 100, 0.0) == pytest.approx(3.4929654, abs=1e-7)


@pytest.mark.parametrize(
    ("m", "r", "v", "delta", "published"),
    [
        # Inputs and 3-digit outputs attributed to arXiv:2305.08846v1 (App. D example
        # and Sec. 7) by a third-party reproduction of its Appendix D algorithm.
        (1000, 100, 75, 1e-4, 0.673),
        (100_000, 1510, 1439, 1e-5, 2.675),
    ],
)
def test_reported_paper_values(
    m: int, r: int, v: int, delta: float, published: float
) -> None:
    assert epsilon_lower_bound(r, v, m, delta) == pytest.approx(published, abs=1e-3)


@pytest.mark.parametrize("eps", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("v", [18, 25, 30])
def test_p_value_matches_direct_summation(eps: float, v: int) -> None:
    expected = _oracle_p_value(30, v, 200, eps, 1e-3)
    assert math.exp(log_p_value(30, v, 200, eps, 1e-3)) == pytest.approx(
        expected, rel=1e-9
    )


def test_bound_sits_on_the_oracle_threshold() -> None:
    r, v, m, delta = 30, 28, 200, 1e-3
    eps = epsilon_lower_bound(r, v, m, delta)
    assert _oracle_p_value(r, v, m, eps, delta) < 1 - CONFIDENCE
    assert _oracle_p_value(r, v, m, eps + 1e-6, delta) >= 1 - CONFIDENCE


# --- validity and tightness by simulation ------------------------------------------


def test_randomized_response_bound_is_valid_at_the_stated_confidence() -> None:
    rng = np.random.default_rng(20230515)
    m, eps, repetitions = 1000, 1.0, 400
    bounds = []
    for _ in range(repetitions):
        included, outputs = _randomized_response(rng, m, eps)
        correct = int(np.sum(outputs == np.where(included, 1, -1)))
        bounds.append(epsilon_lower_bound(m, correct, m, 0.0))
    bounds = np.array(bounds)
    # Exceeding eps has probability <= 5%: allow 3 binomial standard deviations.
    assert np.mean(bounds <= eps) >= 0.92
    assert np.median(bounds) > 0.8 * eps


def test_score_audit_of_randomized_response_is_valid_and_close() -> None:
    rng = np.random.default_rng(7)
    m, eps = 4000, 2.0
    results = []
    for _ in range(40):
        included, outputs = _randomized_response(rng, m, eps)
        scores = outputs + 0.01 * rng.standard_normal(m)
        results.append(audit_from_scores(scores, included, delta=1e-5))
    bounds = np.array([result["epsilon_lower_bound"] for result in results])
    # At most 5% may exceed eps: 2 of 40 expected, allow 3 standard deviations.
    assert np.mean(bounds <= eps) >= 0.85
    assert np.min(bounds) > 0.5 * eps
    assert np.median(bounds) > 0.85 * eps


def test_delta_term_keeps_a_leaky_mechanism_audit_valid() -> None:
    # Each canary is revealed outright with probability delta, else randomized
    # response: (eps, delta)-DP but not eps-DP. The few revealed canaries get
    # extreme scores, so small guess counts are all correct. Pretending delta = 0
    # overshoots eps; with the true delta (2 m delta = 40) nothing is rejected.
    rng = np.random.default_rng(11)
    m, eps, delta = 1000, 0.5, 0.02
    choices = [(10, 10), (50, 50), (500, 500)]
    with_delta, pure = [], []
    for _ in range(40):
        included, outputs = _randomized_response(rng, m, eps)
        revealed = rng.random(m) < delta
        scores = np.where(revealed, 10.0 * np.where(included, 1, -1), outputs)
        scores = scores + 0.01 * rng.standard_normal(m)
        with_delta.append(audit_from_scores(scores, included, delta, 0.95, choices))
        pure.append(audit_from_scores(scores, included, 0.0, 0.95, choices))
    assert all(result["epsilon_lower_bound"] <= eps for result in with_delta)
    assert np.mean([result["epsilon_lower_bound"] > eps for result in pure]) > 0.5


# --- guesses and the score-level audit ---------------------------------------------


def test_guesses_from_scores_picks_extremes_and_breaks_ties_by_position() -> None:
    scores = np.array([0.5, 3.0, -1.0, 3.0, 0.0, -1.0])
    assert guesses_from_scores(scores, 1, 1).tolist() == [0, 0, -1, 1, 0, 0]
    assert guesses_from_scores(scores, 2, 0).tolist() == [0, 1, 0, 1, 0, 0]
    assert guesses_from_scores(scores, 0, 0).tolist() == [0] * 6
    assert guesses_from_scores(scores, 3, 3).tolist() == [1, 1, -1, 1, -1, -1]


def test_audit_from_scores_reports_the_best_bonferroni_corrected_choice() -> None:
    included = np.array([True, False] * 50)
    scores = np.where(included, 1.0, -1.0) + np.linspace(0, 0.1, 100)
    choices = [(5, 5), (25, 25), (50, 50)]
    result = audit_from_scores(scores, included, 1e-5, 0.95, choices)
    corrected = 1 - 0.05 / 3
    expected = max(
        epsilon_lower_bound(2 * k, 2 * k, 100, 1e-5, corrected) for k in (5, 25, 50)
    )
    assert result == {
        "epsilon_lower_bound": pytest.approx(expected),
        "guesses": 100,
        "correct": 100,
        "k_plus": 50,
        "k_minus": 50,
        "canaries": 100,
        "confidence": 0.95,
        "choices": 3,
    }
    single = audit_from_scores(scores, included, 1e-5, 0.95, [(50, 50)])
    assert single["epsilon_lower_bound"] > result["epsilon_lower_bound"]


def test_default_choices_are_fixed_fractions_of_the_canaries() -> None:
    assert symmetric_k_choices(1000) == [
        (5, 5),
        (10, 10),
        (25, 25),
        (50, 50),
        (100, 100),
        (250, 250),
        (500, 500),
    ]
    assert symmetric_k_choices(10) == [(1, 1), (2, 2), (5, 5)]


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        (10, 11, 100, 1e-5),  # v > r
        (101, 50, 100, 1e-5),  # r > m
        (10, -1, 100, 1e-5),
        (10.0, 5, 100, 1e-5),
        (True, 1, 100, 1e-5),
        (10, 5, 100, -1e-5),
        (10, 5, 100, 1.0),
        (10, 5, 100, float("nan")),
    ],
)
def test_invalid_counts_raise_config_error(args: tuple) -> None:
    with pytest.raises(ConfigError):
        epsilon_lower_bound(*args)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, float("nan")])
def test_invalid_confidence_raises_config_error(confidence: float) -> None:
    with pytest.raises(ConfigError, match="confidence"):
        epsilon_lower_bound(10, 10, 10, 0.0, confidence)


def test_invalid_scores_and_masks_raise_config_error() -> None:
    scores, mask = np.zeros(4), np.array([True, False, True, False])
    with pytest.raises(ConfigError, match="k_plus"):
        guesses_from_scores(scores, 3, 2)
    with pytest.raises(ConfigError, match="k_minus"):
        guesses_from_scores(scores, 1, -1)
    with pytest.raises(ConfigError, match="finite"):
        guesses_from_scores(np.array([0.0, np.nan]), 1, 0)
    with pytest.raises(ConfigError, match="boolean mask"):
        audit_from_scores(scores, mask.astype(int), 1e-5)
    with pytest.raises(ConfigError, match="boolean mask"):
        audit_from_scores(scores, mask[:3], 1e-5)
    with pytest.raises(ConfigError, match="k_choices"):
        audit_from_scores(scores, mask, 1e-5, k_choices=[(3, 2)])
    with pytest.raises(ConfigError, match="k_choices"):
        audit_from_scores(scores, mask, 1e-5, k_choices=[])
    with pytest.raises(ConfigError, match="k_choices"):
        audit_from_scores(scores, mask, 1e-5, k_choices=[2])
