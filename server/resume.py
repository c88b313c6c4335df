"""Whether a run folder can be resumed, and as what (no Flower here).

The ServerApp asks these before its first round; ``fedcare simulate --resume``
asks :func:`check_resumable` before it starts Ray or writes anything, so a
refusal leaves the folder as it was.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from server import audit, checkpoint
from shared_models.errors import ConfigError
from shared_models.run_config import RunConfig

log = logging.getLogger(__name__)
# Settings a resumed run must keep besides the training ones: what each
# hospital's guarantee and its ledger's plan for the run were made under.
PRIVACY_KEYS = ("run-epsilon", "secagg")


def check_resumable(run: RunConfig, run_dir: Path) -> int | None:
    """Refuse (ConfigError / CheckpointError) what ``--resume`` cannot continue;
    return the last checkpointed round (None: no checkpoint, restart round 1)."""
    saved = last_complete(run_dir)
    if saved is None:
        refuse_resume_without_checkpoint(run_dir)
        started_run(run, run_dir)
        return None
    check_same_training(run, read_run_json(run_dir)["run_config"], run_dir)
    return saved.round


def last_complete(run_dir: Path) -> checkpoint.Checkpoint | None:
    """The checkpoint of the last complete round: the newest one the audit log
    records. A run killed between a round's checkpoint and its audit record
    retries that round (its hospitals resend the updates they released, so it
    costs them nothing); None when no recorded round has a checkpoint."""
    saved = checkpoint.load_latest(run_dir)  # weights must match their hashes
    if saved is None:
        return None
    path = run_dir / audit.FILE_NAME
    records = audit.read_records(path) if path.is_file() else []
    recorded = {int(r["round"]) for r in records if r.get("checkpoint")}
    if saved.round in recorded:
        return saved
    earlier = [n for n in recorded if n < saved.round]
    if not earlier:
        return None
    log.warning(
        "%s: the newest checkpoint (round %d) has no audit record; resuming "
        "after round %d",
        run_dir,
        saved.round,
        max(earlier),
    )
    return checkpoint.load_round(run_dir, max(earlier))


def refuse_resume_without_checkpoint(run_dir: Path) -> None:
    """A folder whose audit log records rounds but that holds no checkpoint
    cannot be continued: starting again from round 1 there would append a
    second run to its audit log and charge the hospitals twice. (A run stopped
    in round 1, with ``run.json`` but no audit record yet, is continued:
    :func:`started_run`.)"""
    audit_log = run_dir / "audit.jsonl"
    if audit_log.is_file() and audit_log.stat().st_size > 0:
        raise ConfigError(
            f"{run_dir}: cannot resume: its audit log records rounds but "
            f"{run_dir / 'checkpoints'} holds no complete checkpoint (missing or "
            "emptied); nothing was trained. Restore the checkpoints, or start a "
            "new run in another folder"
        )


def started_run(run: RunConfig, run_dir: Path) -> dict[str, Any] | None:
    """``run.json`` of a run stopped before its first round was recorded (None
    when there is none): it restarts from round 1 under the same name, so the
    hospitals continue the same plan (a retried round is charged once)."""
    if not (run_dir / "run.json").is_file():
        return None
    meta = read_run_json(run_dir)
    check_same_training(run, meta["run_config"], run_dir)
    return meta


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run being resumed, or a ConfigError naming what is wrong."""
    path = run_dir / "run.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found: the checkpoints have no run to belong to; cannot resume"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); cannot resume") from None
    if not isinstance(meta, dict) or not (
        isinstance(meta.get("run_name"), str)
        and isinstance(meta.get("run_config"), dict)
        and isinstance(meta.get("model_card"), dict)
    ):
        raise ConfigError(
            f"{path}: expected an object with run_name (text), run_config and "
            "model_card (objects), as fedcare writes it; cannot resume"
        )
    return meta


def check_same_training(run: RunConfig, stored: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume with training or privacy settings other than the run's.

    The hospitals' ledgers planned (and calibrated the noise for) the run's
    steps, and the checkpoint holds the run's model: a recipe or key that
    changed since would decline every round or fail to load the weights.
    The number of rounds is left out (the hospitals refuse rounds beyond
    their plan themselves), and so is turning SecAgg+ *on*: it changes what
    the aggregator sees of each update, not the update or its accounting, so
    a run may only become more protected; turning it off is refused.
    """
    started = RunConfig.from_run_config(stored)
    before, now = started.training_keys(), run.training_keys()
    for key in PRIVACY_KEYS:
        before[key] = started.resolved().to_run_config()[key]
        now[key] = run.resolved().to_run_config()[key]
    changed = {
        k: (before[k], now[k])
        for k in before
        if k != "num-server-rounds" and before[k] != now[k]
    }
    if changed.get("secagg") == (False, True):
        del changed["secagg"]
    if changed:
        shown = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ConfigError(
            f"{run_dir}: cannot resume with other training settings than the run "
            f"started with ({shown}); pass the run's own values (run.json) in the "
            "run config, or start a new run"
        )
