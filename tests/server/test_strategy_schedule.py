"""FedAdam's server learning rate follows the recipe's schedule, counting
rounds across resumes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

from server.run_state import FederatedRun
from server.strategy import make_strategy
from shared_models import create_model, wire
from shared_models.export import get_weights
from shared_models.recipe import recipe_of, server_lr_at
from shared_models.run_config import RunConfig


class _Manager:
    """The two calls Flower's ``configure_fit`` makes of a client manager."""

    def __init__(self, n: int) -> None:
        self.proxies = [SimpleNamespace(node_id=i + 1) for i in range(n)]

    def num_available(self) -> int:
        return len(self.proxies)

    def sample(self, num_clients: int, min_num_clients: int | None = None) -> list:
        return self.proxies[:num_clients]


def test_sqrt_schedule_values() -> None:
    assert server_lr_at(0.1, "sqrt", 1) == pytest.approx(0.1)
    assert server_lr_at(0.1, "sqrt", 4) == pytest.approx(0.05)
    assert server_lr_at(0.1, "const", 9) == 0.1
    with pytest.raises(ValueError, match="schedule"):
        server_lr_at(0.1, "cosine", 1)


@pytest.mark.parametrize("offset", [0, 3], ids=["fresh", "resumed-after-3"])
def test_fedadam_step_follows_the_schedule_across_resumes(tmp_path, offset) -> None:
    run = RunConfig(
        secagg=False,
        min_fit_hospitals=2,
        strategy="fedadam",
        server_lr_schedule="sqrt",
        server_learning_rate=recipe_of("ecg-arrhythmia").server_lr,
    ).resolved()
    assert (run.strategy, run.server_lr_schedule) == ("fedadam", "sqrt")
    assert run.server_learning_rate == recipe_of(run.task).server_lr
    card = {
        "model": "dense_autoencoder",
        "model_config": {},
        "task": run.task,
        "input_spec": {},
        "normalisation": {},
    }
    state = FederatedRun(run, tmp_path, "r", card, offset=offset)
    start = get_weights(create_model("dense_autoencoder"))
    state.set_initial(start)
    strategy = make_strategy(run, state, start)
    instructions = strategy.configure_fit(1, ndarrays_to_parameters(start), _Manager(2))
    rng = np.random.default_rng(0)
    update = [rng.choice([-0.02, 0.01], w.shape).astype(np.float32) for w in start]
    results = [
        (
            proxy,
            FitRes(
                Status(Code.OK, ""),
                ndarrays_to_parameters(update),
                10,
                {wire.HOSPITAL_ID: f"h{proxy.node_id}"},
            ),
        )
        for proxy, _ in instructions
    ]
    params, _ = strategy.aggregate_fit(1, results, [])
    assert params is not None
    after = state.weights[offset + 1]
    # One Adam step from zero moments moves every weight by the bias-corrected
    # rate in the direction of the mean update (Flower's FedAdam).
    t = offset + 1
    eta = run.server_learning_rate / np.sqrt(t)
    beta_1, beta_2 = strategy.beta_1, strategy.beta_2
    eta_norm = eta * np.sqrt(1 - beta_2 ** (t + 1)) / (1 - beta_1 ** (t + 1))
    for w, w0, u in zip(after, start, update, strict=True):
        m = (1 - beta_1) * u.astype(np.float64)
        root_v = np.sqrt((1 - beta_2) * u.astype(np.float64) ** 2)
        step = eta_norm * m / (root_v + strategy.tau)
        np.testing.assert_allclose(w - w0, step, rtol=1e-3)
    # the other schedule would have moved it by a different amount
    assert offset == 0 or not np.isclose(eta, run.server_learning_rate)
