"""Tests for client.data.load_vitals: long-format CSV and Parquet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fedcare_data_builders import vitals_frame

from client.data import load_vitals
from shared_models.errors import DataError


def test_csv_hourly_bins_mean_and_forward_fill(vitals_csv):
    vit = load_vitals(vitals_csv, hours=6)
    assert vit.features == ("heart_rate", "spo2")
    assert vit.x.shape == (3, 6, 2)
    assert vit.x.dtype == np.float32
    assert vit.stay.tolist() == ["s1", "s2", "s3"]
    assert vit.patient.tolist() == ["p1", "p1", "p2"]
    np.testing.assert_allclose(vit.x[0, :, 0], [85, 85, 85, 100, 100, 100])
    np.testing.assert_allclose(vit.x[1, :, 1], [99, 99, 98, 98, 98, 98])
    np.testing.assert_allclose(vit.x[1, :, 0], [70] * 6)
    assert vit.labels["deterioration"].tolist() == [1, 0, 0]
    assert vit.labels["deterioration"].dtype == np.int64
    np.testing.assert_allclose(vit.labels["length_of_stay_days"], [3.0, 1.5, 2.0])
    src = vit.source
    assert (src["rows"], src["patients"], src["stays"]) == (7, 2, 3)
    assert src["missingness"]["heart_rate"] == pytest.approx(1 - 5 / 18)


def test_parquet_with_hours_since_admission(tmp_path):
    frame = pd.DataFrame(
        {
            "patient_id": [1, 1, 1, 2, 3],
            "stay_id": [10, 10, 10, 20, 30],
            "timestamp": [0.0, 2.5, 60.0, 1.0, 0.2],
            "heart_rate": [80.0, np.nan, 70.0, 75.0, 66.0],
            "spo2": [np.nan, 97.0, 90.0, 99.0, 98.0],
        }
    )
    path = tmp_path / "vitals.parquet"
    frame.to_parquet(path)
    vit = load_vitals(tmp_path, hours=4)
    assert vit.patient.tolist() == ["1", "2", "3"]
    assert vit.labels == {}
    # NaN until the first observation of the stay, then carried forward
    assert np.isnan(vit.x[0, :2, 1]).all()
    np.testing.assert_allclose(vit.x[0, 2:, 1], [97, 97])
    assert vit.source["rows_after_window"] == 1
    assert vit.source["format"] == "vitals-parquet"


def _write(tmp_path, frame):
    path = tmp_path / "vitals.csv"
    frame.to_csv(path, index=False)
    return path


def test_missing_required_columns(tmp_path):
    path = _write(tmp_path, vitals_frame().drop(columns=["stay_id"]))
    with pytest.raises(DataError, match=r"vitals.csv: missing column.*'stay_id'"):
        load_vitals(path)


def test_non_numeric_vital_names_row_and_column(tmp_path):
    frame = vitals_frame().astype({"heart_rate": object})
    frame.loc[3, "heart_rate"] = "abc"
    with pytest.raises(DataError, match=r"row 5, column 'heart_rate'.*'abc'"):
        load_vitals(_write(tmp_path, frame))


def test_bad_timestamp(tmp_path):
    frame = vitals_frame()
    frame.loc[2, "timestamp"] = "yesterday"
    with pytest.raises(DataError, match=r"row 4, column 'timestamp'.*'yesterday'"):
        load_vitals(_write(tmp_path, frame))


def test_label_must_be_constant_within_a_stay(tmp_path):
    frame = vitals_frame()
    frame.loc[1, "deterioration"] = 0
    with pytest.raises(DataError, match=r"stay 's1', column 'deterioration'.*one"):
        load_vitals(_write(tmp_path, frame))


def test_label_values_are_checked(tmp_path):
    frame = vitals_frame()
    frame.loc[5, "length_of_stay_days"] = -1
    with pytest.raises(DataError, match=r"stay 's3'.*'length_of_stay_days'.*>= 0"):
        load_vitals(_write(tmp_path, frame))
    frame = vitals_frame()
    frame["deterioration"] = 2
    with pytest.raises(DataError, match=r"'deterioration': expected 0 or 1"):
        load_vitals(_write(tmp_path, frame))


def test_nan_only_feature_and_shared_stay(tmp_path):
    frame = vitals_frame()
    frame["spo2"] = np.nan
    with pytest.raises(DataError, match=r"column 'spo2': every value is missing"):
        load_vitals(_write(tmp_path, frame))
    frame = vitals_frame()
    frame.loc[0, "patient_id"] = "p9"
    with pytest.raises(DataError, match=r"stay 's1' has several patient_id"):
        load_vitals(_write(tmp_path, frame))


def test_unreadable_parquet(tmp_path):
    (tmp_path / "vitals.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"vitals.parquet: could not be read"):
        load_vitals(tmp_path)


def test_parquet_with_datetime_column(tmp_path):
    frame = vitals_frame()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame.to_parquet(tmp_path / "vitals.parquet")
    vit = load_vitals(tmp_path, hours=6)
    np.testing.assert_allclose(vit.x[0, :, 0], [85, 85, 85, 100, 100, 100])
