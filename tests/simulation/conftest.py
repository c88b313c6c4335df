from __future__ import annotations

from pathlib import Path

import pytest

from simulation.cohorts import write_cohort


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three hospitals at a small scale, written once for the whole session."""
    out = tmp_path_factory.mktemp("cohort")
    return write_cohort(out, hospitals=3, seed=7, scale=0.5)
