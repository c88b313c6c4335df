"""Opacus DP-SGD set up from a plan: real private steps, then a charge."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from opacus.layers import DPLSTM
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from client.errors import PrivacyError
from client.privacy import (
    PrivacyBudget,
    PrivacyLedger,
    dp_errors,
    fix_for_dp,
    make_private,
    private_training,
    sample_rate_of,
    steps_per_epoch,
)


def _loader(n: int = 64, batch: int = 8) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 2, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch)


def _ledger(tmp_path: Path) -> PrivacyLedger:
    return PrivacyLedger.open(tmp_path / "l.jsonl", PrivacyBudget(5.0, 1e-5), "h")


def test_sample_rate_is_what_opacus_samples_with() -> None:
    loader = _loader(93 * 4, 4)
    assert sample_rate_of(loader) == 1 / 93
    # Opacus' Poisson loader yields int(1/q) batches: 92 here, not 93.
    assert steps_per_epoch(sample_rate_of(loader)) == 92


def test_private_round_charges_the_steps_taken(tmp_path: Path) -> None:
    ledger, loader = _ledger(tmp_path), _loader()
    q = sample_rate_of(loader)
    plan = ledger.plan("run-1", q, 3 * steps_per_epoch(q), 1.0, run_epsilon=2.0)
    model = nn.Linear(5, 2)
    before = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with private_training(ledger, plan, steps_per_epoch(q)) as session:
        model, optimizer, loader = session.make_private(
            model, optimizer, loader, seed=1
        )
        assert optimizer.noise_multiplier == plan.noise_multiplier
        assert optimizer.max_grad_norm == 1.0
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    assert not torch.equal(before, model._module.weight)
    entry = PrivacyLedger(ledger.path).entries[-1]
    assert entry["steps"] == session.steps == steps_per_epoch(q)
    assert entry["sample_rate"] == q and entry["accountant"] == "rdp"
    assert 0 < entry["epsilon_after"] < 2.0


def test_failed_round_still_charges_what_it_spent(tmp_path: Path) -> None:
    ledger, loader = _ledger(tmp_path), _loader()
    q = sample_rate_of(loader)
    plan = ledger.plan("run-1", q, 100, 1.0, run_epsilon=2.0)
    lstm = DPLSTM(5, 4, batch_first=True)
    head = nn.Linear(4, 2)
    model = nn.ModuleDict({"lstm": lstm, "head": head})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="hospital network"):
        with private_training(ledger, plan, 8, note="round 1") as session:
            private, optimizer, dp_loader = session.make_private(
                model, optimizer, loader, seed=0
            )
            for x, y in dp_loader:
                out, _ = private._module["lstm"](x.unsqueeze(1))
                logits = private._module["head"](out[:, -1])
                optimizer.zero_grad()
                nn.functional.cross_entropy(logits, y).backward()
                optimizer.step()
                raise RuntimeError("hospital network down")
    entry = PrivacyLedger(ledger.path).entries[-1]
    assert entry["steps"] == 1 and entry["note"] == "round 1"


def test_wrong_sample_rate_is_refused_before_wrapping(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    plan = ledger.plan("run-1", 1 / 4, 100, 1.0, run_epsilon=1.0)
    model = nn.Linear(5, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(PrivacyError, match="planned with sample rate"):
        make_private(model, optimizer, _loader(64, 8), plan)


def test_dp_errors_and_fix() -> None:
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))
    assert any("BatchNorm" in error for error in dp_errors(model))
    assert dp_errors(fix_for_dp(model)) == []
    assert dp_errors(nn.Linear(5, 2)) == []
