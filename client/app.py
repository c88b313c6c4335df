"""The hospital's Flower ClientApp: unpack, call ``client.federated``, pack.

The run configuration arrives from the server with every instruction (so a
simulated and a deployed hospital see the same settings); the hospital's
identity, data, ledger and budget come from its node config.

SecAgg+ note (flwr 1.42): ``secaggplus_mod`` only works with the legacy fit
reply of a ``NumPyClient`` wrapped by ``ClientApp(client_fn=...)``; the server
side of that choice is ``server/workflow.py``. Both move together when Flower
supports SecAgg+ with the Message API.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import ConfigRecord, Context, Message, MessageType
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    Key,
    Stage,
)

from shared_models import wire
from shared_models.errors import ConfigError, FedcareError, PolicyError
from shared_models.run_config import RunConfig

if TYPE_CHECKING:
    from client.federated import Hospital

log = logging.getLogger(__name__)


def pack_run_config(run: RunConfig) -> dict[str, Any]:
    """The run config as fit/evaluate instruction entries (``run.<key>``)."""
    return wire.pack_run_config(run.to_run_config())


def unpack_run_config(config: dict[str, Any]) -> RunConfig:
    return RunConfig.from_run_config(wire.unpack_run_config(config))


class HospitalError(FedcareError):
    """What the aggregator sees of an error at a hospital (no reason, no data)."""


class HospitalClient(NumPyClient):
    def __init__(self, node_config: dict[str, Any]) -> None:
        self.node_config = dict(node_config)

    def _hospital(self, config: dict[str, Any]) -> Hospital:
        # Imported here: torch takes seconds to import, and a deployed SuperNode
        # starts a ClientApp process per message, most of them SecAgg+ key
        # exchanges that never train.
        from client.federated import Hospital, NodeSettings

        run = unpack_run_config(config)
        settings = NodeSettings.from_node_config(self.node_config, run.hospitals_file)
        return Hospital(settings, run)

    def get_properties(self, config: dict[str, Any]) -> dict[str, Any]:
        return {"model-card": json.dumps(self._hospital(config).card_info())}

    def get_parameters(self, config: dict[str, Any]) -> list:
        return self._hospital(config).initial_weights()

    def fit(self, parameters: list, config: dict[str, Any]) -> tuple[list, int, dict]:
        """Train (or, in the pool-evaluation phase, score) and reply.

        The reply is the round's update (weights minus the global ones). The
        real example count is the SecAgg+ weight, folded into the masked
        vector by ``secaggplus_mod``; ``hospital_policy_guard`` then replaces
        the clear copy by 1. Only ``wire.clear_metrics`` travel in clear.
        """
        hospital = self._hospital(config)
        _hold_audit_head(hospital, config)
        if config.get(wire.PHASE_KEY) == wire.POOL_PHASE:
            parts = hospital.pool(parameters)
            missing = set(wire.pool_keys(hospital.task.kind)) ^ set(parts)
            if missing:
                raise ConfigError(f"pool vector keys differ: {sorted(missing)}")
            # Weight POOL_MAX_WEIGHT: Flower's aggregate is then the mean.
            arrays = wire.pool_vector(parts)
            return (
                arrays,
                int(wire.POOL_MAX_WEIGHT),
                wire.clear_metrics({wire.HOSPITAL_ID: hospital.settings.hospital_id}),
            )
        weights, examples, metrics = hospital.fit(
            parameters, int(config["server-round"]), str(config["run-name"])
        )
        # The update (local minus global), not the weights: see wire.update_of.
        update = wire.update_of(weights, parameters)
        largest = max((float(np.abs(u).max()) for u in update if u.size), default=0.0)
        if hospital.run.secagg and largest > hospital.run.secagg_clipping_range:
            log.warning(
                "round %s: the update's largest value %.3g exceeds "
                "secagg-clipping-range %.3g; SecAgg+ clips it",
                config["server-round"],
                largest,
                hospital.run.secagg_clipping_range,
            )
        weight = wire.coarse_weight(examples, hospital.run.secagg_max_weight)
        return update, weight, wire.clear_metrics(metrics)

    def evaluate(
        self, parameters: list, config: dict[str, Any]
    ) -> tuple[float, int, dict]:
        """Own metrics at the pooled threshold, kept at the hospital; the reply
        carries them only when the hospital's policy has share-metrics."""
        hospital = self._hospital(config)
        _hold_audit_head(hospital, config)
        edge = config.get(wire.THRESHOLD_KEY)
        _, _, metrics = hospital.evaluate(
            parameters,
            None if edge is None or int(edge) < 0 else int(edge),
            int(config.get("server-round", 0)),
            str(config.get("run-name", "")),
        )
        share = metrics if hospital.settings.policy.share_metrics else None
        return 0.0, 1, wire.clear_metrics(metrics, share)


