"""End-to-end federations on Flower's Simulation Engine (Ray), marked ``slow``.

Three simulations of 3 tiny ECG hospitals are shared by the tests (module
fixtures), each run through ``simulation.engine.run_simulated`` with the real
ServerApp and ClientApp; the ServerApp's Grid is wrapped to record every reply:

- ``secagg_run``: DP + SecAgg+, 2 rounds (the CI run);
- ``plain_run``: the same federation with plain FedAvg, its hospitals' policies
  allowing it (DP noise is secret, so its updates differ from ``secagg_run``'s;
  SecAgg+ against FedAvg on fixed inputs is ``test_secagg_fixed_inputs.py``);
- ``resumed_run``: ``plain_run`` resumed to 3 rounds (with SecAgg+), after
  hospital h3 spent its whole budget elsewhere.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Context, Message
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.compat.common import recorddict_compat as compat
from flwr.serverapp import Grid, ServerApp

import server.app
from client.federated import DECLINED_BUDGET
from client.privacy import PrivacyLedger
from shared_models.export import get_weights, load_model_dir
from shared_models.run_config import RunConfig
from shared_models.wire import ledger_commitment
from simulation.cohorts import write_cohort
from simulation.engine import run_simulated

pytestmark = pytest.mark.slow

HOSPITALS = ("h1", "h2", "h3")
CLIP, QUANT, MAX_WEIGHT = 2.0, 2**22, 2000.0  # every hospital has < 2000 examples
MOD_RANGE = 2**32  # SecAggPlusWorkflow's default modulus_range
BUDGET, RUN_EPSILON = 8.0, 2.0


class RecordingGrid(Grid):
    """Flower's Grid, unchanged, except that every reply is also kept in ``replies``."""

    def __init__(self, grid: Grid, replies: list[Message]) -> None:
        self._grid, self.replies = grid, replies

    def set_run(self, run: Any) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Any:
        return self._grid.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self._grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = list(self._grid.pull_messages(message_ids))
        self.replies.extend(
            copy.deepcopy(replies)
        )  # the workflow pops arrays out of replies
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self.replies.extend(
            copy.deepcopy(replies)
        )  # the workflow pops arrays out of replies
        return replies


@dataclass
class Simulated:
    run: RunConfig
    run_dir: Path
    ledgers: Path
    replies: list[Message]


class _Stop(Exception):
    """Raised by the progress callback to stop a run after a round (a crash)."""


