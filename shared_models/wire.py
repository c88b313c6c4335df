"""The wire contract between a hospital and the aggregator, and the one list
of everything that leaves a hospital.

Both sides import this module (``client.app``/``client.federated`` and
``server``); it imports nothing else of fedcare. A value that is not in
:data:`LEAVES_HOSPITAL` does not leave a hospital: ``client.app`` filters
every reply's clear metrics through :func:`clear_metrics` and replaces every
error text by :func:`generic_error`.

What the aggregator learns, message by message (flwr 1.42, SecAgg+ on):

* **train** (fit): the model update, clipped and noised by DP-SGD, quantised
  and masked by SecAgg+; its aggregation weight is inside the masked vector.
  In clear: the hospital's id, a constant example count and the ledger head
  commitment (:func:`ledger_commitment`, bound to the round).
  A hospital that declines a round (budget, policy) sends a zero-weight
  masked vector: to the aggregator it looks like any other contribution.
* **pool-evaluation** (a second SecAgg+ round, :data:`POOL_PHASE`): the
  hospital's validation and test score histograms (or error sums), masked;
  the aggregator unmasks only their sum over hospitals, from which it picks
  the pooled threshold and the pooled metrics.
* **evaluate**: the aggregator sends the global model and the pooled
  threshold; the hospital computes its own metrics at that threshold and
  keeps them (its local report). In clear: the hospital's id, and its own
  metrics only when its node policy says ``share-metrics = true``.
* **errors**: a generic text with a reference into the hospital's own log.

Tamper evidence held apart (issue 10): a train reply carries, in clear, a
commitment to the hash of the hospital's ledger's last record
(:data:`LEDGER_HEAD`, :func:`ledger_commitment`), which the aggregator writes
into the round's audit record; every instruction carries
the audit log's newest hash (:data:`AUDIT_HEAD`, :data:`AUDIT_HEAD_ROUND`),
which the hospital keeps in its own file. Each side then holds a hash of the
other's chain: re-sealing an edited (or truncated) chain no longer passes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

RUN_KEY_PREFIX = "run."
PHASE_KEY = "fedcare.phase"
POOL_PHASE = "pool-evaluation"
THRESHOLD_KEY = "fedcare.pooled-threshold-edge"
HOSPITAL_ID = "hospital-id"
# A commitment to the hospital's ledger head after this round (train replies,
# clear), and the audit log's newest record hash and its round (every
# instruction of the aggregator).
LEDGER_HEAD = "ledger-head"
AUDIT_HEAD = "fedcare.audit-head"
AUDIT_HEAD_ROUND = "fedcare.audit-head-round"
SHA256_HEX = frozenset("0123456789abcdef")

# What a hospital's metrics may say when its policy shares them (opt-in).
SHARED_METRICS = (
    "auroc",
    "auprc",
    "f1",
    "precision",
    "recall",
    "n",
    "positives",
    "mae_days",
    "rmse_days",
)

# SecAgg+ settings of the pool-evaluation round: integers (histogram counts)
# summed exactly. A value x in [-R, R] is quantised to Q levels, so the
# resolution is 2R/Q = 2**-8 count; the sum of up to 64 hospitals (n * Q <
# the modulus) is off by at most 64 * 2**-8 = 0.25 < 0.5 and rounds exactly.
POOL_CLIPPING_RANGE = float(2**17)
POOL_QUANTIZATION_RANGE = 2**26
POOL_MODULUS_RANGE = 2**32
POOL_MAX_WEIGHT = 1.0
POOL_MAX_HOSPITALS = POOL_MODULUS_RANGE // POOL_QUANTIZATION_RANGE
# Error sums of length of stay are sent in these units, so a hospital of a
# few thousand stays stays below POOL_CLIPPING_RANGE.
ERROR_UNITS = {"sum-abs-error": 1.0, "sum-sq-error": 64.0}


@dataclass(frozen=True)
class Leaves:
    """One value that leaves a hospital: in which message, how, and why it is safe."""

    name: str
    message: str
    form: str
    why_safe: str


LEAVES_HOSPITAL: tuple[Leaves, ...] = (
    Leaves(
        "model update",
        "train",
        "masked (SecAgg+), after DP-SGD: the change of the weights in this round "
        "(local minus global), quantised within secagg-clipping-range",
        "each patient's influence is clipped and noised (the hospital's ledger "
        "charges it); SecAgg+ reveals only the weighted sum over hospitals",
    ),
    Leaves(
        "aggregation weight",
        "train",
        "masked (SecAgg+ folds it into the vector): the example count rounded up "
        "to a multiple of 32, capped at secagg-max-weight",
        "only the sum of weights is unmasked; a decline is weight 0 and "
        "indistinguishable from a contribution",
    ),
    Leaves(
        "example count",
        "train, evaluate",
        "clear, the constant 1",
        "Flower's legacy messages need a count; the real one stays at the hospital",
    ),
    Leaves(
        HOSPITAL_ID,
        "train, evaluate",
        "clear",
        "the hospital's registered name, which the aggregator knows from its "
        "node credentials anyway; recorded as who took part",
    ),
    Leaves(
        LEDGER_HEAD,
        "train",
        "clear: ledger_commitment(head, run, round), a sha256 of the hash of "
        "the hospital's ledger's last record after this round's spend (absent "
        "without a ledger), bound to the run and round",
        "a hash of records whose content (one spend per round, the run's DP "
        "settings) the aggregator knows or can infer; bound to the round, it "
        "differs every round even when the ledger did not change, so it tells "
        "neither a decline (no spend) nor other training between rounds (the "
        "ledger's records hold a random reservation id and the data's "
        "fingerprint: the head cannot be guessed). The aggregator can only store "
        "it in the audit record, so the hospital can later show its ledger was "
        "not re-sealed or cut short (fedcare ledger verify --against)",
    ),
    Leaves(
        "evaluation histograms / error sums",
        POOL_PHASE,
        "masked (SecAgg+), integer counts",
        "only the pooled counts over all hospitals are unmasked: the pooled "
        "threshold and metrics, no hospital's own",
    ),
    Leaves(
        "own metrics at the pooled threshold",
        "evaluate",
        "clear, only when the hospital's policy has share-metrics = true",
        "opt-in by the hospital (a simulation's researcher owns every "
        "hospital); off by default",
    ),
    Leaves(
        "model card (architecture, input spec, class names)",
        "get-properties",
        "clear",
        "describes the model and the data format, not the data: the "
        "normalisation statistics fitted on the hospital's data are left out",
    ),
    Leaves(
        "initial weights",
        "get-parameters",
        "clear, once per run",
        "a fresh initialisation from the run's public seed, before any training",
    ),
    Leaves(
        "error reference",
        "any",
        "clear: a generic text and a random reference",
        "the reason, with any data values or paths, stays in the hospital's log",
    ),
    Leaves(
        "app bundle refusal",
        "any (from the hospital's fedcare-clientapp, before the bundle is unpacked)",
        "clear: a fixed text and the submitted bundle's sha256",
        "the aggregator submitted that bundle and knows its hash; the text says "
        "only that this hospital has not approved it (client.node_runtime)",
    ),
)


def clear_metrics(
    metrics: dict[str, Any], share: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The metrics a reply may carry in clear: the hospital's id, plus the
    hospital's own metrics when its policy shares them (``share``)."""
    out = {HOSPITAL_ID: str(metrics[HOSPITAL_ID])} if HOSPITAL_ID in metrics else {}
    if is_sha256(metrics.get(LEDGER_HEAD)):
        out[LEDGER_HEAD] = str(metrics[LEDGER_HEAD])
    for key, value in (share or {}).items():
        if key in SHARED_METRICS and isinstance(value, (int, float)):
            out[f"own-{key}"] = float(value)
    return out


