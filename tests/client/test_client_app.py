"""The hospital's ClientApp: NumPyClient called directly, and the handler with a
hand-built Context/Message (no federation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict
from flwr.common import (
    FitIns,
    GetPropertiesIns,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat

from client.app import HospitalClient, app, pack_run_config, unpack_run_config
from client.policy import GENERIC_REFUSAL
from shared_models import wire
from shared_models.errors import PolicyError
from shared_models.run_config import RunConfig
from simulation.cohorts import write_hospital

RUN = RunConfig(dp=False, secagg=False, batch_size=256, run_name="t")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("app_hospital")
    data = write_hospital(out, 1, seed=0, scale=0.2, kinds=("ecg",))
    return {
        "hospital-id": "h1",
        "data-path": str(data),
        "ledger-path": str(out / "h1.jsonl"),
        "epsilon": 8.0,
        # this hospital's own policy allows non-private, unmasked training
        "require-dp": False,
        "require-secagg": False,
    }


def _config(run: RunConfig = RUN, server_round: int = 1) -> dict:
    return {**pack_run_config(run), "server-round": server_round, "run-name": "t"}


def test_run_config_travels_as_run_keys() -> None:
    run = RunConfig(task="icu-los", num_server_rounds=7, dp=False)

    packed = pack_run_config(run)

    assert packed["run.num-server-rounds"] == 7 and packed["run.task"] == "icu-los"
    assert unpack_run_config({**packed, "server-round": 3}) == run.resolved()


def test_client_describes_fits_and_evaluates(node: dict) -> None:
    client = HospitalClient(node)
    card = json.loads(client.get_properties(_config())["model-card"])
    start = client.get_parameters(_config())

    update, examples, metrics = client.fit(start, _config())
    weights = wire.apply_update(start, update)  # what the server does
    loss, n_test, eval_metrics = client.evaluate(weights, _config())

    assert card["task"] == "ecg-arrhythmia" and card["model"]
    assert [w.shape for w in update] == [w.shape for w in start]
    assert any(np.abs(u).max() > 0 for u in update)  # the round's update
    assert examples > 0  # the real count: the SecAgg+ weight, masked
    assert metrics == {"hospital-id": "h1"}  # nothing else travels in clear
    assert not Path(node["ledger-path"]).exists()  # dp = false: no ledger
    assert (loss, n_test, eval_metrics) == (0.0, 1, {"hospital-id": "h1"})
    reports = Path(node["ledger-path"]).parent / "fedcare-reports"
    own = json.loads((reports / "h1" / "t.json").read_text())
    assert own["fit"]["1"]["train-loss"] > 0 and own["fit"]["1"]["steps"] > 0
    assert own["fit"]["1"]["train-seconds"] > 0  # kept here, not in the reply
    assert own["evaluation"]["1"]["n"] > 0 and "auroc" in own["evaluation"]["1"]
    again = client.get_parameters(
        _config()
    )  # the initial model is seeded by the run seed
    assert all(np.array_equal(a, b) for a, b in zip(again, start, strict=True))


def test_client_without_identity_refuses() -> None:
    from shared_models.errors import ConfigError

    with pytest.raises(ConfigError, match="node config lacks"):
        HospitalClient({"data-path": "/x"}).get_properties(_config())


@pytest.fixture
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's Message constructor reads the process' task identity, which a
    SuperNode sets; here there is none, so the test plays that part."""
    from flwr.supercore.task_identity import TaskIdentity

    for name in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


def _message(content: RecordDict, message_type: str) -> Message:
    return Message(content=content, dst_node_id=1, message_type=message_type)


def _context(node: dict) -> Context:
    return Context(
        run_id=1, node_id=1, node_config=node, state=RecordDict(), run_config={}
    )


def test_handler_answers_a_plain_train_message(node: dict, task_identity: None) -> None:
    """A train message without SecAgg+ stage configs (server ``secagg = false``) is fit
    in plain; Flower's secaggplus_mod alone would fail it."""
    start = HospitalClient(node).get_parameters(_config())
    content = compat.fitins_to_recorddict(
        FitIns(ndarrays_to_parameters(start), _config()), keep_input=True
    )

    reply = app(_message(content, "train"), _context(node))

    assert not reply.has_error(), reply.error
    fitres = compat.recorddict_to_fitres(reply.content, keep_input=True)
    assert fitres.num_examples > 0 and fitres.metrics["hospital-id"] == "h1"
    assert len(parameters_to_ndarrays(fitres.parameters)) == len(start)


