"""Flower's strategies (FedAvg, FedProx, FedAdam), recording into a FederatedRun.

The aggregation itself is Flower's. The subclass only: sends the run config
with every instruction, leaves hospitals that declined (0 examples) out of
the average, records each round, and evaluates on the server's held-out set.
"""

from __future__ import annotations

import logging
from typing import Any

from flwr.common import Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAdam, FedAvg, FedProx

from client.app import pack_run_config
from server.config import RunConfig
from server.run_state import FederatedRun

log = logging.getLogger(__name__)
BASES = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}


def _failure_text(failure: Any) -> str:
    return repr(failure if not isinstance(failure, tuple) else failure[1])[:300]


def _learn(results: list, hospital_of: dict[int, str]) -> None:
    for proxy, res in results:
        if "hospital-id" in res.metrics:
            hospital_of[proxy.node_id] = str(res.metrics["hospital-id"])


def _dropped(
    sampled: list[int], results: list, hospital_of: dict[int, str]
) -> list[dict[str, Any]]:
    """Sampled nodes that sent no fit reply (killed, disconnected, timed out).

    The hospital is named when an earlier reply of this run came from that
    node (a SuperNode keeps its registered node id), else ``None``.
    """
    _learn(results, hospital_of)
    replied = {proxy.node_id for proxy, _ in results}
    return [
        {"node_id": str(node), "hospital": hospital_of.get(node)}
        for node in sampled
        if node not in replied
    ]


def _fit_summary(replies: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Flower's round-level fit metrics (of the hospitals that trained)."""
    return {"trained": len(replies), "examples": sum(n for n, _ in replies)}


def make_strategy(
    run: RunConfig, state: FederatedRun, initial: list, server_eval: Any = None
):
    base = BASES[run.strategy]
    hospital_of: dict[int, str] = {}  # node id -> hospital id, learnt from replies
    sampled: dict[int, list[int]] = {}  # round -> node ids sent a fit instruction

    class Recording(base):  # type: ignore[misc, valid-type]
        def configure_fit(self, server_round, parameters, client_manager):
            instructions = super().configure_fit(
                server_round, parameters, client_manager
            )
            sampled[server_round] = [proxy.node_id for proxy, _ in instructions]
            return instructions

        def aggregate_fit(self, server_round, results, failures):
            replies = [(r.num_examples, dict(r.metrics)) for _, r in results]
            dropped = _dropped(sampled.get(server_round, []), results, hospital_of)
            kept = [(p, r) for p, r in results if r.num_examples > 0]
            params, metrics = (None, {})
            if kept:
                # FedAdam's bias correction counts rounds: continue the count
                # of a resumed run, whose moments are restored.
                params, metrics = super().aggregate_fit(
                    state.offset + server_round, kept, failures
                )
            else:
                log.warning(
                    "round %d: no hospital trained; global model unchanged",
                    server_round,
                )
            if run.strategy == "fedadam" and getattr(self, "m_t", None):
                state.strategy_state = {"m_t": list(self.m_t), "v_t": list(self.v_t)}
            weights = parameters_to_ndarrays(params) if params is not None else None
            state.on_fit(
                server_round,
                weights,
                replies,
                [_failure_text(f) for f in failures],
                dropped=dropped,
            )
            return params, metrics

        def aggregate_evaluate(self, server_round, results, failures):
            replies = [(r.num_examples, dict(r.metrics)) for _, r in results]
            _learn(results, hospital_of)
            pooled = state.on_evaluate(
                server_round, replies, [_failure_text(f) for f in failures]
            )
            losses = [(r.num_examples, r.loss) for _, r in results]
            total = sum(n for n, _ in losses)
            loss = sum(n * v for n, v in losses) / total if total else None
            return loss, {
                k: v for k, v in pooled.items() if isinstance(v, (int, float))
            }

    def fit_config(server_round: int) -> dict[str, Any]:
        return {
            **pack_run_config(run),
            "server-round": state.offset + server_round,
            "run-name": state.run_name,
        }

    kwargs: dict[str, Any] = dict(
        fraction_fit=run.fraction_fit,
        fraction_evaluate=run.fraction_evaluate,
        min_fit_clients=run.min_fit_hospitals,
        min_evaluate_clients=run.min_evaluate_hospitals,
        min_available_clients=run.min_available_hospitals,
        initial_parameters=ndarrays_to_parameters(initial),
        on_fit_config_fn=fit_config,
        on_evaluate_config_fn=fit_config,
        evaluate_fn=server_eval,
        fit_metrics_aggregation_fn=_fit_summary,
        accept_failures=True,
    )
    if run.strategy == "fedprox":
        kwargs["proximal_mu"] = run.proximal_mu
    if run.strategy == "fedadam":
        # tau is Adam's epsilon: far below the noised updates' scale (~1e-2).
        kwargs.update(eta=run.server_learning_rate, eta_l=run.learning_rate, tau=1e-6)
    strategy = Recording(**kwargs)
    if run.strategy == "fedadam" and state.strategy_state:
        strategy.m_t = state.strategy_state.get("m_t")
        strategy.v_t = state.strategy_state.get("v_t")
    return strategy


def as_parameters(weights: list) -> Parameters:
    return ndarrays_to_parameters(weights)
