"""Where the randomness of DP-SGD comes from: the operating system, never a seed.

The Gaussian noise and the Poisson sampling of DP-SGD are the privacy
mechanism. If anyone can predict them (a seed derived from the run's seed, the
round and the hospital id, all known to the aggregator), the released weights
are a deterministic function of patient data and the guarantee is void. So
both are drawn from the kernel's cryptographic random source (``os.urandom``,
i.e. ``getrandom(2)``) in every process that trains on patient data.

Opacus' own ``secure_mode`` needs ``torchcsprng``, which is not published for
current torch releases, so fedcare does what that mode does by hand: uniform
53-bit floats from OS entropy, Box-Muller in float64, and the sum of four
Gaussians (Holohan et al. 2021, as Opacus does in secure mode) against the
floating-point attacks on a single Gaussian sample. Noise is generated on the
CPU and copied to the parameters' device, so CPU and CUDA parameters get the
same, secret noise (a CPU ``torch.Generator`` cannot draw CUDA tensors).

Tests that must compare two training runs bit for bit may use
:class:`SeededRandomness`, but only with the environment switch
``FEDCARE_TEST_ONLY_SEEDED_DP_NOISE=1``; every command and app that touches
patient data calls :func:`refuse_test_randomness` first and refuses to run
with the switch on.
"""

from __future__ import annotations

import math
import os
from typing import Protocol

import numpy as np
import torch

from shared_models.errors import PrivacyError

TEST_SWITCH = "FEDCARE_TEST_ONLY_SEEDED_DP_NOISE"
_TWO_PI = 2.0 * math.pi


class Randomness(Protocol):
    """The two draws DP-SGD needs."""

    def uniform(self, n: int) -> np.ndarray:
        """``n`` floats, uniform in (0, 1)."""

    def normal(self, shape: torch.Size, std: float, like: torch.Tensor) -> torch.Tensor:
        """Gaussian noise N(0, std^2) of ``shape``, dtype and device of ``like``."""


def _unit_floats(raw: bytes) -> np.ndarray:
    """53-bit floats in (0, 1] from 8 random bytes each (0 excluded: log below)."""
    words = np.frombuffer(raw, dtype=np.uint64) >> np.uint64(11)
    return (words.astype(np.float64) + 1.0) * (1.0 / 9007199254740992.0)


def _box_muller(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    radius = np.sqrt(-2.0 * np.log(u1))
    return np.concatenate(
        [radius * np.cos(_TWO_PI * u2), radius * np.sin(_TWO_PI * u2)]
    )


class OSRandomness:
    """DP randomness from ``os.urandom``: unpredictable to every other party."""

    secure = True

    def uniform(self, n: int) -> np.ndarray:
        if n <= 0:
            return np.zeros(0)
        return _unit_floats(os.urandom(8 * n))

    def standard_normal(self, n: int) -> np.ndarray:
        """``n`` N(0, 1) draws, each the scaled sum of four Box-Muller samples."""
        if n <= 0:
            return np.zeros(0)
        pairs = 2 * n  # 4 n Gaussians from 2 n pairs of uniforms
        u = _unit_floats(os.urandom(16 * pairs)).reshape(2, pairs)
        draws = _box_muller(u[0], u[1]).reshape(4, n)
        return draws.sum(axis=0) / 2.0

    def normal(self, shape: torch.Size, std: float, like: torch.Tensor) -> torch.Tensor:
        n = math.prod(shape)
        values = torch.from_numpy(self.standard_normal(n) * std).reshape(shape)
        return values.to(device=like.device, dtype=like.dtype)


class SeededRandomness:
    """Reproducible DP randomness, for tests that compare runs. Never private.

    Refuses to exist unless ``FEDCARE_TEST_ONLY_SEEDED_DP_NOISE=1`` is set.
    """

    secure = False

    def __init__(self, seed: int) -> None:
        if os.environ.get(TEST_SWITCH) != "1":
            raise PrivacyError(
                "Seeded DP noise is for fedcare's own tests only: its noise is "
                f"predictable, so it gives no privacy. Set {TEST_SWITCH}=1 in a "
                "test to use it; fedcare's commands refuse to run with it set."
            )
        self._rng = np.random.default_rng(seed)

    def uniform(self, n: int) -> np.ndarray:
        return self._rng.random(n) if n > 0 else np.zeros(0)

    def normal(self, shape: torch.Size, std: float, like: torch.Tensor) -> torch.Tensor:
        values = self._rng.standard_normal(math.prod(shape)) * std
        return torch.from_numpy(values).reshape(shape).to(like.device, like.dtype)


SECURE = OSRandomness()


def refuse_test_randomness(where: str) -> None:
    """Raise :class:`PrivacyError` if the test-only seeded-noise switch is on."""
    if os.environ.get(TEST_SWITCH):
        raise PrivacyError(
            f"{where} refuses to run with {TEST_SWITCH} set: that switch makes "
            "DP noise predictable (test use only). Unset it."
        )
