"""Global evaluation from hand-made pooled sums (what SecAgg+ unmasks)."""

from __future__ import annotations

import numpy as np
import pytest

from server import evaluation
from shared_models import pooled

N = pooled.N_BINS


def _hist(neg: dict[int, int], pos: dict[int, int]) -> np.ndarray:
    hist = np.zeros((2, N), dtype=int)
    for row, counts in ((0, neg), (1, pos)):
        for b, c in counts.items():
            hist[row, b] = c
    return hist


def _sums(val: np.ndarray, test: np.ndarray) -> dict:
    return {"val-histogram": val, "test-histogram": test}


def test_threshold_is_chosen_on_pooled_validation_and_applied_everywhere() -> None:
    # each hospital alone would cut elsewhere; the cut is taken on the pooled histogram
    val1 = _hist({50: 10, 250: 1}, {150: 3})
    val2 = _hist({50: 10}, {350: 4})
    test1 = _hist({50: 5, 320: 1}, {310: 2})
    test2 = _hist({60: 5}, {20: 1, 390: 3})

    result = evaluation.pooled_result(
        "ecg-arrhythmia", _sums(val1 + val2, test1 + test2)
    )

    edge = pooled.best_f1_edge(val1 + val2)
    assert result["edge"] == edge  # sent back: each hospital cuts there
    assert result["threshold"] == pytest.approx(pooled.bin_edges("binary")[edge])
    pooled_test = result["pooled"]
    assert pooled_test["n"] == 17 and pooled_test["positives"] == 6
    assert pooled_test == pooled.summary(test1 + test2, edge, "binary")
    # pooled AUROC is over all examples, not the mean of the hospitals' AUROCs
    own = [pooled.summary(t, edge, "binary")["auroc"] for t in (test1, test2)]
    assert pooled_test["auroc"] != pytest.approx(sum(own) / 2)


def test_anomaly_threshold_is_a_percentile_of_pooled_normal_scores() -> None:
    val = _hist({b: 1 for b in range(100, 200)}, {})  # 100 normal scores, one per bin
    test = _hist({120: 9}, {300: 1})

    result = evaluation.pooled_result("ecg-anomaly", _sums(val, test))

    assert result["threshold"] == pytest.approx(
        pooled.bin_edges("reconstruction")[198]
    )  # 98 % below
    assert result["pooled"]["recall"] == 1.0 and result["pooled"]["precision"] == 1.0


def test_regression_pools_errors_over_all_examples() -> None:
    sums = {"n": 10, "sum-abs-error": 10.0, "sum-sq-error": 40.0}

    result = evaluation.pooled_result("icu-los", sums)

    assert result["pooled"] == {
        "n": 10,
        "mae_days": 1.0,
        "rmse_days": pytest.approx(2.0),
    }
    assert result["threshold"] is None and result["edge"] is None


@pytest.mark.parametrize(
    ("task", "new", "best", "better"),
    [
        ("ecg-arrhythmia", {"f1": 0.6}, {"f1": 0.5}, True),
        ("ecg-arrhythmia", {"f1": 0.5}, {"f1": 0.5}, False),
        ("ecg-anomaly", {"auprc": 0.4}, {"auprc": 0.5}, False),
        ("icu-los", {"mae_days": 1.0}, {"mae_days": 1.5}, True),
        ("icu-los", {"mae_days": None}, None, False),
        ("ecg-arrhythmia", {"f1": 0.1}, None, True),
    ],
)
def test_is_better(task: str, new: dict, best: dict | None, better: bool) -> None:
    assert evaluation.is_better(task, new, best) is better


def test_rounds_are_ranked_on_validation_never_on_test() -> None:
    good_val = _hist({50: 10}, {350: 4})
    bad_val = _hist({350: 10}, {50: 4})
    good_test = _hist({50: 10}, {350: 4})
    bad_test = _hist({350: 10}, {50: 4})
    # round A looks good on validation, bad on test; round B the other way round
    a = evaluation.pooled_result("ecg-arrhythmia", _sums(good_val, bad_test))
    b = evaluation.pooled_result("ecg-arrhythmia", _sums(bad_val, good_test))

    assert a["validation"] == pooled.summary(
        good_val, pooled.best_f1_edge(good_val), "binary"
    )
    ranked_a, ranked_b = (
        evaluation.selection_metrics(a),
        evaluation.selection_metrics(b),
    )
    assert ranked_a is a["validation"]
    assert evaluation.is_better("ecg-arrhythmia", ranked_a, ranked_b)
    assert not evaluation.is_better("ecg-arrhythmia", ranked_b, ranked_a)
    assert a["pooled"]["f1"] < b["pooled"]["f1"]  # test would have picked B


def test_length_of_stay_rounds_fall_back_to_the_test_errors() -> None:
    result = evaluation.pooled_result(
        "icu-los", {"n": 4, "sum-abs-error": 8.0, "sum-sq-error": 20.0}
    )
    assert "validation" not in result
    assert evaluation.selection_metrics(result, "icu-los") == result["pooled"]
    # a classifier's round recorded without validation is not ranked on test
    legacy = {"pooled": {"f1": 0.9}, "hospitals": {}}
    assert evaluation.selection_metrics(legacy, "ecg-arrhythmia") == {}


def test_judge_parts_gives_each_part_its_metrics_at_the_pooled_threshold() -> None:
    """The baselines' view (one party holds every part): pooled as the
    federation's, each hospital at the same pooled threshold."""
    val = _hist({50: 10, 250: 1}, {150: 3, 350: 4})
    tests = {"h1": _hist({50: 5, 320: 1}, {310: 2}), "h2": _hist({60: 5}, {390: 3})}

    result = evaluation.judge_parts("ecg-arrhythmia", val, tests)

    edge = pooled.best_f1_edge(val)
    assert result["pooled"] == pooled.summary(tests["h1"] + tests["h2"], edge, "binary")
    assert result["hospitals"]["h2"] == pooled.summary(tests["h2"], edge, "binary")
    los = evaluation.judge_parts(
        "icu-los",
        None,
        {"a": {"n": 2, "sum-abs-error": 4.0, "sum-sq-error": 10.0},
         "b": {"n": 8, "sum-abs-error": 6.0, "sum-sq-error": 30.0}},
    )  # fmt: skip
    assert los["pooled"]["mae_days"] == 1.0 and los["hospitals"]["a"]["mae_days"] == 2.0
