"""Run the real ServerApp and ClientApp on Flower's Simulation Engine (Ray).

Flower's node config in simulation holds only ``partition-id``; partition
``i`` is hospital ``i`` of a hospitals file (JSON list of node configs:
``hospital-id``, ``data-path``, ``ledger-path``, ``epsilon``, ``delta``)
written into the run folder, whose path travels in the run config.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared_models.atomic import atomic_write_text
from shared_models.run_config import RunConfig

log = logging.getLogger(__name__)

# The one Flower notice dropped (``_RunSimulationNotice``): flwr 1.42 logs it
# from ``run_simulation`` through ``warn_deprecated_feature``.
RUN_SIMULATION_DEPRECATED = "The `run_simulation` function is deprecated"


class _RunSimulationNotice(logging.Filter):
    """Drops Flower's "run_simulation is deprecated" notice, and nothing else.

    Why fedcare keeps ``run_simulation``: flwr 1.42 has no other in-process
    simulation. ``flwr run`` (and ``flwr.simulation.run_simulation_process``
    behind it) needs a SuperLink and loads the apps by reference from a FAB, so
    the ServerApp built here around our objects (the run's ``RunConfig`` with its
    hospitals file, the progress bar) could not be passed, and neither could
    the backend config ``--ray-address`` and ``--client-cpus`` build per call.
    The notice would be printed twice (Flower's console handler and, by
    propagation, the CLI's root handler) on every ``fedcare simulate``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (
            record.name == "flwr"
            and str(record.msg).startswith("DEPRECATED FEATURE:")
            and any(RUN_SIMULATION_DEPRECATED in str(a) for a in args)
        )


@contextmanager
def run_simulation_notice_dropped() -> Iterator[None]:
    """While inside, Flower's logger drops the run_simulation notice; every other
    record (warnings included) goes on as before."""
    flwr_log = logging.getLogger("flwr")
    notice = _RunSimulationNotice()
    flwr_log.addFilter(notice)
    try:
        yield
    finally:
        flwr_log.removeFilter(notice)


def backend_config(
    client_cpus: float,
    client_gpus: float,
    num_cpus: int | None,
    ray_address: str | None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Ray settings: resources per hospital, and either a local Ray or a cluster."""
    init: dict[str, Any] = (
        {} if verbose else {"logging_level": "warning", "log_to_driver": False}
    )
    if ray_address:
        init["address"] = ray_address
    else:
        init["num_cpus"] = num_cpus or os.cpu_count() or 1
        init["num_gpus"] = _gpus() if client_gpus > 0 else 0
    return {
        "client_resources": {"num_cpus": client_cpus, "num_gpus": client_gpus},
        "init_args": init,
    }


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def run_simulated(
    run: RunConfig,
    nodes: list[dict[str, Any]],
    *,
    client_cpus: float = 1.0,
    client_gpus: float = 0.0,
    num_cpus: int | None = None,
    ray_address: str | None = None,
    progress: Any = None,
    verbose: bool = False,
) -> RunConfig:
    """Run the federation on ``nodes`` (one node config per simulated hospital)."""
    from flwr.simulation import run_simulation

    from client.app import app as client_app
    from server.app import make_server_app

    run_dir = Path(run.run_dir)
    hospitals_file = run_dir / "hospitals.json"
    atomic_write_text(hospitals_file, json.dumps(nodes, indent=2))
    run = replace(run, hospitals_file=str(hospitals_file.resolve()))
    with run_simulation_notice_dropped():  # why run_simulation: the filter's doc
        run_simulation(
            server_app=make_server_app(run, progress),
            client_app=client_app,
            num_supernodes=len(nodes),
            backend_config=backend_config(
                client_cpus, client_gpus, num_cpus, ray_address, verbose
            ),
        )
    return run
