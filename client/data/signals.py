"""Loading monitoring signals: Yahoo/NAB-like CSV, TSB-UAD and UCR archive files."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from client.data._io import first_out_of_range, numeric_column, read_table
from client.data.types import SignalSet
from shared_models.errors import DataError

logger = logging.getLogger(__name__)

SIGNAL_SUFFIXES = (".csv", ".txt", ".out")
TIME_COLUMNS = ("timestamp", "timestamps")
LABEL_COLUMNS = ("is_anomaly", "anomaly", "label")
# NNN_UCR_Anomaly_<name>_<trainEnd>_<anomStart>_<anomEnd>.txt
UCR_NAME = re.compile(r"^\d+_UCR_Anomaly_(?P<name>.+)_(\d+)_(\d+)_(\d+)$")


@dataclass
class _Series:
    values: np.ndarray  # (rows, channels) float64
    labels: np.ndarray | None
    channels: tuple[str, ...]
    train_end: int | None
    info: dict[str, Any]


def signal_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix in SIGNAL_SUFFIXES
    )
    if not files:
        raise DataError(
            f"{path}: no signal files; expected *.csv, *.txt or *.out files"
        )
    return files


def load_signals(path: str | Path) -> SignalSet:
    """Load one series per file (a folder = all its signal files, sorted by name)."""
    path = Path(path)
    files = signal_files(path)
    series = [_load_file(f) for f in files]
    _check_consistent(files, series)
    names = [f.stem for f in files]
    train_end = {n: s.train_end for n, s in zip(names, series, strict=True)}
    return SignalSet(
        values=np.concatenate([s.values for s in series]).astype(np.float32),
        is_anomaly=(
            np.concatenate([s.labels for s in series]).astype(np.int8)
            if series[0].labels is not None
            else None
        ),
        series=np.concatenate(
            [
                np.full(len(s.values), n, dtype=object)
                for n, s in zip(names, series, strict=True)
            ]
        ),
        channels=series[0].channels,
        train_end=({n: end for n, end in train_end.items() if end is not None} or None),
        source={
            "path": str(path),
            "format": sorted({s.info["format"] for s in series}),
            "files": [f.name for f in files],
            "per_series": {n: s.info for n, s in zip(names, series, strict=True)},
            "channels": list(series[0].channels),
            "rows": int(sum(len(s.values) for s in series)),
        },
    )


def _check_consistent(files: list[Path], series: list[_Series]) -> None:
    """All files need the same channels, and labels in all of them or none."""
    channels = series[0].channels
    for f, s in zip(files, series, strict=True):
        if s.channels != channels:
            raise DataError(
                f"{f.name}: channels {list(s.channels)} differ from "
                f"{list(channels)} in {files[0].name}; all series of a hospital "
                f"need the same channels"
            )
    labelled = [s.labels is not None for s in series]
    if any(labelled) and not all(labelled):
        missing = [f.name for f, has in zip(files, labelled, strict=True) if not has]
        raise DataError(
            f"{', '.join(missing)}: no anomaly labels, while other files have "
            f"them; label every file or none"
        )


def _has_header(path: Path, sep: str) -> bool:
    first = read_table(path, header=None, nrows=1, sep=sep, dtype=str)
    cells = first.iloc[0].dropna()
    return pd.to_numeric(cells, errors="coerce").isna().any()


def _load_file(path: Path) -> _Series:
    ucr = UCR_NAME.match(path.stem)
    if ucr:
        return _load_ucr(path, ucr)
    if _has_header(path, ","):
        return _load_header_csv(path)
    frame = read_table(path, header=None)
    if frame.shape[1] == 2:
        values = _fill(numeric_column(frame, 0, path.name, header_rows=0), path, 0)
        labels = _labels(frame[1], path.name, "column 2", header_rows=0)
        info = {"format": "tsb-uad", "rows": len(values)}
        return _Series(values[:, None], labels, ("value",), None, info)
    if frame.shape[1] == 1:
        values = _fill(numeric_column(frame, 0, path.name, header_rows=0), path, 0)
        info = {"format": "headerless-1col", "rows": len(values)}
        return _Series(values[:, None], None, ("value",), None, info)
    raise DataError(
        f"{path.name}: headerless file with {frame.shape[1]} columns; expected "
        f"`value,label` (TSB-UAD), one value column, or a header row with "
        f"`timestamp`, value columns and optional `is_anomaly`"
    )


def _load_ucr(path: Path, match: re.Match[str]) -> _Series:
    frame = read_table(path, header=None, sep=r"\s+")
    if frame.shape[0] == 1 and frame.shape[1] > 1:  # a few archive files are one line
        frame = frame.T.reset_index(drop=True)
    if frame.shape[1] != 1:
        raise DataError(
            f"{path.name}: found {frame.shape[1]} columns; a UCR archive file has "
            f"a single column of values"
        )
    values = _fill(numeric_column(frame, 0, path.name, header_rows=0), path, 0)
    train_end, start, end = (int(match.group(i)) for i in (2, 3, 4))
    n = len(values)
    if not (0 < train_end <= n and train_end < start <= end <= n):
        raise DataError(
            f"{path.name}: name gives train end {train_end}, anomaly {start}-{end} "
            f"for {n} values; expected 0 < trainEnd < anomStart <= anomEnd <= {n}"
        )
    # The archive's numbers are 1-based and inclusive ("from 1 to trainEnd is
    # training data", MATLAB indexing): rows [0, trainEnd) train, and rows
    # [anomStart - 1, anomEnd - 1] (0-based, inclusive) are the anomaly.
    labels = np.zeros(n, dtype=np.int8)
    labels[start - 1 : end] = 1
    info = {"format": "ucr", "rows": n, "train_end": train_end,
            "anomaly_rows": [start - 1, end - 1]}  # fmt: skip
    return _Series(values[:, None], labels, ("value",), train_end, info)


def _load_header_csv(path: Path) -> _Series:
    frame = read_table(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    time_col = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    label_col = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
    value_cols = [c for c in frame.columns if c not in (time_col, label_col)]
    if not value_cols:
        raise DataError(
            f"{path.name}: no value columns; expected `timestamp`, one or more "
            f"numeric value columns and optional `is_anomaly`, found {list(frame)}"
        )
    if time_col is not None:
        _check_increasing(frame[time_col], path.name, time_col)
    filled: dict[str, int] = {}
    columns = []
    for col in value_cols:
        raw = numeric_column(frame, col, path.name)
        filled[col] = int(np.isnan(raw).sum())
        columns.append(_fill(raw, path, col))
    labels = None
    if label_col is not None:
        labels = _labels(frame[label_col], path.name, repr(label_col), header_rows=1)
    info = {"format": "timestamp-csv", "rows": len(frame), "filled_missing": filled}
    return _Series(np.stack(columns, axis=1), labels, tuple(value_cols), None, info)


def _fill(values: np.ndarray, path: Path, column: Any) -> np.ndarray:
    if np.isnan(values).all():
        raise DataError(
            f"{path.name}, column {column!r}: every value is missing (NaN); "
            f"expected numbers. Remove the column or fill it."
        )
    return pd.Series(values).ffill().bfill().to_numpy()


def _labels(raw: pd.Series, file: str, column: str, header_rows: int) -> np.ndarray:
    values = pd.to_numeric(raw, errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{file} row {pos + 1 + header_rows}, {column}: expected an anomaly "
            f"label 0 or 1, found {raw.iloc[pos]!r}"
        )
    return values.to_numpy().astype(np.int8)


def _check_increasing(raw: pd.Series, file: str, column: str) -> None:
    times = pd.to_numeric(raw, errors="coerce")
    if times.notna().all():
        pos = first_out_of_range(times.to_numpy(dtype=np.float64), -np.inf, np.inf)
        if pos is not None:
            raise DataError(
                f"{file} row {pos + 2}, column {column!r}: found {raw.iloc[pos]!r}; "
                "expected a finite timestamp (a number or a date/time)"
            )
    if times.isna().any():
        times = pd.to_datetime(raw, errors="coerce", format="mixed")
    if times.isna().any():
        pos = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(
            f"{file} row {pos + 2}, column {column!r}: expected a number or a "
            f"date/time, found {raw.iloc[pos]!r}"
        )
    steps = np.diff(times.to_numpy())
    if len(steps) and not (steps > steps.dtype.type(0)).all():
        pos = int(np.flatnonzero(~(steps > steps.dtype.type(0)))[0]) + 1
        raise DataError(
            f"{file} row {pos + 2}, column {column!r}: timestamps must increase; "
            f"found {raw.iloc[pos]!r} after {raw.iloc[pos - 1]!r}"
        )
