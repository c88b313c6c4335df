"""Global evaluation: pooled metrics from the hospitals' summed histograms.

Hospitals send score histograms of their validation and test splits
(classification and anomaly tasks) or error sums (length of stay), masked by
SecAgg+: the aggregator sees only their sums (``shared_models.wire``). The
decision threshold of the global model is chosen on the POOLED validation
histograms (best F1 for classifiers; a percentile of normal scores for
autoencoders) and every metric at a threshold, pooled or per hospital, is
taken at that one threshold; each hospital computes its own metrics at it
and keeps them. Pooled AUROC is over all hospitals' test examples, from
their histograms (see ``shared_models.pooled``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shared_models import pooled

ANOMALY_PERCENTILE = {"ecg-anomaly": 97.5, "signal-anomaly": 99.0}


def task_kind(task: str) -> str:
    if task == "icu-los":
        return "regression"
    return "reconstruction" if task in ANOMALY_PERCENTILE else "binary"


def primary_metric(task: str) -> tuple[str, bool]:
    """(metric name, higher is better) used to pick the best round (on the
    pooled validation histograms, see ``selection_metrics``)."""
    if task == "icu-los":
        return "mae_days", False
    return ("auprc", True) if task in ANOMALY_PERCENTILE else ("f1", True)


def pooled_result(task: str, sums: dict[str, Any]) -> dict[str, Any]:
    """The pooled evaluation from the hospitals' summed histograms or error
    sums (``shared_models.wire.unpool``): {"pooled", "threshold", "edge",
    "validation"}. ``edge`` (the threshold's bin) is what hospitals get back
    to compute their own metrics at the pooled threshold."""
    kind = task_kind(task)
    if kind == "regression":
        n = int(sums["n"])
        return {
            "pooled": _errors(n, sums["sum-abs-error"], sums["sum-sq-error"]),
            "threshold": None,
            "edge": None,
        }
    val = np.asarray(sums["val-histogram"], dtype=np.int64)
    test = np.asarray(sums["test-histogram"], dtype=np.int64)
    if kind == "binary":
        edge = pooled.best_f1_edge(val)
    else:
        edge = pooled.percentile_edge(val, ANOMALY_PERCENTILE[task])
    result = pooled.summary(test, edge, kind)
    return {
        "pooled": result,
        "threshold": result["threshold"],
        "edge": int(edge),
        # What the best round is chosen on: never the test splits.
        "validation": pooled.summary(val, edge, kind),
    }


def judge_parts(
    task: str, val: np.ndarray | None, tests: dict[str, Any]
) -> dict[str, Any]:
    """Where one party holds every part (the simulation's baselines): the
    pooled result as :func:`pooled_result`, plus each part's own metrics at
    the pooled threshold under ``hospitals``. ``tests`` maps a name to its test
    histogram, or for length of stay to ``{"n", "sum-abs-error",
    "sum-sq-error"}``."""
    if not tests:
        return {"pooled": {}, "hospitals": {}, "threshold": None}
    kind = task_kind(task)
    if kind == "regression":
        total = {
            k: sum(t[k] for t in tests.values())
            for k in ("n", "sum-abs-error", "sum-sq-error")
        }
        result = pooled_result(task, total)
        result["hospitals"] = {
            h: _errors(int(t["n"]), t["sum-abs-error"], t["sum-sq-error"])
            for h, t in tests.items()
        }
        return result
    result = pooled_result(
        task,
        {"val-histogram": val, "test-histogram": pooled.pool(list(tests.values()))},
    )
    result["hospitals"] = {
        h: pooled.summary(np.asarray(t), result["edge"], kind) for h, t in tests.items()
    }
    return result


def selection_metrics(result: dict[str, Any], task: str = "") -> dict[str, Any]:
    """The metrics a round is ranked on: pooled validation.

    Length of stay has no validation replies (hospitals send test error sums
    only), so its best round is ranked on the pooled test errors. A
    classification round without a validation entry (recorded before rounds
    were ranked on validation) is not ranked: ``{}``.
    """
    if "validation" in result:
        return result["validation"] or {}
    if task_kind(task) == "regression" or not task:
        return result.get("pooled") or {}
    return {}


def _errors(n: int, abs_sum: float, sq_sum: float) -> dict[str, Any]:
    return {
        "n": int(n),
        "mae_days": abs_sum / n if n else None,
        "rmse_days": math.sqrt(sq_sum / n) if n else None,
    }


def is_better(task: str, new: dict[str, Any], best: dict[str, Any] | None) -> bool:
    name, higher = primary_metric(task)
    value = new.get(name)
    if value is None:
        return False
    if best is None or best.get(name) is None:
        return True
    return value > best[name] if higher else value < best[name]


def weighted_mean(values: list[tuple[int, float]]) -> float | None:
    total = sum(n for n, _ in values)
    return (
        float(np.dot([n for n, _ in values], [v for _, v in values]) / total)
        if total
        else None
    )
