"""Metrics of the four model tasks, shared by hospitals and the aggregator.

A metric that the data cannot support is ``None``, never a made-up number
(the report and the CLI print it as "n/a"): AUROC and AUPRC need both
classes; F1 and recall need a positive; precision needs a flagged example;
accuracy, MAE and RMSE need an example. ``ratio`` is the one rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or ``None`` when nothing supports it."""
    return float(numerator / denominator) if denominator else None


def counts_metrics(tp: float, fp: float, fn: float, tn: float) -> dict[str, Any]:
    """F1, precision, recall and accuracy of a confusion matrix (``None`` where
    undefined: F1 and recall without positives, precision without a flagged
    example, accuracy without examples)."""
    positives = tp + fn
    return {
        "f1": ratio(2 * tp, 2 * tp + fp + fn) if positives else None,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, positives),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
    }


def _ranked(y_true: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    from sklearn import metrics as skm  # not at the top: pooled.py needs no sklearn

    if len(np.unique(y_true)) < 2:
        return {"auroc": None, "auprc": None}
    return {
        "auroc": float(skm.roc_auc_score(y_true, score)),
        "auprc": float(skm.average_precision_score(y_true, score)),
    }


def _at_threshold(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    t, p = y_true.astype(bool), y_pred.astype(bool)
    return counts_metrics(
        float((t & p).sum()), float((~t & p).sum()),
        float((t & ~p).sum()), float((~t & ~p).sum()),
    )  # fmt: skip


def binary_metrics(
    y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5
) -> dict[str, float | int | None]:
    """AUROC, AUPRC, and F1/precision/recall/accuracy at ``score >= threshold``."""
    y_true = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=float)
    out: dict[str, float | int | None] = {"n": int(len(y_true))}
    out["positives"] = int(y_true.sum())
    out.update(_ranked(y_true, score))
    out.update(_at_threshold(y_true, (score >= threshold).astype(int)))
    return out


def multiclass_metrics(
    y_true: np.ndarray, proba: np.ndarray, class_names: list[str]
) -> dict[str, object]:
    """Accuracy, macro F1 and one-vs-rest macro AUROC over the classes present,
    and each class's recall (``None`` for a class with no example)."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(proba).argmax(axis=1)
    labels = list(range(len(class_names)))
    present = [k for k in labels if (y_true == k).any()]
    aurocs = [
        skm.roc_auc_score(y_true == k, proba[:, k])
        for k in present
        if 0 < (y_true == k).sum() < len(y_true)
    ]
    return {
        "n": int(len(y_true)),
        "accuracy": ratio(float((y_true == y_pred).sum()), len(y_true)),
        "macro_f1": float(
            skm.f1_score(
                y_true, y_pred, labels=present, average="macro", zero_division=0
            )
        )
        if present
        else None,
        "macro_auroc": float(np.mean(aurocs)) if aurocs else None,
        "recall_per_class": {
            class_names[k]: ratio(
                float(((y_true == k) & (y_pred == k)).sum()), (y_true == k).sum()
            )
            for k in labels
        },
        "support_per_class": {class_names[k]: int((y_true == k).sum()) for k in labels},
    }


def regression_metrics(
    y_true_days: np.ndarray, pred_days: np.ndarray
) -> dict[str, float | int | None]:
    """MAE and RMSE in days (``None`` without an example)."""
    err = np.asarray(pred_days, dtype=float) - np.asarray(y_true_days, dtype=float)
    n = int(len(err))
    return {
        "n": n,
        "mae_days": ratio(float(np.abs(err).sum()), n),
        "rmse_days": float(np.sqrt((err**2).mean())) if n else None,
    }


def best_f1_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """The score cut with the highest F1 (0.5 when only one class is present)."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true)) < 2:
        return 0.5
    precision, recall, cuts = skm.precision_recall_curve(y_true, score)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(cuts[int(np.argmax(f1[:-1]))])


def calibrate_threshold(normal_scores: np.ndarray, percentile: float) -> float:
    """The ``percentile`` of anomaly scores on normal validation data."""
    scores = np.asarray(normal_scores, dtype=float)
    if scores.size == 0:
        raise ValueError("cannot calibrate a threshold on zero normal examples")
    if not 0 < percentile < 100:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    return float(np.percentile(scores, percentile))


def anomaly_metrics(
    y_true: np.ndarray | None, scores: np.ndarray, threshold: float
) -> dict[str, float | int | None]:
    """AUROC/AUPRC of the score and F1/precision/recall at the calibrated threshold."""
    scores = np.asarray(scores, dtype=float)
    out: dict[str, float | int | None] = {
        "n": int(len(scores)),
        "threshold": float(threshold),
        "flagged_fraction": ratio(float((scores >= threshold).sum()), len(scores)),
        "mean_score": float(scores.mean()) if len(scores) else None,
    }
    if y_true is not None:
        out.update(binary_metrics(y_true, scores, threshold))
    return out
