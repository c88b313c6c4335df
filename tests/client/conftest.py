"""Tiny synthetic hospitals for the task, pipeline and CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulation.cohorts import write_hospital


@pytest.fixture(scope="session")
def tiny_hospitals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two hospitals (ECG, signals, vitals) at scale 0.3, written once per session.

    Read-only: tests that write next to the data copy it first.
    """
    out = tmp_path_factory.mktemp("tiny_cohort")
    return (
        write_hospital(out, 1, seed=0, scale=0.3),
        write_hospital(out, 2, seed=0, scale=0.3),
    )
