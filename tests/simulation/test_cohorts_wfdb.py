"""The fast WFDB writers produce exactly the bytes of wfdb.wrsamp and wfdb.wrann."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from simulation.cohorts.wfdb_write import write_annotations, write_record_212

LEADS = ["MLII", "V1"]


def _reference(folder: Path, d: np.ndarray, samples: np.ndarray, sym, aux) -> None:
    folder.mkdir()
    wfdb.wrsamp(
        "r",
        fs=360,
        units=["mV", "mV"],
        sig_name=LEADS,
        d_signal=d,
        fmt=["212", "212"],
        adc_gain=[200.0, 200.0],
        baseline=[1024, 1024],
        comments=["61 M synthetic", "seed 3, pvc burden 0.120"],
        write_dir=str(folder),
    )
    wfdb.wrann("r", "atr", samples, symbol=sym, aux_note=aux, write_dir=str(folder))


def _ours(folder: Path, d: np.ndarray, samples: np.ndarray, sym, aux) -> None:
    folder.mkdir()
    comments = ["61 M synthetic", "seed 3, pvc burden 0.120"]
    write_record_212(folder, "r", 360, d, LEADS, ["mV", "mV"], 200.0, 1024, comments)
    write_annotations(folder, "r", "atr", samples, sym, aux)


@pytest.mark.parametrize("n", [1, 7, 3601])
def test_same_bytes_as_wfdb(tmp_path: Path, n: int) -> None:
    rng = np.random.default_rng(n)
    d = rng.integers(-2047, 2048, size=(n, 2)).astype(np.int32)
    d[0] = [-2047, 2047]
    # beats 1-3 s apart at 360 Hz: the > 1023-sample gaps need SKIP words
    samples = np.concatenate([[0, 0], np.cumsum(rng.integers(300, 1100, size=40))])
    sym = ["+", "N"] + list(rng.choice(["N", "V", "A", "F"], size=40))
    aux = ["(N", ""] + [""] * 40
    aux[9] = "(B"
    aux[11] = "(AFIB"  # odd length: padded with a zero byte
    _reference(tmp_path / "wfdb", d, samples, sym, aux)
    _ours(tmp_path / "ours", d, samples, sym, aux)
    for ext in ("hea", "dat", "atr"):
        want = (tmp_path / "wfdb" / f"r.{ext}").read_bytes()
        assert (tmp_path / "ours" / f"r.{ext}").read_bytes() == want, ext
    back = wfdb.rdrecord(str(tmp_path / "ours" / "r"), physical=False)
    assert np.array_equal(back.d_signal, d)
    ann = wfdb.rdann(str(tmp_path / "ours" / "r"), "atr")
    assert np.array_equal(ann.sample, samples) and ann.symbol == sym


def test_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    ok = np.zeros((4, 2), dtype=np.int32)
    with pytest.raises(ValueError, match="format 212"):
        write_record_212(tmp_path, "r", 250, ok + 3000, LEADS, ["mV"] * 2, 200, 0)
    with pytest.raises(ValueError, match="expected"):
        write_record_212(tmp_path, "r", 250, ok[:, :1], LEADS, ["mV"] * 2, 200, 0)
    with pytest.raises(ValueError, match="no MIT code"):
        write_annotations(tmp_path, "r", "atr", np.array([5]), ["Q"])
    with pytest.raises(ValueError, match="non-decreasing"):
        write_annotations(tmp_path, "r", "atr", np.array([5, 3]), ["N", "N"])
