"""Metrics pooled over hospitals from per-hospital score histograms.

Each hospital sends, per class (0 = negative/normal, 1 = positive/anomaly),
the counts of its scores in fixed bins; no individual score leaves it.
Pooled AUROC here is the AUROC over ALL hospitals' test examples (not a mean
of per-hospital AUROCs), computed exactly for the binned scores: examples in
the same bin count as ties (half a concordant pair), as in the Mann-Whitney
statistic. With 400 bins it differs from the AUROC of the raw scores only by
within-bin ties. Thresholds are bin edges, so F1/precision/recall at a
threshold are exact.

Bins: class probabilities use 400 equal bins on [0, 1]; anomaly scores
(reconstruction errors, unbounded) use 400 equal bins of log10(score) on
[-6, 4], with values outside clipped into the end bins.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from shared_models.metrics import counts_metrics

N_BINS = 400
LOG_RANGE = (-6.0, 4.0)


def bin_edges(kind: str) -> np.ndarray:
    """Bin edges on the score axis (length N_BINS + 1)."""
    if kind == "reconstruction":
        return 10.0 ** np.linspace(*LOG_RANGE, N_BINS + 1)
    return np.linspace(0.0, 1.0, N_BINS + 1)


def histogram(y: np.ndarray, scores: np.ndarray, kind: str) -> list[list[int]]:
    """``[negatives per bin, positives per bin]`` for ``scores`` with labels ``y``."""
    edges = bin_edges(kind)
    index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, N_BINS - 1)
    y = np.asarray(y).astype(int)
    return [np.bincount(index[y == c], minlength=N_BINS).tolist() for c in (0, 1)]


def encode(hist: list[list[int]]) -> str:
    """Compact JSON (Flower metrics hold scalars, so histograms travel as text)."""
    return json.dumps(hist, separators=(",", ":"))


def decode(text: str) -> np.ndarray:
    return np.asarray(json.loads(text), dtype=np.int64)


def pool(hists: list[np.ndarray]) -> np.ndarray:
    return np.sum(np.stack(hists), axis=0)


def auroc(hist: np.ndarray) -> float | None:
    neg, pos = hist[0].astype(float), hist[1].astype(float)
    if neg.sum() == 0 or pos.sum() == 0:
        return None
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def auprc(hist: np.ndarray) -> float | None:
    """Average precision, thresholds at bin edges from the top down."""
    neg, pos = hist[0][::-1].astype(float), hist[1][::-1].astype(float)
    if pos.sum() == 0 or neg.sum() == 0:  # without negatives it is 1 for any model
        return None
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    recall = tp / pos.sum()
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * precision).sum())


def at_edge(hist: np.ndarray, edge: int) -> dict[str, float | None]:
    """Metrics when scores in bins ``>= edge`` are called positive (``None``
    where the histogram cannot support one: ``metrics.counts_metrics``)."""
    neg, pos = hist[0].astype(float), hist[1].astype(float)
    return counts_metrics(
        tp=pos[edge:].sum(), fp=neg[edge:].sum(), fn=pos[:edge].sum(),
        tn=neg[:edge].sum(),
    )  # fmt: skip


def best_f1_edge(hist: np.ndarray) -> int:
    """The bin edge with the best F1 (ties: the lowest edge; the middle edge
    when there is no positive, so no F1)."""
    if hist[1].sum() == 0:
        return N_BINS // 2
    scores = [at_edge(hist, e)["f1"] for e in range(1, N_BINS)]
    return 1 + int(np.argmax(scores)) if scores else N_BINS // 2


def percentile_edge(hist: np.ndarray, percentile: float) -> int:
    """The first edge below which at least ``percentile`` % of negatives lie."""
    neg = hist[0].astype(float)
    if neg.sum() == 0:
        return N_BINS // 2
    cdf = np.cumsum(neg) / neg.sum()
    return int(min(N_BINS - 1, np.searchsorted(cdf, percentile / 100.0) + 1))


def summary(hist: np.ndarray, edge: int, kind: str) -> dict[str, Any]:
    """AUROC, AUPRC and threshold metrics of one (pooled or hospital) histogram."""
    out: dict[str, Any] = {
        "n": int(hist.sum()),
        "positives": int(hist[1].sum()),
        "auroc": auroc(hist),
        "auprc": auprc(hist),
        "threshold": float(bin_edges(kind)[edge]),
    }
    out.update(at_edge(hist, edge))
    return out
