"""Timestamp checks of a signal CSV, fed chunk by chunk (see signals.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from client.data._io import FirstErrors, first_out_of_range, shown


class Clock:
    """The timestamp checks of a whole-file read, fed chunk by chunk: numbers
    must be finite, otherwise every cell a date/time; and they must increase
    (across chunk borders too). Ranks (0, 0|1|2) in :class:`FirstErrors`."""

    def __init__(
        self, file: str, column: str, errors: FirstErrors, dates: bool = False
    ) -> None:
        self.file, self.column, self.errors = file, column, errors
        self.dates, self.mixed, self.numbers_seen = dates, False, False
        self.last: tuple[Any, Any] | None = None  # (time, raw cell)

    def add(self, raw: pd.Series, offset: int) -> None:
        raw = raw.reset_index(drop=True)
        times: Any = pd.to_numeric(raw, errors="coerce")
        if not self.dates and times.notna().all():
            self.numbers_seen = True
            pos = first_out_of_range(times.to_numpy(dtype=np.float64), -np.inf, np.inf)
            if pos is not None:
                self._error(
                    0,
                    offset + pos,
                    f"found {shown(raw.iloc[pos])}; "
                    "expected a finite timestamp (a number or a date/time)",
                )
                return
            times = times.to_numpy(dtype=np.float64)
        else:
            if self.numbers_seen and not self.dates:
                self.mixed = True
            self.dates = True
            times = pd.to_datetime(raw, errors="coerce", format="mixed")
            if times.isna().any():
                pos = int(np.flatnonzero(times.isna().to_numpy())[0])
                self._error(
                    1,
                    offset + pos,
                    f"expected a number or a date/time, found {shown(raw.iloc[pos])}",
                )
                return
            times = times.to_numpy()
        self._increasing(times, raw, offset)

    def _increasing(self, times: np.ndarray, raw: pd.Series, offset: int) -> None:
        cells = list(raw)
        if self.last is not None and _same_kind(self.last[0], times):
            times = np.concatenate([[self.last[0]], times])
            cells = [self.last[1], *cells]
            offset -= 1
        if len(times):
            self.last = (times[-1], cells[-1])
        steps = np.diff(times)
        if len(steps) and not (steps > steps.dtype.type(0)).all():
            pos = int(np.flatnonzero(~(steps > steps.dtype.type(0)))[0]) + 1
            self._error(
                2,
                offset + pos,
                "timestamps must increase; found "
                f"{shown(cells[pos])} after {shown(cells[pos - 1])}",
            )

    def _error(self, kind: int, row: int, text: str) -> None:
        self.errors.add(
            (0, kind), f"{self.file} row {row + 2}, column {self.column!r}: {text}"
        )


def _same_kind(last: Any, times: np.ndarray) -> bool:
    return np.asarray(last).dtype.kind == times.dtype.kind
