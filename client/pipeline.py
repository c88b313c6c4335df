"""A hospital's whole local job: prepare data, train, calibrate, test, export.

Used by ``fedcare train`` and by the simulation's local-only baseline. The
same model directory format comes out either way.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from client.privacy.sampling import guarantee_text
from client.tasks import Arrays, Prepared, Task, get_task
from client.training import PrivateRun, TrainConfig, seed_everything, train
from shared_models import create_model, get_spec
from shared_models.errors import ConfigError, DataError
from shared_models.export import ModelCard, load_model_dir, save_model_dir

log = logging.getLogger(__name__)


@dataclass
class LocalResult:
    metrics: dict[str, Any]
    training: dict[str, Any]
    card: ModelCard
    model_dir: Path | None


def build_model(task: Task, prepared: Prepared, dp: bool) -> Any:
    return create_model(task.model, **task.model_config(prepared), dp=dp)


def make_card(
    task: Task,
    model: Any,
    prepared: Prepared,
    threshold: float | None,
    privacy: dict[str, Any] | None,
) -> ModelCard:
    spec = get_spec(task.model)
    return ModelCard(
        model=task.model,
        model_config=dict(model.config),
        task=task.name,
        input_spec={
            **spec.input_spec,
            "seq_len": model.config["seq_len"],
            "n_features": model.config["n_features"],
        },
        normalisation=prepared.normalisation,
        threshold=threshold,
        classes=task.classes,
        # Counts, label distributions and ranges of the training data are not
        # DP-protected: they stay out of the card (a model may be shared).
        training_data={
            "source": prepared.summary.get("source"),
            "statistics": "not included: counts of the training data are not "
            "differentially private and stay at the hospital",
        },
        privacy=privacy,
    )


def train_local(
    task_name: str,
    data: Path,
    config: TrainConfig,
    private: PrivateRun | None,
    out: Path | None = None,
    split_seed: int = 0,
) -> LocalResult:
    """Train ``task_name`` on ``data`` (its own split) and score its test split.

    ``split_seed`` fixes the hospital's patient split; ``config.seed`` seeds the
    initial weights and augmentation (never the DP noise, which is secret).
    """
    task = get_task(task_name)
    prepared = task.prepare(data, seed=split_seed)
    get_spec(
        task.model
    )  # registering models draws random weights: do it before seeding
    seed_everything(config.seed)  # the initial weights, too, follow the seed
    model = build_model(task, prepared, dp=private is not None)
    fit = task.fit_arrays(prepared)
    _check_classes_present(task, fit.y, data)
    config = TrainConfig(**{**asdict(config), "loss_kwargs": task.loss_kwargs()})
    training = train(model, fit.x, fit.y, config, private, groups=fit.groups)
    threshold = task.calibrate(model, prepared)
    privacy = None
    if private is not None:
        privacy = {
            k: training[k]
            for k in (
                "epsilon_spent",
                "epsilon_budget",
                "delta",
                "noise_multiplier",
                "sample_rate",
                "privacy_unit",
            )
        }
        privacy.update(
            accountant=private.ledger.budget.accountant,
            run_id=private.run_id,
            max_grad_norm=config.max_grad_norm,
            guarantee=guarantee_text(
                training["epsilon_spent"], training["delta"], training["privacy_unit"]
            ),
            warning=training["too_few_units"],
            # Said plainly: fitted on this hospital's data outside the DP
            # accounting, so the card should stay at the hospital.
            not_private=[
                "threshold (chosen on the validation split)",
                *(["normalisation"] if task.name == "signal-anomaly" else []),
            ],
        )
    card = make_card(task, model, prepared, threshold, privacy)
    if threshold is not None:
        card.threshold_source = f"this hospital's validation split ({data.name})"
    metrics = task.score(model, prepared.test, card)
    card.metrics = {"test": metrics}
    model_dir = save_model_dir(out, model, card) if out is not None else None
    return LocalResult(metrics, training, card, model_dir)


def evaluate_dir(model_dir: Path, data: Path) -> dict[str, Any]:
    """Score all of ``data`` (no split) with an exported model."""
    model, card = load_model_dir(model_dir)
    task = get_task(card.task)
    arrays: Arrays = task.prepare_all(data, card)
    return {
        "task": card.task,
        "model": card.model,
        "examples": len(arrays),
        "threshold": card.threshold,
        "threshold_source": card.threshold_source or "unknown",
        "metrics": task.score(model, arrays, card),
    }


def calibrate_dir(
    model_dir: Path, data: Path, out: Path | None, split_seed: int = 0
) -> dict[str, Any]:
    """Choose ``model_dir``'s threshold on this hospital's own validation split.

    The data are split by patient (``split_seed``, as ``fedcare train`` does);
    the threshold is the task's (best F1 for classifiers, a percentile of the
    normal scores for autoencoders) on the validation part, and the test part
    is scored at the card's threshold and at the new one. With ``out``, a copy
    of the model with the new threshold is written there (same weights).
    """
    from dataclasses import replace

    model, card = load_model_dir(model_dir)
    task = get_task(card.task)
    if task.kind not in ("binary", "reconstruction"):
        raise ConfigError(f"task {card.task} has no decision threshold to calibrate")
    # The hospital's own split and normalisation (public or per-beat constants,
    # or its own training-split statistics): the new threshold is on the scale
    # of those inputs, so the calibrated copy carries that normalisation too.
    prepared = task.prepare(data, seed=split_seed)
    local = task.calibrate(model, prepared)
    calibrated = replace(
        card,
        threshold=local,
        normalisation=prepared.normalisation,
        threshold_source=f"this hospital's validation split ({data.name}), "
        f"split seed {split_seed}, by fedcare calibrate",
    )
    before: dict[str, Any] = {
        "threshold": card.threshold,
        "threshold_source": card.threshold_source or "unknown",
        "test": None,
    }
    if card.threshold is not None:
        before["test"] = task.score(
            model, prepared.test, replace(card, normalisation=prepared.normalisation)
        )
    result = {
        "task": card.task,
        "data": str(data),
        "split_seed": split_seed,
        "examples": {"val": len(prepared.val), "test": len(prepared.test)},
        "before": before,
        "after": {
            "threshold": local,
            "threshold_source": calibrated.threshold_source,
            "test": task.score(model, prepared.test, calibrated),
        },
        "model_dir": None,
    }
    if out is not None:
        calibrated.metrics = {
            **card.metrics,
            "calibration_test": result["after"]["test"],
        }
        result["model_dir"] = str(save_model_dir(out, model, calibrated))
    return result


def _check_classes_present(task: Any, labels: Any, data: Path) -> None:
    """A classifier trained on one class learns nothing worth its epsilon:
    refuse it before the first noisy step (and before the ledger is touched)."""
    if task.kind not in ("binary", "multiclass"):
        return
    import numpy as np

    present = np.unique(np.asarray(labels))
    if present.size < 2:
        names = task.classes or []
        seen = [names[int(v)] if int(v) < len(names) else str(v) for v in present]
        raise DataError(
            f"{data}: the training split of task {task.name} holds only class "
            f"{seen or 'none'}; a classifier needs examples of every class "
            f"({', '.join(names) or 'at least 2'}) - nothing was trained or spent"
        )
