"""Shared helpers: reading tables with pandas and turning its errors into DataError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared_models.errors import DataError


def read_table(path: Path, **kwargs: Any) -> pd.DataFrame:
    """Read a CSV (or Parquet, by suffix) file; any reader failure is a DataError."""
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name}: the file is empty; expected a table") from None
    except Exception as exc:  # pandas/pyarrow raise many types for bad files
        raise DataError(
            f"{path.name}: could not be read as "
            f"{'Parquet' if path.suffix.lower() == '.parquet' else 'CSV'} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if frame.empty:
        raise DataError(f"{path.name}: the table has no data rows")
    return frame


def numeric_column(
    frame: pd.DataFrame, column: Any, file: str, *, header_rows: int = 1
) -> np.ndarray:
    """Column as float64; the first non-numeric cell is reported with its row.

    Rows are numbered as a spreadsheet shows them: the header is row 1 when
    ``header_rows`` is 1, so the first data row is row 2.
    """
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{file} row {pos + 1 + header_rows}, column {column!r}: "
            f"expected a number, found {raw.iloc[pos]!r}"
        )
    return values.to_numpy(dtype=np.float64)


def require_columns(frame: pd.DataFrame, required: list[str], file: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{file}: missing column(s) {missing}; expected columns {required} "
            f"(plus value columns), found {list(map(str, frame.columns))}"
        )
