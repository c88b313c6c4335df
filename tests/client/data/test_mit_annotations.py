"""fedcare's MIT annotation reader: wfdb.rdann's answers on valid files, a
DataError naming the byte on damaged ones, and never a hang."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from client.data.mit_annotations import parse_annotations, read_annotations
from shared_models.errors import DataError
from simulation.cohorts.wfdb_write import write_annotations

SAMPLES = np.array([0, 25, 200, 1500, 1501, 90_000, 5_000_000])
SYMBOLS = ["+", "N", "V", "A", "~", "N", "/"]


def _wrann(directory: Path, **fields: object) -> Path:
    fields = {"sample": SAMPLES, "symbol": SYMBOLS, **fields}
    wfdb.wrann("r", "atr", write_dir=str(directory), **fields)
    return directory / "r"


GOOD = {
    "plain": {},
    "fs": {"fs": 360},
    "notes": {"aux_note": ["(N", "", "odd", "even", "", "(VT", "x" * 255]},
    "chan-num-sub": {
        "chan": np.array([0, 1, 1, 0, 2, 2, 0]),
        "num": np.array([0, 3, 3, 1, 0, 5, 5]),
        "subtype": np.array([0, 1, -2, 0, 0, 7, 0]),
    },
    "custom-labels": {
        "symbol": ["+", "N", "Z", "A", "~", "Z", "/"],
        "custom_labels": pd.DataFrame(
            {"label_store": [45], "symbol": ["Z"], "description": ["Odd beat"]}
        ),
        "fs": 250,
    },
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_same_answers_as_wfdb_rdann(tmp_path: Path, case: str) -> None:
    rec = _wrann(tmp_path, **GOOD[case])
    expected = wfdb.rdann(str(rec), "atr")
    got = read_annotations(tmp_path / "r.atr", "r.atr")
    np.testing.assert_array_equal(got.sample, expected.sample)
    assert got.symbol == list(expected.symbol)
    assert got.aux_note == list(expected.aux_note)


def test_same_answers_as_wfdb_rdann_on_the_cohort_writer(tmp_path: Path) -> None:
    symbols = ["+", "N", "V", "F", "A", "N"]
    samples = np.array([0, 10, 1023, 1024, 3000, 2**31 - 1])
    notes = ["(N", "", "", "", "", ""]
    write_annotations(tmp_path, "c", "atr", samples, symbols, notes)
    expected = wfdb.rdann(str(tmp_path / "c"), "atr")
    got = read_annotations(tmp_path / "c.atr", "c.atr")
    np.testing.assert_array_equal(got.sample, expected.sample)
    assert got.symbol == list(expected.symbol) == symbols


def _words(*words: int) -> bytes:
    return np.array(words, dtype="<u2").tobytes()


def _ann(code: int, step: int) -> int:
    return (code << 10) | step


BAD = {
    "odd length": (b"\x05\x04\x00", r"3 bytes; expected 16-bit words"),
    "no end word": (_words(_ann(1, 5)), r"byte 2: the file ends without"),
    "bytes after end": (
        _words(_ann(1, 5), 0, _ann(1, 5)),
        r"byte 2 .*2 bytes after the end-of-file word",
    ),
    "cut skip": (_words(_ann(1, 5), _ann(59, 0), 0), r"byte 2 .*SKIP needs"),
    "skip then end": (_words(_ann(59, 0), 0, 7, 0), r"byte 6 .*file ends after SKIP"),
    "aux first": (_words(_ann(63, 2), 0x4E28, 0), r"byte 0 .*expected an annotation"),
    "cut aux": (_words(_ann(1, 5), _ann(63, 9), 0x4E28, 0), r"byte 2 .*AUX note of 9"),
    "long aux": (_words(_ann(1, 5), _ann(63, 300), 0), r"AUX note of 300 bytes"),
    "code 55": (_words(_ann(1, 5), _ann(55, 1), 0), r"byte 2 .*code 55"),
    "undefined code": (_words(_ann(1, 5), _ann(45, 1), 0), r"annotation 2 \(byte 2\)"),
    "before sample 0": (
        _words(_ann(59, 0), 0xFFFF, 0xFFF0, _ann(1, 5), 0),
        r"byte 6 .*sample -11",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_damaged_file_names_the_byte(case: str) -> None:
    data, message = BAD[case]
    with pytest.raises(DataError, match=r"^p9\.atr, byte \d+|^p9\.atr: ") as info:
        parse_annotations(data, "p9.atr")
    assert info.match(message)


def test_note_that_makes_rdann_loop_is_an_error_or_a_load(tmp_path: Path) -> None:
    """'## tame resolution' at sample 0: wfdb.rdann never returns on this file."""
    _wrann(tmp_path, fs=250)
    path = tmp_path / "r.atr"
    path.write_bytes(path.read_bytes().replace(b"time", b"tame"))
    start = time.perf_counter()
    got = read_annotations(path, "r.atr")
    assert time.perf_counter() - start < 1.0
    assert got.symbol == SYMBOLS


def test_damaged_label_definitions(tmp_path: Path) -> None:
    _wrann(tmp_path, **GOOD["custom-labels"])
    path = tmp_path / "r.atr"
    path.write_bytes(path.read_bytes().replace(b"## end of", b"## xnd of"))
    with pytest.raises(DataError, match=r"byte \d+: label definition '## xnd of"):
        read_annotations(path, "r.atr")
