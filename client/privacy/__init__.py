"""Everything differentially private on the hospital side.

Noise calibration, the per-hospital privacy ledger and Opacus DP-SGD set-up.
No other fedcare package imports ``opacus``; they use these names.
"""

from client.privacy.accounting import ACCOUNTANTS, calibrate_noise, compute_epsilon
from client.privacy.budget import (
    DEFAULT_PRIVACY_UNIT,
    PRIVACY_UNITS,
    PrivacyBudget,
    SpendPlan,
    check_privacy_unit,
)
from client.privacy.engine import (
    PrivateSession,
    UnitDPOptimizer,
    detach,
    dp_errors,
    fix_for_dp,
    make_private,
    private_training,
    steps_taken,
)
from client.privacy.ledger import PrivacyLedger
from client.privacy.randomness import (
    SECURE,
    OSRandomness,
    Randomness,
    SeededRandomness,
    refuse_test_randomness,
)
from client.privacy.sampling import (
    PoissonUnitSampler,
    Units,
    guarantee_text,
    sample_rate_for,
    steps_per_epoch,
)

__all__ = [
    "ACCOUNTANTS",
    "DEFAULT_PRIVACY_UNIT",
    "OSRandomness",
    "PRIVACY_UNITS",
    "PoissonUnitSampler",
    "PrivacyBudget",
    "PrivacyLedger",
    "PrivateSession",
    "Randomness",
    "SECURE",
    "SeededRandomness",
    "SpendPlan",
    "UnitDPOptimizer",
    "Units",
    "calibrate_noise",
    "check_privacy_unit",
    "compute_epsilon",
    "detach",
    "dp_errors",
    "fix_for_dp",
    "guarantee_text",
    "make_private",
    "private_training",
    "refuse_test_randomness",
    "sample_rate_for",
    "steps_per_epoch",
    "steps_taken",
]
