"""client.privacy.engine / sampling / randomness: per-unit DP-SGD, secret noise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from client.privacy import (
    SECURE,
    PoissonUnitSampler,
    PrivacyBudget,
    PrivacyLedger,
    SpendPlan,
    Units,
    make_private,
    private_training,
    refuse_test_randomness,
    sample_rate_for,
    steps_per_epoch,
)
from client.privacy.randomness import TEST_SWITCH
from client.privacy.sampling import UnitBatch
from shared_models.errors import BudgetExceededError, PrivacyError

C = 1.0


class ZeroNoise:
    """No noise at all: only to check clipping and summing exactly."""

    secure = False

    def uniform(self, n: int) -> np.ndarray:
        return SECURE.uniform(n)

    def normal(self, shape, std, like):  # type: ignore[no-untyped-def]
        return torch.zeros(shape, dtype=like.dtype, device=like.device)


def _plan(q: float = 0.5, sigma: float = 1.0) -> SpendPlan:
    return SpendPlan("run", sigma, q, 10, C, 1.0)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))


def test_os_noise_is_standard_normal_and_never_repeats() -> None:
    a = SECURE.standard_normal(200_000)
    b = SECURE.standard_normal(200_000)
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01
    assert abs(np.mean(a**4) - 3) < 0.1  # Gaussian kurtosis
    assert not np.array_equal(a, b)
    torch.manual_seed(0)
    first = SECURE.normal(torch.Size([50]), 2.0, torch.zeros(1))
    torch.manual_seed(0)  # reseeding torch changes nothing: the noise is not torch's
    assert not torch.equal(first, SECURE.normal(torch.Size([50]), 2.0, torch.zeros(1)))


def test_entry_points_refuse_the_test_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_SWITCH, "1")
    with pytest.raises(PrivacyError, match="fedcare train refuses"):
        refuse_test_randomness("fedcare train")
    monkeypatch.delenv(TEST_SWITCH)
    refuse_test_randomness("fedcare train")


def test_units_and_rates() -> None:
    units = Units.of(np.array(["p1", "p2", "p1", "p3"]), 4, "patient")
    assert units.count == 3 and list(units.index) == [0, 1, 0, 2]
    assert Units.of(None, 4, "example").count == 4
    assert sample_rate_for(300, 64) == pytest.approx(1 / 5)
    assert steps_per_epoch(1 / 5) == 5
    with pytest.raises(Exception, match="Unknown privacy unit 'beat'"):
        Units.of(None, 4, "beat")


def test_poisson_sampler_rate_and_per_patient_cap() -> None:
    groups = np.repeat(np.arange(100), 30)  # 100 patients x 30 examples
    units = Units.of(groups, len(groups), "patient")
    sampler = PoissonUnitSampler(units, 0.2, examples_per_unit=8)
    sizes = []
    for batch in sampler.batches(200):
        sizes.append(batch.n_units)
        counts = np.bincount(batch.unit_pos, minlength=batch.n_units)
        assert counts.max(initial=0) <= 8
        # every row of one unit position comes from one patient
        for k in range(batch.n_units):
            assert len(set(groups[batch.rows[batch.unit_pos == k]])) == 1
        np.testing.assert_allclose(np.bincount(batch.unit_pos, batch.weight), 1.0)
    assert abs(np.mean(sizes) - 20) < 1.5  # q * 100 in expectation


def _step(model, optimizer, batch: UnitBatch, x, y) -> None:
    optimizer.zero_grad()
    if len(batch.rows):
        rows = torch.as_tensor(batch.rows)
        torch.nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
    optimizer.set_batch(batch, torch.device("cpu"))
    optimizer.step()


def test_each_patient_is_clipped_as_one() -> None:
    """The step equals: per patient mean of example grads, clipped to C, summed."""
    x, y = 3 * torch.randn(6, 1, 3), torch.tensor([0, 1, 1, 0, 1, 0])
    patient = np.array([0, 0, 0, 1, 2, 2])
    batch = UnitBatch(np.arange(6), patient, np.array([1 / 3] * 3 + [1] + [0.5] * 2), 3)
    plan = _plan(q=0.5)
    reference_model = _model()
    expected = [torch.zeros_like(p) for p in reference_model.parameters()]
    for unit in range(3):
        rows = np.flatnonzero(patient == unit)
        grads = []
        for i in rows:
            reference_model.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                reference_model(x[i : i + 1]), y[i : i + 1]
            )
            loss.backward()
            grads.append([p.grad.clone() for p in reference_model.parameters()])
        mean = [sum(g[k] for g in grads) / len(rows) for k in range(len(expected))]
        norm = math.sqrt(sum(float((m**2).sum()) for m in mean))
        factor = min(1.0, C / (norm + 1e-6))
        expected = [e + factor * m for e, m in zip(expected, mean, strict=True)]
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    dp_model, dp_opt = make_private(model, sgd, plan, n_units=6, randomness=ZeroNoise())
    _step(dp_model, dp_opt, batch, x, y)
    expected_batch = plan.sample_rate * 6
    for p, s, e in zip(model.parameters(), start, expected, strict=True):
        torch.testing.assert_close(
            s - p.detach(), e / expected_batch, atol=1e-5, rtol=1e-4
        )
    dp_model._close()


def test_class_scaled_clipping_bounds_each_unit_by_its_scale_times_c() -> None:
    """With clip scales, unit u is clipped to C x (mean scale of its rows) <= C."""
    x, y = 30 * torch.randn(6, 1, 3), torch.tensor([0, 1, 1, 0, 1, 0])
    patient = np.array([0, 0, 0, 1, 2, 2])
    weight = np.array([1 / 3] * 3 + [1] + [0.5] * 2)
    batch = UnitBatch(np.arange(6), patient, weight, 3)
    scale = np.array([0.1, 1.0, 1.0, 0.1, 1.0, 0.1])  # class 1 weighs 10x class 0
    plan = _plan(q=0.5)
    sums = {}
    for name, clip_scale in (("plain", None), ("scaled", scale)):
        model = _model()
        sgd = torch.optim.SGD(model.parameters(), lr=1.0)
        dp_model, dp_opt = make_private(
            model, sgd, plan, n_units=6, randomness=ZeroNoise()
        )
        seen: list[list[torch.Tensor]] = []
        dp_opt.noisy_grad_hooks.append(seen.append)
        dp_opt.zero_grad()
        torch.nn.functional.cross_entropy(dp_model(x), y).backward()
        dp_opt.set_batch(batch, torch.device("cpu"), clip_scale)
        dp_opt.step()
        sums[name] = seen[0]
        dp_model._close()
    # x is large: every unit is clipped, plain to C each, scaled to C x its scale
    unit_scale = [0.7, 0.1, 0.55]  # means of (0.1, 1, 1), (0.1), (1, 0.1)
    norm = math.sqrt(sum(float((g**2).sum()) for g in sums["scaled"]))
    assert norm <= C * sum(unit_scale) + 1e-4
    plain = math.sqrt(sum(float((g**2).sum()) for g in sums["plain"]))
    assert norm < plain <= 3 * C + 1e-4
    with pytest.raises(PrivacyError, match=r"clip scales must be in \(0, 1\]"):
        _, opt = make_private(_model(), torch.optim.SGD(_model().parameters(), lr=1),
                              plan, n_units=6, randomness=ZeroNoise())  # fmt: skip
        opt.set_batch(batch, torch.device("cpu"), np.array([0.0, 1, 1, 1, 1, 1]))


def test_training_scales_the_clip_by_the_public_class_weights() -> None:
    from client.training import TrainConfig, _clip_scale

    batch = UnitBatch(np.array([0, 2, 3]), np.array([0, 0, 1]), np.ones(3), 2)
    y = np.array([0, 1, 1, 0])
    weights = {"class_weight": [0.5, 5.0]}
    config = TrainConfig(loss_kwargs=weights, class_scaled_clip=True)
    np.testing.assert_allclose(_clip_scale(y, batch, config), [0.1, 1.0, 0.1])
    assert _clip_scale(y, batch, TrainConfig(class_scaled_clip=True)) is None
    assert _clip_scale(y, batch, TrainConfig(loss_kwargs=weights)) is None  # off


def test_an_empty_poisson_batch_is_a_noise_only_step() -> None:
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    dp_model, dp_opt = make_private(model, sgd, _plan(), n_units=4)
    empty = np.zeros(0, dtype=np.int64)
    _step(dp_model, dp_opt, UnitBatch(empty, empty, np.zeros(0), 0), None, None)
    assert dp_opt.steps == 1
    assert all(
        not torch.equal(s, p) for s, p in zip(start, model.parameters(), strict=True)
    )
    dp_model._close()


def test_the_noise_has_the_planned_scale() -> None:
    model = _model()
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    sigma = 3.0
    dp_model, dp_opt = make_private(model, sgd, _plan(sigma=sigma), n_units=4)
    seen: list[torch.Tensor] = []
    dp_opt.noisy_grad_hooks.append(
        lambda grads: seen.extend(g.flatten() for g in grads)
    )
    empty = np.zeros(0, dtype=np.int64)
    for _ in range(1000):  # 8,000 draws: the sample std is within 0.8% (1 s.e.)
        _step(dp_model, dp_opt, UnitBatch(empty, empty, np.zeros(0), 0), None, None)
    noise = torch.cat(seen)
    assert float(noise.std()) == pytest.approx(sigma * C, rel=0.05)  # 6 s.e.
    dp_model._close()


def test_private_training_reserves_then_settles(tmp_path: Path) -> None:
    ledger = PrivacyLedger.open(tmp_path / "l.jsonl", PrivacyBudget(5.0, 1e-5), "h")
    plan = ledger.plan("run", 0.25, 40, C, run_epsilon=1.0, privacy_unit="example")
    with pytest.raises(RuntimeError, match="boom"):
        with private_training(ledger, plan, 20) as session:
            model = _model()
            sgd = torch.optim.SGD(model.parameters(), lr=0.1)
            dp_model, dp_opt = session.make_private(model, sgd, 8)
            empty = np.zeros(0, dtype=np.int64)
            for _ in range(3):
                _step(
                    dp_model,
                    dp_opt,
                    UnitBatch(empty, empty, np.zeros(0), 0),
                    None,
                    None,
                )
            raise RuntimeError("boom")
    again = PrivacyLedger(ledger.path)
    assert [e["steps"] for e in again.entries] == [3]
    assert again.reserved_open == []
    with pytest.raises(BudgetExceededError):
        with private_training(again, plan, 38):  # 3 + 38 > the run's 40 steps
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_noise_is_drawn_for_cuda_parameters() -> None:
    like = torch.zeros(4, device="cuda")
    noise = SECURE.normal(torch.Size([1000]), 1.0, like)
    assert noise.is_cuda and 0.8 < float(noise.std()) < 1.2
