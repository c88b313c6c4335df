"""Consortium provisioning: CA, SuperLink certificate, SuperNode keys, bundles.

The output layout and commands are described in ``server/provision/README.md``.
"""

from server.provision.consortium import Consortium, load_consortium_file
from server.provision.errors import (
    ConfirmationRequired,
    ConsortiumFileError,
    ProvisionError,
)
from server.provision.provisioner import (
    Layout,
    Report,
    add_hospital,
    init,
    revoke,
    status,
)

__all__ = [
    "ConfirmationRequired",
    "Consortium",
    "ConsortiumFileError",
    "Layout",
    "ProvisionError",
    "Report",
    "add_hospital",
    "init",
    "load_consortium_file",
    "revoke",
    "status",
]
