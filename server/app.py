"""The consortium's Flower ServerApp: parse the run config, run the rounds.

Thin: the strategy is Flower's (``server/strategy.py``), the round loop and
SecAgg+ are Flower's (``server/workflow.py``); what is ours lives in
Flower-free modules (``run_state``, ``evaluation``, ``checkpoint``,
``history``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.server import LegacyContext, ServerConfig
from flwr.serverapp import Grid, ServerApp

from server import checkpoint, resume
from server.bootstrap import initial_model
from server.history import RunHistory
from server.run_state import FederatedRun
from server.strategy import instruction_config, make_strategy
from server.workflow import PoolEvaluation, build_workflow
from shared_models.atomic import atomic_write_text
from shared_models.errors import ConfigError
from shared_models.run_config import RunConfig

log = logging.getLogger(__name__)


def run_federation(
    grid: Grid, context: Context, run: RunConfig, progress: Any = None
) -> FederatedRun:
    """Start (or resume) the run described by ``run``; run its remaining rounds."""
    run = run.resolved()
    run_dir = Path(run.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _start_state(grid, run, run_dir)
    state.progress = progress
    remaining = run.num_server_rounds - state.offset
    if remaining <= 0:
        log.info(
            "run %s already finished its %d rounds",
            state.run_name,
            run.num_server_rounds,
        )
        return state
    initial = state.weights.pop("initial")
    strategy = make_strategy(run, state, initial, _server_eval(run, state))
    pooling = PoolEvaluation(run, instruction_config(run, state), state.on_pool)
    legacy = LegacyContext(
        context=context, config=ServerConfig(num_rounds=remaining), strategy=strategy
    )
    build_workflow(run, pooling, reevaluate_first=state.reevaluate, clock=state)(
        grid, legacy
    )
    return state


def _start_state(grid: Grid, run: RunConfig, run_dir: Path) -> FederatedRun:
    saved = resume.last_complete(run_dir) if run.resume else None
    started = None
    if run.resume and saved is None:
        resume.refuse_resume_without_checkpoint(run_dir)
        started = resume.started_run(run, run_dir)
        if started is None:
            log.warning("--resume: %s holds no run yet; starting from round 1", run_dir)
    if saved is None and started is not None:
        # Stopped in round 1: the same run (name, plan at the hospitals) again.
        weights, _ = initial_model(grid, run)
        state = FederatedRun(run, run_dir, started["run_name"], started["model_card"])
        log.info("resuming run %s from round 1", state.run_name)
    elif saved is None:
        if (run_dir / "checkpoints").exists() and not run.resume:
            raise ConfigError(
                f"{run_dir} already holds a run; resume it (resume = true) "
                "or choose another run-dir"
            )
        weights, card = initial_model(grid, run)
        name = run.run_name or f"run-{time.strftime('%Y%m%d-%H%M%S')}"
        atomic_write_text(
            run_dir / "run.json",
            json.dumps(
                {
                    "run_name": name,
                    "run_config": run.to_run_config(),
                    "model_card": card,
                },
                indent=2,
            ),
        )
        state = FederatedRun(run, run_dir, name, card)
    else:
        state, weights = _resumed(run, run_dir, saved)
    state.set_initial(weights)
    return state


def _resumed(
    run: RunConfig, run_dir: Path, saved: checkpoint.Checkpoint
) -> tuple[FederatedRun, list]:
    """The state of a run continued after its checkpointed round ``saved``."""
    meta = resume.read_run_json(run_dir)
    resume.check_same_training(run, meta["run_config"], run_dir)
    name = meta["run_name"]
    history = RunHistory.load(run_dir, name, saved.round)
    state = FederatedRun(
        run, run_dir, name, meta["model_card"], offset=saved.round, history=history
    )
    state.strategy_state = saved.strategy_state
    if not history.evaluated(saved.round):
        # Stopped between the round's fit (checkpointed) and its evaluation:
        # Flower's round 1 evaluates it again, without a fit.
        state.offset, state.reevaluate = saved.round - 1, True
        state.weights[saved.round] = saved.weights
        log.info(
            "resuming run %s: round %d was trained but not evaluated; evaluating "
            "it first",
            name,
            saved.round,
        )
    log.info("resuming run %s after round %d", name, saved.round)
    return state, saved.weights


def _server_eval(run: RunConfig, state: FederatedRun) -> Any:
    """Server-side evaluation on the operator's held-out set, when there is one."""
    if not run.server_eval_data:
        return None
    from server.evaluation import task_kind
    from server.held_out import held_out_scorer

    score = held_out_scorer()
    kind = task_kind(run.task)

    def evaluate(server_round: int, weights: list, config: dict[str, Any]):
        last = [
            r for r in state.history.rounds if r.get("evaluation", {}).get("threshold")
        ]
        threshold = (
            last[-1]["evaluation"]["threshold"]
            if last
            else (0.5 if kind == "binary" else None)
        )
        card = state.card(threshold)
        if card.threshold is None and kind == "reconstruction":
            return None
        metrics = score(run.task, card, weights, Path(run.server_eval_data))
        if server_round > 0:
            state.record_server_eval(server_round, metrics)
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        return float(scalars.get("mae_days", 0.0)), scalars

    return evaluate


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_federation(grid, context, RunConfig.from_run_config(dict(context.run_config)))


def make_server_app(run: RunConfig, progress: Any = None) -> ServerApp:
    """A ServerApp bound to ``run`` (Flower's Python simulation API has no run config).

    ``progress(round, total, pooled_metrics)`` is called after each round.
    """
    bound = ServerApp()

    @bound.main()
    def _main(grid: Grid, context: Context) -> None:
        run_federation(grid, context, run, progress)

    return bound
