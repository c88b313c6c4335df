"""Fast writers for WFDB records (format 212) and MIT annotation files.

``wfdb.wrsamp``/``wfdb.wrann`` validate every header field through pandas
tables, about 15 ms per record; a hospital has hundreds of short records, so
that overhead would dominate cohort generation. These writers produce the same
bytes (``tests/simulation/test_cohorts_wfdb.py`` checks them against wfdb) for
the one layout the generator uses: digital samples, every signal in one
``.dat`` file in format 212, no skew, offset or block size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# MIT annotation codes (WFDB ``ecgcodes.h``) of the symbols the generator writes
ANN_CODES = {"N": 1, "V": 5, "F": 6, "A": 8, "+": 28}
_SKIP, _AUX = 59, 63
_FMT212_RANGE = (-2048, 2047)


def _pack_212(d_signal: np.ndarray) -> bytes:
    """Frame-interleaved samples as 12-bit two's complement, 2 samples in 3 bytes."""
    flat = d_signal.astype(np.int64).reshape(-1) & 0xFFF
    if len(flat) % 2:
        flat = np.concatenate([flat, [0]])
    out = np.empty(3 * (len(flat) // 2), dtype=np.uint8)
    first, second = flat[0::2], flat[1::2]
    out[0::3] = first & 0xFF
    out[1::3] = ((first >> 8) & 0x0F) | ((second >> 4) & 0xF0)
    out[2::3] = second & 0xFF
    return out.tobytes()


def write_record_212(
    write_dir: Path,
    name: str,
    fs: int,
    d_signal: np.ndarray,
    sig_names: Sequence[str],
    units: Sequence[str],
    adc_gain: float,
    baseline: int,
    comments: Sequence[str] = (),
) -> None:
    """Write ``name.hea`` and ``name.dat``: what ``wfdb.wrsamp`` writes for them."""
    d_signal = np.asarray(d_signal)
    if d_signal.ndim != 2 or d_signal.shape[1] != len(sig_names):
        raise ValueError(
            f"d_signal has shape {d_signal.shape}; expected (samples, "
            f"{len(sig_names)}) for signals {list(sig_names)}."
        )
    low, high = _FMT212_RANGE
    if d_signal.size and (d_signal.min() < low or d_signal.max() > high):
        raise ValueError(
            f"samples span {d_signal.min()}..{d_signal.max()}; format 212 holds "
            f"{low}..{high}: clip the digital signal first."
        )
    n_samples, n_sig = d_signal.shape
    checksums = np.sum(d_signal.astype(np.int64), axis=0) % 65536
    lines = [f"{name} {n_sig} {fs} {n_samples}"]
    for ch in range(n_sig):
        first = int(d_signal[0, ch]) if n_samples else 0
        lines.append(
            f"{name}.dat 212 {float(adc_gain)}({int(baseline)})/{units[ch]} 12 0 "
            f"{first} {int(checksums[ch])} 0 {sig_names[ch]}"
        )
    lines += [f"# {c}" for c in comments]
    write_dir = Path(write_dir)
    (write_dir / f"{name}.hea").write_text("\n".join(lines) + "\n", encoding="ascii")
    (write_dir / f"{name}.dat").write_bytes(_pack_212(d_signal))


def _annotation_bytes(diff: int, symbol: str, aux: str) -> list[int]:
    code = ANN_CODES.get(symbol)
    if code is None:
        raise ValueError(
            f"annotation symbol {symbol!r} has no MIT code here; known: "
            f"{sorted(ANN_CODES)}."
        )
    out: list[int] = []
    if diff > 1023:  # SKIP: the interval as a 32-bit word, high half first
        out += [0, _SKIP << 2, (diff >> 16) & 255, (diff >> 24) & 255]
        out += [diff & 255, (diff >> 8) & 255]
        diff = 0
    out += [diff & 255, ((diff >> 8) & 3) | (code << 2)]
    if aux:
        text = aux.encode("ascii")
        out += [len(text), _AUX << 2, *text]
        if len(text) % 2:
            out.append(0)
    return out


def write_annotations(
    write_dir: Path,
    name: str,
    extension: str,
    samples: np.ndarray,
    symbols: Sequence[str],
    aux_notes: Sequence[str] | None = None,
) -> None:
    """Write ``name.extension`` in MIT format: what ``wfdb.wrann`` writes for it."""
    samples = np.asarray(samples, dtype=np.int64)
    if len(samples) != len(symbols):
        raise ValueError(
            f"{len(samples)} samples but {len(symbols)} symbols: give one each."
        )
    diffs = np.diff(samples, prepend=0)
    if len(diffs) and (diffs.min() < 0 or diffs.max() > 0x7FFFFFFF):
        raise ValueError("annotation samples must be non-decreasing and >= 0.")
    notes = aux_notes if aux_notes is not None else [""] * len(symbols)
    data: list[int] = []
    for diff, symbol, aux in zip(diffs.tolist(), symbols, notes, strict=True):
        data += _annotation_bytes(diff, str(symbol), aux)
    data += [0, 0]
    (Path(write_dir) / f"{name}.{extension}").write_bytes(bytes(data))
