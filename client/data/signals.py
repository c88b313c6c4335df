"""Loading monitoring signals: Yahoo/NAB-like CSV, TSB-UAD and UCR archive files."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from client.data._clock import Clock
from client.data._io import (
    FirstErrors,
    iter_table,
    numeric_chunk,
    numeric_column,
    read_table,
    repeated,
    shown,
)
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
            [repeated(n, len(s.values)) for n, s in zip(names, series, strict=True)]
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
    width = read_table(path, header=None, nrows=1).shape[1]
    if width not in (1, 2):
        raise DataError(
            f"{path.name}: headerless file with {width} columns; expected "
            f"`value,label` (TSB-UAD), one value column, or a header row with "
            f"`timestamp`, value columns and optional `is_anomaly`"
        )
    errors = FirstErrors()
    values, labels = [], []
    for offset, chunk in iter_table(path, header=None):
        values.append(
            numeric_chunk(chunk, 0, path.name, errors, (0,), header_rows=offset)
        )
        if width == 2:
            labels.append(_labels(chunk[1], path.name, "column 2", offset, errors))
    column = _joined(values)
    if np.isnan(column).all():
        errors.add((1,), _all_missing(path, 0))
    errors.raise_first()
    column = _fill(column, path, 0)
    if width == 2:
        info = {"format": "tsb-uad", "rows": len(column)}
        return _Series(column[:, None], _joined(labels), ("value",), None, info)
    info = {"format": "headerless-1col", "rows": len(column)}
    return _Series(column[:, None], None, ("value",), None, info)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


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
    info = {
        "format": "ucr",
        "rows": n,
        "train_end": train_end,
        "anomaly_rows": [start - 1, end - 1],
    }
    return _Series(values[:, None], labels, ("value",), train_end, info)


def _load_header_csv(path: Path) -> _Series:
    """Header CSV, streamed (:func:`iter_table`); the error is the one a whole-
    file read reports first: timestamps, then each value column, then labels."""
    raw_names = [str(c) for c in read_table(path, nrows=1, dtype=str).columns]
    names = [c.strip() for c in raw_names]
    time_col = next((c for c in TIME_COLUMNS if c in names), None)
    label_col = next((c for c in LABEL_COLUMNS if c in names), None)
    value_cols = [c for c in names if c not in (time_col, label_col)]
    if not value_cols:
        raise DataError(
            f"{path.name}: no value columns; expected `timestamp`, one or more "
            f"numeric value columns and optional `is_anomaly`, found {names}"
        )
    time_raw = raw_names[names.index(time_col)] if time_col else None
    errors = FirstErrors()
    clock = Clock(path.name, time_col or "", errors)
    columns: dict[str, list[np.ndarray]] = {c: [] for c in value_cols}
    labels: list[np.ndarray] = []
    rows = 0
    for offset, chunk in iter_table(path):
        chunk.columns = names
        if time_col is not None:
            clock.add(chunk[time_col], offset)
        for k, col in enumerate(value_cols):
            values = numeric_chunk(
                chunk, col, path.name, errors, (1, k, 0), header_rows=1 + offset
            )
            columns[col].append(values.astype(np.float32))
        if label_col is not None:
            labels.append(
                _labels(
                    chunk[label_col], path.name, repr(label_col), offset + 1, errors
                )
            )
        rows += len(chunk)
    if clock.mixed:  # numbers first, then dates: a whole-file read parses dates
        errors.drop((0,))
        clock = Clock(path.name, time_col or "", errors, dates=True)
        for offset, chunk in iter_table(path, usecols=[time_raw]):
            clock.add(chunk.iloc[:, 0], offset)
    filled: dict[str, int] = {}
    for k, col in enumerate(value_cols):
        joined = _joined(columns.pop(col))
        filled[col] = int(np.isnan(joined).sum())
        if np.isnan(joined).all():
            errors.add((1, k, 2), _all_missing(path, col))
        columns[col] = [joined]
    errors.raise_first()
    stacked = np.stack([_fill(columns[c][0], path, c) for c in value_cols], axis=1)
    info = {"format": "timestamp-csv", "rows": rows, "filled_missing": filled}
    label_array = _joined(labels) if label_col is not None else None
    return _Series(stacked, label_array, tuple(value_cols), None, info)


def _all_missing(path: Path, column: Any) -> str:
    return (
        f"{path.name}, column {column!r}: every value is missing (NaN); "
        f"expected numbers. Remove the column or fill it."
    )


def _fill(values: np.ndarray, path: Path, column: Any) -> np.ndarray:
    if np.isnan(values).all():
        raise DataError(_all_missing(path, column))
    return pd.Series(values).ffill().bfill().to_numpy()


def _labels(
    raw: pd.Series, file: str, column: str, header_rows: int, errors: FirstErrors
) -> np.ndarray:
    values = pd.to_numeric(raw, errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        errors.add(
            (2,),
            f"{file} row {pos + 1 + header_rows}, {column}: expected an anomaly "
            f"label 0 or 1, found {shown(raw.iloc[pos])}",
        )
        return np.zeros(len(raw), dtype=np.int8)
    return values.to_numpy().astype(np.int8)
