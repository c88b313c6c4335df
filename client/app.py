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
from typing import TYPE_CHECKING, Any

from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import Context, Message
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from server.config import RunConfig

if TYPE_CHECKING:
    from client.federated import Hospital

RUN_KEY_PREFIX = "run."


def pack_run_config(run: RunConfig) -> dict[str, Any]:
    """The run config as fit/evaluate instruction entries (``run.<key>``)."""
    return {RUN_KEY_PREFIX + k: v for k, v in run.to_run_config().items()}


def unpack_run_config(config: dict[str, Any]) -> RunConfig:
    raw = {
        k[len(RUN_KEY_PREFIX) :]: v
        for k, v in config.items()
        if k.startswith(RUN_KEY_PREFIX)
    }
    return RunConfig.from_run_config(raw)


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
        hospital = self._hospital(config)
        return hospital.fit(
            parameters, int(config["server-round"]), str(config["run-name"])
        )

    def evaluate(
        self, parameters: list, config: dict[str, Any]
    ) -> tuple[float, int, dict]:
        return self._hospital(config).evaluate(parameters)


def client_fn(context: Context) -> Any:
    return HospitalClient(context.node_config).to_client()


def secagg_when_asked(msg: Message, context: Context, call_next: Any) -> Message:
    """``secaggplus_mod`` for SecAgg+ rounds; plain fit when ``secagg = false``.

    Flower's mod fails every train message without SecAgg+ stage configs, so a
    plain-FedAvg run would otherwise get nothing but failures.
    """
    if msg.has_content() and RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, context, call_next)
    return call_next(msg, context)


app = ClientApp(client_fn=client_fn, mods=[secagg_when_asked])
