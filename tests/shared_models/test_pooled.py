"""Pooled metrics from score histograms, against sklearn on the raw scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from shared_models import pooled


def _data(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    scores = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.0, 1.0)
    return y, scores


def _bin(scores: np.ndarray, kind: str = "binary") -> np.ndarray:
    edges = pooled.bin_edges(kind)
    return np.clip(
        np.searchsorted(edges, scores, side="right") - 1, 0, pooled.N_BINS - 1
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_is_sklearns_within_the_within_bin_tie_bound(seed: int) -> None:
    """Binning changes only pairs (positive, negative) that share a bin: sklearn
    scores them 1 or 0, the histogram 1/2. So |binned - exact| <= sum_b pos_b neg_b
    / (2 P N)."""
    y, scores = _data(seed)
    hist = np.asarray(pooled.histogram(y, scores, "binary"))
    bound = 0.5 * float((hist[0] * hist[1]).sum()) / (hist[0].sum() * hist[1].sum())

    got = pooled.auroc(hist)

    assert abs(got - roc_auc_score(y, scores)) <= bound
    assert bound < 0.005  # 400 bins: the bound is small for 3000 examples
    assert got == pytest.approx(
        roc_auc_score(y, _bin(scores)), abs=1e-12
    )  # exact on bins


def test_auprc_equals_average_precision_of_the_binned_scores() -> None:
    y, scores = _data(3)
    hist = np.asarray(pooled.histogram(y, scores, "binary"))

    assert pooled.auprc(hist) == pytest.approx(
        average_precision_score(y, _bin(scores)), abs=1e-12
    )
    assert pooled.auprc(hist) == pytest.approx(
        average_precision_score(y, scores), abs=0.01
    )


def test_metrics_at_an_edge_match_sklearn_on_the_same_decisions() -> None:
    y, scores = _data(4)
    hist = np.asarray(pooled.histogram(y, scores, "binary"))
    edge = 180
    decided = (_bin(scores) >= edge).astype(int)

    got = pooled.at_edge(hist, edge)

    assert got["f1"] == pytest.approx(f1_score(y, decided))
    assert got["precision"] == pytest.approx(precision_score(y, decided))
    assert got["recall"] == pytest.approx(recall_score(y, decided))
    assert got["accuracy"] == pytest.approx(np.mean(decided == y))


def test_best_f1_edge_is_the_brute_force_best() -> None:
    y, scores = _data(5)
    hist = np.asarray(pooled.histogram(y, scores, "binary"))
    brute = [
        f1_score(y, (_bin(scores) >= e).astype(int), zero_division=0.0)
        for e in range(1, pooled.N_BINS)
    ]

    assert pooled.best_f1_edge(hist) == 1 + int(np.argmax(brute))


def test_known_answer_histogram_auroc_and_pool() -> None:
    # negatives at 0.1, 0.1, 0.6; positives at 0.6, 0.9 -> pairs: 2+2 wins, 1 tie, 1 win
    a = np.asarray(
        pooled.histogram(np.array([0, 0, 1]), np.array([0.1, 0.1, 0.6]), "binary")
    )
    b = np.asarray(pooled.histogram(np.array([0, 1]), np.array([0.6, 0.9]), "binary"))

    both = pooled.pool([a, b])

    assert both.sum() == 5 and both[1].sum() == 2
    assert pooled.auroc(both) == pytest.approx((2 + 2 + 0.5 + 1) / 6)
    assert pooled.auroc(a[:, :] * np.array([[1], [0]])) is None  # no positives
    assert pooled.auprc(np.zeros((2, pooled.N_BINS), dtype=int)) is None


def test_scores_outside_the_log_range_are_clipped_into_the_end_bins() -> None:
    hist = np.asarray(
        pooled.histogram(
            np.array([0, 0, 1, 1]), np.array([1e-9, 1.0, 1e4, 1e9]), "reconstruction"
        )
    )

    assert hist[0][0] == 1 and hist[0][240] == 1  # log10(1.0) = 0 is 6/10 of [-6, 4]
    assert hist[1][-1] == 2  # the top edge itself and beyond land in the last bin
    edges = pooled.bin_edges("reconstruction")
    assert edges[0] == pytest.approx(1e-6) and edges[-1] == pytest.approx(1e4)


def test_percentile_edge_leaves_that_share_of_negatives_below() -> None:
    rng = np.random.default_rng(6)
    scores = 10 ** rng.uniform(-3, 1, 5000)
    hist = np.asarray(
        pooled.histogram(np.zeros(5000, dtype=int), scores, "reconstruction")
    )

    edge = pooled.percentile_edge(hist, 97.5)

    assert hist[0][:edge].sum() / 5000 >= 0.975
    assert hist[0][: edge - 1].sum() / 5000 < 0.975


def test_encode_decode_round_trip() -> None:
    y, scores = _data(7, n=50)
    hist = pooled.histogram(y, scores, "binary")

    assert pooled.decode(pooled.encode(hist)).tolist() == hist
