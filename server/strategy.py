"""Flower's strategies (FedAvg, FedProx, FedAdam), recording into a FederatedRun.

The aggregation itself is Flower's. The subclass only: sends the run config
with every instruction (and the pooled threshold with evaluate ones), keeps a
round whose aggregate is not finite (every hospital declined) from touching
the model, records each round, and evaluates on the server's held-out set.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from flwr.common import Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAdam, FedAvg, FedProx

from server.run_state import FederatedRun
from server.workflow import failure_text as _failure_text
from server.workflow import minimum_hospitals
from shared_models import wire
from shared_models.recipe import server_lr_at
from shared_models.run_config import RunConfig

log = logging.getLogger(__name__)
BASES = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}


def instruction_config(run: RunConfig, state: FederatedRun) -> Any:
    """The config every instruction of round r carries: the run config, the
    round (continued across resumes), the run's name, and the audit log's
    newest hash and its round (from round 2 on: the hospitals keep it)."""

    def config(server_round: int) -> dict[str, Any]:
        heads = {}
        if state.audit_head is not None:
            heads = {
                wire.AUDIT_HEAD_ROUND: state.audit_head[0],
                wire.AUDIT_HEAD: state.audit_head[1],
            }
        return {
            **wire.pack_run_config(run.to_run_config()),
            "server-round": state.offset + server_round,
            "run-name": state.run_name,
            **heads,
        }

    return config


def _learn(results: list, hospital_of: dict[int, str]) -> None:
    for proxy, res in results:
        if wire.HOSPITAL_ID in res.metrics:
            hospital_of[proxy.node_id] = str(res.metrics[wire.HOSPITAL_ID])


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
    """Flower's round-level fit metrics: how many hospitals replied."""
    return {"replied": len(replies)}


def _arrays(res: Any) -> list:
    return parameters_to_ndarrays(res.parameters)


def _with_parameters(res: Any, weights: list) -> Any:
    """A copy of FitRes ``res`` carrying ``weights``."""
    return dataclasses.replace(res, parameters=ndarrays_to_parameters(weights))


def make_strategy(
    run: RunConfig, state: FederatedRun, initial: list, server_eval: Any = None
):
    base = BASES[run.strategy]
    hospital_of: dict[int, str] = {}  # node id -> hospital id, learnt from replies
    sampled: dict[int, list[int]] = {}  # round -> node ids sent a fit instruction
    sent: dict[int, list] = {}  # round -> the global weights the hospitals started from

    class Recording(base):  # type: ignore[misc, valid-type]
        def configure_fit(self, server_round, parameters, client_manager):
            instructions = super().configure_fit(
                server_round, parameters, client_manager
            )
            sampled[server_round] = [proxy.node_id for proxy, _ in instructions]
            sent.clear()  # only this round's global model is needed
            sent[server_round] = parameters_to_ndarrays(parameters)
            return instructions

        def aggregate_fit(self, server_round, results, failures):
            replies = [(r.num_examples, dict(r.metrics)) for _, r in results]
            dropped = _dropped(sampled.get(server_round, []), results, hospital_of)
            kept = [(p, r) for p, r in results if r.num_examples > 0]
            params, metrics = (None, {})
            if kept and not all(
                wire.finite(parameters_to_ndarrays(r.parameters)) for _, r in kept
            ):
                # Under SecAgg+ every hospital that declined sent weight 0; if
                # all did, Flower's mean divides by 0: nobody trained.
                kept = []
            if kept:
                # Hospitals send updates (wire.update_of): back to weights, so
                # Flower's FedAvg / FedProx / FedAdam aggregate as they would.
                start = sent[server_round]
                kept = [
                    (p, _with_parameters(r, wire.apply_update(start, _arrays(r))))
                    for p, r in kept
                ]
                # FedAdam's bias correction and learning-rate schedule count
                # rounds: continue the count of a resumed run, whose moments
                # are restored.
                if run.strategy == "fedadam":
                    self.eta = server_lr_at(
                        run.server_learning_rate,
                        run.server_lr_schedule,
                        state.offset + server_round,
                    )
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
            # Hospitals keep their losses; Flower's history gets pooled metrics.
            return None, {
                k: v for k, v in pooled.items() if isinstance(v, (int, float))
            }

    fit_config = instruction_config(run, state)

    def evaluate_config(server_round: int) -> dict[str, Any]:
        # The pooled threshold's bin, for each hospital's own metrics.
        edge = state.pool_edge(state.offset + server_round)
        edge = -1 if edge is None else edge
        return {**fit_config(server_round), wire.THRESHOLD_KEY: edge}

    kwargs: dict[str, Any] = dict(
        fraction_fit=run.fraction_fit,
        fraction_evaluate=run.fraction_evaluate,
        min_fit_clients=minimum_hospitals(run, run.min_fit_hospitals),
        min_evaluate_clients=minimum_hospitals(run, run.min_evaluate_hospitals),
        min_available_clients=minimum_hospitals(run, run.min_available_hospitals),
        initial_parameters=ndarrays_to_parameters(initial),
        on_fit_config_fn=fit_config,
        on_evaluate_config_fn=evaluate_config,
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
