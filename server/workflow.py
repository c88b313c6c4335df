"""Where the aggregation protocol is chosen: SecAgg+ (default) or plain.

flwr 1.42 runs SecAgg+ only through the legacy path: ``SecAggPlusWorkflow``
inside ``DefaultWorkflow(fit_workflow=...)`` with a ``LegacyContext`` and a
strategy from ``flwr.server.strategy``; the client side is ``secaggplus_mod``
on a ``NumPyClient`` (``client/app.py``). This module and ``client/app.py``
are the only places that know it.

Evaluation is secure too (:class:`SecureEvaluation`): after each fit round a
second SecAgg+ round (``shared_models.wire.POOL_PHASE``) sums the hospitals'
evaluation histograms, so the aggregator learns only the pooled ones; then
Flower's evaluate round sends the pooled threshold back and each hospital
computes (and keeps) its own metrics at it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from flwr.common import FitIns, parameters_to_ndarrays
from flwr.server import LegacyContext
from flwr.server.strategy import Strategy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, Key
from flwr.server.workflow.default_workflows import (
    default_evaluate_workflow,
    default_fit_workflow,
)

from shared_models import wire
from shared_models.run_config import RunConfig

log = logging.getLogger(__name__)


def secagg_workflow(run: RunConfig, **overrides: Any) -> SecAggPlusWorkflow:
    """Flower's SecAgg+ with this run's settings (its own checks apply)."""
    shares, threshold = run.secagg_shares()
    settings: dict[str, Any] = dict(
        num_shares=shares,
        reconstruction_threshold=threshold,
        max_weight=run.secagg_max_weight,
        clipping_range=run.secagg_clipping_range,
        quantization_range=run.secagg_quantization_range,
        timeout=run.secagg_timeout,
    )
    settings.update(overrides)
    return SecAggPlusWorkflow(**settings)


def pool_workflow(run: RunConfig) -> Any:
    """The pool-evaluation round: SecAgg+ with weight 1 per hospital and the
    integer-exact ranges of ``shared_models.wire``, or a plain sum without
    SecAgg+."""
    if not run.secagg:
        return default_fit_workflow
    return secagg_workflow(
        run,
        max_weight=wire.POOL_MAX_WEIGHT,
        clipping_range=wire.POOL_CLIPPING_RANGE,
        quantization_range=wire.POOL_QUANTIZATION_RANGE,
        modulus_range=wire.POOL_MODULUS_RANGE,
    )


def build_workflow(
    run: RunConfig,
    pooling: Strategy | None = None,
    reevaluate_first: bool = False,
    clock: Any = None,
) -> DefaultWorkflow:
    """The round loop: fit (masked by SecAgg+ when on), then evaluation
    (pooled under SecAgg+ by ``pooling``, see :class:`PoolEvaluation`).

    ``reevaluate_first``: Flower's round 1 only evaluates the model it starts
    from (a resumed run's checkpointed round whose evaluation was cut off).
    ``clock``: told ``round_started(r)`` before each round's fit and
    ``round_finished(r)`` after its evaluation (Flower's round numbers)."""
    evaluate = SecureEvaluation(run, pooling) if pooling is not None else None
    fit = secagg_workflow(run) if run.secagg else default_fit_workflow
    if reevaluate_first:
        fit = SkipFirstFit(fit)
    if clock is not None:
        fit = Timed(fit, clock.round_started)
        evaluate = Timed(
            evaluate or default_evaluate_workflow, after=clock.round_finished
        )
    return DefaultWorkflow(fit_workflow=fit, evaluate_workflow=evaluate)


class Timed:
    """A workflow step that tells ``before(round)`` / ``after(round)`` around it."""

    def __init__(self, step: Any, before: Any = None, after: Any = None) -> None:
        self.step, self.before, self.after = step, before, after

    def __call__(self, grid: Any, context: LegacyContext) -> None:
        number = int(
            context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND]
        )
        if self.before is not None:
            self.before(number)
        self.step(grid, context)
        if self.after is not None:
            self.after(number)


class SkipFirstFit:
    """A fit workflow that does nothing in Flower's round 1 (see build_workflow)."""

    def __init__(self, fit: Any) -> None:
        self.fit = fit

    def __call__(self, grid: Any, context: LegacyContext) -> None:
        config = context.state.config_records[MAIN_CONFIGS_RECORD]
        if config[Key.CURRENT_ROUND] == 1:
            log.info("round 1 of this resume: evaluation only (no fit)")
            return
        self.fit(grid, context)


class SecureEvaluation:
    """Pool the hospitals' evaluation sums, then Flower's evaluate round."""

    def __init__(self, run: RunConfig, pooling: Strategy) -> None:
        self.pool = pool_workflow(run)
        self.pooling = pooling

    def __call__(self, grid: Any, context: LegacyContext) -> None:
        # A context for the pool round only: same state (the global model,
        # the round counter) and nodes, its own strategy and history.
        pool_context = LegacyContext(
            context,
            config=context.config,
            strategy=self.pooling,
            client_manager=context.client_manager,
        )
        self.pool(grid, pool_context)
        default_evaluate_workflow(grid, context)


class PoolEvaluation(Strategy):
    """The pool-evaluation round as a Flower strategy.

    ``configure_fit`` asks the hospitals for their evaluation sums of the
    current global model (``wire.POOL_PHASE``); ``aggregate_fit`` gets
    SecAgg+'s aggregate (the mean of the vectors, every hospital weighing 1),
    turns it into sums and hands them to ``on_pool(round, sums, hospitals,
    failures)``. It never returns parameters, so the global model is untouched.
    """

    def __init__(self, run: RunConfig, config_fn: Any, on_pool: Any) -> None:
        super().__init__()
        self.run = run
        self.config_fn = config_fn
        self.on_pool = on_pool
        self.kind = _kind(run.task)

    def initialize_parameters(self, client_manager: Any) -> None:
        return None

    def configure_fit(self, server_round: int, parameters: Any, client_manager: Any):
        available = client_manager.num_available()
        if self.run.secagg:  # SecAgg+'s integer ranges bound its exact sum
            wire.check_pool_size(available)
        least = minimum_hospitals(self.run, self.run.min_evaluate_hospitals)
        wanted = max(int(available * self.run.fraction_evaluate), least)
        clients = client_manager.sample(num_clients=wanted, min_num_clients=least)
        config = {**self.config_fn(server_round), wire.PHASE_KEY: wire.POOL_PHASE}
        return [(client, FitIns(parameters, config)) for client in clients]

    def aggregate_fit(self, server_round: int, results: list, failures: list):
        names = sorted(str(r.metrics.get(wire.HOSPITAL_ID, "")) for _, r in results)
        texts = [failure_text(f) for f in failures]
        if not results:
            self.on_pool(server_round, None, names, texts)
            return None, {}
        if self.run.secagg:  # every result holds the same unmasked mean
            arrays = parameters_to_ndarrays(results[0][1].parameters)
            count = len(results)
        else:
            vectors = [parameters_to_ndarrays(r.parameters) for _, r in results]
            arrays = [np.sum(parts, axis=0) for parts in zip(*vectors, strict=True)]
            count = 1
        sums = wire.unpool(self.kind, arrays, count) if wire.finite(arrays) else None
        self.on_pool(server_round, sums, names, texts)
        return None, {}

    def configure_evaluate(self, server_round: int, parameters: Any, client_manager):
        return []

    def aggregate_evaluate(self, server_round: int, results: list, failures: list):
        return None, {}

    def evaluate(self, server_round: int, parameters: Any):
        return None


def minimum_hospitals(run: RunConfig, asked: int) -> int:
    """The fewest hospitals a round may have: under SecAgg+ never fewer than
    ``min-secagg-hospitals`` (the ServerApp's side of the hospitals' check)."""
    return max(asked, run.min_secagg_hospitals) if run.secagg else asked


def failure_text(failure: Any) -> str:
    """A failure as the aggregator records it (hospitals send generic texts)."""
    return repr(failure if not isinstance(failure, tuple) else failure[1])[:300]


def _kind(task: str) -> str:
    from server.evaluation import task_kind

    return task_kind(task)
