"""Suite-wide options: ``--reliability-md FILE`` writes the reliability table
(tests/reliability.py) of this run's hostile-input, tamper and fault cases."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import reliability  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-md",
        default=None,
        help="rewrite the reliability table in this Markdown file (between its "
        "markers) from the cases of this run",
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = session.config.getoption("--reliability-md")
    if target and reliability.ROWS:
        reliability.rewrite(target)