def _simulate(
    run: RunConfig,
    cohort: list[Path],
    ledgers: Path,
    flwr_home: Path,
    stop_after: int | None = None,
) -> list[Message]:
    replies: list[Message] = []

    def stop(number: int, total: int, pooled: Any) -> None:
        if stop_after is not None and number >= stop_after:
            raise _Stop(f"stopped after round {number} of {total}")

    def recording_server_app(bound: RunConfig, progress: Any = None) -> ServerApp:
        app = ServerApp()

        @app.main()
        def _main(grid: Grid, context: Context) -> None:
            server.app.run_federation(
                RecordingGrid(grid, replies), context, bound, stop
            )

        return app

    nodes = [
        {
            "hospital-id": h,
            "data-path": str(path),
            "ledger-path": str(ledgers / f"{h}.jsonl"),
            "epsilon": BUDGET,
            "delta": 1e-5,
            "require-secagg": run.secagg,
        }
        for h, path in zip(HOSPITALS, cohort, strict=True)
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLWR_HOME", str(flwr_home))
        mp.setattr(server.app, "make_server_app", recording_server_app)
        try:
            run_simulated(run, nodes, num_cpus=2)
        except Exception:  # the stopped run surfaces its error; checked by callers
            if stop_after is None:
                raise
    import ray

    assert not ray.is_initialized(), "run_simulation left Ray running"
    return replies


def _config(run_dir: Path, **changes: Any) -> RunConfig:
    base = dict(
        num_server_rounds=2,
        run_dir=str(run_dir),
        run_name="ci",
        seed=0,
        min_fit_hospitals=3,
        min_evaluate_hospitals=3,
        min_available_hospitals=3,
        dp=True,
        secagg=True,
        run_epsilon=RUN_EPSILON,
        secagg_clipping_range=CLIP,
        secagg_quantization_range=QUANT,
        secagg_max_weight=MAX_WEIGHT,
        secagg_timeout=600.0,  # 120 s timed out a hospital at load ~6 on 2 cores
    )
    return RunConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_cohort(
        tmp_path_factory.mktemp("fed_cohort"),
        hospitals=3,
        seed=0,
        scale=0.3,
        kinds=("ecg",),
    )


@pytest.fixture(scope="module")
def secagg_run(
    cohort: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Simulated:
    root = tmp_path_factory.mktemp("secagg")
    run = _config(root / "run", secagg=True, num_server_rounds=2)
    replies = _simulate(run, cohort, root / "ledgers", root / "flwr")
    return Simulated(run, root / "run", root / "ledgers", replies)


@pytest.fixture(scope="module")
def plain_run(
    cohort: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Simulated:
    root = tmp_path_factory.mktemp("plain")
    # Planned for 3 rounds, stopped (as by a crash) after round 2: the resume
    # below finishes the SAME run, so its plan (and noise) still fits.
    # FedAvg (not the task recipe's FedAdam): its round is the weighted mean.
    run = _config(root / "run", secagg=False, num_server_rounds=3, strategy="fedavg")
    replies = _simulate(run, cohort, root / "ledgers", root / "flwr", stop_after=2)
    return Simulated(run, root / "run", root / "ledgers", replies)


@pytest.fixture(scope="module")
def resumed_run(plain_run: Simulated, cohort: list[Path]) -> Iterator[dict[str, Any]]:
    """``plain_run`` (stopped after 2 of 3 rounds) resumed; h3 spent in between."""
    before = {
        "history": json.loads((plain_run.run_dir / "history.json").read_text()),
        "plans": {h: _ledger(plain_run, h).plans for h in HOSPITALS},
    }
    _exhaust(plain_run.ledgers / "h3.jsonl")
    before["h3_records"] = _ledger(plain_run, "h3").records
    before["h3_spent"] = _ledger(plain_run, "h3").spent_epsilon
    run = _config(
        plain_run.run_dir,
        num_server_rounds=3,
        resume=True,
        secagg=True,
        strategy="fedavg",
    )
    replies = _simulate(
        run, cohort, plain_run.ledgers, plain_run.run_dir.parent / "flwr2"
    )
    yield {"before": before, "replies": replies, "run": run}


def _ledger(sim: Simulated, hospital: str) -> PrivacyLedger:
    return PrivacyLedger.open(sim.ledgers / f"{hospital}.jsonl", None)


def _exhaust(path: Path) -> None:
    """Spend all that remains of a ledger's budget on another (fictitious) study."""
    ledger = PrivacyLedger.open(path, None)
    plan = ledger.plan(
        "another-study",
        sample_rate=0.1,
        planned_steps=200,
        max_grad_norm=1.0,
        run_epsilon=ledger.remaining_epsilon,
        privacy_unit="patient",
    )
    reservation = ledger.reserve(plan, 200, note="test: budget spent elsewhere")
    ledger.settle(reservation, 200)


def _history(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "history.json").read_text())


def _checkpoint(run_dir: Path, number: int) -> list[np.ndarray]:
    model, _ = load_model_dir(run_dir / "checkpoints" / f"round_{number:04d}")
    return [w.astype(np.float64) for w in get_weights(model)]


def _own(sim: Simulated, hospital: str) -> dict[str, Any]:
    """A hospital's own record of the run (its local report, never sent)."""
    path = sim.ledgers / "fedcare-reports" / hospital / "ci.json"
    return json.loads(path.read_text())


def _fit_replies(replies: list[Message]) -> list[tuple[str, Any]]:
    """(hospital id, FitRes) of every fit reply, in order (first 3 = round 1)."""
    out = []
    for reply in replies:
        if reply.metadata.message_type != "train" or not reply.has_content():
            continue
        if "fitres.metrics" not in reply.content.config_records:
            continue  # a SecAgg+ stage without a fit result
        fitres = compat.recorddict_to_fitres(reply.content, keep_input=True)
        out.append((str(fitres.metrics["hospital-id"]), fitres, reply))
    return out


def _round1_plain(plain: Simulated) -> dict[str, tuple[int, list[np.ndarray]]]:
    from flwr.common import parameters_to_ndarrays

    first = _fit_replies(plain.replies)[:3]
    return {
        h: (
            fitres.num_examples,
            [a.astype(np.float64) for a in parameters_to_ndarrays(fitres.parameters)],
        )
        for h, fitres, _ in first
    }


# -- 5. the CI federation: DP + SecAgg+, 3 hospitals x 2 rounds ------------------------


def test_history_records_both_rounds_with_every_hospital_trained(
    secagg_run: Simulated,
) -> None:
    history = _history(secagg_run.run_dir)

    assert history["run_name"] == "ci"
    assert [r["round"] for r in history["rounds"]] == [1, 2]
    for record in history["rounds"]:
        assert record["participating"] == list(HOSPITALS)
        assert record["declined"] == [] and record["failures"] == []
        # only who took part and its ledger's head (a sha256 commitment held
        # apart from the ledger): no loss, count, epsilon or budget per hospital
        assert {h: set(f) for h, f in record["fit"].items()} == {
            h: {"status", "ledger_head"} for h in HOSPITALS
        }
        assert all(f["status"] == "replied" for f in record["fit"].values())
        heads = [f["ledger_head"] for f in record["fit"].values()]
        assert all(re.fullmatch("[0-9a-f]{64}", head) for head in heads)
        evaluation = record["evaluation"]
        assert evaluation["hospitals"] == {}  # no hospital shares its metrics
        assert (
            evaluation["pooled_from"] == evaluation["evaluated_by"] == list(HOSPITALS)
        )
        # the pooled counts (SecAgg+-unmasked sums) are exact
        own = [
            _own(secagg_run, h)["evaluation"][str(record["round"])] for h in HOSPITALS
        ]
        pooled = evaluation["pooled"]
        assert pooled["n"] == sum(o["n"] for o in own)
        assert pooled["positives"] == sum(o["positives"] for o in own)
        assert all(o["threshold"] == evaluation["threshold"] for o in own)
        assert 0.0 <= pooled["auroc"] <= 1.0
    last = history["rounds"][-1]["fit"]
    assert {h: f["ledger_head"] for h, f in last.items()} == {
        h: ledger_commitment(_ledger(secagg_run, h).head_hash, "ci", 2)
        for h in HOSPITALS
    }
    rows = (secagg_run.run_dir / "history.csv").read_text().splitlines()
    assert rows[0].startswith("round,hospital,status,")
    assert len(rows) == 1 + 2 * (
        len(HOSPITALS) + 1
    )  # header + (hospitals + pooled) per round


def test_checkpoints_chain_and_exported_models_load(secagg_run: Simulated) -> None:
    checkpoints = secagg_run.run_dir / "checkpoints"
    states = [
        json.loads((checkpoints / f"round_{r:04d}" / "state.json").read_text())
        for r in (1, 2)
    ]

    assert json.loads((checkpoints / "latest.json").read_text())["round"] == 2
    assert states[1]["previous_sha256"] == states[0]["weights_sha256"]
    for name in ("final", "best"):
        model, card = load_model_dir(secagg_run.run_dir / "models" / name)
        assert card.training_data["run_name"] == "ci"
        assert card.privacy == {"run_epsilon": RUN_EPSILON, "dp": True, "secagg": True}
        assert card.threshold is not None
    _, final = load_model_dir(secagg_run.run_dir / "models" / "final")
    assert final.training_data["federated_round"] == 2


def test_each_ledger_spent_its_run_epsilon_within_budget(secagg_run: Simulated) -> None:
    for hospital in HOSPITALS:
        last = _own(secagg_run, hospital)["fit"]["2"]
        ledger = _ledger(secagg_run, hospital)

        assert len(ledger.plans) == 1 and ledger.plans[0]["run_id"] == "ci"
        assert len(ledger.entries) == 2  # one charge per round
        assert 0 < ledger.spent_epsilon <= RUN_EPSILON * 1.01 <= BUDGET
        assert last["epsilon-spent"] == pytest.approx(ledger.spent_epsilon)


def _initial_weights(sim: Simulated) -> list[np.ndarray]:
    """The round-1 global model: the hospital's get_parameters reply."""
    from flwr.common import MessageTypeLegacy, parameters_to_ndarrays

    for reply in sim.replies:
        if reply.metadata.message_type == MessageTypeLegacy.GET_PARAMETERS:
            res = compat.recorddict_to_getparametersres(reply.content, True)
            return [
                a.astype(np.float64) for a in parameters_to_ndarrays(res.parameters)
            ]
    raise AssertionError("no get_parameters reply captured")


def test_plain_round_is_fedavg_of_captured_updates(plain_run: Simulated) -> None:
    """Hospitals send updates (weights minus the global ones); the round's model
    is the global one plus their example-weighted mean."""
    plaintext = _round1_plain(plain_run)
    start = _initial_weights(plain_run)
    total = sum(n for n, _ in plaintext.values())
    expected = [
        start[i] + sum(n * p[i] for n, p in plaintext.values()) / total
        for i in range(len(start))
    ]

    for got, want in zip(_checkpoint(plain_run.run_dir, 1), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


# -- 2. under SecAgg+ the server never sees a hospital's update ------------------------


def test_server_receives_masked_vectors_not_hospital_updates(
    secagg_run: Simulated,
) -> None:
    """What reaches the server under SecAgg+ is uniform noise mod 2^32.

    A quantised update lies in [0, N * Q] (Q = 2^22, a few hospitals), a tiny
    corner of [0, 2^32); a masked vector is spread over the whole range.
    """
    masked = {h: reply for h, _, reply in _fit_replies(secagg_run.replies)[:3]}
    assert sorted(masked) == list(HOSPITALS)

    for reply in masked.values():
        configs = reply.content.config_records[RECORD_KEY_CONFIGS]
        received = [_from_bytes(b) for b in configs[Key.MASKED_PARAMETERS]]
        flat = np.concatenate([r.ravel().astype(np.float64) for r in received[1:]])

        # no plaintext weights travel with the reply
        assert all(len(rec) == 0 for rec in reply.content.array_records.values())
        assert np.mean(flat > 4 * QUANT) > 0.9  # not a quantised update
        assert abs(np.mean(flat) / MOD_RANGE - 0.5) < 0.05  # uniform mod 2^32


def _from_bytes(data: bytes) -> np.ndarray:
    from flwr.common import bytes_to_ndarray

    return bytes_to_ndarray(data)


# -- 3. resume after a stop, 4. a budget-exhausted hospital declines -------------------


def test_resume_continues_rounds_without_recalibrating(
    plain_run: Simulated, resumed_run: dict[str, Any]
) -> None:
    run_dir = plain_run.run_dir
    history = _history(run_dir)
    states = {
        r: json.loads(
            (run_dir / "checkpoints" / f"round_{r:04d}" / "state.json").read_text()
        )
        for r in (1, 2, 3)
    }

    assert [r["round"] for r in history["rounds"]] == [1, 2, 3]
    assert history["rounds"][:2] == resumed_run["before"]["history"]["rounds"]
    assert states[3]["previous_sha256"] == states[2]["weights_sha256"]
    assert states[3]["run_name"] == "ci"
    for hospital in HOSPITALS:
        plans = [p for p in _ledger(plain_run, hospital).plans if p["run_id"] == "ci"]
        assert plans == [
            p for p in resumed_run["before"]["plans"][hospital] if p["run_id"] == "ci"
        ]
        assert len(plans) == 1


def test_budget_exhausted_hospital_declines_and_is_not_charged(
    plain_run: Simulated, resumed_run: dict[str, Any]
) -> None:
    """Round 3 runs under SecAgg+: h3 declines with a zero-weight masked vector,
    which the aggregator cannot tell from a contribution; the reason stays in
    h3's own report; the model is the mean of h1's and h2's updates."""
    round3 = _history(plain_run.run_dir)["rounds"][2]
    h3 = _ledger(plain_run, "h3")

    assert round3["participating"] == list(HOSPITALS) and round3["declined"] == []
    # h3's head did not move: it declined without a spend
    assert round3["fit"]["h3"] == {
        "status": "replied",
        "ledger_head": ledger_commitment(h3.head_hash, "ci", 3),
    }
    assert _own(plain_run, "h3")["fit"]["3"]["declined"] == DECLINED_BUDGET
    assert h3.records == resumed_run["before"]["h3_records"]
    assert h3.spent_epsilon == resumed_run["before"]["h3_spent"]
    for hospital in ("h1", "h2"):
        assert _own(plain_run, hospital)["fit"]["3"]["declined"] == ""
        assert _ledger(plain_run, hospital).entries[-1]["run_id"] == "ci"
    assert all(np.all(np.isfinite(w)) for w in _checkpoint(plain_run.run_dir, 3))


def test_only_the_wire_contract_travels_in_clear(secagg_run: Simulated) -> None:
    """Every reply the aggregator received: clear metrics are the hospital's id
    (and a train reply's ledger head, a sha256) only, a SecAgg+ fit reply's
    clear count is 1, arrays travel only masked."""
    from shared_models import wire

    seen = heads = 0
    for reply in secagg_run.replies:
        if not reply.has_content():
            continue
        content = reply.content
        for name, record in content.config_records.items():
            if name.endswith(".metrics"):
                allowed = {wire.HOSPITAL_ID, wire.LEDGER_HEAD}
                assert set(record) <= allowed, (name, dict(record))
                if wire.LEDGER_HEAD in record:
                    assert wire.is_sha256(record[wire.LEDGER_HEAD])
                    heads += 1
                seen += 1
        counts = content.metric_records.get("fitres.num_examples")
        if counts is not None and RECORD_KEY_CONFIGS in content.config_records:
            assert counts["num_examples"] == 1
        if reply.metadata.message_type == "train":
            assert all(len(r) == 0 for r in content.array_records.values())
    # 2 rounds x 3 hospitals x (fit + pool + evaluate); a head with each fit
    assert seen == 2 * 3 * 3 and heads == 2 * 3


def test_held_heads_vouch_for_the_run_and_catch_resealed_edits(
    secagg_run: Simulated, tmp_path: Path
) -> None:
    """The real run: every hospital holds the audit heads, the audit log holds
    every ledger head; copies edited and re-sealed fail both checks."""
    from typer.testing import CliRunner

    from shared_models import held_heads
    from shared_models.hash_chain import canonical_json, seal
    from simulation.cli.main import app

    def verify(*args: str) -> int:
        done = CliRunner().invoke(app, list(args))
        assert "Traceback" not in done.output, done.output
        return done.exit_code

    def reseal(src: Path, dst: Path, edit: Any) -> Path:
        records = [json.loads(line) for line in src.read_text().splitlines()]
        edit(records)
        sealed: list[dict] = []
        for record in records:
            sealed.append(seal(record, sealed[-1]["hash"] if sealed else ""))
        dst.write_bytes(b"".join(canonical_json(r) + b"\n" for r in sealed))
        return dst

    log = secagg_run.run_dir / "audit.jsonl"
    ledgers = [secagg_run.ledgers / f"{h}.jsonl" for h in HOSPITALS]
    files = [held_heads.path_for(path) for path in ledgers]
    heads = [arg for f in files for arg in ("--heads", str(f))]
    assert [h.round for h in held_heads.read(files[0])] == [1, 2]
    assert verify("audit", "verify", str(log), *heads) == 0
    for path in ledgers:
        assert (
            verify("ledger", "verify", "--ledger", str(path), "--against", str(log))
            == 0
        )

    def no_dp(records: list[dict]) -> None:
        records[0]["settings"]["dp"] = False

    def rich(records: list[dict]) -> None:
        records[0]["budget"]["epsilon"] = 1000.0

    forged = reseal(log, tmp_path / "audit.jsonl", no_dp)
    assert verify("audit", "verify", str(forged)) == 0  # the chain alone passes
    assert verify("audit", "verify", str(forged), *heads) == 1
    ledger = reseal(ledgers[0], tmp_path / "h1.jsonl", rich)
    assert verify("ledger", "verify", "--ledger", str(ledger)) == 0
    assert (
        verify("ledger", "verify", "--ledger", str(ledger), "--against", str(log)) == 1
    )
