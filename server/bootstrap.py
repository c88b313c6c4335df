"""Before round 1: ask one hospital for the model's description and initial weights.

The aggregator holds no patient data, so it cannot know input widths that
depend on the hospitals' files (e.g. the vitals present). One hospital,
chosen at random, builds the seeded initial model and describes it; the
description holds no patient data and no local statistics.
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

import flwr.compat.common.recorddict_compat as compat
from flwr.app import Message
from flwr.common import Code, GetParametersIns, GetPropertiesIns, parameters_to_ndarrays
from flwr.common.constant import MessageTypeLegacy
from flwr.serverapp import Grid

from shared_models import wire
from shared_models.errors import FedcareError
from shared_models.run_config import RunConfig

log = logging.getLogger(__name__)


class BootstrapError(FedcareError):
    """No hospital answered the start-up questions."""


def wait_for_nodes(grid: Grid, minimum: int, timeout: float = 600.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = list(grid.get_node_ids())
        if len(nodes) >= minimum:
            return nodes
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"only {len(nodes)} hospital(s) connected after {timeout:.0f} s; "
                f"min-available-hospitals is {minimum}"
            )
        time.sleep(1.0)


def _ask(grid: Grid, node: int, message_type: str, content: Any, key: str) -> Any:
    reply = list(
        grid.send_and_receive(
            [
                Message(
                    content=content,
                    dst_node_id=node,
                    message_type=message_type,
                    group_id="0",
                )
            ]
        )
    )[0]
    if not reply.has_content():
        raise BootstrapError(
            f"hospital node {node} failed to answer {message_type}: "
            f"{reply.error.reason if reply.has_error() else 'no content'}"
        )
    status = compat._extract_status_from_recorddict(key, reply.content)  # noqa: SLF001
    if status.code != Code.OK:
        raise BootstrapError(
            f"hospital node {node} answered {message_type} with {status}"
        )
    return reply.content


def initial_model(grid: Grid, run: RunConfig) -> tuple[list, dict[str, Any]]:
    """(initial weights, model card info) from one random connected hospital."""
    nodes = wait_for_nodes(grid, run.min_available_hospitals)
    node = random.Random(run.seed).choice(sorted(nodes))
    config = wire.pack_run_config(run.to_run_config())
    props = _ask(
        grid,
        node,
        MessageTypeLegacy.GET_PROPERTIES,
        compat.getpropertiesins_to_recorddict(GetPropertiesIns(config)),
        "getpropertiesres",
    )
    card = json.loads(
        compat.recorddict_to_getpropertiesres(props).properties["model-card"]
    )
    params = _ask(
        grid,
        node,
        MessageTypeLegacy.GET_PARAMETERS,
        compat.getparametersins_to_recorddict(GetParametersIns(config)),
        "getparametersres",
    )
    weights = parameters_to_ndarrays(
        compat.recorddict_to_getparametersres(params, False).parameters
    )
    log.info("initial %s model from hospital node %s", card["model"], node)
    return weights, card
