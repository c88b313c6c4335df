"""Server-side evaluation on the operator's held-out set (``server-eval-data``).

The aggregator does not read hospital data formats itself: the scorer is the
hospitals' code (``client.held_out.score_held_out``), found through the
``fedcare.server_eval`` entry-point group that ``pyproject.toml`` declares, so
this package imports no ``client`` module. An installation without that entry
point (an editable install older than the declaration) gets an error that
says how to fix it, at the start of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from shared_models.errors import ConfigError

GROUP = "fedcare.server_eval"
Scorer = Callable[..., dict[str, Any]]


def held_out_scorer() -> Scorer:
    """``score(task, card, weights, data_path) -> metrics``, from the entry point."""
    found = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
    if not found:
        raise ConfigError(
            f"run-config server-eval-data is set, but no held-out scorer is "
            f"installed (entry-point group {GROUP!r}, declared in fedcare's "
            "pyproject.toml): reinstall fedcare (make setup, or pip install -e .), "
            "or leave server-eval-data empty"
        )
    if len(found) > 1:
        names = ", ".join(f"{ep.name} = {ep.value}" for ep in found)
        raise ConfigError(
            f"entry-point group {GROUP!r} has {len(found)} scorers ({names}); "
            "expected exactly one: uninstall the extra package"
        )
    return found[0].load()
