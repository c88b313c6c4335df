"""The two baselines every hospital compares the federation with.

* ``local_only``: the hospital trains alone, with DP-SGD at the same privacy
  spend per run (``run-epsilon``) and the same number of local epochs as the
  whole federated run, on its own split; threshold from its own validation.
* ``centralized``: all hospitals' training splits pooled in one place,
  without DP (the upper bound a federation tries to approach); threshold
  from the pooled validation splits.

All three columns (these two and ``federated``) are measured on the same
test split of each hospital, from score histograms at one threshold per
model (``shared_models.pooled``), exactly as the federation is judged.
The local-only baseline trains on the same patients as the federation, so
its DP spending is charged to each hospital's OWN ledger (one ledger per
dataset), under the hospital's privacy unit and split.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from client.federated import scores_and_labels
from client.tasks import Arrays, get_task
from client.training import PrivateRun, TrainConfig, predict, train
from server import evaluation
from server.config import RunConfig
from shared_models import create_model, pooled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Site:
    """A simulated hospital: its data, ledger, budget and policy."""

    hospital_id: str
    data_path: Path
    ledger_path: Path | None = None
    epsilon: float = 8.0
    delta: float = 1e-5
    privacy_unit: str = "patient"
    split_seed: int = 0

    @classmethod
    def of(cls, node: dict[str, Any]) -> Site:
        """The site of one hospitals-file entry (a node config)."""
        return cls(
            str(node["hospital-id"]),
            Path(node["data-path"]),
            Path(node["ledger-path"]),
            float(node["epsilon"]),
            float(node.get("delta", 1e-5)),
            str(node.get("privacy-unit", "patient")),
            int(node.get("split-seed", 0)),
        )


def _config(run: RunConfig, fit: Arrays, task: Any) -> TrainConfig:
    return TrainConfig(
        epochs=run.num_server_rounds * run.local_epochs,
        batch_size=run.batch_size,
        lr=run.learning_rate,
        max_grad_norm=run.max_grad_norm,
        seed=run.seed,
        loss_kwargs=task.loss_kwargs(),
    )


def judge(
    task_name: str, model: Any, vals: list[Arrays], tests: dict[str, Arrays]
) -> dict[str, dict[str, Any]]:
    """Per-hospital test metrics at the threshold chosen on ``vals`` (pooled)."""
    task = get_task(task_name)
    if task.kind == "regression":
        replies = []
        for hid, test in tests.items():
            err = predict(model, test.x) - test.y
            replies.append(
                (
                    len(test),
                    {
                        "hospital-id": hid,
                        "sum-abs-error": float(np.abs(err).sum()),
                        "sum-sq-error": float((err**2).sum()),
                    },
                )
            )
        return evaluation.aggregate(task_name, replies)["hospitals"]
    val_hists = [
        np.asarray(
            pooled.histogram(*_swap(scores_and_labels(task, model, v)), task.kind)
        )
        for v in vals
    ]
    val_text = pooled.encode(pooled.pool(val_hists).tolist())  # one threshold for all
    replies = []
    for hid, test in tests.items():
        test_hist = pooled.histogram(
            *_swap(scores_and_labels(task, model, test)), task.kind
        )
        replies.append(
            (
                len(test),
                {
                    "hospital-id": hid,
                    "val-histogram": val_text,
                    "test-histogram": pooled.encode(test_hist),
                },
            )
        )
    return evaluation.aggregate(task_name, replies)["hospitals"]


def _swap(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = pair
    return labels, scores


def local_only(run: RunConfig, site: Site) -> tuple[str, dict[str, Any]]:
    """Train ``site`` alone with DP; return (hospital id, its test metrics)."""
    from client.privacy import PrivacyBudget, PrivacyLedger
    from client.privacy.fingerprint import dataset_fingerprint

    task = get_task(run.task)
    prepared = task.prepare(site.data_path, seed=site.split_seed)
    fit = task.fit_arrays(prepared)
    model = create_model(task.model, **task.model_config(prepared), dp=run.dp)
    private = None
    if run.dp:
        if site.ledger_path is None:
            raise ValueError(f"site {site.hospital_id} has no ledger")
        ledger = PrivacyLedger.open(
            site.ledger_path,
            PrivacyBudget(site.epsilon, site.delta),
            site.hospital_id,
            dataset_fingerprint=dataset_fingerprint(site.data_path),
        )
        private = PrivateRun(
            ledger,
            f"{run.run_name or 'run'}-local-only",
            run.run_epsilon,
            privacy_unit=site.privacy_unit,
        )
    train(model, fit.x, fit.y, _config(run, fit, task), private, groups=fit.groups)
    metrics = judge(run.task, model, [prepared.val], {site.hospital_id: prepared.test})
    return site.hospital_id, metrics[site.hospital_id]


def _local_only_job(args: tuple[RunConfig, Site]) -> tuple[str, dict[str, Any]]:
    import torch

    torch.set_num_threads(1)
    return local_only(*args)


def all_local_only(
    run: RunConfig, sites: list[Site], workers: int = 2
) -> dict[str, dict[str, Any]]:
    jobs = [(run, site) for site in sites]
    if workers <= 1:
        return dict(map(_local_only_job, jobs))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(_local_only_job, jobs))


def centralized(run: RunConfig, sites: list[Site]) -> dict[str, dict[str, Any]]:
    """Pool every hospital's training split, train without DP, judge per hospital."""
    task = get_task(run.task)
    prepared = {
        s.hospital_id: task.prepare(s.data_path, seed=s.split_seed) for s in sites
    }
    fits = [task.fit_arrays(p) for p in prepared.values()]
    x = np.concatenate([f.x for f in fits])
    y = None if fits[0].y is None else np.concatenate([f.y for f in fits])
    pooled_fit = Arrays(x, y, np.concatenate([f.groups for f in fits]))
    first = next(iter(prepared.values()))
    model = create_model(task.model, **task.model_config(first), dp=False)
    train(model, pooled_fit.x, pooled_fit.y, _config(run, pooled_fit, task), None)
    return judge(
        run.task,
        model,
        [p.val for p in prepared.values()],
        {h: p.test for h, p in prepared.items()},
    )
