"""Loading ICU vital signs (long format) into hourly per-stay tensors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from client.data._io import check_values, numeric_column, read_table, require_columns
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
    """Hourly bins from each stay's first timestamp, mean per bin, forward-filled."""
    if hours < 1:
        raise DataError(f"hours must be at least 1, got {hours}")
    file = vitals_file(Path(path))
    parquet = file.suffix.lower() == ".parquet"
    frame = read_table(file, dtype={"patient_id": str, "stay_id": str})
    frame.columns = [str(c).strip() for c in frame.columns]
    require_columns(frame, ID_COLUMNS, file.name)
    header = 0 if parquet else 1
    features = [c for c in frame.columns if c not in (*ID_COLUMNS, *LABEL_COLUMNS)]
    if not features:
        raise DataError(
            f"{file.name}: no vital-sign columns; expected {ID_COLUMNS} plus one "
            f"numeric column per vital (e.g. heart_rate), found {list(frame)}"
        )
    for col in ("patient_id", "stay_id"):
        _check_ids(frame, col, file.name, header)
    stay = frame["stay_id"].astype(str).str.strip()
    hour = _hours_since_first(frame["timestamp"], stay, file.name, header)
    values = np.stack([_feature(frame, c, file.name, header) for c in features], axis=1)
    stays = pd.unique(stay)
    patient = _stay_patients(frame, stay, stays, file.name)
    in_window = hour < hours
    x, observed = _bin(
        values[in_window], stay[in_window], hour[in_window], stays, hours
    )
    labels = {
        c: _stay_label(frame, stay, stays, c, file.name, header)
        for c in LABEL_COLUMNS
        if c in frame.columns
    }
    source = {
        "format": "vitals-parquet" if parquet else "vitals-csv",
        "files": [file.name],
        "path": str(file),
        "rows": len(frame),
        "rows_after_window": int((~in_window).sum()),
        "patients": int(len(set(patient))),
        "stays": len(stays),
        "hours": hours,
        "missingness": {
            f: float(1 - observed[:, i].mean()) for i, f in enumerate(features)
        },
        "time_span_hours": [float(hour.min()), float(hour.max())],
    }
    return VitalsSet(x, tuple(features), patient, stays.astype(str), labels, source)


def _check_ids(frame: pd.DataFrame, col: str, file: str, header: int) -> None:
    empty = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 1 + header
        raise DataError(f"{file} row {row}, column {col!r}: the id is empty")


def _feature(frame: pd.DataFrame, col: str, file: str, header: int) -> np.ndarray:
    values = numeric_column(frame, col, file, header_rows=header)
    if np.isnan(values).all():
        raise DataError(
            f"{file}, column {col!r}: every value is missing; expected some "
            f"measurements. Remove the column or check the export."
        )
    return values


def _hours_since_first(
    raw: pd.Series, stay: pd.Series, file: str, header: int
) -> np.ndarray:
    is_time = pd.api.types.is_datetime64_any_dtype(raw)
    numeric = pd.to_numeric(raw, errors="coerce") if not is_time else raw.isna()
    if not is_time and numeric.notna().all():
        # hours since admission: a stay of more than 10 years is an export error
        hours = pd.Series(
            check_values(
                numeric.astype(float).to_numpy(),
                file,
                "timestamp",
                header_rows=header,
                low=-MAX_HOURS,
                high=MAX_HOURS,
                what="a number of hours since admission",
            ),
            index=numeric.index,
        )
    else:
        times = pd.to_datetime(raw, errors="coerce", format="mixed")
        if times.isna().any():
            pos = int(np.flatnonzero(times.isna().to_numpy())[0])
            raise DataError(
                f"{file} row {pos + 1 + header}, column 'timestamp': expected a "
                f"date/time or a number of hours since admission, "
                f"found {raw.iloc[pos]!r}"
            )
        hours = (times - times.min()) / pd.Timedelta(hours=1)
    first = hours.groupby(stay).transform("min")
    return np.floor((hours - first).to_numpy()).astype(np.int64)


def _bin(
    values: np.ndarray,
    stay: pd.Series,
    hour: np.ndarray,
    stays: np.ndarray,
    hours: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean per (stay, hour) bin, then forward fill; also the observed-bin mask."""
    stay_index = pd.Index(stays).get_indexer(stay)
    n_feat = values.shape[1]
    sums = np.zeros((len(stays), hours, n_feat))
    counts = np.zeros((len(stays), hours, n_feat))
    seen = ~np.isnan(values)
    np.add.at(sums, (stay_index, hour), np.where(seen, values, 0.0))
    np.add.at(counts, (stay_index, hour), seen)
    observed = counts > 0
    x = np.where(observed, sums / np.maximum(counts, 1), np.nan)
    last = np.where(observed, np.arange(hours)[None, :, None], 0)
    last = np.maximum.accumulate(last, axis=1)
    filled = np.take_along_axis(x, last, axis=1)
    return filled.astype(np.float32), observed.reshape(-1, n_feat)


def _stay_patients(
    frame: pd.DataFrame, stay: pd.Series, stays: np.ndarray, file: str
) -> np.ndarray:
    patient = frame["patient_id"].astype(str).str.strip()
    per_stay = patient.groupby(stay).nunique()
    shared = per_stay[per_stay > 1]
    if len(shared):
        raise DataError(
            f"{file}: stay {shared.index[0]!r} has several patient_id values; "
            f"expected one patient per stay"
        )
    return patient.groupby(stay).first().reindex(stays).to_numpy().astype(str)


def _stay_label(
    frame: pd.DataFrame,
    stay: pd.Series,
    stays: np.ndarray,
    col: str,
    file: str,
    header: int,
) -> np.ndarray:
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce")
    if col == "deterioration":
        bad = ~values.isin([0, 1])
        rule = "0 or 1"
    else:
        bad = values.isna() | (values < 0)
        rule = "a number of days >= 0"
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{file} row {pos + 1 + header}, stay {stay.iloc[pos]!r}, column "
            f"{col!r}: expected {rule}, found {raw.iloc[pos]!r}"
        )
    varying = values.groupby(stay).nunique()
    if (varying > 1).any():
        bad_stay = varying[varying > 1].index[0]
        found = sorted(values[stay == bad_stay].unique().tolist())
        raise DataError(
            f"{file}, stay {bad_stay!r}, column {col!r}: the label changes within "
            f"the stay ({found}); expected one value per stay"
        )
    per_stay = values.groupby(stay).first().reindex(stays).to_numpy()
    dtype = np.int64 if col == "deterioration" else np.float32
    return per_stay.astype(dtype)
