"""A metric the data cannot support is None (the report prints "n/a"), never 0."""

from __future__ import annotations

import numpy as np
import pytest

from server import evaluation
from shared_models import metrics, pooled


def _hist(neg: list[float], pos: list[float], kind: str = "binary") -> np.ndarray:
    """A score histogram of negatives ``neg`` and positives ``pos``."""
    scores = np.asarray(neg + pos, dtype=float)
    labels = np.asarray([0] * len(neg) + [1] * len(pos))
    return np.asarray(pooled.histogram(labels, scores, kind))


def test_counts_metrics_are_none_exactly_where_a_denominator_is_zero() -> None:
    # no positives, two false alarms: F1 and recall undefined, precision 0
    assert metrics.counts_metrics(tp=0, fp=2, fn=0, tn=3) == {
        "f1": None,
        "precision": 0.0,
        "recall": None,
        "accuracy": 0.6,
    }
    # positives, nothing flagged: precision undefined, F1 and recall 0
    got = metrics.counts_metrics(tp=0, fp=0, fn=4, tn=1)
    assert got["precision"] is None and got["f1"] == 0.0 and got["recall"] == 0.0
    assert metrics.counts_metrics(0, 0, 0, 0) == dict.fromkeys(
        ("f1", "precision", "recall", "accuracy")
    )
    # the harmonic mean of precision 2/3 and recall 1/2
    assert metrics.counts_metrics(2, 1, 2, 5)["f1"] == pytest.approx(4 / 7)


def test_binary_metrics_without_positives() -> None:
    got = metrics.binary_metrics(np.zeros(6), np.linspace(0, 1, 6), threshold=0.5)
    assert got["positives"] == 0
    for name in ("auroc", "auprc", "f1", "recall"):
        assert got[name] is None, name
    assert got["precision"] == 0.0  # 3 flagged, all false
    assert got["accuracy"] == 0.5


def test_binary_metrics_without_negatives() -> None:
    got = metrics.binary_metrics(np.ones(4), np.asarray([0.1, 0.6, 0.7, 0.9]))
    assert got["auroc"] is None and got["auprc"] is None
    assert got["recall"] == 0.75 and got["precision"] == 1.0
    assert got["f1"] == pytest.approx(2 * 0.75 / 1.75)


def test_binary_metrics_match_sklearn_where_defined() -> None:
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    got = metrics.binary_metrics(y, score, threshold=0.5)
    pred = (score >= 0.5).astype(int)
    assert got["f1"] == pytest.approx(f1_score(y, pred))
    assert got["precision"] == pytest.approx(precision_score(y, pred))
    assert got["recall"] == pytest.approx(recall_score(y, pred))


def test_regression_and_multiclass_without_examples() -> None:
    assert metrics.regression_metrics(np.zeros(0), np.zeros(0)) == {
        "n": 0,
        "mae_days": None,
        "rmse_days": None,
    }
    got = metrics.multiclass_metrics(np.zeros(0), np.zeros((0, 3)), ["a", "b", "c"])
    assert got["accuracy"] is None and got["macro_f1"] is None
    assert got["recall_per_class"] == {"a": None, "b": None, "c": None}
    # a class absent from the split has no recall, the others do
    proba = np.asarray([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    got = metrics.multiclass_metrics(np.asarray([0, 1, 1]), proba, ["a", "b", "c"])
    assert got["recall_per_class"] == {"a": 1.0, "b": 0.5, "c": None}


def test_anomaly_metrics_without_scores() -> None:
    got = metrics.anomaly_metrics(None, np.zeros(0), threshold=1.0)
    assert got["flagged_fraction"] is None and got["mean_score"] is None


@pytest.mark.parametrize("kind", ["binary", "reconstruction"])
def test_pooled_summary_of_a_split_without_positives(kind: str) -> None:
    hist = _hist([0.1, 0.2, 0.7], [], kind)
    got = pooled.summary(hist, pooled.N_BINS // 2, kind)
    assert got["n"] == 3 and got["positives"] == 0
    for name in ("auroc", "auprc", "f1", "recall"):
        assert got[name] is None, name
    # without negatives AUPRC is 1 for any model: not supported either
    assert pooled.auprc(_hist([], [0.3, 0.9], kind)) is None
    assert pooled.best_f1_edge(hist) == pooled.N_BINS // 2  # no F1 to maximise


def test_pooled_at_edge_matches_the_old_formula_where_defined() -> None:
    hist = _hist([0.1, 0.2, 0.3, 0.6, 0.8], [0.4, 0.7, 0.9])
    edge = int(np.searchsorted(pooled.bin_edges("binary"), 0.5))
    got = pooled.at_edge(hist, edge)
    precision, recall = 2 / 4, 2 / 3  # flagged 0.6 0.7 0.8 0.9
    assert got["precision"] == pytest.approx(precision)
    assert got["recall"] == pytest.approx(recall)
    assert got["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_a_round_without_validation_positives_never_wins_nor_crashes() -> None:
    """The pooled validation has no positives in round 1: F1 None, not 0."""
    empty = {"val-histogram": _hist([0.2, 0.3], []), "test-histogram": _hist(
        [0.2], [0.8])}  # fmt: skip
    good = {"val-histogram": _hist([0.2, 0.3], [0.9]), "test-histogram": _hist(
        [0.2], [0.8])}  # fmt: skip
    task = "ecg-arrhythmia"
    first = evaluation.pooled_result(task, empty)
    second = evaluation.pooled_result(task, good)
    assert first["validation"]["f1"] is None
    ranked = [evaluation.selection_metrics(r, task) for r in (first, second)]
    assert not evaluation.is_better(task, ranked[0], None)
    assert evaluation.is_better(task, ranked[1], ranked[0])
    assert not evaluation.is_better(task, ranked[0], ranked[1])


def test_the_best_round_of_a_summary_skips_unsupported_rounds() -> None:
    from simulation.runner import _best_round

    def record(number: int, f1: float | None) -> dict:
        return {"round": number, "evaluation": {"pooled": {"f1": f1},
                                                "validation": {"f1": f1}}}  # fmt: skip

    rounds = [record(1, None), record(2, 0.4), record(3, None), record(4, 0.3)]
    assert _best_round("ecg-arrhythmia", rounds)[0] == 2
    # nothing to rank on: models/best is the latest evaluated round
    assert _best_round("ecg-arrhythmia", [record(1, None), record(2, None)])[0] == 2


def test_pool_own_without_positives_has_no_f1() -> None:
    from simulation.baselines import pool_own

    hist = _hist([0.1, 0.6], []).tolist()
    local = {"h1": {"test_histogram": hist, "threshold": 0.5}}
    got = pool_own("icu-deterioration", local)
    assert got["positives"] == 0 and got["f1"] is None and got["auroc"] is None
