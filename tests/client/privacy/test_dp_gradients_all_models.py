"""fedcare's clipped, summed per-patient gradients equal an independent reference.

For every registered model the DP copy (``dp=True``) is made private with
``client.privacy.make_private``, noise off; one step over 6 examples of 3
patients is compared with a reference built by hand on the plain copy
(``dp=False``, same weights through the ``nn.LSTM`` names): one backward per
example, the mean per patient, clipped to C, summed. Any faster per-sample
gradient path must keep this test green.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from client.privacy import SpendPlan, make_private
from client.privacy.sampling import UnitBatch
from shared_models import create_model
from shared_models.layers import per_step_hooks

MODELS = ("lstm_classifier", "lstm_regressor", "dense_autoencoder", "lstm_autoencoder")
C = 0.05  # small, so every patient is clipped


class ZeroNoise:
    secure = False

    def normal(self, shape, std, like):  # type: ignore[no-untyped-def]
        return torch.zeros(shape, dtype=like.dtype, device=like.device)


def _data(model: torch.nn.Module, name: str, n: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(
        n, model.config["seq_len"], model.config["n_features"], generator=gen
    )
    if name == "lstm_classifier":
        return x, torch.tensor([0, 1, 1, 0, 1, 0])
    if name == "lstm_regressor":
        return x, 0.5 + 20 * torch.rand(n, generator=gen)
    return x, None


def _deterministic(model: torch.nn.Module) -> torch.nn.Module:
    for module in model.modules():  # no dropout (Opacus hooks need train mode)
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    if getattr(model, "noise_std", 0):
        model.noise_std = 0.0  # the denoising noise would differ per call
    return model


def _reference(name, dp_model, x, y, patient):  # type: ignore[no-untyped-def]
    plain = _deterministic(create_model(name, dp=False))
    plain.load_state_dict(dp_model.state_dict())
    names, params = zip(*plain.named_parameters(), strict=True)
    total = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    for unit in np.unique(patient):
        grads = []
        for i in np.flatnonzero(patient == unit):
            plain.zero_grad()
            plain.loss(x[i : i + 1], None if y is None else y[i : i + 1]).backward()
            grads.append([p.grad.double().clone() for p in params])
        mean = [sum(g[k] for g in grads) / len(grads) for k in range(len(params))]
        norm = math.sqrt(sum(float((m**2).sum()) for m in mean))
        factor = min(1.0, C / (norm + 1e-6))
        total = [t + factor * m for t, m in zip(total, mean, strict=True)]
    return dict(zip(names, total, strict=True))


def _lstm_name(name: str) -> str:
    """``lstm.cells.0.ih.weight`` -> ``lstm.weight_ih_l0``; the fast cell keeps
    ``W_hh`` at ``cells.0.ih.hh``."""
    return re.sub(r"cells\.(\d+)\.(?:ih\.)?(ih|hh)\.(weight|bias)$", r"\3_\2_l\1", name)


@pytest.mark.parametrize("path", ["fast", "per_step_hooks"])
@pytest.mark.parametrize("name", MODELS)
def test_clipped_summed_patient_gradients_match_the_reference(
    name: str, path: str
) -> None:
    torch.manual_seed(0)
    if path == "fast":
        model = create_model(name, dp=True)
    else:
        with per_step_hooks():
            model = create_model(name, dp=True)
    model = _deterministic(model)
    x, y = _data(model, name, 6)
    patient = np.array([0, 0, 0, 1, 2, 2])
    weight = np.array([1 / 3] * 3 + [1.0] + [0.5] * 2)
    expected = _reference(name, model, x, y, patient)
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    plan = SpendPlan("run", 1.0, 0.5, 10, C, 1.0)
    dp_model, dp_opt = make_private(model, sgd, plan, n_units=6, randomness=ZeroNoise())
    dp_opt.zero_grad()
    model.loss(x, y).backward()
    dp_opt.set_batch(UnitBatch(np.arange(6), patient, weight, 3), torch.device("cpu"))
    dp_opt.pre_step()  # clip, sum, (zero) noise, scale; no parameter update
    got = {_lstm_name(n): p.summed_grad.double() for n, p in model.named_parameters()}
    assert got.keys() == expected.keys()
    for key, e in expected.items():
        g = got[key]
        scale = float(e.norm()) + 1e-12
        assert float((g - e).norm()) / scale < 1e-4
    dp_model._close()


def test_the_fast_cells_keep_nothing_outside_opacus() -> None:
    """Plain training of a ``dp=True`` model saves no hidden states, grads exact."""
    torch.manual_seed(0)
    model = create_model("lstm_classifier", dp=True)
    plain = create_model("lstm_classifier", dp=False)
    plain.load_state_dict(model.state_dict())
    x, y = _data(model, "lstm_classifier", 6)
    model.loss(x, y).backward()
    plain.loss(x, y).backward()
    assert all(not c.ih.recurrent_input for c in model.lstm.cells)
    grads = {_lstm_name(n): p.grad for n, p in model.named_parameters()}
    for n, p in plain.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_fast_path_runs_on_cuda() -> None:
    torch.manual_seed(0)
    model = _deterministic(create_model("lstm_classifier", dp=True)).cuda()
    x, y = _data(model, "lstm_classifier", 6)
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    plan = SpendPlan("run", 1.0, 0.5, 10, C, 1.0)
    dp_model, dp_opt = make_private(model, sgd, plan, n_units=6, randomness=ZeroNoise())
    model.loss(x.cuda(), y.cuda()).backward()
    rows = np.arange(6)
    dp_opt.set_batch(UnitBatch(rows, rows, np.ones(6), 6), torch.device("cuda"))
    dp_opt.pre_step()
    assert all(p.summed_grad.is_cuda for p in dp_opt.params)
    dp_model._close()
