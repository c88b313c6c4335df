"""Fixtures writing small real data files in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fedcare_data_builders import vitals_frame, write_csv, write_record


@pytest.fixture
def make_record() -> Callable[..., Path]:
    return write_record


@pytest.fixture
def ecg_dir(tmp_path: Path) -> Path:
    """Three patients' records at 250, 360 and 500 Hz in tmp_path/hospital/ecg."""
    directory = tmp_path / "hospital" / "ecg"
    for name, fs in (("p250", 250), ("p360", 360), ("p500", 500)):
        write_record(directory, name, fs)
    return directory


@pytest.fixture
def make_csv() -> Callable[[Path, str], Path]:
    return write_csv


@pytest.fixture
def vitals_csv(tmp_path: Path) -> Path:
    path = tmp_path / "hospital" / "vitals" / "vitals.csv"
    path.parent.mkdir(parents=True)
    vitals_frame().to_csv(path, index=False)
    return path
