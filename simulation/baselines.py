"""The two baselines every hospital compares the federation with.

* ``local_only``: the hospital trains alone with ``fedcare train``'s recipe
  (``shared_models.recipe``: Adam over as many epochs as the whole federated
  run, the run's batch and clipping norm), with DP-SGD at the same privacy
  spend per run (``run-epsilon``), on its own split; threshold from its own
  validation. The same models give the ``single_hospital`` arm: one
  hospital's model used at every hospital (``cross``).
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
from shared_models import create_model, pooled
from shared_models.metrics import counts_metrics
from shared_models.recipe import recipe_of, run_epochs
from shared_models.run_config import RunConfig

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


def _config(run: RunConfig, task: Any, dp: bool) -> TrainConfig:
    """``fedcare train``'s recipe over as many epochs as the federated run."""
    if not dp:
        return task.recommended_config(
            False, seed=run.seed, loss_kwargs=task.loss_kwargs()
        )
    # Alone, Adam at the rate ``fedcare train`` takes under the federation's
    # recipe; a server lr the operator chose is the rate under FedAdam over
    # local SGD, else the hospitals' own.
    fedadam = run.strategy == "fedadam" and run.local_optimizer == "sgd"
    return task.recommended_config(
        dp,
        epochs=run_epochs(
            run.num_server_rounds, run.local_steps, run.local_epochs, run.sample_rate
        ),
        steps=run.num_server_rounds * run.local_steps,
        batch_size=run.batch_size,
        sample_rate=run.sample_rate,
        lr=_alone_lr(run) if fedadam else run.learning_rate,
        max_grad_norm=run.max_grad_norm,
        class_scaled_clip=run.class_scaled_clip,
        seed=run.seed,
        loss_kwargs=task.loss_kwargs(),
    )


def _alone_lr(run: RunConfig) -> float:
    """Adam's rate alone under FedAdam: the recipe's own (``alone_lr``) while
    the run keeps the recipe's server lr, else the operator's server lr."""
    recipe = recipe_of(run.task)
    if run.server_learning_rate == recipe.server_lr and recipe.alone_lr:
        return recipe.alone_lr
    return run.server_learning_rate


def judge(
    task_name: str, model: Any, vals: list[Arrays], tests: dict[str, Arrays]
) -> dict[str, dict[str, Any]]:
    """Per-hospital test metrics at the threshold chosen on ``vals`` (pooled)."""
    return judge_all(task_name, model, vals, tests)["hospitals"]


def judge_all(
    task_name: str, model: Any, vals: list[Arrays], tests: dict[str, Arrays]
) -> dict[str, Any]:
    """``{"pooled", "hospitals", "threshold"}`` of ``model`` on ``tests``."""
    task = get_task(task_name)
    if task.kind == "regression":
        sums = {}
        for hid, test in tests.items():
            err = predict(model, test.x) - test.y
            sums[hid] = {
                "n": len(test),
                "sum-abs-error": float(np.abs(err).sum()),
                "sum-sq-error": float((err**2).sum()),
            }
        return evaluation.judge_parts(task_name, None, sums)
    val_hists = [
        np.asarray(
            pooled.histogram(*_swap(scores_and_labels(task, model, v)), task.kind)
        )
        for v in vals
    ]
    test_hists = {
        hid: np.asarray(
            pooled.histogram(*_swap(scores_and_labels(task, model, test)), task.kind)
        )
        for hid, test in tests.items()
    }
    # one threshold for all, on the pooled validation histograms
    return evaluation.judge_parts(task_name, pooled.pool(val_hists), test_hists)


def _swap(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = pair
    return labels, scores


def local_only(
    run: RunConfig, site: Site, others: tuple[Site, ...] = ()
) -> tuple[str, dict[str, Any]]:
    """Train ``site`` alone with DP; return (hospital id, its test metrics).

    With ``others``, the metrics carry ``cross``: the same model on every
    site's test split (``site``'s threshold), pooled and per hospital.
    """
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
    train(model, fit.x, fit.y, _config(run, task, run.dp), private, groups=fit.groups)
    metrics = judge(run.task, model, [prepared.val], {site.hospital_id: prepared.test})
    own = dict(metrics[site.hospital_id])
    if task.kind != "regression":
        scores, labels = scores_and_labels(task, model, prepared.test)
        own["test_histogram"] = pooled.histogram(labels, scores, task.kind)
    if others:
        tests = {site.hospital_id: prepared.test}
        for other in others:
            if other.hospital_id != site.hospital_id:
                tests[other.hospital_id] = task.prepare(
                    other.data_path, seed=other.split_seed
                ).test
        own["cross"] = judge_all(run.task, model, [prepared.val], tests)
    return site.hospital_id, own


def _local_only_job(args: tuple) -> tuple[str, dict[str, Any]]:
    import torch

    torch.set_num_threads(1)
    return local_only(*args)


def all_local_only(
    run: RunConfig, sites: list[Site], workers: int = 2, cross: bool = False
) -> dict[str, dict[str, Any]]:
    """Every site's local-only metrics (``cross``: also on every other site)."""
    others = tuple(sites) if cross else ()
    jobs = [(run, site, others) for site in sites]
    if workers <= 1:
        return dict(map(_local_only_job, jobs))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(_local_only_job, jobs))


