"""Reading MIT-format annotation files (``.atr``) with a bound on work.

The format (PhysioNet's ``annot(5)``, WFDB Programmer's Guide) is a stream of
16-bit little-endian words: the top 6 bits are the annotation code A, the low
10 bits the time increment I since the previous annotation. A few codes are
pseudo-annotations: SKIP (59) is followed by a 32-bit interval (high 16 bits
first, each half low byte first); NUM (60), SUB (61) and CHN (62) set a field
of the annotation before them; AUX (63) is followed by I bytes of text, padded
to an even length. The word 0 ends the file.

``wfdb.rdann`` can loop forever on a damaged file (a ``## `` note at sample 0
that is neither the time resolution nor the label definitions never advances
its index), so fedcare reads the bytes itself: every step consumes at least
one word, so a file of n bytes costs at most n/2 steps. On valid files the
samples, symbols and notes are the ones ``wfdb.rdann`` returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from wfdb.io.annotation import ann_label_table

from shared_models.errors import DataError

SKIP, NUM, SUB, CHN, AUX = 59, 60, 61, 62, 63
NOTE = 22  # a comment; at sample 0 it carries the file's definitions
MAX_CODE = 49  # ACMAX in ecgcodes.h: codes above it (below SKIP) are undefined
STANDARD_SYMBOLS: dict[int, str] = {
    int(code): str(symbol)
    for code, symbol in zip(
        ann_label_table["label_store"], ann_label_table["symbol"], strict=True
    )
    if int(code) > 0
}
_CUSTOM_LABEL = re.compile(r"(\d+) (\S+) (.+)")


@dataclass(frozen=True)
class Annotations:
    """Annotations in file order: sample number, symbol and note of each."""

    sample: np.ndarray
    symbol: list[str]
    aux_note: list[str]


@dataclass
class _Entry:
    sample: int
    code: int
    at: int  # byte offset of its annotation word
    aux: str = ""


def read_annotations(path: Path, label: str) -> Annotations:
    """Parse ``path``; ``label`` starts every error message (names the file)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{label}: could not be read ({exc.strerror})") from None
    return parse_annotations(data, label)


def parse_annotations(data: bytes, label: str) -> Annotations:
    """The annotations in ``data``, the bytes of an MIT annotation file."""
    entries = _entries(data, label)
    definitions = [e for e in entries if e.sample == 0 and e.code == NOTE]
    symbols = {**STANDARD_SYMBOLS, **_custom_labels(definitions, label)}
    dropped = {id(e) for e in definitions}
    kept = [e for e in entries if e.code != 0 and id(e) not in dropped]
    for index, entry in enumerate(kept, start=1):
        if entry.code not in symbols:
            raise DataError(
                f"{label}: annotation {index} (byte {entry.at}) has code "
                f"{entry.code}, which names no annotation type; expected a code "
                "of WFDB's ecgcodes.h or one the file defines"
            )
    return Annotations(
        sample=np.array([e.sample for e in kept], dtype=np.int64),
        symbol=[symbols[e.code] for e in kept],
        aux_note=[e.aux for e in kept],
    )


def _entries(data: bytes, label: str) -> list[_Entry]:
    """Every annotation word of ``data`` with its time and note, in file order."""
    if len(data) % 2:
        raise DataError(
            f"{label}: {len(data)} bytes; expected 16-bit words (an even number "
            "of bytes): the file is cut or is not an MIT annotation file"
        )
    words = np.frombuffer(data, dtype="<u2").astype(np.int64)
    entries: list[_Entry] = []
    time, i, after_skip = 0, 0, False
    while i < len(words):
        at, code, step = 2 * i, int(words[i]) >> 10, int(words[i]) & 0x3FF
        where = f"{label}, byte {at} (after annotation {len(entries)})"
        if code == 0 and step == 0:
            _check_end(len(data) - at - 2, after_skip, where)
            return entries
        if code == SKIP:
            time += _skip_interval(words, i, where)
            i, after_skip = i + 3, True
            continue
        if code > SKIP:  # NUM, SUB, CHN, AUX: a field of the annotation before
            if not entries or after_skip:
                raise DataError(
                    f"{where}: code {code} (NUM/SUB/CHN/AUX) modifies an "
                    "annotation; expected an annotation word before it"
                )
            i += 1
            if code == AUX:
                i += _read_aux(data, at, step, entries[-1], where)
            continue
        if code > MAX_CODE:
            raise DataError(
                f"{where}: code {code} is not an annotation code; expected "
                f"0..{MAX_CODE} or a pseudo-annotation {SKIP}..{AUX}"
            )
        time += step
        if time < 0:
            raise DataError(
                f"{where}: the annotation falls at sample {time}; expected a "
                "sample >= 0 (a SKIP interval is wrong)"
            )
        entries.append(_Entry(sample=time, code=code, at=at))
        i, after_skip = i + 1, False
    raise DataError(
        f"{label}, byte {len(data)}: the file ends without the end-of-file word "
        "(two 0 bytes); expected it last: the file is cut"
    )


def _check_end(trailing: int, after_skip: bool, where: str) -> None:
    """The end-of-file word must be last, and must not follow a SKIP."""
    if after_skip:
        raise DataError(f"{where}: file ends after SKIP; expected annotation")
    if trailing:
        raise DataError(
            f"{where}: {trailing} bytes after the end-of-file word (0); expected "
            "the file to end there"
        )


def _skip_interval(words: np.ndarray, i: int, where: str) -> int:
    """The signed 32-bit interval of the SKIP word ``i`` (high half first)."""
    if i + 2 >= len(words):
        raise DataError(
            f"{where}: SKIP needs a 4-byte interval and an annotation after it; "
            "the file ends first"
        )
    interval = (int(words[i + 1]) << 16) | int(words[i + 2])
    return interval - (1 << 32) if interval >= 1 << 31 else interval


def _read_aux(data: bytes, at: int, length: int, entry: _Entry, where: str) -> int:
    """Store the note of an AUX word at ``at`` in ``entry``; words it occupies."""
    start, padded = at + 2, length + (length & 1)
    if length > 255:
        raise DataError(
            f"{where}: AUX note of {length} bytes; expected at most 255 "
            "(its length is one byte in WFDB)"
        )
    if start + padded > len(data):
        raise DataError(
            f"{where}: AUX note of {length} bytes but only {len(data) - start} "
            "bytes follow; the file is cut"
        )
    if entry.aux:
        raise DataError(f"{where}: a second AUX note for one annotation; expected one")
    entry.aux = data[start : start + length].decode("latin-1")
    return padded // 2


def _custom_labels(definitions: list[_Entry], label: str) -> dict[int, str]:
    """Codes the file defines in its ``## annotation type definitions`` block."""
    custom: dict[int, str] = {}
    inside = False
    for entry in definitions:
        note = entry.aux
        if note == "## annotation type definitions":
            inside = True
        elif note == "## end of definitions":
            inside = False
        elif inside:
            match = _CUSTOM_LABEL.fullmatch(note)
            if match is None or not 0 < int(match[1]) <= MAX_CODE:
                raise DataError(
                    f"{label}, byte {entry.at}: label definition {note!r}; "
                    f"expected 'CODE SYMBOL DESCRIPTION' with CODE in 1..{MAX_CODE}"
                )
            custom[int(match[1])] = match[2]
    if inside:
        raise DataError(
            f"{label}: the label definitions never end; expected a note "
            "'## end of definitions' at sample 0"
        )
    return custom