def test_default_policy_refuses_a_plain_train_message(
    node: dict, task_identity: None
) -> None:
    """With the default policy, weights leave only through SecAgg+."""
    strict = {k: v for k, v in node.items() if not k.startswith("require-")}
    start = HospitalClient(node).get_parameters(_config())
    content = compat.fitins_to_recorddict(
        FitIns(ndarrays_to_parameters(start), _config()), keep_input=True
    )

    with pytest.raises(PolicyError) as refused:  # Flower replies with this text
        app(_message(content, "train"), _context(strict))

    # no detail for the server: the generic text and a reference into the log
    assert str(refused.value).startswith(GENERIC_REFUSAL + " (reference ")


def test_secagg_setup_with_too_few_hospitals_is_refused(
    node: dict, task_identity: None
) -> None:
    from flwr.app import ConfigRecord
    from flwr.common.secure_aggregation.secaggplus_constants import (
        RECORD_KEY_CONFIGS,
        Key,
        Stage,
    )

    setup = {
        Key.STAGE: Stage.SETUP,
        Key.SAMPLE_NUMBER: 2,
        Key.SHARE_NUMBER: 2,
        Key.THRESHOLD: 2,
        Key.CLIPPING_RANGE: 8.0,
        Key.TARGET_RANGE: 1 << 22,
        Key.MOD_RANGE: 1 << 32,
        Key.MAX_WEIGHT: 1000.0,
    }
    content = RecordDict({RECORD_KEY_CONFIGS: ConfigRecord(setup)})

    with pytest.raises(PolicyError, match=GENERIC_REFUSAL):  # default minimum: 3
        app(_message(content, "train"), _context(node))
    ok = app(_message(content, "train"), _context({**node, "min-secagg-hospitals": 2}))
    assert not ok.has_error(), ok.error


def test_handler_answers_a_properties_query(node: dict, task_identity: None) -> None:
    content = compat.getpropertiesins_to_recorddict(GetPropertiesIns(_config()))

    reply = app(_message(content, "get_properties"), _context(node))

    assert not reply.has_error(), reply.error
    props = compat.recorddict_to_getpropertiesres(reply.content).properties
    assert json.loads(props["model-card"])["task"] == "ecg-arrhythmia"


def test_pool_phase_replies_with_the_evaluation_sums(node: dict) -> None:
    """The pool-evaluation phase sends histogram counts (masked by SecAgg+ in a
    federation), weight 1, and no other value."""
    from shared_models import wire

    client = HospitalClient(node)
    start = client.get_parameters(_config())

    arrays, weight, metrics = client.fit(
        start, {**_config(), wire.PHASE_KEY: wire.POOL_PHASE}
    )

    sums = wire.unpool("binary", arrays, 1)
    assert weight == wire.POOL_MAX_WEIGHT and metrics == {"hospital-id": "h1"}
    assert sums["val-histogram"].shape == sums["test-histogram"].shape == (2, 400)
    hospital = client._hospital(_config())
    assert sums["test-histogram"].sum() == len(hospital.prepared.test)
    assert sums["val-histogram"].sum() == len(hospital.prepared.val)


def test_instructions_audit_head_is_kept_beside_the_ledger(node: dict) -> None:
    """Every instruction's audit head lands once in <ledger>.audit-heads.jsonl;
    a malformed one is not kept and does not fail the instruction."""
    from shared_models import held_heads, wire

    client = HospitalClient(node)
    start = client.get_parameters(_config())
    heads = held_heads.path_for(Path(node["ledger-path"]))
    head = {wire.AUDIT_HEAD: "ab" * 32, wire.AUDIT_HEAD_ROUND: 1}
    pool = {**_config(server_round=2), **head, wire.PHASE_KEY: wire.POOL_PHASE}

    client.fit(start, pool)
    client.evaluate(start, {**_config(server_round=2), **head})
    client.fit(start, {**pool, wire.AUDIT_HEAD: "not a hash"})

    assert [(h.run, h.round, h.head) for h in held_heads.read(heads)] == [
        ("t", 1, "ab" * 32)
    ]


