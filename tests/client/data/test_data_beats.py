"""Tests for client.data.load_beats: WFDB records and beats CSV files."""

from __future__ import annotations

import numpy as np
import pytest
from fedcare_data_builders import BEAT_SYMBOLS, beat_shape

from client.data import AAMI_CLASSES, SYMBOL_TO_AAMI, load_beats
from shared_models.errors import DataError


def test_same_beat_at_250_360_500_hz_gives_nearly_the_same_input(ecg_dir):
    beats = load_beats(ecg_dir)
    per_record = {
        rec: beats.beats[beats.patient == rec] for rec in ("p250", "p360", "p500")
    }
    reference = per_record["p500"]
    assert reference.shape == (11, 90)
    for rec in ("p250", "p360"):
        assert per_record[rec].shape == reference.shape
        assert np.abs(per_record[rec] - reference).max() < 0.08
    # The window is centred as asked: 0.25 s before the R peak.
    times = -0.25 + 0.72 * np.arange(90) / 90
    expected = beat_shape(times)
    assert np.abs(reference[1] - expected).max() < 0.05


def test_beat_set_contents_and_source(ecg_dir):
    beats = load_beats(ecg_dir)
    assert beats.beats.dtype == np.float32
    assert beats.aami.dtype == np.int64
    inner = list(BEAT_SYMBOLS[1:-1])  # first and last beat leave the record
    assert beats.symbols[beats.patient == "p360"].tolist() == inner
    assert [AAMI_CLASSES[i] for i in beats.aami[:11]] == [
        "N", "V", "N", "S", "N", "N", "N", "F", "N", "Q", "N"
    ]  # fmt: skip
    src = beats.source
    assert src["format"] == "wfdb"
    assert src["records"] == ["p250", "p360", "p500"]
    assert src["sampling_rate"] == {"p250": 250.0, "p360": 360.0, "p500": 500.0}
    assert src["lead"] == "MLII"
    assert src["skipped"]["edge"] == 6
    assert src["skipped"]["non_beat"] == 6  # one '+' and one '~' per record


def test_other_lead_and_single_record_path(ecg_dir):
    v1 = load_beats(ecg_dir / "p360", lead="V1")
    mlii = load_beats(ecg_dir / "p360.hea")
    assert set(v1.patient) == {"p360"}
    np.testing.assert_allclose(v1.beats, -0.5 * mlii.beats, atol=0.01)


def test_missing_lead_names_the_record_and_its_leads(ecg_dir):
    with pytest.raises(DataError, match=r"p250.*'II'.*\['MLII', 'V1'\]"):
        load_beats(ecg_dir, lead="II")


def test_missing_annotation_file(tmp_path, make_record):
    rec = make_record(tmp_path / "ecg", "p1", 360, annotate=False)
    with pytest.raises(DataError, match=r"p1\.atr not found"):
        load_beats(rec)


def test_unreadable_header_is_a_data_error(tmp_path):
    (tmp_path / "bad.hea").write_text("this is not a header\n")
    with pytest.raises(DataError, match="bad"):
        load_beats(tmp_path)


def test_folder_without_records(tmp_path):
    with pytest.raises(DataError, match=r"no WFDB header"):
        load_beats(tmp_path)


@pytest.mark.parametrize(
    ("symbol", "cls"),
    [("N", "N"), ("L", "N"), ("R", "N"), ("e", "N"), ("j", "N"), ("A", "S"),
     ("a", "S"), ("J", "S"), ("S", "S"), ("V", "V"), ("E", "V"), ("F", "F"),
     ("/", "Q"), ("f", "Q"), ("Q", "Q")],
)  # fmt: skip
def test_aami_mapping(symbol, cls):
    assert AAMI_CLASSES[SYMBOL_TO_AAMI[symbol]] == cls


def test_non_beat_annotations_are_not_beats():
    for symbol in '+~|"[]!x(':
        assert symbol not in SYMBOL_TO_AAMI
    assert len(SYMBOL_TO_AAMI) == 15


def _beats_csv(make_csv, tmp_path, rows, n=12):
    header = "patient_id,label," + ",".join(f"s{i}" for i in range(n))
    return make_csv(tmp_path / "beats.csv", "\n".join([header, *rows]) + "\n")


def test_beats_csv_labels_and_resampling(tmp_path, make_csv):
    wave = ",".join(str(i / 10) for i in range(12))
    rows = [f"a,N,{wave}", f"a,V,{wave}", f"b,A,{wave}", f"b,1,{wave}", f"c,0,{wave}"]
    beats = load_beats(_beats_csv(make_csv, tmp_path, rows), beat_length=24)
    assert beats.beats.shape == (5, 24)
    assert [AAMI_CLASSES[i] for i in beats.aami] == ["N", "V", "S", "V", "N"]
    assert beats.symbols.tolist() == ["N", "V", "A", "1", "0"]
    assert beats.patient.tolist() == ["a", "a", "b", "b", "c"]
    assert beats.source["format"] == "beats-csv"
    np.testing.assert_allclose(beats.beats[0, ::2], np.arange(12) / 10, atol=1e-6)


def test_beats_csv_bad_label_names_row_and_accepted_values(tmp_path, make_csv):
    wave = ",".join(["0.1"] * 12)
    path = _beats_csv(make_csv, tmp_path, [f"a,N,{wave}", f"a,2,{wave}"])
    with pytest.raises(DataError, match=r"beats.csv row 3, column 'label'.*'2'.*N"):
        load_beats(path)


def test_beats_csv_non_numeric_sample(tmp_path, make_csv):
    wave = ["0.1"] * 12
    wave[4] = "abc"
    path = _beats_csv(make_csv, tmp_path, ["a,N," + ",".join(wave)])
    with pytest.raises(DataError, match=r"row 2, column 's4'.*number.*'abc'"):
        load_beats(path)


def test_beats_csv_too_few_samples(tmp_path, make_csv):
    path = _beats_csv(make_csv, tmp_path, ["a,N,1,2,3"], n=3)
    with pytest.raises(DataError, match=r"found 3 sample column.*at least 8"):
        load_beats(path)


def test_beats_csv_missing_columns_and_empty(tmp_path, make_csv):
    path = make_csv(tmp_path / "x.csv", "id,cls,a,b\n1,N,2,3\n")
    with pytest.raises(DataError, match=r"x.csv: missing column.*patient_id"):
        load_beats(path)
    with pytest.raises(DataError, match=r"empty.csv: the file is empty"):
        load_beats(make_csv(tmp_path / "empty.csv", ""))


def test_missing_signal_file_is_a_data_error(tmp_path, make_record):
    rec = make_record(tmp_path / "ecg", "p1", 360)
    rec.with_suffix(".dat").unlink()
    with pytest.raises(DataError, match=r"WFDB record p1 .*could not be read.*p1.dat"):
        load_beats(rec)
