"""A hospital's privacy ledger: every private training call, for all time.

Spent epsilon is recomputed from the whole history (every run, round and
restart) each time, so a new process or a new ``PrivacyEngine`` can never reset
it. Usage by a trainer, once per round::

    ledger = PrivacyLedger.open(path, budget, hospital_id)
    plan = ledger.plan(run_id, sample_rate, planned_steps, max_grad_norm)
    ledger.check(plan, steps_this_round)      # refuses before training starts
    ...train, counting optimizer steps...
    ledger.charge(plan, steps_taken)          # in a finally: charge what was spent
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from client.errors import BudgetExceededError, ConfigError, LedgerError
from client.privacy.accounting import calibrate_noise, compute_epsilon
from client.privacy.budget import PrivacyBudget, SpendPlan
from client.privacy.ledger_file import append_record, locked, read_records

logger = logging.getLogger(__name__)

LEDGER_VERSION = 1
# Relative slack when comparing an epsilon with the budget: only float rounding
# (summation order of identical terms), orders of magnitude below any real spend.
_SLACK = 1e-9


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class PrivacyLedger:
    """Hash-chained JSON Lines ledger of one hospital's privacy spending."""

    def __init__(self, path: Path) -> None:
        """Bind to ``path``; reads (and verifies) it if it exists, writes nothing."""
        self.path = Path(path)
        self._records: list[dict[str, Any]] = []
        self._spent: tuple[int, float] | None = None
        if self.path.exists():
            self.reload()

    @classmethod
    def open(
        cls, path: Path, budget: PrivacyBudget | None, hospital_id: str | None = None
    ) -> PrivacyLedger:
        """Open the ledger at ``path``, creating it with ``budget`` if absent.

        An existing ledger is verified end to end, and ``budget`` (if given) and
        ``hospital_id`` (if given) must match its header: a ledger's budget is
        fixed when it is created. ``budget=None`` means "use the header's".
        """
        ledger = cls(Path(path))
        with locked(ledger.path):
            if ledger.path.exists():
                ledger.reload()
                ledger._match_header(budget, hospital_id)
                return ledger
            if budget is None:
                raise LedgerError(
                    f"Privacy ledger {ledger.path} does not exist and no budget was "
                    "given. Give a budget (epsilon, delta, accountant) to create it, "
                    "or point to the hospital's existing ledger."
                )
            header = {
                "type": "header",
                "version": LEDGER_VERSION,
                "hospital_id": hospital_id or "",
                "budget": budget.to_dict(),
                "created": _now(),
            }
            ledger._records = [append_record(ledger.path, "", header)]
            logger.info("created privacy ledger %s with budget %s", ledger.path, budget)
        return ledger

    def _match_header(
        self, budget: PrivacyBudget | None, hospital_id: str | None
    ) -> None:
        if budget is not None and budget != self.budget:
            raise LedgerError(
                f"Privacy ledger {self.path} was created with budget {self.budget}, "
                f"but {budget} was given. A ledger's budget is fixed at creation so "
                "past spending stays comparable: pass the ledger's budget (or none), "
                "or use a new ledger file for a new budget."
            )
        if hospital_id and self.hospital_id and hospital_id != self.hospital_id:
            raise LedgerError(
                f"Privacy ledger {self.path} belongs to hospital "
                f"{self.hospital_id!r}, not {hospital_id!r}. Check the ledger path "
                "in this hospital's node config."
            )

    def reload(self) -> None:
        """Re-read and verify the file (another process may have appended)."""
        self._records = read_records(self.path)
        self._spent = None

    # -- what the ledger holds ------------------------------------------------
    @property
    def header(self) -> dict[str, Any]:
        if not self._records:
            raise LedgerError(
                f"Privacy ledger {self.path} does not exist yet; create it with "
                "PrivacyLedger.open(path, budget)."
            )
        return self._records[0]

    @property
    def budget(self) -> PrivacyBudget:
        try:
            return PrivacyBudget.from_dict(self.header["budget"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(
                f"Privacy ledger {self.path} line 1: invalid budget "
                f"{self.header.get('budget')!r} ({exc})."
            ) from None

    @property
    def hospital_id(self) -> str:
        return str(self.header.get("hospital_id", ""))

    @property
    def head_hash(self) -> str:
        """Hash of the last record; store it (e.g. in a checkpoint) to audit later."""
        return str(self._records[-1]["hash"]) if self._records else ""

    @property
    def records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._records]

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The spend records, one per private training call, oldest first."""
        return [dict(r) for r in self._records if r["type"] == "spend"]

    @property
    def plans(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._records if r["type"] == "plan"]

    def history(self) -> list[tuple[float, float, int]]:
        """``(noise_multiplier, sample_rate, steps)`` of every spend, oldest first."""
        return [
            (float(e["noise_multiplier"]), float(e["sample_rate"]), int(e["steps"]))
            for e in self._records
            if e["type"] == "spend"
        ]

    @property
    def spent_epsilon(self) -> float:
        if self._spent is None or self._spent[0] != len(self._records):
            budget = self.budget
            eps = compute_epsilon(self.history(), budget.delta, budget.accountant)
            self._spent = (len(self._records), eps)
        return self._spent[1]

    @property
    def remaining_epsilon(self) -> float:
        return max(0.0, self.budget.epsilon - self.spent_epsilon)

    def epsilon_after(
        self, noise_multiplier: float, sample_rate: float, steps: int
    ) -> float:
        """Cumulative epsilon if ``steps`` more steps at (sigma, q) were charged."""
        budget = self.budget
        history = [*self.history(), (noise_multiplier, sample_rate, steps)]
        return compute_epsilon(history, budget.delta, budget.accountant)

    # -- spending -------------------------------------------------------------
    def plan(
        self,
        run_id: str,
        sample_rate: float,
        planned_steps: int,
        max_grad_norm: float,
        run_epsilon: float | None = None,
    ) -> SpendPlan:
        """Calibrate the noise of run ``run_id`` ONCE, or return its existing plan.

        The first call of a run calibrates sigma so that the cumulative epsilon
        after ``planned_steps`` (all rounds of the run) is ``spent +
        run_epsilon`` (default: everything that remains) and records the plan.
        Later calls, in any process, return the recorded plan unchanged.
        """
        with locked(self.path):
            self.reload()
            existing = self._plan_record(run_id)
            if existing is not None:
                plan = SpendPlan.from_dict(existing)
                _warn_if_changed(plan, sample_rate, planned_steps, max_grad_norm)
                return plan
            budget, spent = self.budget, self.spent_epsilon
            asked = self.remaining_epsilon if run_epsilon is None else run_epsilon
            self._refuse_plan(run_id, asked, spent, run_epsilon is None)
            target = min(spent + asked, budget.epsilon)
            sigma = calibrate_noise(
                target,
                budget.delta,
                sample_rate,
                planned_steps,
                accountant=budget.accountant,
                history=self.history(),
            )
            plan = SpendPlan(
                run_id=run_id,
                noise_multiplier=sigma,
                sample_rate=float(sample_rate),
                planned_steps=int(planned_steps),
                max_grad_norm=float(max_grad_norm),
                target_epsilon=target,
                accountant=budget.accountant,
            )
            record = {"type": "plan", **plan.to_dict(), "time": _now()}
            self._records.append(append_record(self.path, self.head_hash, record))
        logger.info(
            "run %s: noise multiplier %.4g for %d steps at q=%.4g, "
            "epsilon %.4g -> %.4g of %.4g",
            run_id, sigma, planned_steps, sample_rate, spent, target, budget.epsilon,
        )  # fmt: skip
        return plan

    def _refuse_plan(self, run_id: str, asked: float, spent: float, all_: bool) -> None:
        budget = self.budget
        if not (isinstance(asked, (int, float)) and math.isfinite(asked)):
            raise ConfigError(f"run_epsilon {asked!r} must be a positive number.")
        if asked <= 0 and not all_:
            raise ConfigError(f"run_epsilon {asked!r} must be a positive number.")
        if asked <= 0 or spent + asked > budget.epsilon * (1 + _SLACK):
            raise BudgetExceededError(
                f"Run {run_id!r} refused before training: it asks for epsilon "
                f"{asked:.6g} but hospital {self.hospital_id or '?'} has spent "
                f"{spent:.6g} of its budget {budget.epsilon:g} (delta={budget.delta:g},"
                f" {budget.accountant}), so {self.remaining_epsilon:.6g} remains "
                f"(ledger {self.path}). Ask for at most the remaining epsilon, or "
                "stop training on this hospital's data."
            )

    def check(self, plan: SpendPlan, steps: int) -> None:
        """Refuse (:class:`BudgetExceededError`) ``steps`` that would overspend.

        Call it before training starts; nothing is written.
        """
        self.reload()
        self._require_known(plan)
        after = self.epsilon_after(plan.noise_multiplier, plan.sample_rate, steps)
        budget = self.budget
        if after > budget.epsilon * (1 + _SLACK):
            raise BudgetExceededError(
                f"Training refused before it started: {steps} steps of run "
                f"{plan.run_id!r} (sigma={plan.noise_multiplier:.4g}, "
                f"q={plan.sample_rate:.4g}) would bring epsilon from "
                f"{self.spent_epsilon:.6g} to {after:.6g}, past the budget "
                f"{budget.epsilon:g} (delta={budget.delta:g}, {budget.accountant}; "
                f"ledger {self.path}). Train fewer steps this round, or end the run."
            )

    def charge(self, plan: SpendPlan, steps: int, *, note: str = "") -> dict[str, Any]:
        """Record ``steps`` private steps actually taken under ``plan``.

        Always records (what was spent was spent), even past the budget, which
        is then logged as an error. Returns the sealed spend record.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"steps {steps!r} must be a non-negative integer.")
        with locked(self.path):
            self.reload()
            self._require_known(plan)
            budget = self.budget
            after = self.epsilon_after(plan.noise_multiplier, plan.sample_rate, steps)
            record = {
                "type": "spend",
                "run_id": plan.run_id,
                "sample_rate": plan.sample_rate,
                "noise_multiplier": plan.noise_multiplier,
                "steps": steps,
                "delta": budget.delta,
                "accountant": budget.accountant,
                "max_grad_norm": plan.max_grad_norm,
                "epsilon_after": after,
                "note": note,
                "time": _now(),
            }
            sealed = append_record(self.path, self.head_hash, record)
            self._records.append(sealed)
        if after > budget.epsilon * (1 + _SLACK):
            logger.error("ledger %s: epsilon %.6g exceeds budget %g", self.path, after,
                         budget.epsilon)  # fmt: skip
        logger.info("run %s: charged %d steps, epsilon now %.6g", plan.run_id, steps,
                    after)  # fmt: skip
        return dict(sealed)

    def _plan_record(self, run_id: str) -> dict[str, Any] | None:
        for record in self._records:
            if record["type"] == "plan" and record["run_id"] == run_id:
                return record
        return None

    def _require_known(self, plan: SpendPlan) -> None:
        record = self._plan_record(plan.run_id)
        if record is None or SpendPlan.from_dict(record) != plan:
            raise LedgerError(
                f"Plan for run {plan.run_id!r} is not the one recorded in privacy "
                f"ledger {self.path}; get plans from this ledger's plan()."
            )

    def summary(self) -> dict[str, Any]:
        """Budget, spending and entries as plain JSON-able data (for the CLI)."""
        return {
            "ledger": str(self.path),
            "hospital_id": self.hospital_id,
            "budget": self.budget.to_dict(),
            "spent_epsilon": self.spent_epsilon,
            "remaining_epsilon": self.remaining_epsilon,
            "entries": self.entries,
        }


def _warn_if_changed(
    plan: SpendPlan, sample_rate: float, planned_steps: int, max_grad_norm: float
) -> None:
    asked = (float(sample_rate), int(planned_steps), float(max_grad_norm))
    if asked != (plan.sample_rate, plan.planned_steps, plan.max_grad_norm):
        logger.warning(
            "run %s: keeping the plan calibrated at its first round (q=%g, steps=%d, "
            "clip=%g); this call asked for q=%g, steps=%d, clip=%g",
            plan.run_id, plan.sample_rate, plan.planned_steps, plan.max_grad_norm,
            *asked,
        )  # fmt: skip
