"""server.held_out: the server-side evaluation's scorer comes from an entry point."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from server import held_out
from shared_models.errors import ConfigError


def _entry_points(*found: EntryPoint):
    def select(group: str) -> list[EntryPoint]:
        assert group == held_out.GROUP
        return list(found)

    return select


def test_the_declared_scorer_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint("held-out", "shared_models.pooled:percentile_edge", "x")
    monkeypatch.setattr(held_out, "entry_points", _entry_points(point))

    from shared_models.pooled import percentile_edge

    assert held_out.held_out_scorer() is percentile_edge


def test_no_scorer_installed_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(held_out, "entry_points", _entry_points())

    with pytest.raises(ConfigError, match="reinstall fedcare"):
        held_out.held_out_scorer()


def test_two_scorers_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    points = [EntryPoint(n, "shared_models.pooled:percentile_edge", "x") for n in "ab"]
    monkeypatch.setattr(held_out, "entry_points", _entry_points(*points))

    with pytest.raises(ConfigError, match="expected exactly one"):
        held_out.held_out_scorer()
