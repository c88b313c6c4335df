"""The hospitals file: the node configs of simulated hospitals, one per partition.

In simulation Flower's node config holds only ``partition-id``; partition ``i``
reads entry ``i`` of a JSON list of node configs (``client.federated``), whose
path travels in the run config key ``hospitals-file``. ``fedcare simulate``
writes one into its run folder; ``fedcare cohort --hospitals-file`` writes one
for the researcher who runs the apps with ``flwr run`` (README, "Running with
`flwr run`").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared_models.atomic import atomic_write_text
from shared_models.errors import ConfigError


def node_config(
    data: Path, ledger: Path, epsilon: float, delta: float
) -> dict[str, Any]:
    """One hospital's identity, data, ledger and budget (absolute paths: the
    ClientApp runs in another working directory)."""
    return {
        "hospital-id": data.name,
        "data-path": str(data.resolve()),
        "ledger-path": str(ledger.absolute()),
        "epsilon": epsilon,
        "delta": delta,
    }


def check_hospitals_file(
    path: Path, ledger_dir: Path, epsilon: float, delta: float
) -> None:
    """Refuse, before any hospital is written, a hospitals file or ledger folder
    that cannot be made, or a bad budget."""
    from client.privacy import PrivacyBudget
    from shared_models.cli import check_output_dir

    try:
        PrivacyBudget(epsilon=epsilon, delta=delta)
    except ConfigError as exc:
        raise ConfigError(f"--epsilon {epsilon:g} --delta {delta:g}: {exc}") from None
    if path.is_dir():
        raise ConfigError(
            f"--hospitals-file {path} is a folder; give the path of a JSON file"
        )
    check_output_dir(path.parent, "--hospitals-file")
    check_output_dir(ledger_dir, "--ledger-dir")


def write_hospitals_file(
    path: Path,
    hospitals: list[Path],
    ledger_dir: Path,
    epsilon: float,
    delta: float,
) -> list[dict[str, Any]]:
    """Write ``path`` atomically: each hospital folder with its ledger
    ``LEDGER_DIR/<hospital>.jsonl`` and the budget; the hospitals' policies
    keep their defaults (``client.policy``). Returns the entries."""
    check_hospitals_file(path, ledger_dir, epsilon, delta)
    entries = [
        node_config(d, ledger_dir / f"{d.name}.jsonl", epsilon, delta)
        for d in hospitals
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(entries, indent=2) + "\n")
    return entries
