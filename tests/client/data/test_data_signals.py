"""Tests for client.data.load_signals: timestamp CSV, TSB-UAD and UCR files."""

from __future__ import annotations

import numpy as np
import pytest

from client.data import load_signals
from shared_models.errors import DataError

UCR_NAME = "001_UCR_Anomaly_Test1_6_8_9.txt"


def test_timestamp_csv_with_labels_and_missing_values(tmp_path, make_csv):
    path = make_csv(
        tmp_path / "s1.csv",
        "timestamp,hr,spo2,is_anomaly\n1,80,,0\n2,,97,0\n3,82,98,1\n4,83,99,0\n",
    )
    sig = load_signals(path)
    assert sig.channels == ("hr", "spo2")
    assert sig.values.dtype == np.float32
    np.testing.assert_allclose(sig.values[:, 0], [80, 80, 82, 83])  # forward fill
    np.testing.assert_allclose(sig.values[:, 1], [97, 97, 98, 99])  # back fill
    assert sig.is_anomaly.tolist() == [0, 0, 1, 0]
    assert sig.is_anomaly.dtype == np.int8
    assert sig.series.tolist() == ["s1"] * 4
    assert sig.train_end is None
    assert sig.source["per_series"]["s1"]["filled_missing"] == {"hr": 1, "spo2": 1}


def test_datetime_timestamps_without_labels(tmp_path, make_csv):
    path = make_csv(
        tmp_path / "nab.csv",
        "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,2\n",
    )
    sig = load_signals(path)
    assert sig.is_anomaly is None
    assert sig.values.shape == (2, 1)


def test_tsb_uad_two_column_file(tmp_path, make_csv):
    path = make_csv(tmp_path / "ECG1.out", "0.5,0\n0.7,0\n3.0,1\n0.6,0\n")
    sig = load_signals(path)
    assert sig.channels == ("value",)
    assert sig.is_anomaly.tolist() == [0, 0, 1, 0]
    assert sig.source["format"] == ["tsb-uad"]


def test_ucr_file_uses_one_based_inclusive_indices(tmp_path, make_csv):
    values = "\n".join(str(float(v)) for v in range(10)) + "\n"
    sig = load_signals(make_csv(tmp_path / UCR_NAME, values))
    series = UCR_NAME[:-4]
    assert sig.train_end == {series: 6}
    # anomaly 8..9 (1-based, inclusive) = 0-based rows 7 and 8
    assert np.flatnonzero(sig.is_anomaly).tolist() == [7, 8]


def test_ucr_file_stored_on_one_line(tmp_path, make_csv):
    line = " ".join(str(float(v)) for v in range(10)) + "\n"
    sig = load_signals(make_csv(tmp_path / UCR_NAME, line))
    assert sig.values[:, 0].tolist() == list(range(10))


def test_ucr_name_outside_the_series(tmp_path, make_csv):
    path = make_csv(tmp_path / "002_UCR_Anomaly_X_6_8_50.txt", "1\n2\n3\n4\n5\n6\n7\n")
    with pytest.raises(DataError, match=r"anomaly 8-50 for 7 values"):
        load_signals(path)


def test_folder_is_one_series_per_file(tmp_path, make_csv):
    make_csv(tmp_path / "b.out", "1,0\n2,1\n")
    make_csv(tmp_path / "a.out", "5,0\n6,0\n7,0\n")
    (tmp_path / "notes.md").write_text("ignored")
    sig = load_signals(tmp_path)
    assert sig.series.tolist() == ["a", "a", "a", "b", "b"]
    assert sig.source["files"] == ["a.out", "b.out"]


def test_timestamps_must_increase(tmp_path, make_csv):
    path = make_csv(tmp_path / "s.csv", "timestamp,v\n1,1\n2,1\n2,1\n3,1\n")
    with pytest.raises(DataError, match=r"s.csv row 4, column 'timestamp'.*increase"):
        load_signals(path)


def test_non_numeric_value_names_row_and_column(tmp_path, make_csv):
    path = make_csv(tmp_path / "s.csv", "timestamp,hr\n1,80\n2,abc\n")
    with pytest.raises(DataError, match=r"s.csv row 3, column 'hr'.*'abc'"):
        load_signals(path)


def test_nan_only_column(tmp_path, make_csv):
    path = make_csv(tmp_path / "s.csv", "timestamp,hr,spo2\n1,80,\n2,81,\n")
    with pytest.raises(DataError, match=r"s.csv, column 'spo2': every value"):
        load_signals(path)


def test_bad_anomaly_label(tmp_path, make_csv):
    path = make_csv(tmp_path / "s.csv", "timestamp,v,is_anomaly\n1,1,0\n2,1,yes\n")
    with pytest.raises(DataError, match=r"row 3, 'is_anomaly'.*0 or 1.*'yes'"):
        load_signals(path)


def test_mixed_channels_and_mixed_labels_are_rejected(tmp_path, make_csv):
    make_csv(tmp_path / "a.csv", "timestamp,hr\n1,80\n")
    make_csv(tmp_path / "b.csv", "timestamp,spo2\n1,97\n")
    with pytest.raises(DataError, match=r"b.csv: channels \['spo2'\] differ"):
        load_signals(tmp_path)
    other = tmp_path / "other"
    make_csv(other / "a.out", "1,0\n")
    make_csv(other / "b.txt", "1\n2\n")
    with pytest.raises(DataError, match=r"b.txt: no anomaly labels"):
        load_signals(other)


def test_empty_and_wide_headerless_files(tmp_path, make_csv):
    with pytest.raises(DataError, match=r"e.csv: the file is empty"):
        load_signals(make_csv(tmp_path / "e.csv", ""))
    with pytest.raises(DataError, match=r"w.csv: headerless file with 3 columns"):
        load_signals(make_csv(tmp_path / "w.csv", "1,2,3\n"))
    with pytest.raises(DataError, match=r"no signal files"):
        load_signals(_empty(tmp_path))


def _empty(tmp_path):
    folder = tmp_path / "empty_folder"
    folder.mkdir()
    return folder
