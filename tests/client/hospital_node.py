"""One synthetic hospital's ``client.federated.Hospital`` for crash tests."""

from __future__ import annotations

from pathlib import Path

from client.federated import Hospital, NodeSettings
from shared_models.run_config import RunConfig


def hospital(data: Path, ledger: Path, run: RunConfig) -> Hospital:
    """Hospital ``h1`` on ``data``, charging ``ledger`` (budget 8), in ``run``."""
    node = {
        "hospital-id": "h1",
        "data-path": str(data),
        "ledger-path": str(ledger),
        "epsilon": 8.0,
    }
    return Hospital(NodeSettings.from_node_config(node), run)