def centralized(run: RunConfig, sites: list[Site]) -> dict[str, Any]:
    """Pool every hospital's training split, train without DP, judge per hospital.

    Returns ``{"pooled", "hospitals", "threshold"}`` like the federation's.
    """
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
    train(model, pooled_fit.x, pooled_fit.y, _config(run, task, dp=False), None)
    return judge_all(
        run.task,
        model,
        [p.val for p in prepared.values()],
        {h: p.test for h, p in prepared.items()},
    )


def pool_own(task_name: str, local: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Pooled metrics of the local-only arm: every hospital's test examples,
    each scored by its own hospital's model at that hospital's threshold."""
    task = get_task(task_name)
    if task.kind == "regression":
        scored = [m for m in local.values() if m["n"] and m["mae_days"] is not None]
        n = sum(m["n"] for m in scored)
        if not n:
            return {"n": 0, "mae_days": None, "rmse_days": None}
        mae = sum(m["n"] * m["mae_days"] for m in scored) / n
        mse = sum(m["n"] * m["rmse_days"] ** 2 for m in scored) / n
        return {"n": n, "mae_days": mae, "rmse_days": float(np.sqrt(mse))}
    hists = [np.asarray(m["test_histogram"]) for m in local.values()]
    total = pooled.pool(hists)
    edges = pooled.bin_edges(task.kind)
    tp = fp = fn = 0.0
    for m, hist in zip(local.values(), hists, strict=True):
        edge = int(np.searchsorted(edges, m["threshold"]))
        tp += hist[1][edge:].sum()
        fp += hist[0][edge:].sum()
        fn += hist[1][:edge].sum()
    return {
        "n": int(total.sum()),
        "positives": int(total[1].sum()),
        "auroc": pooled.auroc(total),
        "auprc": pooled.auprc(total),
        # None without a positive (shared_models.metrics.counts_metrics)
        "f1": counts_metrics(float(tp), float(fp), float(fn), 0.0)["f1"],
    }


def pca_baseline(
    run: RunConfig, sites: list[Site], components: int = 8
) -> dict[str, Any]:
    """A PCA reconstruction of the model's inputs, as an anomaly score.

    Fitted (without DP, like ``centralized``) on every hospital's normal
    training examples, flattened; the score of an example is its mean squared
    reconstruction error, and it is judged exactly like the autoencoders
    (threshold at the task's percentile of the pooled normal validation
    scores).
    """
    task = get_task(run.task)
    prepared = {
        s.hospital_id: task.prepare(s.data_path, seed=s.split_seed) for s in sites
    }
    fit = np.concatenate(
        [
            task.fit_arrays(p).x.reshape(len(task.fit_arrays(p)), -1)
            for p in prepared.values()
        ]
    )
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    basis = vt[:components]
    model = _PcaScorer(
        mean, basis, task.fit_arrays(next(iter(prepared.values()))).x.shape[1:]
    )
    return judge_all(
        run.task,
        model,
        [p.val for p in prepared.values()],
        {h: p.test for h, p in prepared.items()},
    )


class _PcaScorer:
    """Quacks like a fedcare autoencoder for ``predict``: per-example error."""

    def __init__(self, mean: np.ndarray, basis: np.ndarray, shape: tuple) -> None:
        self.mean, self.basis, self.shape = mean, basis, shape

    def to(self, device: Any) -> _PcaScorer:
        return self

    def eval(self) -> _PcaScorer:
        return self

    def predict(self, x: Any) -> Any:
        import torch

        flat = x.reshape(len(x), -1).cpu().numpy() - self.mean
        recon = flat @ self.basis.T @ self.basis
        return torch.as_tensor(((flat - recon) ** 2).mean(axis=1))
