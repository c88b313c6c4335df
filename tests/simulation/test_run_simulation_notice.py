"""``fedcare simulate`` drops Flower's "run_simulation is deprecated" notice only.

Flower's real ``run_simulation`` is called with its engine replaced by a no-op,
so the notice checked is the one flwr logs, word for word; a Flower upgrade
that rewords it fails the first assertion instead of letting it through.
"""

from __future__ import annotations

import importlib
import logging

import pytest
from flwr.supercore.logger import log, warn_deprecated_feature

from simulation.engine import RUN_SIMULATION_DEPRECATED, run_simulation_notice_dropped

# the module (flwr.simulation's attribute of that name is the function)
run_simulation_module = importlib.import_module("flwr.simulation.run_simulation")


def _call_run_simulation() -> None:
    run_simulation_module.run_simulation(
        server_app=None,  # type: ignore[arg-type]  (the engine is a no-op here)
        client_app=None,  # type: ignore[arg-type]
        num_supernodes=3,
    )


def _texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("flwr")]


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    monkeypatch.setattr(run_simulation_module, "_run_simulation", lambda **_: None)


def test_flower_logs_the_notice_without_the_filter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="flwr"):
        _call_run_simulation()
    assert sum(RUN_SIMULATION_DEPRECATED in t for t in _texts(caplog)) == 1


def test_only_that_notice_is_dropped_and_only_inside(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="flwr"):
        with run_simulation_notice_dropped():
            _call_run_simulation()
            warn_deprecated_feature("flwr.simulation.start_simulation() is deprecated.")
            log(logging.WARNING, "a Flower warning about %s", "something else")
            logging.getLogger("flwr.child").warning(RUN_SIMULATION_DEPRECATED)
        _call_run_simulation()  # the filter is gone once the run is over
    texts = _texts(caplog)
    assert len(texts) == 4, texts
    assert "start_simulation() is deprecated" in texts[0]
    assert texts[1] == "a Flower warning about something else"
    assert texts[2] == RUN_SIMULATION_DEPRECATED  # another logger's record passes
    assert RUN_SIMULATION_DEPRECATED in texts[3]  # logged after the run, kept
    assert [r.name for r in caplog.records if r.name.startswith("flwr")] == [
        "flwr",
        "flwr",
        "flwr.child",
        "flwr",
    ]
