"""Exception types of provisioning (user errors exit with status 2 in the CLI)."""

from __future__ import annotations

from shared_models.errors import FedcareError


class ProvisionError(FedcareError):
    """A consortium file, a provisioning directory or a request is invalid."""


class ConsortiumFileError(ProvisionError, ValueError):
    """The consortium TOML file is missing, malformed or breaks a rule."""


class ConfirmationRequired(ProvisionError):
    """An action would replace a credential and needs an explicit flag."""
