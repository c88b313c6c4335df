"""AAMI EC57 grouping of MIT-BIH beat annotation symbols into five classes."""

from __future__ import annotations

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

_GROUPS: dict[str, str] = {
    "N": "NLRej",  # normal, bundle branch blocks, atrial / nodal escape
    "S": "AaJS",  # supraventricular ectopic
    "V": "VE",  # ventricular ectopic, ventricular escape
    "F": "F",  # fusion of ventricular and normal
    "Q": "/fQ",  # paced, fusion of paced and normal, unclassifiable
}

SYMBOL_TO_AAMI: dict[str, int] = {
    symbol: AAMI_CLASSES.index(cls)
    for cls, symbols in _GROUPS.items()
    for symbol in symbols
}

# Annotations that mark something other than a beat (rhythm changes, noise,
# flutter waves, comments ...): skipped without complaint.
NON_BEAT_SYMBOLS: frozenset[str] = frozenset("+~|\"[]!x()pPtTuU`'^=@*sDT{}")
