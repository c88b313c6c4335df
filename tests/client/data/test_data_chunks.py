"""Streamed reading (``FEDCARE_READ_CHUNK_ROWS``) gives the whole-file result.

The readers stream CSV in pandas chunks and Parquet in pyarrow batches. Every
file here is read in one chunk (the default chunk is far larger than these
files) and in chunks of 1, 2, 3 and 5 rows; both must give the same arrays, or
the same first error (file, row, column, message), wherever the bad row falls.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fedcare_data_builders import vitals_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_data_hostile_property import CSV_READERS, _damage

from client.data import load_beats, load_signals, load_vitals
from client.data._io import CHUNK_ROWS_ENV
from shared_models.errors import DataError

CHUNKS = (1, 2, 3, 5)
CASES = int(os.environ.get("FEDCARE_CHUNK_CASES", "25"))  # per reader


@contextlib.contextmanager
def chunk_rows(rows: int | None) -> Iterator[None]:
    old = os.environ.pop(CHUNK_ROWS_ENV, None)
    if rows is not None:
        os.environ[CHUNK_ROWS_ENV] = str(rows)
    try:
        yield
    finally:
        os.environ.pop(CHUNK_ROWS_ENV, None)
        if old is not None:
            os.environ[CHUNK_ROWS_ENV] = old


def outcome(load: Callable[[], Any]) -> tuple[str, Any]:
    """("error", message) or ("ok", every array and the source, as lists)."""
    try:
        loaded = load()
    except DataError as exc:
        return "error", str(exc)
    fields = {}
    for name, value in vars(loaded).items():
        if isinstance(value, np.ndarray):
            fields[name] = (value.dtype.str, value.shape, _cells(value))
        elif isinstance(value, dict):
            fields[name] = {
                k: _cells(v) if isinstance(v, np.ndarray) else v
                for k, v in value.items()
            }
        else:
            fields[name] = value
    return "ok", fields


def _cells(array: np.ndarray) -> list[Any]:
    """Values with NaN as None, so that equal arrays compare equal."""
    if array.dtype.kind == "f":
        return np.where(np.isnan(array), None, array).tolist()
    return array.tolist()


def assert_chunk_invariant(load: Callable[[], Any]) -> tuple[str, Any]:
    with chunk_rows(None):
        whole = outcome(load)
    for rows in CHUNKS:
        with chunk_rows(rows):
            assert outcome(load) == whole, f"chunks of {rows} row(s) differ"
    return whole


# 25 cases per reader: 31 s (beats), 57 s (signals), 44 s (vitals) measured
# under a load of ~15 on 2 cores; FEDCARE_CHUNK_CASES sets the number.
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CSV_READERS))
@settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_damaged_csv_same_outcome_in_chunks(name: str, data: st.DataObject) -> None:
    valid, load = CSV_READERS[name]
    text = _damage(valid(), data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, errors="surrogatepass")
        assert_chunk_invariant(lambda: load(path))


def _beats(tmp_path: Path, rows: list[str]) -> Path:
    header = "patient_id,label," + ",".join(f"s{i}" for i in range(8))
    path = tmp_path / "beats.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _beat(patient: str = "p1", label: str = "N", sample: str = "0.1") -> str:
    return f"{patient},{label}," + ",".join([sample] + ["0.2"] * 7)


def test_beats_sample_error_in_a_later_chunk_wins_over_an_earlier_id_error(
    tmp_path: Path,
) -> None:
    # rows 2-7; an empty id in row 3 (chunk 1 of 2-row chunks), a bad sample in
    # row 6: a whole-file read checks every sample before any id
    rows = [_beat(), _beat(patient=" "), _beat(), _beat(), _beat(sample="x"), _beat()]
    kind, message = assert_chunk_invariant(lambda: load_beats(_beats(tmp_path, rows)))
    assert (kind, message.split(":")[0]) == ("error", "beats.csv row 6, column 's0'")


def test_beats_label_error_at_a_chunk_border(tmp_path: Path) -> None:
    rows = [_beat(), _beat(), _beat(), _beat(label="?"), _beat(label="?")]
    kind, message = assert_chunk_invariant(lambda: load_beats(_beats(tmp_path, rows)))
    assert message.startswith("beats.csv row 5, column 'label'")


def test_beats_valid_file_same_arrays(tmp_path: Path) -> None:
    rows = [_beat(patient=f"p{i % 3}", sample=str(i / 10)) for i in range(11)]
    kind, fields = assert_chunk_invariant(lambda: load_beats(_beats(tmp_path, rows)))
    assert kind == "ok" and fields["beats"][1] == (11, 90)


def _signals(tmp_path: Path, times: list[str], abp: list[str] | None = None) -> Path:
    abp = abp or [str(80 + i % 5) for i in range(len(times))]
    lines = [f"{t},{a},0" for t, a in zip(times, abp, strict=True)]
    path = tmp_path / "s001.csv"
    path.write_text("\n".join(["timestamp,abp,is_anomaly", *lines]) + "\n")
    return path


@pytest.mark.parametrize("at", [2, 3, 4, 5, 6])
def test_signals_decrease_across_every_border(tmp_path: Path, at: int) -> None:
    times = [str(t) for t in range(1, 9)]
    times[at] = "0.5"  # row at + 2 goes back in time
    kind, message = assert_chunk_invariant(
        lambda: load_signals(_signals(tmp_path, times))
    )
    assert message.startswith(f"s001.csv row {at + 2}, column 'timestamp'")
    assert "found '0.5' after" in message


def test_signals_numbers_then_dates_are_read_as_dates(tmp_path: Path) -> None:
    # numbers in the first chunks, a date at the end: a whole-file read parses
    # the column as dates, so the numbers' rows are the first error
    times = ["1", "2", "3", "4", "5", "2024-01-01 00:00"]
    kind, message = assert_chunk_invariant(
        lambda: load_signals(_signals(tmp_path, times))
    )
    assert kind == "error" and "column 'timestamp'" in message


def test_signals_all_missing_column_spanning_chunks(tmp_path: Path) -> None:
    times = [str(t) for t in range(1, 8)]
    kind, message = assert_chunk_invariant(
        lambda: load_signals(_signals(tmp_path, times, [""] * 7))
    )
    assert "column 'abp': every value is missing" in message


def test_signals_leading_missing_values_filled_from_a_later_chunk(
    tmp_path: Path,
) -> None:
    times = [str(t) for t in range(1, 8)]
    abp = ["", "", "", "", "84", "", "86"]
    path = _signals(tmp_path, times, abp)
    kind, fields = assert_chunk_invariant(lambda: load_signals(path))
    assert [v[0] for v in fields["values"][2]] == [84, 84, 84, 84, 84, 84, 86]


def _vitals(tmp_path: Path, frame: pd.DataFrame, parquet: bool = False) -> Path:
    path = tmp_path / ("vitals.parquet" if parquet else "vitals.csv")
    if parquet:
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("parquet", [False, True])
def test_vitals_valid_same_arrays_csv_and_parquet(
    tmp_path: Path, parquet: bool
) -> None:
    frame = vitals_frame()
    if parquet:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    path = _vitals(tmp_path, frame, parquet)
    kind, fields = assert_chunk_invariant(lambda: load_vitals(path, hours=6))
    assert kind == "ok" and fields["x"][1] == (3, 6, 2)


@pytest.mark.parametrize(
    ("row", "column", "value", "expected"),
    [
        (4, "deterioration", 0, "stay 's2', column 'deterioration': the label changes"),
        (4, "patient_id", "p9", "stay 's2' has several patient_id values"),
        (6, "deterioration", 7, "row 8, stay 's3', column 'deterioration'"),
        (6, "timestamp", "soon", "row 8, column 'timestamp'"),
        (1, "spo2", "high", "row 3, column 'spo2'"),
    ],
)
def test_vitals_errors_across_chunks(
    tmp_path: Path, row: int, column: str, value: Any, expected: str
) -> None:
    frame = vitals_frame().astype({column: object})
    if column == "deterioration":  # s2 (0-based rows 3-4) had label 0
        frame.loc[frame["stay_id"] == "s2", column] = 1
    frame.loc[row, column] = value
    frame.loc[0, "stay_id"] = " "  # an empty id in chunk 1 outranks all but reads
    path = _vitals(tmp_path, frame)
    kind, message = assert_chunk_invariant(lambda: load_vitals(path, hours=6))
    assert message == "vitals.csv row 2, column 'stay_id': the id is empty"
    frame.loc[0, "stay_id"] = "s1"
    path = _vitals(tmp_path, frame)
    kind, message = assert_chunk_invariant(lambda: load_vitals(path, hours=6))
    assert kind == "error" and expected in message


def test_vitals_hours_since_admission_then_dates(tmp_path: Path) -> None:
    frame = vitals_frame()
    frame["timestamp"] = ["0", "0.5", "3.2", "10", "12", "8", "2024-03-05 09:00"]
    kind, message = assert_chunk_invariant(
        lambda: load_vitals(_vitals(tmp_path, frame), hours=6)
    )
    assert message.startswith("vitals.csv row 2, column 'timestamp'")


@pytest.mark.parametrize("raw", ["0", "-3", "ten"])
def test_bad_chunk_rows_setting_is_refused(tmp_path: Path, raw: str) -> None:
    path = _beats(tmp_path, [_beat()])
    with chunk_rows(None):
        os.environ[CHUNK_ROWS_ENV] = raw
        with pytest.raises(DataError, match=rf"{CHUNK_ROWS_ENV}='{raw}'.*>= 1"):
            load_beats(path)


@pytest.mark.parametrize("block", [1, 2])
def test_vitals_forward_fill_block_does_not_change_the_bins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    # three stays with empty hours (s1: hours 1-2, s2: hour 1): filled a stay
    # (or two) at a time, the bins are those of one block holding every stay
    import client.data._bins as bins

    path = _vitals(tmp_path, vitals_frame())
    whole = outcome(lambda: load_vitals(path, hours=6))
    assert whole[0] == "ok" and whole[1]["x"][1] == (3, 6, 2)
    assert bins.FILL_BLOCK > 3
    monkeypatch.setattr(bins, "FILL_BLOCK", block)
    assert outcome(lambda: load_vitals(path, hours=6)) == whole
