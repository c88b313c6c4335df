"""Property-based hostile inputs for every reader (hypothesis, 1,500 cases).

Each case starts from a valid file of one format and damages it the way a bad
export, a hand edit or a hostile tester would: a cell replaced by a hostile
token, a column dropped or renamed, the file cut at a random byte, random bytes
spliced in, a WFDB header field replaced, an annotation file garbled. Every
case must end in one of two ways:

- fedcare's own :class:`DataError`, whose message names the file (or record);
- a successful load whose values are all finite (the damage was harmless, e.g.
  a cut at a line boundary).

Anything else (another exception type, a non-finite value let through) fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import reliability
from fedcare_data_builders import vitals_frame, write_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.data import load_beats, load_signals, load_vitals
from shared_models.errors import DataError

CASES = int(os.environ.get("FEDCARE_HOSTILE_CASES", "300"))  # per reader: 1,500 in all
SETTINGS = settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Which WFDB file the last test damages. A flipped byte in a .atr once made
# wfdb.rdann loop without end; fedcare reads .atr files itself now
# (client/data/mit_annotations.py), so both are damaged by default.
TARGETS = os.environ.get("FEDCARE_HOSTILE_TARGETS", "dat,atr").split(",")
HOSTILE_TOKENS = [
    "", " ", "inf", "-inf", "Infinity", "nan", "NaN", "1e300", "-1e39", "1e39",
    "2e6", "abc", "1,5", "0x10", "--1", "1e", "\u00e9", "\u2212 1", "\x00",
    "9" * 40, "-0", "true", "None", "[1]", '"', "'", "\t", "1;2",
]  # fmt: skip


def _damage(text: str, draw: st.DrawFn) -> str:
    """One damage to a delimited text file (rows after a header line)."""
    lines = text.splitlines()
    kind = draw(st.sampled_from(["cell", "cell", "drop", "rename", "cut", "bytes"]))
    if kind == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "bytes":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.text(min_size=1, max_size=8))
        return text[:at] + junk + text[at:]
    header = lines[0].split(",")
    col = draw(st.integers(0, len(header) - 1))
    if kind in ("drop", "rename"):
        rows = [line.split(",") for line in lines]
        for row in rows:
            if col < len(row):
                if kind == "drop":
                    del row[col]
                elif row is rows[0]:
                    row[col] = row[col] + "_x"
        return "\n".join(",".join(r) for r in rows) + "\n"
    row = draw(st.integers(1, len(lines) - 1))
    cells = lines[row].split(",")
    cells[min(col, len(cells) - 1)] = draw(st.sampled_from(HOSTILE_TOKENS))
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def _check(load: Callable[[], object], name: str) -> None:
    reader = "WFDB record" if name == "p250" else name
    with reliability.case(f"data: damaged {reader} (hypothesis)"):
        _check_one(load, name)


def _check_one(load: Callable[[], object], name: str) -> None:
    try:
        loaded = load()
    except DataError as exc:
        assert name in str(exc), f"the message does not name {name}: {exc}"
        return
    for field in ("beats", "values", "x"):
        array = getattr(loaded, field, None)
        if array is not None:
            finite = np.isfinite(array) | (np.isnan(array) if field == "x" else False)
            assert finite.all(), f"non-finite {field} let through"


def _beats_csv() -> str:
    rng = np.random.default_rng(0)
    header = "patient_id,label," + ",".join(f"s{i}" for i in range(12))
    rows = [
        f"p{i % 3},{'NV'[i % 2]}," + ",".join(f"{v:.3f}" for v in rng.normal(size=12))
        for i in range(8)
    ]
    return "\n".join([header, *rows]) + "\n"


def _signals_csv() -> str:
    rows = [f"{t},{80 + (t % 7)},{int(t in (20, 21))}" for t in range(1, 40)]
    return "\n".join(["timestamp,abp,is_anomaly", *rows]) + "\n"


CSV_READERS: dict[str, tuple[Callable[[], str], Callable[[Path], object]]] = {
    "beats.csv": (_beats_csv, load_beats),
    "s001.csv": (_signals_csv, load_signals),
    "vitals.csv": (
        lambda: vitals_frame().to_csv(index=False),
        lambda path: load_vitals(path, hours=6),
    ),
}


@pytest.mark.parametrize("name", sorted(CSV_READERS))
@SETTINGS
@given(data=st.data())
def test_csv_reader(name: str, data: st.DataObject) -> None:
    valid, load = CSV_READERS[name]
    text = _damage(valid(), data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, errors="surrogatepass")
        _check(lambda: load(path), name)


_WFDB = Path(tempfile.mkdtemp(prefix="fedcare-wfdb-"))
write_record(_WFDB / "ecg", "p250", 250)
HEADER = (_WFDB / "ecg" / "p250.hea").read_text()
ANNOTATIONS = (_WFDB / "ecg" / "p250.atr").read_bytes()
SIGNAL = (_WFDB / "ecg" / "p250.dat").read_bytes()


def _record(tmp: str, header: str, atr: bytes, dat: bytes = SIGNAL) -> Path:
    directory = Path(tmp) / "ecg"
    directory.mkdir()
    (directory / "p250.hea").write_text(header, errors="surrogatepass")
    (directory / "p250.atr").write_bytes(atr)
    (directory / "p250.dat").write_bytes(dat)
    return directory


@SETTINGS
@given(st.data())
def test_wfdb_header(data: st.DataObject) -> None:
    """A header field (record line or signal line) replaced, or the header cut."""
    lines = HEADER.splitlines()
    if data.draw(st.booleans()):
        header = HEADER[: data.draw(st.integers(0, len(HEADER)))]
    else:
        row = data.draw(st.integers(0, len(lines) - 1))
        fields = lines[row].split()
        at = data.draw(st.integers(0, len(fields) - 1))
        fields[at] = data.draw(st.sampled_from([*HOSTILE_TOKENS, "-250", "0", "1e9"]))
        lines[row] = " ".join(fields)
        header = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        directory = _record(tmp, header, ANNOTATIONS)
        _check(lambda: load_beats(directory), "p250")


@SETTINGS
@given(st.data())
def test_wfdb_annotations_and_signal(data: st.DataObject) -> None:
    """The signal or the annotation file (see TARGETS) cut or with bytes flipped."""
    target = data.draw(st.sampled_from(TARGETS))
    blob = bytearray(ANNOTATIONS if target == "atr" else SIGNAL)
    kind = data.draw(st.sampled_from(["cut", "flip", "flip"]))
    if kind == "cut":
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(blob) - 1))
            blob[at] = data.draw(st.integers(0, 255))
    atr, dat = (bytes(blob), SIGNAL) if target == "atr" else (ANNOTATIONS, bytes(blob))
    with tempfile.TemporaryDirectory() as tmp:
        directory = _record(tmp, HEADER, atr, dat)
        _check(lambda: load_beats(directory), "p250")
