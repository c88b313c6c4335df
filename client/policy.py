"""A hospital's privacy policy: set by the hospital alone, never by a run config.

The aggregator sends a run config with every instruction; it may be curious or
malicious, so nothing in it can make a hospital less private. The policy comes
from the hospital's node config (``--node-config``) or ``fedcare train``'s
options, and every instruction is checked against it BEFORE any training:

=======================  =========  ==============================================
node-config key          default    meaning
=======================  =========  ==============================================
``require-dp``           true       refuse to train without DP-SGD
``require-secagg``       true       refuse to send weights outside SecAgg+
``min-secagg-hospitals`` 3          refuse SecAgg+ rounds with fewer hospitals
``max-run-epsilon``      (none)     cap on the epsilon one run may spend
``privacy-unit``         patient    ``patient`` or ``example``
``split-seed``           0          the seed of this hospital's patient split
``share-metrics``        false      send this hospital's own evaluation metrics
                                    to the aggregator (else only pooled sums)
=======================  =========  ==============================================

``max-run-epsilon`` caps each run; the aggregator names runs and can start
many, so only the node's total budget (``epsilon``) bounds all of them.

A refused instruction is logged at the hospital with the full reason; the
aggregator gets only :data:`GENERIC_REFUSAL`, which tells it nothing about the
hospital's data or settings beyond the refusal itself.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from client.privacy.budget import DEFAULT_PRIVACY_UNIT, check_privacy_unit
from shared_models.errors import ConfigError, PolicyError

log = logging.getLogger(__name__)

GENERIC_REFUSAL = "refused by the hospital's privacy policy"
KEYS = (
    "require-dp",
    "require-secagg",
    "min-secagg-hospitals",
    "max-run-epsilon",
    "privacy-unit",
    "split-seed",
    "share-metrics",
)


@dataclass(frozen=True)
class HospitalPolicy:
    """What this hospital allows, whatever the run config asks."""

    require_dp: bool = True
    require_secagg: bool = True
    min_secagg_hospitals: int = 3
    max_run_epsilon: float | None = None
    privacy_unit: str = DEFAULT_PRIVACY_UNIT
    split_seed: int = 0
    share_metrics: bool = False

    def __post_init__(self) -> None:
        check_privacy_unit(self.privacy_unit)
        if self.min_secagg_hospitals < 2:
            raise ConfigError(
                f"min-secagg-hospitals = {self.min_secagg_hospitals}: expected >= 2 "
                "(with one other hospital, the masked sum minus this hospital's "
                "update is that hospital's update)."
            )
        eps = self.max_run_epsilon
        if eps is not None and not (math.isfinite(eps) and eps > 0):
            raise ConfigError(f"max-run-epsilon = {eps!r}: expected a number > 0")

    @classmethod
    def from_node_config(cls, node: dict[str, Any]) -> HospitalPolicy:
        """Read the policy keys (see the module docstring) from a node config."""
        cap = node.get("max-run-epsilon")
        return cls(
            require_dp=_bool(node, "require-dp", True),
            require_secagg=_bool(node, "require-secagg", True),
            min_secagg_hospitals=_int(node, "min-secagg-hospitals", 3),
            max_run_epsilon=None
            if cap in (None, "")
            else _float("max-run-epsilon", cap),
            privacy_unit=str(node.get("privacy-unit", DEFAULT_PRIVACY_UNIT)),
            split_seed=_int(node, "split-seed", 0),
            share_metrics=_bool(node, "share-metrics", False),
        )

    def run_epsilon(self, asked: float) -> float:
        """The run's epsilon: what the run config asks, capped by the policy."""
        if self.max_run_epsilon is None:
            return asked
        return min(asked, self.max_run_epsilon)

    def check_training(self, dp: bool) -> None:
        """Refuse (:class:`PolicyError`) training without DP when DP is required."""
        if self.require_dp and not dp:
            refuse("the run config turns DP off (dp = false) but this hospital's "
                   "policy has require-dp = true")  # fmt: skip

    def check_transport(self, secagg: bool) -> None:
        """Refuse to send weights outside SecAgg+ when the policy requires it."""
        if self.require_secagg and not secagg:
            refuse("the instruction asks for weights without SecAgg+ but this "
                   "hospital's policy has require-secagg = true")  # fmt: skip

    def check_secagg_size(self, stage: str, hospitals: int) -> None:
        """Refuse a SecAgg+ stage that would unmask fewer than the minimum."""
        if hospitals < self.min_secagg_hospitals:
            minimum = self.min_secagg_hospitals
            refuse(f"SecAgg+ {stage}: {hospitals} hospitals, fewer than this "
                   f"hospital's min-secagg-hospitals = {minimum}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key.replace("-", "_")) for key in KEYS}


def refuse(reason: str) -> None:
    """Log the full reason at the hospital; raise with the generic text only."""
    log.warning("hospital policy refused an instruction: %s", reason)
    raise PolicyError(GENERIC_REFUSAL)


def _bool(node: dict[str, Any], key: str, default: bool) -> bool:
    value = node.get(key, default)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ConfigError(f"node-config {key} = {value!r}: expected true or false")


def _int(node: dict[str, Any], key: str, default: int) -> int:
    value = node.get(key, default)
    if isinstance(value, bool) or not str(value).lstrip("-").isdigit():
        raise ConfigError(f"node-config {key} = {value!r}: expected an integer")
    return int(value)


def _float(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"node-config {key} = {value!r}: expected a number") from None
