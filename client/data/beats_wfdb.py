"""Cutting annotated heartbeats out of WFDB records (MIT-BIH style)."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from client.data._io import MAX_ABS_VALUE, first_out_of_range
from client.data.aami import NON_BEAT_SYMBOLS, SYMBOL_TO_AAMI
from client.data.mit_annotations import read_annotations
from shared_models.errors import DataError

logger = logging.getLogger(__name__)

# ECG sampling rates in use run from ~100 Hz (Holter) to a few kHz
MIN_FS, MAX_FS = 50.0, 20000.0


def record_paths(path: Path) -> list[Path]:
    """Record names (paths without suffix) for a folder, a .hea file or a stem."""
    if path.is_dir():
        records = sorted(p.with_suffix("") for p in path.glob("*.hea"))
        if not records:
            raise DataError(f"{path}: no WFDB header files (*.hea) in this folder")
        return records
    return [path.with_suffix("") if path.suffix == ".hea" else path]


def _read_record(rec: Path, lead: str) -> tuple[np.ndarray, float]:
    try:
        record = wfdb.rdrecord(str(rec))
    except Exception as exc:  # wfdb raises ValueError, OSError, IndexError ...
        raise DataError(
            f"WFDB record {rec.name} ({rec}.hea): could not be read "
            f"({type(exc).__name__}: {exc}); expected a valid header and signal file"
        ) from None
    names = list(record.sig_name or [])
    if lead not in names:
        raise DataError(
            f"WFDB record {rec.name}: lead {lead!r} not found; the record has leads "
            f"{names}. Choose one of them with the `lead` setting."
        )
    if record.p_signal is None or record.p_signal.shape[0] == 0:
        raise DataError(f"WFDB record {rec.name}: the signal file holds no samples")
    signal = record.p_signal[:, names.index(lead)].astype(np.float64)
    if np.isnan(signal).all():
        raise DataError(
            f"WFDB record {rec.name}, lead {lead!r}: every sample is invalid (NaN)"
        )
    at = first_out_of_range(signal)  # NaN samples are invalid, not absurd
    if at is not None:
        raise DataError(
            f"WFDB record {rec.name}, lead {lead!r}, sample {at}: found "
            f"{float(signal[at])!r} mV; expected a finite voltage within "
            f"[-{MAX_ABS_VALUE:g}, {MAX_ABS_VALUE:g}] (check the header's gain)"
        )
    fs = float(record.fs) if record.fs is not None else float("nan")
    written = _header_fs(rec)
    if written is not None:
        fs = written  # wfdb reads "-250" as 250: judge what the header says
    if not (MIN_FS <= fs <= MAX_FS):
        raise DataError(
            f"WFDB record {rec.name}.hea: sampling frequency {record.fs!r}; expected "
            f"a number of samples per second within [{MIN_FS:g}, {MAX_FS:g}]"
        )
    return signal, fs


def _header_fs(rec: Path) -> float | None:
    """The sampling frequency as the header's record line writes it (its
    third field, before any ``/counter`` or ``(base)``), or None if absent."""
    try:
        header = rec.parent / f"{rec.name}.hea"
        lines = header.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 3:
            return None
        token = re.split(r"[/(]", fields[2], maxsplit=1)[0]
        try:
            return float(token)
        except ValueError:
            return float("nan")
    return None


def _read_annotations(rec: Path, extension: str) -> tuple[np.ndarray, list[str]]:
    path = rec.parent / f"{rec.name}.{extension}"
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(
            f"WFDB record {rec.name}: annotation file {path.name} is empty (0 "
            "bytes); expected beat annotations (remove the record, or restore "
            "its annotations)"
        )
    if not path.is_file():
        raise DataError(
            f"WFDB record {rec.name}: annotation file {rec.name}.{extension} not "
            f"found; expected beat annotations next to {rec.name}.hea"
        )
    ann = read_annotations(path, f"WFDB record {rec.name}: annotation file {path.name}")
    samples = np.asarray(ann.sample, dtype=np.int64)
    back = np.flatnonzero(np.diff(samples) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise DataError(
            f"WFDB record {rec.name}: annotation {i + 1} of {path.name} is at sample "
            f"{samples[i]}, before annotation {i} (sample {samples[i - 1]}); "
            "expected annotations in time order"
        )
    return samples, list(ann.symbol)


def cut_beats(
    signal: np.ndarray,
    fs: float,
    samples: np.ndarray,
    beat_length: int,
    window_s: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Windows around ``samples`` resampled to ``beat_length`` points.

    The window ``[s - window_s[0]*fs, s + window_s[1]*fs)`` is sampled at
    ``beat_length`` equally spaced times by linear interpolation, so records of
    any sampling rate give beats on the same time grid. Returns the beats and a
    boolean mask of the samples whose window fits inside the record.
    """
    before, after = window_s
    times = -before + (before + after) * np.arange(beat_length) / beat_length
    offsets = times * fs
    positions = samples[:, None].astype(np.float64) + offsets[None, :]
    inside = (positions[:, 0] >= 0) & (positions[:, -1] <= len(signal) - 1)
    positions = positions[inside]
    beats = np.interp(positions.ravel(), np.arange(len(signal)), signal)
    return beats.reshape(-1, beat_length), inside


def load_record_beats(
    rec: Path,
    lead: str,
    beat_length: int,
    window_s: tuple[float, float],
    extension: str,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Beats, their symbols and a per-record summary for one WFDB record."""
    signal, fs = _read_record(rec, lead)
    samples, symbols = _read_annotations(rec, extension)
    sym = np.asarray(symbols, dtype=object)
    is_beat = np.array([s in SYMBOL_TO_AAMI for s in symbols], dtype=bool)
    non_beat = int(sum(s in NON_BEAT_SYMBOLS for s in symbols))
    unknown = Counter(
        s for s in symbols if s not in SYMBOL_TO_AAMI and s not in NON_BEAT_SYMBOLS
    )
    beats, inside = cut_beats(signal, fs, samples[is_beat], beat_length, window_s)
    sym = sym[is_beat][inside]
    valid = ~np.isnan(beats).any(axis=1)
    summary = {
        "sampling_rate": fs,
        "beats": int(valid.sum()),
        "skipped_edge": int((~inside).sum()),
        "skipped_non_beat": non_beat,
        "skipped_unknown_symbol": dict(unknown),
        "skipped_invalid_samples": int((~valid).sum()),
    }
    logger.debug("record %s: %s", rec.name, summary)
    return beats[valid], sym[valid], summary