def _hold_audit_head(hospital: Hospital, config: dict[str, Any]) -> None:
    """Keep the audit log's head an instruction carries in the hospital's own
    file beside its ledger (``shared_models.held_heads``)."""
    from shared_models import held_heads

    if wire.AUDIT_HEAD not in config:
        return  # round 1, or an aggregator older than audit heads
    path = held_heads.path_for(hospital.settings.ledger_path)
    try:
        held_heads.record(
            path,
            str(config.get("run-name", "")),
            int(config.get(wire.AUDIT_HEAD_ROUND, 0)),
            str(config[wire.AUDIT_HEAD]),
        )
    except (ValueError, TypeError, OSError, FedcareError) as exc:
        # Not a reason to refuse the round; the hospital's log says why its
        # heads file lacks this round.
        log.warning("audit head not kept in %s: %s", path, exc)


def client_fn(context: Context) -> Any:
    from client.privacy.randomness import refuse_test_randomness

    refuse_test_randomness("The fedcare ClientApp")
    return HospitalClient(context.node_config).to_client()


_STATE = "fedcare.secagg-policy"


def _policy(msg: Message, context: Context) -> Any:
    """This hospital's policy, or ``None`` if this message cannot tell it.

    A deployed hospital's node config holds the policy keys. A simulated one
    holds only ``partition-id``: its policy is its entry of the hospitals file
    that the run config names, which arrives with train instructions only.
    """
    from client.federated import node_config_of
    from client.policy import HospitalPolicy

    node = dict(context.node_config)
    if "data-path" not in node:
        hospitals_file = str(context.run_config.get("hospitals-file", ""))
        fit_config = msg.content.config_records.get("fitins.config")
        if fit_config is not None:
            hospitals_file = str(fit_config.get("run.hospitals-file", hospitals_file))
        if not hospitals_file:
            return None
        node = node_config_of(node, hospitals_file)
    return HospitalPolicy.from_node_config(node)


def hospital_policy_guard(msg: Message, context: Context, call_next: Any) -> Message:
    """Every message through the hospital's policy; errors leave as a reference.

    Any error is logged here in full with a random reference; the aggregator
    gets only ``wire.generic_error(reference)`` (a policy refusal keeps its
    own generic text), never a data value, row number or path.
    """
    try:
        reply = _guarded(msg, context, call_next)
    except PolicyError as exc:
        reference = wire.error_reference()
        log.warning("refused (reference %s)", reference)
        raise PolicyError(f"{exc} (reference {reference})") from None
    except Exception:
        reference = wire.error_reference()
        log.exception("hospital error, reference %s", reference)
        raise HospitalError(wire.generic_error(reference)) from None
    if reply.has_content():
        counts = reply.content.metric_records.get("fitres.num_examples")
        if counts is not None and RECORD_KEY_CONFIGS in reply.content.config_records:
            counts["num_examples"] = 1  # the real weight is inside the mask
    return reply


def _guarded(msg: Message, context: Context, call_next: Any) -> Message:
    """Send weights only as this hospital's policy allows, then run SecAgg+.

    A train message without SecAgg+ stage configs is answered only when the
    hospital's policy has ``require-secagg = false``. A SecAgg+ round is refused
    before training when fewer hospitals than ``min-secagg-hospitals`` were
    sampled (setup), and at unmasking when fewer are still active: without this
    hospital's key shares the aggregator cannot unmask a sum of too few updates.
    """
    if msg.metadata.message_type != MessageType.TRAIN or not msg.has_content():
        return call_next(msg, context)
    policy = _policy(msg, context)
    if RECORD_KEY_CONFIGS not in msg.content.config_records:
        if policy is None:
            raise ConfigError("a train instruction without the run's hospitals file")
        policy.check_transport(secagg=False)
        return call_next(msg, context)
    state = context.state.config_records.setdefault(_STATE, ConfigRecord({}))
    configs = msg.content.config_records[RECORD_KEY_CONFIGS]
    stage = configs.get(Key.STAGE)
    if stage == Stage.SETUP:
        state["sampled"] = int(configs[Key.SAMPLE_NUMBER])
    if policy is not None:
        state["minimum"] = policy.min_secagg_hospitals
    if stage in (Stage.SETUP, Stage.COLLECT_MASKED_VECTORS) and "minimum" in state:
        _check_size(int(state["minimum"]), "setup", int(state.get("sampled", 0)))
    elif stage == Stage.UNMASK:
        active = len(configs.get(Key.ACTIVE_NODE_ID_LIST) or [])
        _check_size(int(state.get("minimum", 3)), "unmasking", active)
    return secaggplus_mod(msg, context, call_next)


def _check_size(minimum: int, stage: str, hospitals: int) -> None:
    from client.policy import HospitalPolicy

    HospitalPolicy(min_secagg_hospitals=minimum).check_secagg_size(stage, hospitals)


app = ClientApp(client_fn=client_fn, mods=[hospital_policy_guard])
