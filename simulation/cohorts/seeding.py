"""Stable seeds: every random stream is derived from a hash of named parts.

Python's ``hash()`` is salted per process, so it is never used here. A stream is
named by its parts, e.g. ``(seed, hospital_id, "ecg", patient)``; adding a new
stream never shifts the numbers of an existing one (the NVFlare
``stable_seed(site_name, purpose)`` idea).
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_seed(*parts: object) -> int:
    """Return a 63-bit integer that depends only on the ``repr`` of ``parts``.

    >>> stable_seed(0, 1, "ecg") == stable_seed(0, 1, "ecg")
    True
    """
    text = "\x1f".join(f"{type(p).__name__}:{p!r}" for p in parts)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def rng_for(*parts: object) -> np.random.Generator:
    """A NumPy generator seeded with :func:`stable_seed` of ``parts``."""
    return np.random.default_rng(stable_seed(*parts))