def test_clear_metrics_pass_a_ledger_head_and_nothing_like_it() -> None:
    from shared_models import wire

    head = "0f" * 32
    sent = wire.clear_metrics({"hospital-id": "h1", "ledger-head": head, "steps": 3})
    odd = wire.clear_metrics({"hospital-id": "h1", "ledger-head": "epsilon 7.9"})

    assert sent == {"hospital-id": "h1", "ledger-head": head}
    assert odd == {"hospital-id": "h1"}  # only a sha256 can travel there
    assert any(leaf.name == wire.LEDGER_HEAD for leaf in wire.LEAVES_HOSPITAL)


def test_an_error_at_the_hospital_reaches_the_server_as_a_reference(
    node: dict, task_identity: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Flower sends an exception's text to the server: it must carry no data
    value or path, only a reference into the hospital's own log."""
    from client.app import HospitalError

    secret = {**node, "data-path": str(Path(node["data-path"]) / "patient-4711.csv")}
    content = compat.getpropertiesins_to_recorddict(GetPropertiesIns(_config()))

    with pytest.raises(HospitalError) as failed:
        app(_message(content, "get_properties"), _context(secret))

    text = str(failed.value)
    assert "4711" not in text and "/" not in text and "reference" in text
    reference = text.split("reference ")[1].split(";")[0]
    assert any(reference in r.getMessage() for r in caplog.records)
    assert any("4711" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_updates_aggregate_to_the_mean_of_the_weights() -> None:
    """The server's FedAvg of updates (wire.apply_update) is FedAvg of weights."""
    from flwr.common import FitRes, Status, ndarrays_to_parameters
    from flwr.common import parameters_to_ndarrays as arrays_of

    from server.strategy import make_strategy

    class State:  # the parts of server.run_state.FederatedRun the strategy uses
        offset, strategy_state, recorded, run_name = 0, None, [], "t"
        audit_head = None

        def on_fit(self, server_round: int, weights: list, *_: object, **__: object):
            self.recorded.append(weights)

        def pool_edge(self, server_round: int) -> None:
            return None

    rng = np.random.default_rng(0)
    start = [rng.normal(size=(3, 4)).astype(np.float32), np.zeros(4, np.float32)]
    local = [
        [w + rng.normal(scale=0.01, size=w.shape) for w in start] for _ in range(3)
    ]
    counts = [10, 30, 60]
    run = RunConfig(strategy="fedavg", secagg=False, dp=False)
    strategy = make_strategy(run, State(), start)

    class Pool:  # what configure_fit asks of Flower's client manager
        def num_available(self) -> int:
            return 3

        def wait_for(self, *_: object, **__: object) -> bool:
            return True

        def sample(self, num_clients: int, **_: object) -> list:
            return proxies

    proxies = [type("P", (), {"node_id": i, "cid": str(i)})() for i in range(3)]

    strategy.configure_fit(1, ndarrays_to_parameters(start), Pool())
    results = [
        (
            proxies[i],
            FitRes(
                Status(code=0, message=""),
                ndarrays_to_parameters(wire.update_of(w, start)),
                n,
                {"hospital-id": f"h{i}"},
            ),
        )
        for i, (w, n) in enumerate(zip(local, counts, strict=True))
    ]
    params, _ = strategy.aggregate_fit(1, results, [])
    expected = [
        sum(n * w[k] for w, n in zip(local, counts, strict=True)) / sum(counts)
        for k in range(len(start))
    ]
    for got, want in zip(arrays_of(params), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_aggregation_weights_are_coarse_and_bounded() -> None:
    assert [wire.coarse_weight(n, 20000) for n in (0, 1, 32, 33, 1000)] == [
        0,
        32,
        32,
        64,
        1024,
    ]
    assert wire.coarse_weight(50_000, 20000) == 20000
