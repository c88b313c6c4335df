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


# No measurement fedcare reads (a sample in mV, a vital sign, a value of a
# physiological series) is this large in any unit; a larger value is an export
# error or an overflow (float32, what the models compute in, ends at 3.4e38).
MAX_ABS_VALUE = 1e6


def first_out_of_range(
    values: np.ndarray, low: float = -MAX_ABS_VALUE, high: float = MAX_ABS_VALUE
) -> int | None:
    """Flat index of the first infinite value or value outside [low, high], or
    None; NaN (a missing value) passes."""
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values) | (values < low) | (values > high)
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


def check_values(
    values: np.ndarray,
    file: str,
    column: Any,
    *,
    header_rows: int = 1,
    low: float = -MAX_ABS_VALUE,
    high: float = MAX_ABS_VALUE,
    what: str = "a measurement",
) -> np.ndarray:
    """Refuse infinite and out-of-range values (a missing value, NaN, is allowed:
    the readers impute or refuse those themselves). Returns ``values``."""
    pos = first_out_of_range(values, low, high)
    if pos is not None:
        raise DataError(
            f"{file} row {pos + 1 + header_rows}, column {column!r}: found "
            f"{float(values[pos])!r}; expected {what}, a finite number within "
            f"[{low:g}, {high:g}]"
        )
    return values


def numeric_column(
    frame: pd.DataFrame,
    column: Any,
    file: str,
    *,
    header_rows: int = 1,
    low: float = -MAX_ABS_VALUE,
    high: float = MAX_ABS_VALUE,
    what: str = "a measurement",
) -> np.ndarray:
    """Column as float64; the first non-numeric, infinite or out-of-range cell is
    reported with its row (see :func:`check_values`).

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
    return check_values(
        values.to_numpy(dtype=np.float64),
        file,
        column,
        header_rows=header_rows,
        low=low,
        high=high,
        what=what,
    )


def require_columns(frame: pd.DataFrame, required: list[str], file: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{file}: missing column(s) {missing}; expected columns {required} "
            f"(plus value columns), found {list(map(str, frame.columns))}"
        )
