"""Loading heartbeats: WFDB records (one per patient) or a beats CSV file."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from client.data._io import (
    MAX_ABS_VALUE,
    FirstErrors,
    first_out_of_range,
    iter_table,
    repeated,
    require_columns,
)
from client.data.aami import AAMI_CLASSES, SYMBOL_TO_AAMI
from client.data.beats_wfdb import load_record_beats, record_paths
from client.data.types import BeatSet
from shared_models.errors import DataError

logger = logging.getLogger(__name__)

MIN_CSV_SAMPLES = 8
_BINARY_LABELS = {"0": "N", "1": "V", "0.0": "N", "1.0": "V"}


def load_beats(
    path: str | Path,
    *,
    lead: str = "MLII",
    beat_length: int = 90,
    window_s: tuple[float, float] = (0.25, 0.47),
    annotation_extension: str = "atr",
) -> BeatSet:
    """Load annotated beats from WFDB records or a beats CSV (see module doc)."""
    if beat_length < 2:
        raise DataError(f"beat_length must be at least 2, got {beat_length}")
    if window_s[0] < 0 or window_s[1] <= 0:
        raise DataError(
            f"window_s must be (seconds before >= 0, seconds after > 0), got {window_s}"
        )
    path = Path(path)
    csvs = _csv_files(path)
    if csvs:
        return _concat([load_beats_csv(p, beat_length=beat_length) for p in csvs])
    return _load_wfdb(path, lead, beat_length, window_s, annotation_extension)


def _csv_files(path: Path) -> list[Path]:
    if path.is_file() and path.suffix.lower() == ".csv":
        return [path]
    if path.is_dir() and not any(path.glob("*.hea")):
        return sorted(path.glob("*.csv"))
    return []


def _load_wfdb(
    path: Path,
    lead: str,
    beat_length: int,
    window_s: tuple[float, float],
    extension: str,
) -> BeatSet:
    beats, symbols, patients, per_record = [], [], [], {}
    for rec in record_paths(path):
        b, s, summary = load_record_beats(rec, lead, beat_length, window_s, extension)
        beats.append(b)
        symbols.append(s)
        patients.append(repeated(rec.name, len(s)))
        per_record[rec.name] = summary
    sym = np.concatenate(symbols)
    if len(sym) == 0:
        raise DataError(
            f"{path}: no usable beats in records {list(per_record)}; expected beat "
            f"annotations (MIT-BIH symbols {sorted(SYMBOL_TO_AAMI)}) in "
            f"*.{extension} files, with a full window inside the record"
        )
    unknown: Counter[str] = Counter()
    for summary in per_record.values():
        unknown.update(summary["skipped_unknown_symbol"])
    source = {
        "format": "wfdb",
        "path": str(path),
        "records": list(per_record),
        "files": [f"{r}.hea" for r in per_record],
        "lead": lead,
        "beat_length": beat_length,
        "window_s": list(window_s),
        "sampling_rate": {r: s["sampling_rate"] for r, s in per_record.items()},
        "per_record": per_record,
        "skipped": {
            "edge": sum(s["skipped_edge"] for s in per_record.values()),
            "non_beat": sum(s["skipped_non_beat"] for s in per_record.values()),
            "unknown_symbol": dict(unknown),
            "invalid_samples": sum(
                s["skipped_invalid_samples"] for s in per_record.values()
            ),
        },
    }
    return BeatSet(
        beats=np.concatenate(beats).astype(np.float32),
        aami=np.array([SYMBOL_TO_AAMI[s] for s in sym], dtype=np.int64),
        symbols=sym,
        patient=np.concatenate(patients),
        source=source,
    )


def _csv_label(raw: Any, row: int, file: str) -> tuple[str, int]:
    text = "" if pd.isna(raw) else str(raw).strip()
    symbol = _BINARY_LABELS.get(text, text)
    if symbol not in SYMBOL_TO_AAMI:
        raise DataError(
            f"{file} row {row}, column 'label': found {raw!r}; expected an AAMI "
            f"class {list(AAMI_CLASSES)}, a MIT-BIH beat symbol "
            f"{sorted(SYMBOL_TO_AAMI)}, or 0/1 meaning N/V"
        )
    return text, SYMBOL_TO_AAMI[symbol]


def load_beats_csv(path: Path, *, beat_length: int = 90) -> BeatSet:
    """Beats CSV: ``patient_id``, ``label``, then >= 8 sample columns (mV).

    Streamed in chunks (:func:`iter_table`); the error is the one a whole-file
    read reports first: samples (row by row), then patient ids, then labels.
    """
    file = path.name
    errors = FirstErrors()
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    k = 0
    for offset, chunk in iter_table(path):
        if offset == 0:
            require_columns(chunk, ["patient_id", "label"], file)
            sample_cols = [c for c in chunk.columns if c not in ("patient_id", "label")]
            if len(sample_cols) < MIN_CSV_SAMPLES:
                raise DataError(
                    f"{file}: found {len(sample_cols)} sample column(s) after "
                    f"patient_id and label; expected at least {MIN_CSV_SAMPLES}"
                )
            k = len(sample_cols)
            positions = np.arange(beat_length) * k / beat_length
        part = _beats_chunk(chunk, sample_cols, positions, offset, file, errors)
        if part is not None:
            parts.append(part)
    errors.raise_first()
    return BeatSet(
        beats=np.concatenate([p[0] for p in parts]),
        aami=np.concatenate([p[1] for p in parts]),
        symbols=np.concatenate([p[2] for p in parts]),
        patient=np.concatenate([p[3] for p in parts]),
        source={
            "format": "beats-csv",
            "path": str(path),
            "files": [file],
            "samples_per_beat": k,
            "beat_length": beat_length,
            "skipped": {},
        },
    )


def _beats_chunk(
    chunk: pd.DataFrame,
    sample_cols: list[str],
    positions: np.ndarray,
    offset: int,
    file: str,
    errors: FirstErrors,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """One chunk's (beats float32, aami, symbols, patients); None once a check
    failed (the arrays are not needed then, only the first error)."""
    samples = _sample_matrix(chunk[sample_cols], file, offset, errors)
    ids = chunk["patient_id"]
    empty = ids.isna() | (ids.astype(str).str.strip() == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 2 + offset
        errors.add((1,), f"{file} row {row}, column 'patient_id': the id is empty")
    labels = []
    for i, v in enumerate(chunk["label"]):
        try:
            labels.append(_csv_label(v, offset + i + 2, file))
        except DataError as exc:
            errors.add((2,), str(exc))
            break
    if samples is None or errors.has((1,)) or errors.has((2,)):
        return None
    k = samples.shape[1]
    beats = np.empty((len(samples), len(positions)), dtype=np.float32)
    for i, row in enumerate(samples):
        beats[i] = np.interp(positions, np.arange(k), row)
    return (
        beats,
        np.array([a for _, a in labels], dtype=np.int64),
        np.array([t for t, _ in labels], dtype=object),
        ids.str.strip().to_numpy(dtype=object),
    )


def _sample_matrix(
    raw: pd.DataFrame, file: str, offset: int, errors: FirstErrors
) -> np.ndarray | None:
    """The chunk's samples as float64, or None after recording its first bad
    cell (row-major, as a whole-file read finds it)."""
    if errors.has((0,)):
        return None
    values = raw.apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        r, c = (int(i[0]) for i in np.nonzero(bad))
        found = raw.iat[r, c]
        what = "an empty cell" if pd.isna(found) else repr(found)
        errors.add(
            (0,),
            f"{file} row {r + 2 + offset}, column {raw.columns[c]!r}: expected a "
            f"number (a sample in mV), found {what}",
        )
        return None
    matrix = values.to_numpy(dtype=np.float64)
    pos = first_out_of_range(matrix)  # NaN was refused above
    if pos is not None:
        r, c = (int(i) for i in np.unravel_index(pos, matrix.shape))
        errors.add(
            (0,),
            f"{file} row {r + 2 + offset}, column {raw.columns[c]!r}: found "
            f"{float(matrix[r, c])!r}; expected a sample in mV, a finite number "
            f"within [-{MAX_ABS_VALUE:g}, {MAX_ABS_VALUE:g}]",
        )
        return None
    return matrix


def _concat(sets: list[BeatSet]) -> BeatSet:
    if len(sets) == 1:
        return sets[0]
    files = [f for s in sets for f in s.source["files"]]
    return BeatSet(
        beats=np.concatenate([s.beats for s in sets]),
        aami=np.concatenate([s.aami for s in sets]),
        symbols=np.concatenate([s.symbols for s in sets]),
        patient=np.concatenate([s.patient for s in sets]),
        source={
            **sets[0].source,
            "files": files,
            "path": str(Path(sets[0].source["path"]).parent),
        },
    )
