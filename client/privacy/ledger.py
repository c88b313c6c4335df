"""A hospital's privacy ledger: every private training call, for all time.

Spent epsilon is recomputed from the whole history (every run, round and
restart) each time, so a new process or a new ``PrivacyEngine`` can never reset
it. Usage by a trainer, once per round::

    ledger = PrivacyLedger.open(path, budget, hospital_id, dataset_fingerprint=fp)
    plan = ledger.plan(run_id, sample_rate, planned_steps, max_grad_norm,
                       run_epsilon, privacy_unit="patient")  # creates the file
    ledger.check(plan, steps)        # optional preview (writes nothing)
    rid = ledger.reserve(plan, steps)  # under the lock: refuses, or holds them
    ...train, counting optimizer steps...
    ledger.settle(rid, steps_taken)  # in a finally

``reserve`` decides under the ledger's lock, so two processes cannot both be
granted budget that only one of them can have. An open (unsettled) reservation
counts in full: a process that crashes mid-round leaves its steps charged,
unless the very work it held them for is retried (``release_abandoned``: a
federation's round retried after a crash is charged once, by the retry).
Nothing is written before the first ``plan``, so a command that fails before
training leaves no ledger behind (at most an empty lock file).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from client.privacy.accounting import calibrate_noise, compute_epsilon
from client.privacy.budget import (
    DEFAULT_PRIVACY_UNIT,
    LEGACY_PRIVACY_UNIT,
    PrivacyBudget,
    SpendPlan,
    check_privacy_unit,
)
from client.privacy.ledger_file import (
    append_record,
    create_ledger,
    history_of,
    open_reservations,
    read_records,
    run_steps,
)
from shared_models.errors import (
    BudgetExceededError,
    ConfigError,
    LedgerError,
    PrivacyError,
)
from shared_models.hash_chain import locked

logger = logging.getLogger(__name__)

LEDGER_VERSION = 2
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
        # What open() asked for: the header of a ledger still to be created, and
        # what an existing (or concurrently created) header must match.
        self._wanted: tuple[PrivacyBudget | None, str, str] = (None, "", "")
        if self.path.exists():
            self.reload()

    @classmethod
    def open(
        cls,
        path: Path,
        budget: PrivacyBudget | None,
        hospital_id: str | None = None,
        *,
        dataset_fingerprint: str = "",
    ) -> PrivacyLedger:
        """Open the ledger at ``path``; a missing one is created by the first plan.

        An existing ledger is verified end to end, and ``budget``, ``hospital_id``
        and ``dataset_fingerprint`` (each if given) must match its header: they
        are fixed when it is created. ``budget=None`` means "use the header's".
        Nothing is written here, even when the file does not exist.
        """
        if not isinstance(dataset_fingerprint, str):
            raise ConfigError(
                f"dataset_fingerprint {dataset_fingerprint!r} must be a string "
                '(dataset_fingerprint(data_path), or "" when unknown).'
            )
        ledger = cls(Path(path))
        ledger._wanted = (budget, hospital_id or "", dataset_fingerprint)
        if ledger.exists:
            ledger._match_header()
        elif budget is None:
            raise LedgerError(
                f"Privacy ledger {ledger.path} does not exist and no budget was "
                "given. Give a budget (epsilon, delta, accountant) to create it, "
                "or point to the hospital's existing ledger."
            )
        return ledger

    def _match_header(self) -> None:
        budget, hospital_id, fingerprint = self._wanted
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
        recorded = self.dataset_fingerprint
        if fingerprint and recorded and fingerprint != recorded:
            raise LedgerError(
                f"Privacy ledger {self.path} accounts for the dataset with "
                f"fingerprint {recorded}, but the data given has fingerprint "
                f"{fingerprint}. Each dataset has its own ledger: use the ledger "
                "created for this data. A new ledger starts from zero, which is only "
                "sound for patients never trained on under this one; keep the "
                "ledger outside the data directory (a change there changes the "
                "fingerprint)."
            )

    def reload(self) -> None:
        """Re-read and verify the file (another process may have appended)."""
        old = self._records
        records = read_records(self.path)
        if old and (
            len(records) < len(old) or records[len(old) - 1]["hash"] != old[-1]["hash"]
        ):
            raise LedgerError(
                f"Privacy ledger {self.path} changed under this process: it held "
                f"{len(old)} records ending in hash {old[-1]['hash'][:12]}..., and "
                f"now holds {len(records)} that do not continue them (records were "
                "removed or the file replaced). Restore the ledger from a backup."
            )
        self._records = records
        self._spent = None

    def _sync(self) -> None:
        """Catch up with the file (under :func:`locked` before any write)."""
        if self.path.exists():
            created_elsewhere = not self._records
            self.reload()
            if created_elsewhere:
                self._match_header()
        elif self._records:
            raise LedgerError(
                f"Privacy ledger {self.path} was deleted while in use (it held "
                f"{len(self._records)} records). Restore it from a backup: a new "
                "ledger would forget what was spent."
            )

    # -- what the ledger holds ------------------------------------------------
    @property
    def exists(self) -> bool:
        """Whether the ledger has been written (by a first plan)."""
        return bool(self._records)

    @property
    def header(self) -> dict[str, Any]:
        if not self._records:
            raise LedgerError(
                f"Privacy ledger {self.path} does not exist yet; it is created by "
                "the first plan() of a ledger opened with PrivacyLedger.open(path, "
                "budget)."
            )
        return self._records[0]

    @property
    def version(self) -> int:
        return int(self.header["version"]) if self.exists else LEDGER_VERSION

    @property
    def budget(self) -> PrivacyBudget:
        if not self.exists and self._wanted[0] is not None:
            return self._wanted[0]
        try:
            return PrivacyBudget.from_dict(self.header["budget"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(
                f"Privacy ledger {self.path} line 1: invalid budget "
                f"{self.header.get('budget')!r} ({exc})."
            ) from None

    @property
    def hospital_id(self) -> str:
        if not self.exists:
            return self._wanted[1]
        return str(self.header.get("hospital_id", ""))

    @property
    def dataset_fingerprint(self) -> str:
        """The header's dataset fingerprint ("" when unknown or version 1)."""
        if not self.exists:
            return self._wanted[2]
        return str(self.header.get("dataset_fingerprint", ""))

    @property
    def privacy_unit(self) -> str | None:
        """What one guarantee protects; None until the first plan fixes it."""
        if not self.exists:
            return None
        return str(self.header.get("privacy_unit", LEGACY_PRIVACY_UNIT))

    @property
    def head_hash(self) -> str:
        """Hash of the last record; store it (e.g. in a checkpoint) to audit later."""
        return str(self._records[-1]["hash"]) if self._records else ""

    @property
    def records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._records]

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The settled spend records, one per private training call, oldest first."""
        return [dict(r) for r in self._records if r["type"] == "spend"]

    @property
    def plans(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._records if r["type"] == "plan"]

    @property
    def reserved_open(self) -> list[dict[str, Any]]:
        """Reservations not settled yet (running, or crashed): counted in full."""
        return [dict(r) for r in open_reservations(self._records)]

    def history(self) -> list[tuple[float, float, int]]:
        """``(sigma, q, steps)`` of every spend and open reservation, oldest first."""
        return history_of(self._records)

    @property
    def spent_epsilon(self) -> float:
        """Cumulative epsilon of all settled spends and open reservations."""
        if self._spent is None or self._spent[0] != len(self._records):
            self._spent = (len(self._records), self._epsilon(self.history()))
        return self._spent[1]

    @property
    def settled_epsilon(self) -> float:
        """Cumulative epsilon of the settled spends alone."""
        return self._epsilon(history_of(self._records, settled_only=True))

    @property
    def remaining_epsilon(self) -> float:
        return max(0.0, self.budget.epsilon - self.spent_epsilon)

    def _epsilon(self, history: list[tuple[float, float, int]]) -> float:
        budget = self.budget
        return compute_epsilon(history, budget.delta, budget.accountant)

    def epsilon_after(
        self, noise_multiplier: float, sample_rate: float, steps: int
    ) -> float:
        """Cumulative epsilon if ``steps`` more steps at (sigma, q) were reserved."""
        return self._epsilon([*self.history(), (noise_multiplier, sample_rate, steps)])

    # -- planning ---------------------------------------------------------------
    def plan(
        self,
        run_id: str,
        sample_rate: float,
        planned_steps: int,
        max_grad_norm: float,
        run_epsilon: float | None = None,
        *,
        privacy_unit: str = DEFAULT_PRIVACY_UNIT,
    ) -> SpendPlan:
        """Calibrate the noise of run ``run_id`` ONCE, or return its existing plan.

        The first call of a run calibrates sigma so that the cumulative epsilon
        after ``planned_steps`` (all rounds of the run, and its cap) is ``spent +
        run_epsilon`` (``None``: everything that remains) and records the plan;
        the first plan of a ledger also writes its header, fixing its privacy
        unit. Later calls, in any process, return the recorded plan unchanged;
        they must ask for the same ``run_epsilon`` (else :class:`ConfigError`).
        """
        check_privacy_unit(privacy_unit)
        with locked(self.path):
            self._sync()
            if self.exists:
                self._match_unit(run_id, privacy_unit)
                existing = self._plan_record(run_id)
                if existing is not None:
                    return _replan(existing, run_epsilon, sample_rate, planned_steps,
                                   max_grad_norm)  # fmt: skip
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
                privacy_unit=privacy_unit,
            )
            record = {
                "type": "plan",
                **plan.to_dict(),
                "run_epsilon": None if run_epsilon is None else float(run_epsilon),
                "time": _now(),
            }
            self._write(record, privacy_unit)
        logger.info(
            "run %s: noise multiplier %.4g for %d steps at q=%.4g, "
            "epsilon %.4g -> %.4g of %.4g (%s level)",
            run_id, sigma, planned_steps, sample_rate, spent, target, budget.epsilon,
            privacy_unit,
        )  # fmt: skip
        return plan

    def _write(self, record: dict[str, Any], privacy_unit: str) -> None:
        """Append ``record``, creating the ledger (header first) if it is new."""
        if self.exists:
            self._records.append(append_record(self.path, self.head_hash, record))
            return
        header = {
            "type": "header",
            "version": LEDGER_VERSION,
            "hospital_id": self.hospital_id,
            "budget": self.budget.to_dict(),
            "dataset_fingerprint": self.dataset_fingerprint,
            "privacy_unit": privacy_unit,
            "created": _now(),
        }
        self._records = create_ledger(self.path, [header, record])
        logger.info("created privacy ledger %s with budget %s, %s level",
                    self.path, self.budget, privacy_unit)  # fmt: skip

    def _match_unit(self, run_id: str, privacy_unit: str) -> None:
        if privacy_unit != self.privacy_unit:
            raise LedgerError(
                f"Run {run_id!r} asks for {privacy_unit}-level privacy, but privacy "
                f"ledger {self.path} accounts at {self.privacy_unit} level (fixed at "
                "its creation). Epsilons of different units do not add up, and "
                "an example-level guarantee says nothing about a patient (one "
                "patient has many examples), so a ledger keeps one unit: train at "
                f"{self.privacy_unit} level with this ledger. A new ledger starts "
                "from zero, which is only sound for data never trained on under "
                "this one."
            )

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

    # -- spending -------------------------------------------------------------
    def check(self, plan: SpendPlan, steps: int) -> None:
        """Preview :meth:`reserve`: raise its :class:`BudgetExceededError` or pass.

        Nothing is written and nothing is held: use it to decline a round early,
        then :meth:`reserve`, which decides under the lock.
        """
        _check_steps("steps", steps)
        self._sync()
        self._require_known(plan)
        refusal = self._refusal(plan, steps)
        if refusal:
            raise BudgetExceededError(refusal)

    def reserve(self, plan: SpendPlan, steps: int, *, note: str = "") -> str:
        """Hold ``steps`` private steps of ``plan`` before training them.

        Under the ledger's lock: refuses (:class:`BudgetExceededError`) if the
        steps would take the cumulative epsilon (settled spends + open
        reservations + these) past the budget, or the run past its planned
        steps; otherwise records a ``reserve`` and returns its id, to
        :meth:`settle` once training ends.
        """
        _check_steps("steps", steps, minimum=1)
        with locked(self.path):
            self._sync()
            self._require_known(plan)
            refusal = self._refusal(plan, steps)
            if refusal:
                raise BudgetExceededError(refusal)
            after = self.epsilon_after(plan.noise_multiplier, plan.sample_rate, steps)
            reservation = uuid.uuid4().hex
            record = {
                "type": "reserve",
                "run_id": plan.run_id,
                "reservation": reservation,
                "steps": steps,
                "noise_multiplier": plan.noise_multiplier,
                "sample_rate": plan.sample_rate,
                "privacy_unit": plan.privacy_unit,
                "epsilon_after": after,
                "note": note,
                # Who holds it, so a later process can tell a crashed holder's
                # reservation (release_abandoned) from a running one.
                "holder": {"host": socket.gethostname(), "pid": os.getpid()},
                "time": _now(),
            }
            self._write(record, plan.privacy_unit)
        logger.info("run %s: reserved %d steps (%s), epsilon now %.6g", plan.run_id,
                    steps, reservation, after)  # fmt: skip
        return reservation

    def _refusal(self, plan: SpendPlan, steps: int) -> str | None:
        """Why reserving ``steps`` of ``plan`` now must be refused, or None."""
        settled, held = run_steps(self._records, plan.run_id)
        if settled + held + steps > plan.planned_steps:
            return (
                f"Training refused before it started: run {plan.run_id!r} was "
                f"planned (its noise calibrated) for {plan.planned_steps} steps, has "
                f"settled {settled} and holds {held} in open reservations, so {steps} "
                f"more would pass its cap (ledger {self.path}). More steps would "
                "spend beyond the run's epsilon: start a new run (a new run id)."
            )
        after = self.epsilon_after(plan.noise_multiplier, plan.sample_rate, steps)
        budget = self.budget
        if after <= budget.epsilon * (1 + _SLACK):
            return None
        spent, opened = self.spent_epsilon, self.reserved_open
        return (
            f"Training refused before it started: {steps} steps of run "
            f"{plan.run_id!r} (sigma={plan.noise_multiplier:.4g}, "
            f"q={plan.sample_rate:.4g}) ask for epsilon {after - spent:.6g} more, "
            f"bringing it from {spent:.6g} to {after:.6g}, past the budget "
            f"{budget.epsilon:g} (delta={budget.delta:g}, {budget.accountant}). "
            f"Spent: {self.settled_epsilon:.6g} settled, plus {len(opened)} open "
            f"reservation(s) of {sum(int(r['steps']) for r in opened)} steps counted "
            f"in full (ledger {self.path}). Train fewer steps this round, wait for "
            "the open reservations to settle (a crashed process's stays counted),"
            " or end the run."
        )

    def settle(
        self, reservation_id: str, steps_taken: int, *, note: str = ""
    ) -> dict[str, Any]:
        """Close reservation ``reservation_id`` with the steps actually taken.

        Records a ``spend`` of ``steps_taken`` (0 releases the reservation) and
        returns it. Taking more steps than reserved is a trainer bug: the spend
        is still recorded (what was spent was spent), then :class:`PrivacyError`
        is raised. An unknown or already settled id is a :class:`LedgerError`.
        """
        _check_steps("steps_taken", steps_taken)
        with locked(self.path):
            self._sync()
            held = self._open_reservation(reservation_id)
            plan = self._plan_record(held["run_id"]) or {}
            budget = self.budget
            record = {
                "type": "spend",
                "run_id": held["run_id"],
                "reservation": reservation_id,
                "sample_rate": held["sample_rate"],
                "noise_multiplier": held["noise_multiplier"],
                "steps": steps_taken,
                "reserved_steps": held["steps"],
                "delta": budget.delta,
                "accountant": budget.accountant,
                "max_grad_norm": plan.get("max_grad_norm"),
                "privacy_unit": held["privacy_unit"],
                "note": note,
                "time": _now(),
            }
            after = self._epsilon(history_of([*self._records, record]))
            sealed = append_record(
                self.path, self.head_hash, {**record, "epsilon_after": after}
            )
            self._records.append(sealed)
        logger.info("run %s: settled %d of %d reserved steps, epsilon now %.6g",
                    held["run_id"], steps_taken, held["steps"], after)  # fmt: skip
        if after > budget.epsilon * (1 + _SLACK):
            logger.error("ledger %s: epsilon %.6g exceeds budget %g", self.path, after,
                         budget.epsilon)  # fmt: skip
        if steps_taken > int(held["steps"]):
            raise PrivacyError(
                f"Run {held['run_id']!r} trained {steps_taken} steps under reservation "
                f"{reservation_id} of {held['steps']}. They are recorded in ledger "
                f"{self.path} (epsilon now {after:.6g} of {budget.epsilon:g}), but a "
                "trainer must stop at its reserved steps: this is a bug in the "
                "training loop, fix it before training again."
            )
        return dict(sealed)

    def release_abandoned(
        self, run_id: str, note: str, *, steps: int = 0
    ) -> list[dict[str, Any]]:
        """Settle the open reservations of ``run_id`` with ``note`` whose holder
        died before settling, with ``steps``; returns their ``spend`` records.

        For a caller about to redo that very work (a federation's round is
        retried after a crash), ``steps`` = 0: the dead process's training
        never left it (nothing of it was kept), so the retry is charged and the
        abandoned reservation is not. For a caller about to *resend* what the
        dead process trained and kept (``client/round_cache.py``, written after
        the last step and before the settle), ``steps`` is what that training
        took: its output is about to leave, so it is charged once, here. Only
        reservations made on this host by a process that no longer exists are
        settled; any other stays open and counted in full, as does every one
        nobody retries.
        """
        _check_steps("steps", steps)
        self._sync()
        host = socket.gethostname()
        dead = [
            r
            for r in open_reservations(self._records)
            if r["run_id"] == run_id
            and r.get("note") == note
            and (r.get("holder") or {}).get("host") == host
            and not _alive(int(r["holder"]["pid"]))
        ]
        released = []
        for record in dead:
            pid = record["holder"]["pid"]
            try:
                released.append(
                    self.settle(
                        record["reservation"],
                        steps,
                        note=(
                            f"released: holder pid {pid} died before settling; "
                            f"retried as {note}"
                            if steps == 0
                            else f"settled for the holder pid {pid}, which died "
                            f"after training it; its kept update resent as {note}"
                        ),
                    )
                )
            except LedgerError:  # settled meanwhile by another process
                continue
            logger.warning(
                "run %s: settled reservation %s of %d steps with %d (%s): its "
                "process (pid %s) died before settling",
                run_id, record["reservation"], record["steps"], steps, note, pid,
            )  # fmt: skip
        return released

    def _open_reservation(self, reservation_id: str) -> dict[str, Any]:
        found = [r for r in self._records if r.get("reservation") == reservation_id]
        for record in found:
            if record["type"] == "spend":
                raise LedgerError(
                    f"Reservation {reservation_id!r} of run {record['run_id']!r} was "
                    f"already settled ({record['steps']} steps) in privacy ledger "
                    f"{self.path}; a reservation is settled exactly once."
                )
        if not found:
            raise LedgerError(
                f"Reservation {reservation_id!r} is not in privacy ledger {self.path}; "
                "settle the id that this ledger's reserve() returned."
            )
        return found[0]

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
        unit = self.privacy_unit
        spent, settled = self.spent_epsilon, self.settled_epsilon
        return {
            "ledger": str(self.path),
            "version": self.version,
            "hospital_id": self.hospital_id,
            "dataset_fingerprint": self.dataset_fingerprint,
            "privacy_unit": unit,
            "budget": self.budget.to_dict(),
            "spent_epsilon": spent,
            "settled_epsilon": settled,
            "reserved_epsilon": max(0.0, spent - settled),
            "remaining_epsilon": self.remaining_epsilon,
            "entries": [
                {**e, "privacy_unit": e.get("privacy_unit", unit)} for e in self.entries
            ],
            "reserved_open": self.reserved_open,
        }


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (ours counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _check_steps(name: str, steps: int, minimum: int = 0) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < minimum:
        kind = "positive" if minimum else "non-negative"
        raise ConfigError(f"{name} {steps!r} must be a {kind} integer.")


def _replan(
    existing: dict[str, Any],
    run_epsilon: float | None,
    sample_rate: float,
    planned_steps: int,
    max_grad_norm: float,
) -> SpendPlan:
    """The recorded plan of a run asked for again, if it asks the same epsilon."""
    plan = SpendPlan.from_dict(existing)
    if "run_epsilon" not in existing:  # ledger v1: the request was not recorded
        logger.warning("run %s: plan recorded without its run_epsilon; keeping it",
                       plan.run_id)  # fmt: skip
    elif not _same_epsilon(existing["run_epsilon"], run_epsilon):
        recorded = existing["run_epsilon"]
        raise ConfigError(
            f"Run {plan.run_id!r} was planned for run_epsilon {_describe(recorded)} "
            f"and its noise calibrated for it; this call asks for "
            f"{_describe(run_epsilon)}. A run keeps the epsilon it was planned "
            f"with: ask for {_describe(recorded)} to continue it, or start a new "
            "run (a new run id) for a different epsilon."
        )
    asked = (float(sample_rate), int(planned_steps), float(max_grad_norm))
    if asked != (plan.sample_rate, plan.planned_steps, plan.max_grad_norm):
        logger.warning(
            "run %s: keeping the plan calibrated at its first round (q=%g, steps=%d, "
            "clip=%g); this call asked for q=%g, steps=%d, clip=%g",
            plan.run_id, plan.sample_rate, plan.planned_steps, plan.max_grad_norm,
            *asked,
        )  # fmt: skip
    return plan


def _same_epsilon(recorded: float | None, asked: float | None) -> bool:
    if recorded is None or asked is None:
        return recorded is None and asked is None
    try:
        return float(recorded) == float(asked)
    except (TypeError, ValueError):
        return False


def _describe(run_epsilon: float | None) -> str:
    return "None (all that remained)" if run_epsilon is None else f"{run_epsilon!r}"
