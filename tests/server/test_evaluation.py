"""Global evaluation pooled from hand-made hospital histograms."""

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


def _reply(hospital: str, val: np.ndarray, test: np.ndarray) -> tuple[int, dict]:
    return int(test.sum()), {
        "hospital-id": hospital,
        "val-histogram": pooled.encode(val.tolist()),
        "test-histogram": pooled.encode(test.tolist()),
    }


def test_threshold_is_chosen_on_pooled_validation_and_applied_everywhere() -> None:
    # each hospital alone would cut elsewhere; the cut is taken on the pooled histogram
    val1 = _hist({50: 10, 250: 1}, {150: 3})
    val2 = _hist({50: 10}, {350: 4})
    test1 = _hist({50: 5, 320: 1}, {310: 2})
    test2 = _hist({60: 5}, {20: 1, 390: 3})

    result = evaluation.aggregate(
        "ecg-arrhythmia", [_reply("h1", val1, test1), _reply("h2", val2, test2)]
    )

    edge = pooled.best_f1_edge(val1 + val2)
    assert result["threshold"] == pytest.approx(pooled.bin_edges("binary")[edge])
    assert result["hospitals"]["h1"]["threshold"] == result["threshold"]
    pooled_test = result["pooled"]
    assert pooled_test["n"] == 17 and pooled_test["positives"] == 6
    assert pooled_test == pooled.summary(test1 + test2, edge, "binary")
    assert result["hospitals"]["h2"] == pooled.summary(test2, edge, "binary")
    # pooled AUROC is over all examples, not the mean of the hospitals' AUROCs
    mean = (result["hospitals"]["h1"]["auroc"] + result["hospitals"]["h2"]["auroc"]) / 2
    assert pooled_test["auroc"] != pytest.approx(mean)


def test_anomaly_threshold_is_a_percentile_of_pooled_normal_scores() -> None:
    val = _hist({b: 1 for b in range(100, 200)}, {})  # 100 normal scores, one per bin
    test = _hist({120: 9}, {300: 1})

    result = evaluation.aggregate("ecg-anomaly", [_reply("h1", val, test)])

    assert result["threshold"] == pytest.approx(
        pooled.bin_edges("reconstruction")[198]
    )  # 98 % below
    assert result["pooled"]["recall"] == 1.0 and result["pooled"]["precision"] == 1.0


def test_regression_pools_errors_over_all_examples() -> None:
    replies = [
        (2, {"hospital-id": "a", "sum-abs-error": 4.0, "sum-sq-error": 10.0}),
        (8, {"hospital-id": "b", "sum-abs-error": 6.0, "sum-sq-error": 30.0}),
    ]

    result = evaluation.aggregate("icu-los", replies)

    assert result["pooled"] == {
        "n": 10,
        "mae_days": 1.0,
        "rmse_days": pytest.approx(2.0),
    }
    assert result["hospitals"]["a"]["mae_days"] == 2.0
    assert result["threshold"] is None


def test_no_replies_gives_empty_result() -> None:
    assert evaluation.aggregate("ecg-arrhythmia", []) == {
        "pooled": {},
        "hospitals": {},
        "threshold": None,
    }


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
    a = evaluation.aggregate("ecg-arrhythmia", [_reply("h1", good_val, bad_test)])
    b = evaluation.aggregate("ecg-arrhythmia", [_reply("h1", bad_val, good_test)])

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
    result = evaluation.aggregate(
        "icu-los",
        [(4, {"hospital-id": "h1", "sum-abs-error": 8.0, "sum-sq-error": 20.0})],
    )
    assert "validation" not in result
    assert evaluation.selection_metrics(result, "icu-los") == result["pooled"]
    # a classifier's round recorded without validation is not ranked on test
    legacy = {"pooled": {"f1": 0.9}, "hospitals": {}}
    assert evaluation.selection_metrics(legacy, "ecg-arrhythmia") == {}
