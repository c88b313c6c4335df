"""A hospital's part of a federated run, without Flower.

``client/app.py`` unpacks Flower's messages and calls :class:`Hospital`; this
module trains with DP-SGD (every round charged to the hospital's ledger),
declines a round the budget cannot pay for, and evaluates the global model on
the hospital's own test split. Settings that identify the hospital (data,
ledger, budget) come from the node config only.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from client import round_cache
from client.policy import HospitalPolicy
from client.tasks import Prepared, Task, get_task
from client.training import PrivateRun, TrainConfig, predict, steps_per_epoch, train
from shared_models import create_model, pooled, wire
from shared_models.errors import BudgetExceededError, ConfigError, FedcareError
from shared_models.export import arrays_hash, get_weights, set_weights
from shared_models.run_config import RunConfig

log = logging.getLogger(__name__)
_PREPARED: dict[tuple[str, str, int], Prepared] = {}
_FINGERPRINTS: dict[str, str] = {}
DECLINED_BUDGET = "privacy budget: this round would exceed the hospital's budget"


@dataclass(frozen=True)
class NodeSettings:
    """A hospital's identity, data and privacy budget (kebab-case node-config keys)."""

    hospital_id: str
    data_path: Path
    ledger_path: Path
    epsilon: float
    delta: float = 1e-5
    policy: HospitalPolicy = HospitalPolicy()
    report_dir: Path | None = None
    # The approved app bundles (``approved-apps``), read by the hospital's
    # runner (client.node_runtime) before a bundle is unpacked, not by the app.
    approved_apps: Path | None = None

    @property
    def reports(self) -> Path:
        """Where this hospital keeps its own record of each run (``report-dir``;
        by default ``fedcare-reports`` beside the ledger)."""
        return self.report_dir or self.ledger_path.parent / "fedcare-reports"

    @classmethod
    def from_node_config(
        cls, node: dict[str, Any], hospitals_file: str = ""
    ) -> NodeSettings:
        """Read ``hospital-id``, ``data-path``, ``ledger-path``, ``epsilon``, ``delta``
        and the privacy policy (``client.policy``) from the node config. In
        simulation, where Flower's node config holds only ``partition-id``, the
        partition selects the hospital's entry of ``hospitals_file`` (a JSON list
        of such configs)."""
        node = node_config_of(node, hospitals_file)
        missing = [
            k
            for k in ("hospital-id", "data-path", "ledger-path", "epsilon")
            if k not in node
        ]
        if missing:
            raise ConfigError(
                f"node config lacks {missing}; start the SuperNode with e.g. "
                '--node-config \'hospital-id="h1" data-path="/data" '
                'ledger-path="/ledger.jsonl" epsilon=8\''
            )
        if "run-epsilon" in node:
            raise ConfigError(
                "node config key run-epsilon was renamed max-run-epsilon (the cap on "
                "what one run may spend); rename it in --node-config"
            )
        return cls(
            str(node["hospital-id"]),
            Path(str(node["data-path"])),
            Path(str(node["ledger-path"])),
            float(node["epsilon"]),
            float(node.get("delta", 1e-5)),
            HospitalPolicy.from_node_config(node),
            Path(str(node["report-dir"])) if node.get("report-dir") else None,
            Path(str(node["approved-apps"])) if node.get("approved-apps") else None,
        )


def node_config_of(node: dict[str, Any], hospitals_file: str) -> dict[str, Any]:
    """The hospital's node config; in simulation, its entry of ``hospitals_file``."""
    if "data-path" not in node and "partition-id" in node:
        return _simulated_node(int(node["partition-id"]), hospitals_file)
    return node


def _simulated_node(partition: int, hospitals_file: str) -> dict[str, Any]:
    if not hospitals_file:
        raise ConfigError(
            "simulated node without data-path and no run-config hospitals-file"
        )
    entries = json.loads(Path(hospitals_file).read_text())
    if not 0 <= partition < len(entries):
        raise ConfigError(f"partition-id {partition} has no entry in {hospitals_file}")
    return entries[partition]


