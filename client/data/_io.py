"""Shared helpers: reading tables with pandas and turning its errors into DataError."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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
    values, problem = _as_numbers(frame, column, file, header_rows)
    if problem is not None:
        raise DataError(problem)
    return check_values(
        values, file, column, header_rows=header_rows, low=low, high=high, what=what
    )


def _as_numbers(
    frame: pd.DataFrame, column: Any, file: str, header_rows: int
) -> tuple[np.ndarray, str | None]:
    """(float64 values, the message of the first non-numeric cell or None)."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    problem = None
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        problem = (
            f"{file} row {pos + 1 + header_rows}, column {column!r}: "
            f"expected a number, found {raw.iloc[pos]!r}"
        )
    return values.to_numpy(dtype=np.float64), problem


def require_columns(frame: pd.DataFrame, required: list[str], file: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{file}: missing column(s) {missing}; expected columns {required} "
            f"(plus value columns), found {list(map(str, frame.columns))}"
        )


# Rows per chunk of a streamed read (``FEDCARE_READ_CHUNK_ROWS`` overrides it;
# tests use tiny chunks to check that errors and results do not depend on it).
CHUNK_ROWS_ENV = "FEDCARE_READ_CHUNK_ROWS"
DEFAULT_CHUNK_ROWS = 50_000


def chunk_rows() -> int:
    raw = os.environ.get(CHUNK_ROWS_ENV, "")
    if not raw:
        return DEFAULT_CHUNK_ROWS
    if not raw.isdigit() or int(raw) < 1:
        raise DataError(f"{CHUNK_ROWS_ENV}={raw!r}: expected a whole number >= 1")
    return int(raw)


def _read_failure(path: Path, exc: Exception) -> DataError:
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{path}: file not found")
    if isinstance(exc, pd.errors.EmptyDataError):
        return DataError(f"{path.name}: the file is empty; expected a table")
    kind = "Parquet" if path.suffix.lower() == ".parquet" else "CSV"
    return DataError(
        f"{path.name}: could not be read as {kind} ({type(exc).__name__}: {exc})"
    )


def iter_table(path: Path, **kwargs: Any) -> Iterator[tuple[int, pd.DataFrame]]:
    """Stream a CSV (pandas chunks) or Parquet (pyarrow batches) file as
    ``(offset, chunk)``: ``offset`` is the number of data rows before the chunk.

    CSV cells come as text (``dtype=str``): the readers convert them, so a
    cell's value never depends on the other cells of its chunk (pandas infers
    a column's type per chunk). Failures are the :class:`DataError` of
    :func:`read_table`, whichever chunk they happen in; a table without data
    rows is refused after the last chunk.
    """
    rows = chunk_rows()
    offset = 0
    try:
        if path.suffix.lower() == ".parquet":
            columns = kwargs.get("usecols")
            batches = pq.ParquetFile(path).iter_batches(
                batch_size=rows, columns=columns, use_pandas_metadata=True
            )
            chunks: Iterator[pd.DataFrame] = (b.to_pandas() for b in batches)
        else:
            kwargs = {**kwargs, "dtype": str}
            chunks = iter(pd.read_csv(path, chunksize=rows, **kwargs))
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            if chunk.empty:  # as read_table: no rows (or no columns) is no data
                continue
            yield offset, chunk
            offset += len(chunk)
        # pyarrow keeps the decoded row groups' memory in its pool; give it
        # back before the caller builds its arrays (~55 MB at 1.8M rows)
        pa.default_memory_pool().release_unused()
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for bad files
        raise _read_failure(path, exc) from None
    if offset == 0:
        raise DataError(f"{path.name}: the table has no data rows")


def repeated(value: str, n: int) -> np.ndarray:
    """An object array of ``n`` references to one ``value`` (8 bytes a row;
    ``np.full(n, value, dtype=object)`` makes a new str per row, ~70 bytes)."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def shown(value: Any) -> str:
    """A cell as an error message shows it, whatever dtype its chunk got: a
    number as ``2`` or ``2.5`` (not ``np.int64(2)``), text quoted."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return repr(int(number)) if number.is_integer() else repr(number)
    return repr(value)


class FirstErrors:
    """The first error of each check, across chunks; raised in check order.

    A whole-file reader runs check A on every row before check B; a streamed
    reader sees both checks per chunk. Each check records its first failure
    (its rank in the whole-file order, and the message), and :meth:`raise_first`
    raises the one the whole-file reader would have raised.
    """

    def __init__(self) -> None:
        self._first: dict[tuple[Any, ...], str] = {}

    def add(self, rank: tuple[Any, ...], message: str) -> None:
        self._first.setdefault(rank, message)

    def drop(self, prefix: tuple[Any, ...]) -> None:
        """Forget the errors of the checks whose rank starts with ``prefix``."""
        for rank in [r for r in self._first if r[: len(prefix)] == prefix]:
            del self._first[rank]

    def has(self, rank: tuple[Any, ...]) -> bool:
        return rank in self._first

    def raise_first(self) -> None:
        if self._first:
            raise DataError(self._first[min(self._first)])


def numeric_chunk(
    frame: pd.DataFrame,
    column: Any,
    file: str,
    errors: FirstErrors,
    rank: tuple[int, ...],
    *,
    header_rows: int = 1,
    low: float = -MAX_ABS_VALUE,
    high: float = MAX_ABS_VALUE,
    what: str = "a measurement",
) -> np.ndarray:
    """:func:`numeric_column` for one chunk (``header_rows`` includes the rows
    of earlier chunks): a non-numeric cell is recorded at ``rank + (0,)``, an
    out-of-range value at ``rank + (1,)``, as a whole-file read orders them."""
    values, problem = _as_numbers(frame, column, file, header_rows)
    if problem is not None:
        errors.add(rank + (0,), problem)
        return values
    try:
        check_values(
            values,
            file,
            column,
            header_rows=header_rows,
            low=low,
            high=high,
            what=what,
        )
    except DataError as exc:
        errors.add(rank + (1,), str(exc))
    return values
