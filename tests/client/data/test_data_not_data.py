"""Values that parse as numbers but are not data: infinities, overflows, absurd
magnitudes, infinite timestamps, impossible sampling rates. Every reader
refuses them with a DataError naming the file, the row (or sample) and the
field, and the accepted range; ``fedcare train`` then exits 2 before any
privacy budget is spent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fedcare_data_builders import vitals_frame
from typer.testing import CliRunner

from client.data import load_beats, load_signals, load_vitals
from shared_models.errors import DataError
from simulation.cli.main import app

NOT_DATA = ["inf", "-inf", "1e300", "1e39", "2e6"]


@pytest.mark.parametrize("value", NOT_DATA)
def test_vitals_value(tmp_path: Path, value: str) -> None:
    frame = vitals_frame()
    frame["heart_rate"] = frame["heart_rate"].astype(object)
    frame.loc[3, "heart_rate"] = value
    path = tmp_path / "vitals.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(
        DataError, match=r"vitals.csv row 5, column 'heart_rate'.*within \[-1e\+06"
    ):
        load_vitals(path, hours=6)


@pytest.mark.parametrize("value", ["inf", "1e20"])
def test_vitals_hours_since_admission(tmp_path: Path, value: str) -> None:
    frame = vitals_frame()
    frame["timestamp"] = ["0", "0.5", "3", "0", "2", "0", value]
    path = tmp_path / "vitals.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row 8, column 'timestamp'.*hours since"):
        load_vitals(path, hours=6)


@pytest.mark.parametrize("value", NOT_DATA)
def test_signal_value(tmp_path: Path, value: str) -> None:
    path = tmp_path / "s001.csv"
    path.write_text(f"timestamp,abp,is_anomaly\n1,80,0\n2,{value},0\n3,82,1\n")
    with pytest.raises(DataError, match=r"s001.csv row 3, column 'abp'.*finite"):
        load_signals(path)


def test_signal_infinite_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "s001.csv"
    path.write_text("timestamp,abp,is_anomaly\n1,80,0\n2,81,0\ninf,82,1\n")
    with pytest.raises(DataError, match=r"row 4, column 'timestamp'.*finite"):
        load_signals(path)


@pytest.mark.parametrize("value", NOT_DATA)
def test_beats_csv_sample(tmp_path: Path, value: str) -> None:
    wave = ["0.1"] * 12
    bad = [*wave[:5], value, *wave[6:]]
    header = "patient_id,label," + ",".join(f"s{i}" for i in range(12))
    path = tmp_path / "beats.csv"
    path.write_text(
        "\n".join([header, "a,N," + ",".join(wave), "a,V," + ",".join(bad)]) + "\n"
    )
    with pytest.raises(DataError, match=r"beats.csv row 3, column 's5'.*in mV"):
        load_beats(path)


@pytest.mark.parametrize("fs", ["0", "-250", "-250(0)", "nan", "1e9"])
def test_wfdb_impossible_sampling_frequency(ecg_dir: Path, fs: str) -> None:
    """wfdb itself reads "-250" as 250: the header's own text is judged."""
    header = next(ecg_dir.glob("*.hea"))
    first, *rest = header.read_text().splitlines()
    parts = first.split()
    parts[2] = fs  # record name, signals, sampling frequency, samples
    header.write_text("\n".join([" ".join(parts), *rest]) + "\n")
    with pytest.raises(DataError, match=r"\.hea: sampling frequency.*within \[50"):
        load_beats(ecg_dir)


def test_wfdb_empty_annotation_file(ecg_dir: Path) -> None:
    atr = next(ecg_dir.glob("*.atr"))
    atr.write_bytes(b"")
    with pytest.raises(DataError, match=rf"{atr.name} is empty \(0 bytes\)"):
        load_beats(ecg_dir)


def test_wfdb_annotations_going_backwards(ecg_dir: Path) -> None:
    """wfdb's writer refuses them, but a file can hold them: a SKIP code with a
    negative interval (MIT format: 6-bit code, 10-bit interval per word; SKIP
    carries a 32-bit interval, high word first)."""
    import struct

    def word(code: int, interval: int) -> bytes:
        return struct.pack("<H", (code << 10) | (interval & 0x3FF))

    back = -50 & 0xFFFFFFFF
    atr = next(ecg_dir.glob("*.atr"))
    atr.write_bytes(
        word(1, 300) + word(59, 0) + struct.pack("<HH", back >> 16, back & 0xFFFF)
        + word(1, 0) + word(1, 400) + b"\x00\x00"
    )  # fmt: skip
    with pytest.raises(
        DataError, match=r"annotation 2 of .*\.atr is at sample 250, before annotation"
    ):
        load_beats(ecg_dir)


def test_train_on_not_data_exits_2_before_any_budget_is_spent(tmp_path: Path) -> None:
    frame = vitals_frame()
    frame["heart_rate"] = frame["heart_rate"].astype(object)
    frame.loc[2, "heart_rate"] = "inf"
    data = tmp_path / "vitals.csv"
    frame.to_csv(data, index=False)
    ledger = tmp_path / "ledgers" / "ledger.jsonl"
    ledger.parent.mkdir()
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--task",
            "icu-deterioration",
            "--out",
            str(tmp_path / "model"),
            "--ledger",
            str(ledger),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "row 4, column 'heart_rate'" in result.output
    assert "Traceback" not in result.output
    assert not ledger.exists() and not (tmp_path / "model").exists()


def test_beats_csv_whitespace_patient_id(tmp_path: Path) -> None:
    wave = ",".join(["0.1"] * 8)
    header = "patient_id,label," + ",".join(f"s{i}" for i in range(8))
    path = tmp_path / "beats.csv"
    path.write_text(f"{header}\na,N,{wave}\n   ,V,{wave}\n")
    with pytest.raises(DataError, match=r"beats.csv row 3, column 'patient_id'"):
        load_beats(path)
