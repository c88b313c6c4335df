"""SecAgg+ with fedcare's settings aggregates what FedAvg aggregates (slow).

DP noise is secret, so two federated runs never produce the same updates; the
SecAgg+ path is therefore checked on FIXED inputs: three clients answer with
known arrays and example counts, through Flower's ``secaggplus_mod`` and the
SecAgg+ workflow exactly as ``server/workflow.py`` builds it, on Flower's
Simulation Engine. The result must equal the example-weighted mean within the
quantisation bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import Context, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.serverapp import Grid

from server.workflow import build_workflow
from shared_models.run_config import RunConfig

pytestmark = pytest.mark.slow

QUANT, MAX_WEIGHT = 2**22, 2000.0
EXAMPLES = (120, 75, 310)
SHAPES = ((4, 3), (5,))


def _update(partition: int) -> list[np.ndarray]:
    rng = np.random.default_rng(100 + partition)
    return [rng.uniform(-2, 2, size=shape).astype(np.float32) for shape in SHAPES]


class FixedClient(NumPyClient):
    def __init__(self, partition: int) -> None:
        self.partition = partition

    def fit(self, parameters: list, config: dict[str, Any]) -> tuple[list, int, dict]:
        return _update(self.partition), EXAMPLES[self.partition], {}


class Capturing(FedAvg):
    def __init__(self, captured: list[list[np.ndarray]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.captured = captured

    def aggregate_fit(self, server_round, results, failures):  # type: ignore[no-untyped-def]
        parameters, metrics = super().aggregate_fit(server_round, results, failures)
        if parameters is not None:
            self.captured.append(parameters_to_ndarrays(parameters))
        return parameters, metrics


@pytest.mark.parametrize(
    "clip", [8.0, RunConfig().secagg_clipping_range], ids=["weights-range", "default"]
)
def test_secagg_plus_equals_the_weighted_mean_within_quantisation(clip: float) -> None:
    """The masked aggregate against plain FedAvg of the same (update-sized)
    inputs: the error is printed, and bounded by SecAgg+'s quantisation."""
    from flwr.simulation import run_simulation

    CLIP = clip  # noqa: N806

    run = RunConfig(
        secagg=True,
        secagg_num_shares=3,
        secagg_reconstruction_threshold=2,
        secagg_clipping_range=CLIP,
        secagg_quantization_range=QUANT,
        secagg_max_weight=MAX_WEIGHT,
        secagg_timeout=60.0,
    )
    captured: list[list[np.ndarray]] = []
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        strategy = Capturing(
            captured,
            fraction_evaluate=0.0,
            min_fit_clients=3,
            min_available_clients=3,
            initial_parameters=ndarrays_to_parameters(
                [np.zeros(s, np.float32) for s in SHAPES]
            ),
        )
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=1), strategy=strategy
        )
        build_workflow(run)(grid, legacy)

    def client_fn(context: Context) -> Any:
        return FixedClient(int(context.node_config["partition-id"])).to_client()

    client = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=3,
        backend_config={
            "client_resources": {"num_cpus": 1},
            "init_args": {"num_cpus": 2},
        },
    )

    assert len(captured) == 1
    updates = [[u.astype(np.float64) for u in _update(i)] for i in range(3)]
    total = sum(EXAMPLES)
    expected = [
        sum(n * u[k] for n, u in zip(EXAMPLES, updates, strict=True)) / total
        for k in range(len(SHAPES))
    ]
    # One unit of stochastic rounding per client on the masked sum, and the
    # rounding of each weight n_i / MW to 1/Q (see Flower's SecAgg+ workflow).
    dq_total = sum(round(n / MAX_WEIGHT * QUANT) / QUANT for n in EXAMPLES)
    bound = 2 * 3 * 2 * CLIP / (QUANT * dq_total) + 1e-6
    diff = max(
        float(np.abs(got - want).max())
        for got, want in zip(captured[0], expected, strict=True)
    )
    print(
        f"SecAgg+ clipping range {CLIP}: max |masked - FedAvg| {diff:.3g}, "
        f"bound {bound:.3g}"
    )
    assert 0 < diff <= bound, (diff, bound)
