"""Resuming a run: where it continues, and the evaluation a crash cut off."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from tiny_model import tiny_card, tiny_weights

from server import app, audit, checkpoint
from server.workflow import SkipFirstFit
from shared_models.export import ModelCard, arrays_hash
from shared_models.run_config import RunConfig

CARD = tiny_card("ecg-anomaly")


def _weights(seed: int) -> list[np.ndarray]:
    return tiny_weights(seed)


def _stopped_run(
    run_dir: Path, rounds: list[dict[str, Any]], audited: int = 2
) -> RunConfig:
    """A run folder stopped after round 2's checkpoint, with ``rounds`` in its
    history and rounds 1..``audited`` in its audit log."""
    run = RunConfig(task="ecg-anomaly", run_dir=str(run_dir), num_server_rounds=3)
    card = ModelCard(**CARD)
    before = arrays_hash(_weights(0))
    for number in (1, 2):
        checkpoint.save(run_dir, number, "r", _weights(number), card, {})
        after = arrays_hash(_weights(number))
        if number <= audited:
            record = {"round": number, "fit": {}, "global_model_sha256": after}
            audit.append_round(run_dir, "r", record, before, run)
        before = after
    (run_dir / "run.json").write_text(
        json.dumps(
            {"run_name": "r", "run_config": run.to_run_config(), "model_card": CARD}
        )
    )
    (run_dir / "history.json").write_text(
        json.dumps({"run_name": "r", "rounds": rounds})
    )
    return RunConfig(**{**vars(run), "resume": True})


def _evaluated(number: int) -> dict[str, Any]:
    return {
        "round": number,
        "fit": {},
        "evaluation": {"pooled": {}, "evaluated_by": []},
    }


def test_resume_after_an_evaluated_round_continues_with_the_next(
    tmp_path: Path,
) -> None:
    run = _stopped_run(tmp_path, [_evaluated(1), _evaluated(2)])

    state = app._start_state(None, run, tmp_path)

    assert (state.offset, state.reevaluate) == (2, False)
    assert [r["round"] for r in state.history.rounds] == [1, 2]


def test_round_trained_but_not_evaluated_is_evaluated_first(tmp_path: Path) -> None:
    # Killed between round 2's fit (checkpoint, audit record) and its evaluation.
    run = _stopped_run(tmp_path, [_evaluated(1), {"round": 2, "fit": {}}])

    state = app._start_state(None, run, tmp_path)

    # Flower's round 1 is round 2 again (evaluation only), then round 3.
    assert (state.offset, state.reevaluate) == (1, True)
    assert arrays_hash(state.weights[2]) == arrays_hash(_weights(2))
    assert state.initial_sha256 == arrays_hash(_weights(2))
    assert run.num_server_rounds - state.offset == 2


def test_pooled_but_not_evaluated_round_is_evaluated_again(tmp_path: Path) -> None:
    pooled_only = {"round": 2, "fit": {}, "evaluation": {"pooled": {"f1": 0.5}}}
    run = _stopped_run(tmp_path, [_evaluated(1), pooled_only])

    assert app._start_state(None, run, tmp_path).reevaluate


def test_checkpoint_without_its_audit_record_retries_that_round(
    tmp_path: Path,
) -> None:
    # Killed between round 2's checkpoint and its audit record: round 2 is not
    # complete; the run continues after round 1 and retries round 2.
    run = _stopped_run(tmp_path, [_evaluated(1), {"round": 2, "fit": {}}], audited=1)

    state = app._start_state(None, run, tmp_path)

    assert (state.offset, state.reevaluate) == (1, False)
    assert state.initial_sha256 == arrays_hash(_weights(1))
    assert [r["round"] for r in state.history.rounds] == [1]
    # the retried round's checkpoint chains to round 1, not to its lost try
    again = checkpoint.save(tmp_path, 2, "r", _weights(5), ModelCard(**CARD), {})
    state_json = json.loads((again / "state.json").read_text())
    assert state_json["previous_sha256"] == arrays_hash(_weights(1))


def _context(current_round: int) -> Any:
    configs = {"config": {"current_round": current_round}}
    return SimpleNamespace(state=SimpleNamespace(config_records=configs))


def test_skip_first_fit_runs_the_fit_from_round_2_only() -> None:
    calls: list[int] = []
    fit = SkipFirstFit(
        lambda grid, ctx: calls.append(
            ctx.state.config_records["config"]["current_round"]
        )
    )

    for number in (1, 2, 3):
        fit(None, _context(number))

    assert calls == [2, 3]
