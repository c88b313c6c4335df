"""fedcare's exception types, shared by the hospital and the aggregator.

Every error a user can cause derives from :class:`FedcareError`; the CLI prints
its message and exits with status 2 instead of showing a traceback. The model
registry's and the model-directory format's errors are at the end.
"""

from __future__ import annotations

__all__ = [
    "FedcareError",
    "DataError",
    "ConfigError",
    "PrivacyError",
    "BudgetExceededError",
    "LedgerError",
    "ModelError",
    "PolicyError",
    "UnknownModelError",
    "NotDPCompatibleError",
]


class FedcareError(Exception):
    """Base class of all user-facing fedcare errors."""


class DataError(FedcareError, ValueError):
    """Input data is missing, malformed or inconsistent.

    The message names the file, the row or record, the column or field, what was
    found and what was expected.
    """


class ConfigError(FedcareError, ValueError):
    """A configuration value is invalid."""


class PrivacyError(FedcareError):
    """Base class of privacy-accounting errors."""


class BudgetExceededError(PrivacyError):
    """Training would take the hospital past its privacy budget."""


class LedgerError(PrivacyError):
    """The privacy ledger is unreadable, edited or inconsistent."""


class ModelError(FedcareError):
    """A model name, model directory or weight file is invalid."""


class PolicyError(PrivacyError):
    """An instruction the hospital's own privacy policy does not allow."""


class UnknownModelError(ModelError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotDPCompatibleError(ModelError):
    """A registered model has a layer Opacus cannot compute per-sample gradients for."""
