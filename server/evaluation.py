"""Global evaluation: per-hospital and pooled metrics from hospitals' replies.

Hospitals reply with score histograms of their validation and test splits
(classification and anomaly tasks) or error sums (length of stay). The
decision threshold of the global model is chosen on the POOLED validation
histograms (best F1 for classifiers; a percentile of normal scores for
autoencoders) and every metric at a threshold, pooled or per hospital, is
taken at that one threshold. Pooled AUROC is over all hospitals' test
examples, from their histograms (see ``shared_models.pooled``).
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


def aggregate(task: str, replies: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """(examples, metrics) per hospital -> {"pooled", "hospitals", "threshold"}."""
    if not replies:
        return {"pooled": {}, "hospitals": {}, "threshold": None}
    if task_kind(task) == "regression":
        return _regression(replies)
    kind = task_kind(task)
    val = pooled.pool([pooled.decode(m["val-histogram"]) for _, m in replies])
    if kind == "binary":
        edge = pooled.best_f1_edge(val)
    else:
        edge = pooled.percentile_edge(val, ANOMALY_PERCENTILE[task])
    tests = {
        str(m["hospital-id"]): pooled.decode(m["test-histogram"]) for _, m in replies
    }
    hospitals = {h: pooled.summary(hist, edge, kind) for h, hist in tests.items()}
    result = pooled.summary(pooled.pool(list(tests.values())), edge, kind)
    return {
        "pooled": result,
        "hospitals": hospitals,
        "threshold": result["threshold"],
        # What the best round is chosen on: never the test splits.
        "validation": pooled.summary(val, edge, kind),
    }


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


def _regression(replies: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    hospitals = {}
    total_n, total_abs, total_sq = 0, 0.0, 0.0
    for n, m in replies:
        hospitals[str(m["hospital-id"])] = _errors(
            n, m["sum-abs-error"], m["sum-sq-error"]
        )
        total_n += n
        total_abs += m["sum-abs-error"]
        total_sq += m["sum-sq-error"]
    return {
        "pooled": _errors(total_n, total_abs, total_sq),
        "hospitals": hospitals,
        "threshold": None,
    }


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
