"""The value types of privacy accounting: a hospital's budget and a run's plan."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from client.privacy.accounting import DEFAULT_ACCOUNTANT, check_accountant
from shared_models.errors import ConfigError

# What one DP guarantee protects: all the data of one patient, or one example
# (a beat, window or stay). One patient has many examples, so an example-level
# epsilon says nothing about a patient; a ledger keeps one unit for its lifetime.
PRIVACY_UNITS = ("patient", "example")
DEFAULT_PRIVACY_UNIT = "patient"
# fedcare before ledger version 2 sampled examples: its records are example-level.
LEGACY_PRIVACY_UNIT = "example"


def check_privacy_unit(unit: str) -> str:
    """Return ``unit`` if it is a known privacy unit, else raise ConfigError."""
    if unit not in PRIVACY_UNITS:
        raise ConfigError(
            f"Unknown privacy unit {unit!r}; known units are "
            f"{', '.join(PRIVACY_UNITS)}: 'patient' protects all of one patient's "
            "data, 'example' one beat, window or stay."
        )
    return unit


@dataclass(frozen=True)
class PrivacyBudget:
    """A hospital's total (epsilon, delta) budget, under one named accountant."""

    epsilon: float
    delta: float
    accountant: str = DEFAULT_ACCOUNTANT

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and self.epsilon > 0):
            raise ConfigError(
                f"privacy budget epsilon {self.epsilon!r} must be a positive number, "
                "e.g. 8.0."
            )
        if not math.isfinite(self.epsilon):
            raise ConfigError(
                f"privacy budget epsilon {self.epsilon!r} must be finite."
            )
        if not (isinstance(self.delta, (int, float)) and 0 < self.delta < 1):
            raise ConfigError(
                f"privacy budget delta {self.delta!r} must be in (0, 1); use less "
                "than 1/(number of patients), e.g. 1e-5."
            )
        check_accountant(self.accountant)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrivacyBudget:
        return cls(
            epsilon=float(data["epsilon"]),
            delta=float(data["delta"]),
            accountant=str(data["accountant"]),
        )


@dataclass(frozen=True)
class SpendPlan:
    """Noise calibrated once for one federated run, reused by every round.

    ``target_epsilon`` is the hospital's CUMULATIVE epsilon after the run's
    ``planned_steps``; ``accountant`` names the accountant it was calibrated
    with (the ledger's); ``privacy_unit`` is what one guarantee protects (see
    :data:`PRIVACY_UNITS`).
    """

    run_id: str
    noise_multiplier: float
    sample_rate: float
    planned_steps: int
    max_grad_norm: float
    target_epsilon: float
    accountant: str = DEFAULT_ACCOUNTANT
    privacy_unit: str = DEFAULT_PRIVACY_UNIT

    def __post_init__(self) -> None:
        if not self.run_id:
            raise ConfigError("run_id must be a non-empty string.")
        if not (self.noise_multiplier > 0 and math.isfinite(self.noise_multiplier)):
            raise ConfigError(
                f"noise_multiplier {self.noise_multiplier!r} must be positive."
            )
        if not 0 < self.sample_rate <= 1:
            raise ConfigError(f"sample_rate {self.sample_rate!r} must be in (0, 1].")
        if self.planned_steps <= 0:
            raise ConfigError(
                f"planned_steps {self.planned_steps!r} must be a positive integer: "
                "the total local optimizer steps over all rounds of the run."
            )
        if not (self.max_grad_norm > 0 and math.isfinite(self.max_grad_norm)):
            raise ConfigError(
                f"max_grad_norm {self.max_grad_norm!r}: the clipping norm should be "
                "a positive value, e.g. 1.0."
            )
        check_accountant(self.accountant)
        check_privacy_unit(self.privacy_unit)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpendPlan:
        """Rebuild a plan record; one without ``privacy_unit`` (v1) is example-level."""
        return cls(
            run_id=str(data["run_id"]),
            noise_multiplier=float(data["noise_multiplier"]),
            sample_rate=float(data["sample_rate"]),
            planned_steps=int(data["planned_steps"]),
            max_grad_norm=float(data["max_grad_norm"]),
            target_epsilon=float(data["target_epsilon"]),
            accountant=str(data["accountant"]),
            privacy_unit=str(data.get("privacy_unit", LEGACY_PRIVACY_UNIT)),
        )
