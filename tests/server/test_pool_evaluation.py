"""The pool-evaluation round's size limit: SecAgg+'s ranges only."""

from __future__ import annotations

from typing import Any

import pytest

from server.workflow import PoolEvaluation
from shared_models import wire
from shared_models.run_config import RunConfig


class Manager:
    """A client manager with ``n`` available hospitals."""

    def __init__(self, n: int) -> None:
        self.n = n

    def num_available(self) -> int:
        return self.n

    def sample(self, num_clients: int, min_num_clients: int) -> list[Any]:
        return [object() for _ in range(num_clients)]


def _pool(secagg: bool) -> PoolEvaluation:
    run = RunConfig(task="signal-anomaly", secagg=secagg, dp=False)
    return PoolEvaluation(run, lambda r: {}, lambda *a: None)


def test_a_plain_pool_is_not_bounded_by_secagg_ranges() -> None:
    n = wire.POOL_MAX_HOSPITALS + 36

    instructions = _pool(secagg=False).configure_fit(1, None, Manager(n))

    assert len(instructions) == n


def test_a_secagg_pool_refuses_more_than_its_exact_sum() -> None:
    with pytest.raises(ValueError, match="at most 64"):
        _pool(secagg=True).configure_fit(1, None, Manager(wire.POOL_MAX_HOSPITALS + 1))
