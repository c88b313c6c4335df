"""Loading ICU vital signs (long format) into hourly per-stay tensors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from client.data._bins import bin_hourly
from client.data._io import (
    FirstErrors,
    check_values,
    iter_table,
    numeric_chunk,
    require_columns,
    shown,
)
from client.data.types import VitalsSet
from shared_models.errors import DataError

logger = logging.getLogger(__name__)

ID_COLUMNS = ["patient_id", "stay_id", "timestamp"]
LABEL_COLUMNS = ("deterioration", "length_of_stay_days")

MAX_HOURS = 24 * 366 * 10  # hours since admission: ten years


def vitals_file(path: Path) -> Path:
    if path.is_file():
        return path
    for name in ("vitals.parquet", "vitals.csv"):
        if (path / name).is_file():
            return path / name
    found = sorted(path.glob("*.parquet")) + sorted(path.glob("*.csv"))
    if len(found) == 1:
        return found[0]
    raise DataError(
        f"{path}: expected vitals.parquet or vitals.csv (or exactly one .parquet/"
        f".csv file), found {[p.name for p in found]}"
    )


def load_vitals(path: str | Path, *, hours: int = 48) -> VitalsSet:
    """Hourly bins from each stay's first timestamp, mean per bin, forward-filled.

    Streamed in chunks (:func:`iter_table`, pyarrow batches for Parquet); per
    row only the stay code, the time and the values are kept. The error is the
    one a whole-file read reports first (ids, timestamps, each vital, patients
    per stay, labels), whichever chunk it is in.
    """
    if hours < 1:
        raise DataError(f"hours must be at least 1, got {hours}")
    file = vitals_file(Path(path))
    parquet = file.suffix.lower() == ".parquet"
    acc = _Rows(file, 0 if parquet else 1)
    for offset, chunk in iter_table(file):
        if offset == 0:
            acc.start(chunk)
        acc.add(chunk, offset)
    if acc.clock_mixed:  # numbers first, then dates: a whole-file read parses dates
        acc.reread_times()
    return acc.finish(hours)


class _Rows:
    """What a vitals table needs, gathered chunk by chunk (see load_vitals)."""

    def __init__(self, file: Path, header: int) -> None:
        self.file, self.name, self.header = file, file.name, header
        self.errors = FirstErrors()
        self.codes: dict[str, int] = {}  # stay -> code, in order of appearance
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.patient: dict[int, str] = {}
        self.shared: set[int] = set()
        self.labels: dict[str, dict[int, set[float]]] = {}
        self.first_label: dict[str, dict[int, float]] = {}
        self.numbers_seen = self.dates = self.clock_mixed = False
        self.rows = 0

    def start(self, chunk: pd.DataFrame) -> None:
        self.raw_columns = [str(c) for c in chunk.columns]
        columns = [c.strip() for c in self.raw_columns]
        require_columns(chunk.set_axis(columns, axis=1), ID_COLUMNS, self.name)
        self.features = [c for c in columns if c not in (*ID_COLUMNS, *LABEL_COLUMNS)]
        if not self.features:
            raise DataError(
                f"{self.name}: no vital-sign columns; expected {ID_COLUMNS} plus "
                f"one numeric column per vital (e.g. heart_rate), found {columns}"
            )
        self.label_cols = [c for c in LABEL_COLUMNS if c in columns]
        for c in self.label_cols:
            self.labels[c], self.first_label[c] = {}, {}
        self.columns = columns

    def add(self, chunk: pd.DataFrame, offset: int) -> None:
        chunk = chunk.set_axis(self.columns, axis=1)
        head = self.header + offset
        for k, col in enumerate(("patient_id", "stay_id")):
            _check_ids(chunk, col, self.name, head, self.errors, (0, k))
        # a missing id (refused above) is "" here: the arrays are not used then
        stay = chunk["stay_id"].astype(str).str.strip().fillna("")
        local, uniques = pd.factorize(stay)
        for u in uniques:
            self.codes.setdefault(u, len(self.codes))
        code = np.array([self.codes[u] for u in uniques], dtype=np.int32)[local]
        times = self._times(chunk["timestamp"], head)
        values = np.stack(
            [
                numeric_chunk(
                    chunk, c, self.name, self.errors, (2, k), header_rows=head
                )
                for k, c in enumerate(self.features)
            ],
            axis=1,
        )
        # float32, as the bins are: the checks above bound every value well
        # inside it (a value they refused raises before the arrays are used)
        with np.errstate(over="ignore"):
            values = values.astype(np.float32)
        self.parts.append((code, times, values))
        self._patients(chunk, code)
        for j, col in enumerate(self.label_cols):
            self._labels(chunk, stay, code, col, j, head)
        self.rows += len(chunk)

    def _times(self, raw: pd.Series, head: int, dates: bool = False) -> np.ndarray:
        """Hours (numbers) or datetime64[ns]; the mode is the whole file's."""
        raw = raw.reset_index(drop=True)
        is_time = pd.api.types.is_datetime64_any_dtype(raw)
        numeric = None if is_time else pd.to_numeric(raw, errors="coerce")
        if (
            not dates
            and not self.dates
            and numeric is not None
            and numeric.notna().all()
        ):
            self.numbers_seen = True
            hours = numeric.astype(float).to_numpy()
            try:  # hours since admission: a stay of more than 10 years is an error
                check_values(
                    hours,
                    self.name,
                    "timestamp",
                    header_rows=head,
                    low=-MAX_HOURS,
                    high=MAX_HOURS,
                    what="a number of hours since admission",
                )
            except DataError as exc:
                self.errors.add((1, 0), str(exc))
            return hours
        if self.numbers_seen and not self.dates:
            self.clock_mixed = True
        self.dates = True
        times = pd.to_datetime(raw, errors="coerce", format="mixed")
        if times.isna().any():
            pos = int(np.flatnonzero(times.isna().to_numpy())[0])
            self.errors.add(
                (1, 1),
                f"{self.name} row {pos + 1 + head}, column 'timestamp': expected a "
                f"date/time or a number of hours since admission, "
                f"found {shown(raw.iloc[pos])}",
            )
        return times.to_numpy().astype("datetime64[ns]")

    def reread_times(self) -> None:
        self.errors.drop((1,))
        column = [c for c in self.raw_columns if c.strip() == "timestamp"]
        parts = iter(self.parts)
        self.parts = []
        for offset, chunk in iter_table(self.file, usecols=column):
            code, _, values = next(parts)
            times = self._times(chunk.iloc[:, 0], self.header + offset, dates=True)
            self.parts.append((code, times, values))

    def _patients(self, chunk: pd.DataFrame, code: np.ndarray) -> None:
        patient = chunk["patient_id"].astype(str).str.strip().to_numpy()
        pairs = pd.DataFrame({"c": code, "p": patient}).drop_duplicates()
        for c, p in zip(pairs["c"].tolist(), pairs["p"].tolist(), strict=True):
            if self.patient.setdefault(c, p) != p:
                self.shared.add(c)

    def _labels(
        self,
        chunk: pd.DataFrame,
        stay: pd.Series,
        code: np.ndarray,
        col: str,
        j: int,
        head: int,
    ) -> None:
        raw = chunk[col]
        values = pd.to_numeric(raw, errors="coerce")
        if col == "deterioration":
            bad, rule = ~values.isin([0, 1]), "0 or 1"
        else:
            bad, rule = values.isna() | (values < 0), "a number of days >= 0"
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            self.errors.add(
                (4, j, 0),
                f"{self.name} row {pos + 1 + head}, stay {stay.iloc[pos]!r}, column "
                f"{col!r}: expected {rule}, found {shown(raw.iloc[pos])}",
            )
        pairs = pd.DataFrame({"c": code, "v": values.to_numpy(dtype=float)})
        pairs = pairs.dropna().drop_duplicates()
        seen, first = self.labels[col], self.first_label[col]
        for c, v in zip(pairs["c"].tolist(), pairs["v"].tolist(), strict=True):
            seen.setdefault(c, set()).add(v)
            first.setdefault(c, v)

    def finish(self, hours: int) -> VitalsSet:
        stays = np.array(list(self.codes), dtype=object)
        self._final_checks(stays)
        self.errors.raise_first()
        code = np.concatenate([p[0] for p in self.parts])
        hour = self._hours(code, [p[1] for p in self.parts])
        values = [p[2] for p in self.parts]
        self.parts = []
        in_window = hour < hours
        x, missing = bin_hourly(values, code, hour, in_window, len(stays), hours)
        patient = np.array([self.patient[c] for c in range(len(stays))], dtype=str)
        labels = {}
        for col in self.label_cols:
            per_stay = np.array(
                [self.first_label[col].get(c, np.nan) for c in range(len(stays))]
            )
            labels[col] = per_stay.astype(
                np.int64 if col == "deterioration" else np.float32
            )
        source = {
            "format": "vitals-parquet" if self.header == 0 else "vitals-csv",
            "files": [self.name],
            "path": str(self.file),
            "rows": self.rows,
            "rows_after_window": int((~in_window).sum()),
            "patients": int(len(set(patient))),
            "stays": len(stays),
            "hours": hours,
            "missingness": dict(zip(self.features, missing, strict=True)),
            "time_span_hours": [float(hour.min()), float(hour.max())],
        }
        return VitalsSet(
            x, tuple(self.features), patient, stays.astype(str), labels, source
        )

    def _final_checks(self, stays: np.ndarray) -> None:
        for k, col in enumerate(self.features):
            if all(np.isnan(p[2][:, k]).all() for p in self.parts):
                self.errors.add(
                    (2, k, 2),
                    f"{self.name}, column {col!r}: every value is missing; expected "
                    f"some measurements. Remove the column or check the export.",
                )
        if self.shared:
            first = sorted(stays[c] for c in self.shared)[0]
            self.errors.add(
                (3,),
                f"{self.name}: stay {first!r} has several patient_id values; "
                f"expected one patient per stay",
            )
        for j, col in enumerate(self.label_cols):
            varying = sorted(
                stays[c] for c, v in self.labels[col].items() if len(v) > 1
            )
            if varying:
                found = sorted(self.labels[col][self.codes[varying[0]]])
                self.errors.add(
                    (4, j, 1),
                    f"{self.name}, stay {varying[0]!r}, column {col!r}: the label "
                    f"changes within the stay ({found}); expected one value per stay",
                )

    def _hours(self, code: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
        """Whole hours since each stay's first timestamp (as a whole-file read)."""
        times = np.concatenate(parts)
        if times.dtype.kind == "M":
            series = pd.Series(times)
            hours = ((series - series.min()) / pd.Timedelta(hours=1)).to_numpy()
        else:
            hours = times
        del times
        first = pd.Series(hours).groupby(code).transform("min").to_numpy()
        since = hours - first
        del hours, first
        # within MAX_HOURS either way, so int32 holds every stay's hours
        return np.floor(since, out=since).astype(np.int32)


def _check_ids(
    frame: pd.DataFrame,
    col: str,
    file: str,
    header: int,
    errors: FirstErrors,
    rank: tuple[int, ...],
) -> None:
    empty = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 1 + header
        errors.add(rank, f"{file} row {row}, column {col!r}: the id is empty")
