"""Everything differentially private on the hospital side.

Noise calibration, the per-hospital privacy ledger and Opacus DP-SGD set-up.
No other fedcare package imports ``opacus``; they use these names.
"""

from client.privacy.accounting import ACCOUNTANTS, calibrate_noise, compute_epsilon
from client.privacy.budget import PrivacyBudget, SpendPlan
from client.privacy.engine import (
    DPOptimizer,
    PrivateSession,
    dp_errors,
    fix_for_dp,
    make_private,
    private_training,
    sample_rate_of,
    steps_per_epoch,
    steps_taken,
)
from client.privacy.ledger import PrivacyLedger

__all__ = [
    "ACCOUNTANTS",
    "DPOptimizer",
    "PrivacyBudget",
    "PrivacyLedger",
    "PrivateSession",
    "SpendPlan",
    "calibrate_noise",
    "compute_epsilon",
    "dp_errors",
    "fix_for_dp",
    "make_private",
    "private_training",
    "sample_rate_of",
    "steps_per_epoch",
    "steps_taken",
]
