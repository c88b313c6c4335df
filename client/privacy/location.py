"""Where a dataset's privacy ledger lives when nobody says: one per dataset.

The default ledger is named after the data's resolved PATH, not its content:
if the data later changes, its fingerprint no longer matches the ledger's
header and training is refused with a clear error, instead of silently
starting a fresh budget for patients who were already trained on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

LEDGER_HOME_ENV = "FEDCARE_HOME"


def ledger_home() -> Path:
    """``$FEDCARE_HOME/ledgers`` (default ``~/.fedcare/ledgers``)."""
    home = os.environ.get(LEDGER_HOME_ENV)
    return (Path(home) if home else Path.home() / ".fedcare") / "ledgers"


def default_ledger_path(data: Path) -> Path:
    """The default ledger of the data at ``data``: one file per data location."""
    key = hashlib.sha256(str(Path(data).resolve()).encode()).hexdigest()[:24]
    return ledger_home() / f"{key}.jsonl"
