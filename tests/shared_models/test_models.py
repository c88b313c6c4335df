"""The four registered models: DP-compatible, trainable privately, exchangeable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus import GradSampleModule, PrivacyEngine
from opacus.validators import ModuleValidator
from opacus.validators.errors import UnsupportedModuleError
from torch.utils.data import DataLoader, TensorDataset

import shared_models as sm
from shared_models.errors import UnknownModelError
from shared_models.layers import LinearLSTM

NAMES = ["dense_autoencoder", "lstm_autoencoder", "lstm_classifier", "lstm_regressor"]


def _batch(model, n=6):
    cfg = model.config
    x = torch.randn(n, cfg["seq_len"], cfg["n_features"])
    spec = sm.get_spec(next(k for k in NAMES if isinstance(model, sm.get_spec(k).cls)))
    if spec.task == "regression":
        y = torch.rand(n) * 10
    elif spec.task in ("binary", "multiclass"):
        y = torch.randint(0, cfg["num_classes"], (n,))
    else:
        y = torch.zeros(n)
    return x, y


def _small(name):
    return (
        sm.create_model(name, seq_len=10)
        if name != "lstm_regressor"
        else sm.create_model(name, seq_len=10, n_features=3)
    )


def test_registry_lists_the_four_models():
    assert sm.model_names() == NAMES


def test_unknown_model_error_lists_known_names():
    with pytest.raises(UnknownModelError, match="known models: dense_autoencoder"):
        sm.create_model("transformer")


@pytest.mark.parametrize("name", NAMES)
def test_dp_variant_passes_strict_validation(name):
    model = sm.create_model(name, dp=True)
    ModuleValidator.validate(model, strict=True)  # raises on any incompatible layer


@pytest.mark.parametrize(
    "name", ["lstm_classifier", "lstm_regressor", "lstm_autoencoder"]
)
def test_plain_variant_uses_nn_lstm_and_fails_strict_validation(name):
    model = sm.create_model(name, dp=False)
    assert any(isinstance(m, torch.nn.LSTM) for m in model.modules())
    with pytest.raises(UnsupportedModuleError, match="nn.LSTM"):
        ModuleValidator.validate(model, strict=True)


@pytest.mark.parametrize("name", NAMES)
def test_one_real_private_step_changes_weights(name):
    torch.manual_seed(0)
    model = _small(name)
    x, y = _batch(model, 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    dp_model, dp_opt, dp_loader = PrivacyEngine(accountant="rdp").make_private(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        poisson_sampling=True,
    )
    xb, yb = next(iter(dp_loader))
    dp_opt.zero_grad()
    dp_model._module.loss(xb, yb).backward()
    dp_opt.step()
    after = dp_model._module.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", NAMES)
def test_weights_move_between_dp_and_plain_copies(name):
    torch.manual_seed(1)
    dp_model = sm.create_model(name, dp=True)
    plain = sm.create_model(name, dp=False)
    plain.load_state_dict(dp_model.state_dict())
    back = sm.create_model(name, dp=True)
    back.load_state_dict(plain.state_dict())
    x, _ = _batch(dp_model, 4)
    for other in (plain, back):
        torch.testing.assert_close(
            other.predict(x), dp_model.predict(x), atol=1e-5, rtol=1e-5
        )


def test_linear_lstm_matches_nn_lstm():
    torch.manual_seed(2)
    ours = LinearLSTM(3, 8, num_layers=2)
    ref = torch.nn.LSTM(3, 8, num_layers=2, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(5, 9, 3)
    (out, (h, c)), (rout, (rh, rc)) = ours(x), ref(x)
    torch.testing.assert_close(out, rout, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h, rh, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c, rc, atol=1e-6, rtol=1e-5)


def test_per_sample_gradients_are_exact():
    """Opacus' per-sample gradients equal autograd on each example alone."""
    torch.manual_seed(3)
    model = sm.create_model("lstm_classifier", seq_len=6, frame=2, hidden_size=5)
    x, y = torch.randn(4, 6, 1), torch.tensor([0, 1, 1, 0])
    reference = []
    for i in range(len(x)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        reference.append([p.grad.clone() for p in model.parameters()])
    gsm = GradSampleModule(model, loss_reduction="sum")
    torch.nn.functional.cross_entropy(gsm(x), y, reduction="sum").backward()
    for i, grads in enumerate(reference):
        for p, g in zip(model.parameters(), grads, strict=True):
            np.testing.assert_allclose(p.grad_sample[i].numpy(), g.numpy(), atol=1e-6)