def is_sha256(value: Any) -> bool:
    """Whether ``value`` is a sha256 in lowercase hex (and nothing else)."""
    return isinstance(value, str) and len(value) == 64 and set(value) <= SHA256_HEX


def ledger_commitment(head: str, run: str, number: int) -> str:
    """What a train reply of round ``number`` of ``run`` sends of the ledger's
    head hash ``head``: sha256 over the three, so the value changes every round
    (a declined round, which spends nothing, looks like any other) and names
    the round it was sent in."""
    text = f"fedcare ledger head\n{run}\n{int(number)}\n{head}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shared_of(metrics: dict[str, Any]) -> dict[str, float]:
    """The hospital's own metrics in a reply (empty unless it shares them)."""
    return {
        k[len("own-") :]: float(v) for k, v in metrics.items() if k.startswith("own-")
    }


def error_reference() -> str:
    return secrets.token_hex(4)


def generic_error(reference: str) -> str:
    """What the aggregator sees of any error at a hospital."""
    return (
        f"the hospital could not complete this instruction (reference {reference}; "
        "the reason is in the hospital's log)"
    )


def pack_run_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run config (kebab-case dict) as instruction entries (``run.<key>``)."""
    return {RUN_KEY_PREFIX + k: v for k, v in config.items()}


def unpack_run_config(entries: dict[str, Any]) -> dict[str, Any]:
    return {
        k[len(RUN_KEY_PREFIX) :]: v
        for k, v in entries.items()
        if k.startswith(RUN_KEY_PREFIX)
    }


# ---------------------------------------------------------------- pooling
def pool_vector(parts: dict[str, np.ndarray]) -> list[np.ndarray]:
    """A hospital's pool-evaluation arrays, in a fixed key order.

    ``parts`` maps ``val-histogram``/``test-histogram`` (2 x bins counts) or
    ``n``/``sum-abs-error``/``sum-sq-error`` to values. Every value must fit
    the pool's range; a hospital too large for it gets a clear local error.
    """
    arrays = []
    for key in sorted(parts):
        value = np.asarray(parts[key], dtype=np.float64) / ERROR_UNITS.get(key, 1.0)
        if not np.all(np.isfinite(value)) or np.any(
            np.abs(value) > POOL_CLIPPING_RANGE
        ):
            raise ValueError(
                f"{key}: a value is not finite or above {POOL_CLIPPING_RANGE:g}, the "
                "most one hospital can add to one bin of a pooled evaluation"
            )
        arrays.append(value)
    return arrays


def pool_keys(kind: str) -> list[str]:
    """The keys of a pool vector, in its order, for a task kind."""
    if kind == "regression":
        return sorted(["n", "sum-abs-error", "sum-sq-error"])
    return sorted(["val-histogram", "test-histogram"])


def unpool(kind: str, arrays: list[np.ndarray], contributors: int) -> dict[str, Any]:
    """The pooled sums from SecAgg+'s aggregate.

    The pool round gives every hospital weight 1, so Flower's aggregate is the
    mean over the ``contributors``; times that count it is the sum, rounded
    for the integer counts.
    """
    keys = pool_keys(kind)
    if len(arrays) != len(keys):
        raise ValueError(f"pool vector has {len(arrays)} arrays, expected {keys}")
    out: dict[str, Any] = {}
    for key, arr in zip(keys, arrays, strict=True):
        total = np.asarray(arr, dtype=np.float64) * contributors
        if key in ERROR_UNITS:
            out[key] = float(total.sum() * ERROR_UNITS[key])
        elif key == "n":
            out[key] = int(round(float(total.sum())))
        else:
            out[key] = np.rint(total).astype(np.int64)
    return out


# Aggregation weights are example counts rounded up to this granularity (and
# capped at secagg-max-weight): the weighted mean barely changes, the exact
# count stays at the hospital.
WEIGHT_GRANULARITY = 32


def coarse_weight(examples: int, max_weight: float) -> int:
    """A hospital's aggregation weight: 0 for a decline, else its example count
    rounded up to WEIGHT_GRANULARITY, at most ``max_weight``."""
    if examples <= 0:
        return 0
    rounded = -(-int(examples) // WEIGHT_GRANULARITY) * WEIGHT_GRANULARITY
    return int(min(rounded, max_weight))


def update_of(weights: list[np.ndarray], global_weights: list) -> list[np.ndarray]:
    """What a hospital sends after training: its weights minus the global ones.

    Updates are small (a few learning-rate steps), so SecAgg+'s fixed
    quantisation range resolves them far more finely than it would whole
    weights; the server adds the masked mean update to the global model.
    """
    if len(weights) != len(global_weights):
        raise ValueError(
            f"{len(weights)} weight arrays against {len(global_weights)} global ones"
        )
    return [
        np.asarray(w, dtype=np.float32) - np.asarray(g, dtype=np.float32)
        for w, g in zip(weights, global_weights, strict=True)
    ]


def apply_update(global_weights: list, update: list) -> list[np.ndarray]:
    """The weights a (mean) update leads to from ``global_weights``."""
    if len(update) != len(global_weights):
        raise ValueError(
            f"{len(update)} update arrays against {len(global_weights)} global ones"
        )
    return [
        (np.asarray(g, dtype=np.float32) + np.asarray(u, dtype=np.float32))
        for g, u in zip(global_weights, update, strict=True)
    ]


def finite(arrays: list[np.ndarray]) -> bool:
    return all(np.all(np.isfinite(a)) for a in arrays)


def check_pool_size(hospitals: int) -> None:
    if hospitals > POOL_MAX_HOSPITALS:
        raise ValueError(
            f"{hospitals} hospitals: the pooled evaluation sums at most "
            f"{POOL_MAX_HOSPITALS} exactly"
        )