class Hospital:
    """One hospital in one federated run."""

    def __init__(self, settings: NodeSettings, run: RunConfig) -> None:
        self.settings = settings
        self.run = run.resolved()
        self.task: Task = get_task(run.task)

    @property
    def prepared(self) -> Prepared:
        # The split is the hospital's: its policy's seed, never the run's.
        seed = self.settings.policy.split_seed
        key = (str(self.settings.data_path.resolve()), self.task.name, seed)
        if key not in _PREPARED:  # a simulation actor may serve several hospitals
            _PREPARED[key] = self.task.prepare(self.settings.data_path, seed=seed)
        return _PREPARED[key]

    def model(self, weights: list[np.ndarray], dp: bool) -> torch.nn.Module:
        model = create_model(
            self.task.model, **self.task.model_config(self.prepared), dp=dp
        )
        set_weights(model, weights)
        return model

    def initial_weights(self) -> list[np.ndarray]:
        """A freshly initialised global model (seeded by the run's seed)."""
        torch.manual_seed(self.run.seed)
        model = create_model(
            self.task.model, **self.task.model_config(self.prepared), dp=False
        )
        return get_weights(model)

    def card_info(self) -> dict[str, Any]:
        """What the server needs to describe the global model (no patient data).

        Statistics fitted on this hospital's data are left out: a global model's
        inputs are normalised by each hospital with its own statistics
        (``scope: local``).
        """
        from client.pipeline import make_card

        model = create_model(
            self.task.model, **self.task.model_config(self.prepared), dp=False
        )
        card = make_card(self.task, model, self.prepared, None, None)
        norm = {
            k: v
            for k, v in card.normalisation.items()
            if k not in ("median", "low", "high", "mean", "std")
        }
        if len(norm) != len(card.normalisation):
            norm["scope"] = "local"
        return {
            "model": card.model,
            "model_config": card.model_config,
            "task": card.task,
            "input_spec": card.input_spec,
            "normalisation": norm,
            "classes": card.classes,
        }

    def fit(
        self, weights: list[np.ndarray], server_round: int, run_name: str
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        """Train locally: (weights, examples, metrics); a decline returns 0 examples."""
        self.settings.policy.check_training(self.run.dp)
        fit = self.task.fit_arrays(self.prepared)
        config = self._train_config(server_round)
        model = self.model(weights, dp=self.run.dp)
        metrics: dict[str, Any] = {
            "hospital-id": self.settings.hospital_id,
            "declined": "",
        }
        key = {"run": run_name, "round": server_round, "start": arrays_hash(weights)}
        kept = round_cache.fetch(self._cache, key) if self.run.dp else None
        if kept is not None:  # a retried round (the aggregator crashed): resend
            log.info("hospital %s: round %d retried; resending its update",
                     self.settings.hospital_id, server_round)  # fmt: skip
            private = self._private_run(run_name, fit, server_round)
            if private is not None:
                # Killed after keeping the update and before settling: the
                # dead reservation is settled now with the steps that update
                # took, since it leaves the hospital (once) with this reply.
                private.ledger.release_abandoned(
                    private.run_id, private.note, steps=int(kept[1]["steps"])
                )
            metrics.update(kept[1], **self._budget_metrics(run_name, server_round))
            self.local_report(run_name).record("fit", server_round, metrics)
            return kept[0], int(kept[1]["examples"]), metrics
        try:
            private = self._private_run(run_name, fit, server_round)
            if private is not None:
                # A reservation for this round left open by a process killed
                # before it kept an update: nothing of that training was kept or
                # sent, so this retry is charged instead (release_abandoned).
                private.ledger.release_abandoned(private.run_id, private.note)
                self._check_within_plan(private, self._steps_per_round(fit))

                def keep(steps: int, loss: float | None) -> None:
                    # after the last DP step, before the ledger settles
                    reply = {"train-loss": float(loss or 0.0), "steps": int(steps),
                             "examples": len(fit)}  # fmt: skip
                    round_cache.store(self._cache, key, get_weights(model), reply)

                private = replace(private, on_trained=keep)
            started = time.monotonic()
            result = train(model, fit.x, fit.y, config, private, groups=fit.groups)
            seconds = time.monotonic() - started
        except BudgetExceededError as exc:
            log.warning(
                "hospital %s declines round %d: %s",
                self.settings.hospital_id,
                server_round,
                exc,
            )
            # The full reason (spent, budget, ledger path) stays at the
            # hospital; it sends a zero-weight masked vector (client/app.py).
            metrics["declined"] = DECLINED_BUDGET
            metrics.update(self._budget_metrics(run_name, server_round))
            self.local_report(run_name).record("fit", server_round, metrics)
            return weights, 0, metrics
        trained = {
            "train-loss": float(result["train_loss"] or 0.0),
            "steps": int(result["steps"]),
            "examples": len(fit),
        }
        metrics.update(trained, **self._budget_metrics(run_name, server_round))
        # How long the local training took stays in the local report: it is
        # not in ``metrics`` (the reply), so it never reaches the aggregator.
        own = {**metrics, "train-seconds": round(seconds, 4)}
        self.local_report(run_name).record("fit", server_round, own)
        return get_weights(model), len(fit), metrics

    @property
    def _cache(self) -> Path:
        return round_cache.cache_path(self.settings.ledger_path)

    def local_report(self, run_name: str) -> LocalReport:
        return LocalReport(self.settings.reports, run_name, self.settings.hospital_id)

    def _train_config(self, server_round: int) -> TrainConfig:
        run = self.run
        return TrainConfig(
            epochs=run.local_epochs,
            steps=run.local_steps,
            batch_size=run.batch_size,
            sample_rate=run.sample_rate,
            lr=run.learning_rate,
            optimizer=run.local_optimizer,
            max_grad_norm=run.max_grad_norm,
            class_scaled_clip=run.class_scaled_clip,
            proximal_mu=run.proximal_mu if run.strategy == "fedprox" else 0.0,
            # Seeds augmentation only; DP noise and sampling use OS entropy.
            seed=run.seed
            + 1000 * server_round
            + zlib.crc32(self.settings.hospital_id.encode()),
            loss_kwargs=self.task.loss_kwargs(),
        )

    def _ledger(self) -> Any:
        from client.privacy import PrivacyBudget, PrivacyLedger
        from client.privacy.fingerprint import dataset_fingerprint

        key = str(self.settings.data_path.resolve())
        if key not in _FINGERPRINTS:
            _FINGERPRINTS[key] = dataset_fingerprint(self.settings.data_path)
        budget = PrivacyBudget(self.settings.epsilon, self.settings.delta)
        return PrivacyLedger.open(
            self.settings.ledger_path,
            budget,
            self.settings.hospital_id,
            dataset_fingerprint=_FINGERPRINTS[key],
        )

    def _units(self, fit: Any) -> int:
        from client.privacy import Units

        return Units.of(fit.groups, len(fit), self.settings.policy.privacy_unit).count

    def _steps_per_round(self, fit: Any) -> int:
        if self.run.local_steps:
            return self.run.local_steps
        units = self._units(fit)
        batch = self._train_config(0).unit_batch(units)
        return self.run.local_epochs * steps_per_epoch(units, batch)

    def _private_run(
        self, run_name: str, fit: Any, server_round: int = 0
    ) -> PrivateRun | None:
        if not self.run.dp:
            return None
        per_round = self._steps_per_round(fit)
        return PrivateRun(
            self._ledger(),
            run_name,
            self.settings.policy.run_epsilon(self.run.run_epsilon),
            planned_steps=per_round * self.run.num_server_rounds,
            privacy_unit=self.settings.policy.privacy_unit,
            note=f"round {server_round}",
        )

    @staticmethod
    def _check_within_plan(private: PrivateRun, per_round: int) -> None:
        """Refuse a round past the run's planned steps (a run extended on resume).

        The noise was calibrated for the planned steps; more steps would spend
        beyond the run's share of the budget even if the total budget allows it.
        """
        ledger = private.ledger
        plan = next((p for p in ledger.plans if p["run_id"] == private.run_id), None)
        if plan is None:
            return
        used = sum(
            int(e["steps"]) for e in ledger.entries if e["run_id"] == private.run_id
        )
        if used + per_round > int(plan["planned_steps"]):
            raise BudgetExceededError(
                f"run {private.run_id!r} was planned (and its noise calibrated) for "
                f"{plan['planned_steps']} steps and has used {used}; another round of "
                f"{per_round} would spend beyond the run's epsilon. Start a new run "
                "(new run-name) to train further."
            )

    def _budget_metrics(self, run_name: str, server_round: int) -> dict[str, Any]:
        if not self.run.dp:
            return {}
        try:
            ledger = self._ledger()
        except FedcareError:
            return {}
        metrics: dict[str, Any] = {
            "epsilon-spent": ledger.spent_epsilon,
            "epsilon-budget": ledger.budget.epsilon,
        }
        # The aggregator records it in the round's audit record, so a ledger
        # re-sealed after an edit or cut short no longer matches (wire.py). Sent
        # also before the ledger exists (head ""): its absence would single out
        # a hospital that declined its first round.
        metrics[wire.LEDGER_HEAD] = wire.ledger_commitment(
            ledger.head_hash, run_name, server_round
        )
        return metrics

    def pool(self, weights: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The sums the federation pools under SecAgg+ (``shared_models.wire``):
        validation and test score histograms, or the test error sums."""
        return self._sums(self.model(weights, dp=False), with_val=True)

    def _sums(self, model: torch.nn.Module, with_val: bool) -> dict[str, np.ndarray]:
        test, val = self.prepared.test, self.prepared.val
        if self.task.kind == "regression":
            err = predict(model, test.x) - test.y
            return {
                "n": np.asarray([len(test)]),
                "sum-abs-error": np.asarray([np.abs(err).sum()]),
                "sum-sq-error": np.asarray([(err**2).sum()]),
            }
        out = {}
        parts = (("val", val), ("test", test)) if with_val else (("test", test),)
        for name, part in parts:
            scores, labels = scores_and_labels(self.task, model, part)
            out[f"{name}-histogram"] = np.asarray(
                pooled.histogram(labels, scores, self.task.kind)
            )
        return out

    def evaluate(
        self,
        weights: list[np.ndarray],
        edge: int | None = None,
        server_round: int = 0,
        run_name: str = "",
    ) -> tuple[float, int, dict[str, Any]]:
        """This hospital's own metrics of the global model on its test split, at
        the pooled threshold (bin ``edge`` of the pooled validation histogram):
        (loss, examples, metrics). Recorded in the hospital's local report."""
        model = self.model(weights, dp=False)
        test = self.prepared.test
        metrics: dict[str, Any] = {}
        with torch.no_grad():
            loss = float(model.loss(torch.as_tensor(test.x), _target(test.y)).item())
        sums = self._sums(model, with_val=False)  # its own test split only
        if self.task.kind == "regression":
            n = int(sums["n"][0])
            metrics.update(
                n=n,
                mae_days=float(sums["sum-abs-error"][0]) / n if n else None,
                rmse_days=float(np.sqrt(sums["sum-sq-error"][0] / n)) if n else None,
            )
        else:
            hist = sums["test-histogram"]
            if edge is None:
                metrics.update(
                    n=int(hist.sum()),
                    positives=int(hist[1].sum()),
                    auroc=pooled.auroc(hist),
                    auprc=pooled.auprc(hist),
                )
            else:
                metrics.update(pooled.summary(hist, edge, self.task.kind))
        if run_name:
            self.local_report(run_name).record(
                "evaluation", server_round, {**metrics, "loss": loss}
            )
        return loss, len(test), {"hospital-id": self.settings.hospital_id, **metrics}


class LocalReport:
    """A hospital's own record of a federated run
    (``<report-dir>/<hospital-id>/<run>.json``):
    per round, how it trained (steps, loss, epsilon, the seconds its local
    training took, or why it declined) and
    its own metrics of the global model. It never leaves the hospital."""

    def __init__(self, folder: Path, run_name: str, hospital_id: str) -> None:
        def safe(name: str) -> str:
            return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

        self.path = Path(folder) / safe(hospital_id) / f"{safe(run_name)}.json"
        self.run_name = run_name
        self.hospital_id = hospital_id

    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {
                "run_name": self.run_name,
                "hospital_id": self.hospital_id,
                "fit": {},
                "evaluation": {},
            }
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: unreadable local report ({exc})") from None

    def record(self, section: str, server_round: int, entry: dict[str, Any]) -> None:
        from shared_models.atomic import atomic_write_text

        data = self.load()
        data[section][str(server_round)] = {
            k: v for k, v in entry.items() if k != "hospital-id"
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=2, default=str))


def scores_and_labels(
    task: Task, model: torch.nn.Module, part: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (class-1 probability, or anomaly score) and labels of one split.

    Signal anomaly detection is judged per row, the other tasks per example.
    """
    if task.name == "signal-anomaly":
        scores = task.row_scores(model, part)
        labels = part.extra["row_labels"]
        ok = np.isfinite(scores)
        return scores[ok], (np.zeros(ok.sum()) if labels is None else labels[ok])
    out = predict(model, part.x)
    return (out[:, 1] if task.kind == "binary" else out), part.y


def _target(y: np.ndarray | None) -> torch.Tensor | None:
    return None if y is None else torch.as_tensor(y)
