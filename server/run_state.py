"""What the aggregator keeps about one federated run (no Flower here).

Per round: which hospitals replied (under SecAgg+ a decline looks like a
reply), failures, the pooled evaluation (and the hospitals' own metrics only
where a hospital's policy shares them), a checkpoint of the global model, and
the best/final exported models. No per-hospital training value reaches it.
Round numbers continue across ``--resume`` (Flower's round r of a resumed run
is round ``offset + r``). Each round also records what it cost the aggregator
(``resources``: wall seconds of its fit and of the whole round, and the
ServerApp process's peak resident memory so far).
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from server import audit, checkpoint, evaluation
from server.history import RunHistory
from shared_models import create_model, wire
from shared_models.export import ModelCard, arrays_hash, save_model_dir, set_weights
from shared_models.run_config import RunConfig

log = logging.getLogger(__name__)
THRESHOLD_SOURCE = (
    "federation: the pooled validation histograms of the hospitals of this run; "
    "calibrate it on a hospital's own data with fedcare calibrate"
)


class FederatedRun:
    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        run_name: str,
        card_info: dict[str, Any],
        offset: int = 0,
        history: RunHistory | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_name = run_name
        self.card_info = card_info
        self.offset = offset
        self.history = history or RunHistory(self.run_dir, run_name)
        self.weights: dict[int, list[np.ndarray]] = {}
        self.best: dict[str, Any] | None = self._best_so_far()
        self.strategy_state: dict[str, list[np.ndarray]] = {}
        self.progress: Any = None  # callable(round, total, pooled) or None
        # Resumed after a round that was checkpointed but not evaluated:
        # Flower's round 1 is that round's evaluation alone (offset one less).
        self.reevaluate = False
        self.initial_sha256 = ""  # the global model before round offset + 1
        # (round, hash) of the audit log's newest record, sent with every
        # instruction so the hospitals hold it apart (shared_models.held_heads)
        self.audit_head = audit.head(self.run_dir / audit.FILE_NAME)
        self._started: float | None = None  # monotonic start of the current round

    def round_started(self, flwr_round: int) -> None:
        """Flower's round ``flwr_round`` begins (its fit is about to be sent)."""
        self._started = time.monotonic()

    def round_finished(self, flwr_round: int) -> None:
        """Round ``flwr_round``'s evaluation is done: record what it cost."""
        record = self.history.round(self.offset + flwr_round)
        spent = record.setdefault("resources", {})
        if self._started is not None:
            spent["round_s"] = round(time.monotonic() - self._started, 3)
        spent["server_peak_rss_mib"] = peak_rss_mib()
        self.history.save()

    def set_initial(self, weights: list[np.ndarray]) -> None:
        """The weights round ``offset + 1`` starts from (fresh or resumed)."""
        self.weights["initial"] = weights
        self.initial_sha256 = arrays_hash(weights)

    def _best_so_far(self) -> dict[str, Any] | None:
        best = None
        for record in self.history.rounds:
            ranked = evaluation.selection_metrics(
                record.get("evaluation", {}), self.config.task
            )
            if ranked and evaluation.is_better(self.config.task, ranked, best):
                best = ranked
        return best

    def card(
        self, threshold: float | None, extra: dict[str, Any] | None = None
    ) -> ModelCard:
        info = self.card_info
        return ModelCard(
            model=info["model"],
            model_config=info["model_config"],
            task=info["task"],
            input_spec=info["input_spec"],
            normalisation=info["normalisation"],
            threshold=threshold,
            threshold_source=THRESHOLD_SOURCE if threshold is not None else "",
            classes=info.get("classes"),
            training_data=extra or {},
            privacy={
                "run_epsilon": self.config.run_epsilon,
                "dp": self.config.dp,
                "secagg": self.config.secagg,
            },
        )

    def on_fit(
        self,
        flwr_round: int,
        weights: list[np.ndarray] | None,
        replies: list[tuple[int, dict[str, Any]]],
        failures: list[str],
        dropped: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record a round's fit; ``dropped``: sampled nodes that never replied
        (``{"node_id", "hospital"}``, hospital ``None`` when not yet known)."""
        number = self.offset + flwr_round
        record = self.history.round(number)
        fit = {}
        for examples, metrics in replies:
            # Under SecAgg+ a decline is a zero-weight masked vector: it looks
            # like any other reply. Without SecAgg+ its 0 examples show.
            masked = self.config.secagg
            status = (
                "replied" if masked else ("declined" if not examples else "trained")
            )
            fit[str(metrics[wire.HOSPITAL_ID])] = {"status": status}
            if wire.is_sha256(metrics.get(wire.LEDGER_HEAD)):
                fit[str(metrics[wire.HOSPITAL_ID])]["ledger_head"] = str(
                    metrics[wire.LEDGER_HEAD]
                )
        record.update(
            time=time.time(),
            fit=fit,
            failures=failures,
            participating=sorted(
                h for h, f in fit.items() if f["status"] != "declined"
            ),
            declined=sorted(h for h, f in fit.items() if f["status"] == "declined"),
            dropped=dropped or [],
        )
        if self._started is not None:
            record.setdefault("resources", {})["fit_s"] = round(
                time.monotonic() - self._started, 3
            )
        if weights is not None:
            self.weights[number] = weights
            record["global_model_sha256"] = arrays_hash(weights)
            checkpoint.save(
                self.run_dir,
                number,
                self.run_name,
                weights,
                self.card(None),
                self.config.to_run_config(),
                self.strategy_state,
            )
        self.history.save()
        before = audit.model_before(self.history.rounds, number, self.initial_sha256)
        sealed = audit.append_round(
            self.run_dir, self.run_name, record, before, self.config
        )
        self.audit_head = (int(sealed["round"]), str(sealed["hash"]))

    def on_pool(
        self,
        flwr_round: int,
        sums: dict[str, Any] | None,
        hospitals: list[str],
        failures: list[str],
    ) -> None:
        """Record the pooled evaluation of round ``flwr_round`` (its sums are
        SecAgg+'s unmasked total; ``None`` when the pool round failed)."""
        number = self.offset + flwr_round
        result: dict[str, Any] = {"pooled": {}, "threshold": None, "edge": None}
        if sums is not None:
            result = evaluation.pooled_result(self.config.task, sums)
        else:
            log.warning("round %d: the pooled evaluation failed", number)
        result.update(pooled_from=hospitals, failures=failures, hospitals={})
        self.history.round(number)["evaluation"] = result
        self.history.save()

    def pool_edge(self, number: int) -> int | None:
        """The pooled threshold's bin of round ``number`` (None if not pooled)."""
        for record in self.history.rounds:
            if record["round"] == number:
                return (record.get("evaluation") or {}).get("edge")
        return None

    def on_evaluate(
        self,
        flwr_round: int,
        replies: list[tuple[int, dict[str, Any]]],
        failures: list[str],
    ) -> dict[str, Any]:
        """Record who evaluated and the metrics hospitals chose to share; export
        the round's model (final, and best when it ranks best on validation)."""
        number = self.offset + flwr_round
        record = self.history.round(number)
        result = record.setdefault(
            "evaluation", {"pooled": {}, "threshold": None, "hospitals": {}}
        )
        result["evaluated_by"] = sorted(str(m[wire.HOSPITAL_ID]) for _, m in replies)
        result["hospitals"] = {
            str(m[wire.HOSPITAL_ID]): shared
            for _, m in replies
            if (shared := wire.shared_of(m))
        }
        result["evaluate_failures"] = failures
        self.history.save()
        weights = self.weights.get(number)
        if weights is not None and result["pooled"]:
            self._export("final", weights, result, number)
            ranked = evaluation.selection_metrics(result, self.config.task)
            name, _ = evaluation.primary_metric(self.config.task)
            if ranked.get(name) is None and self.best is None:
                # Nothing to rank on (e.g. no positives in any validation
                # split): models/best is the latest round until one can be.
                log.warning(
                    "round %d: no validation %s to rank rounds on; models/best "
                    "is the latest round",
                    number,
                    name,
                )
                self._export("best", weights, result, number)
            elif evaluation.is_better(self.config.task, ranked, self.best):
                self.best = ranked
                self._export("best", weights, result, number)
        if self.progress is not None:
            self.progress(number, self.config.num_server_rounds, result["pooled"])
        return result["pooled"]

    def record_server_eval(self, flwr_round: int, metrics: dict[str, Any]) -> None:
        self.history.round(self.offset + flwr_round)["server_evaluation"] = metrics
        self.history.save()

    def _export(
        self, name: str, weights: list[np.ndarray], result: dict[str, Any], number: int
    ) -> None:
        card = self.card(
            result["threshold"], {"federated_round": number, "run_name": self.run_name}
        )
        card.metrics = {
            "pooled_test": result["pooled"],
            "hospitals_test": result.get("hospitals") or {},
            "pooled_validation": result.get("validation"),
        }
        model = create_model(card.model, **card.model_config, dp=False)
        set_weights(model, weights)
        save_model_dir(self.run_dir / "models" / name, model, card)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (``getrusage``;
    Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
