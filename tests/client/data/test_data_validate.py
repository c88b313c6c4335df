"""Tests for client.data.validate and resolve_data_path."""

from __future__ import annotations

import json

import pytest
from fedcare_data_builders import vitals_frame

from client.data import resolve_data_path, validate
from shared_models.errors import DataError


def test_resolve_data_path_finds_conventional_folders(ecg_dir, vitals_csv, tmp_path):
    hospital = ecg_dir.parent
    assert resolve_data_path(hospital, "ecg") == ecg_dir
    assert resolve_data_path(ecg_dir, "ecg") == ecg_dir
    assert resolve_data_path(ecg_dir / "p250", "ecg") == ecg_dir / "p250"
    assert resolve_data_path(hospital, "vitals") == vitals_csv.parent
    assert resolve_data_path(vitals_csv, "vitals") == vitals_csv
    with pytest.raises(DataError, match=r"found no signals data; looked for \*.csv"):
        resolve_data_path(hospital, "signals")
    with pytest.raises(DataError, match=r"no such file"):
        resolve_data_path(tmp_path / "missing", "ecg")


def test_validate_ecg_arrhythmia(ecg_dir):
    report = validate(ecg_dir.parent, "ecg-arrhythmia")
    json.dumps(report)
    assert report["format"] == "wfdb"
    assert report["patients"] == 3
    assert report["beats"] == 33
    assert report["label_balance"] == {"N": 21, "S": 3, "V": 3, "F": 3, "Q": 3}
    assert report["sampling_rates"]["p360"] == 360.0
    assert report["split"]["by_patient_possible"] is True


def test_validate_ecg_anomaly_counts_normal_and_anomalous(ecg_dir):
    report = validate(ecg_dir, "ecg-anomaly")
    assert report["label_balance"]["normal"] == 21
    assert report["label_balance"]["anomalous"] == 12


def test_validate_single_signal_cannot_split_by_patient(tmp_path, make_csv):
    make_csv(tmp_path / "h" / "signals" / "s.out", "1,0\n2,0\n3,1\n")
    report = validate(tmp_path / "h", "signal-anomaly")
    json.dumps(report)
    assert report["series"] == 1
    assert report["label_balance"] == {"normal": 2, "anomalous": 1}
    assert report["split"]["by_patient_possible"] is False
    assert "at least 3" in report["split"]["reason"]


def test_validate_icu_tasks(vitals_csv, tmp_path):
    report = validate(vitals_csv, "icu-deterioration")
    json.dumps(report)
    assert report["stays"] == 3 and report["patients"] == 2
    assert report["label_balance"] == {"0": 2, "1": 1}
    assert set(report["missingness"]) == {"heart_rate", "spo2"}
    assert report["split"]["by_patient_possible"] is False
    los = validate(vitals_csv, "icu-los")
    assert los["label_balance"]["max"] == 3.0
    path = tmp_path / "no_labels.csv"
    vitals_frame().drop(columns=["deterioration"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"needs a per-stay label column 'det"):
        validate(path, "icu-deterioration")


def test_validate_unknown_task(tmp_path):
    with pytest.raises(DataError, match=r"unknown task 'ecg'; expected one of"):
        validate(tmp_path, "ecg")
