"""Consortium provisioning: CA, SuperLink certificate, hospital-held SuperNode
keys (only their public halves reach the operator), bundles.

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
    node_key,
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
    "node_key",
    "revoke",
    "status",
]
