"""Every registered model's PRODUCTION loss is per-sample under Opacus.

DP-SGD's sensitivity argument needs each example's gradient to depend on that
example alone: change one example, and every other example's per-sample
gradient must stay exactly the same. These tests run each model's own
``model.loss`` (with the loss settings its tasks use: class weights, polarity
flips, denoising noise, the L1 code penalty) through Opacus'
``GradSampleModule``, as ``client.privacy`` trains it.
"""

from __future__ import annotations

import pytest
import torch
from opacus import GradSampleModule
from torch.nn import functional as F

import shared_models as sm
from client.tasks import get_task

CASES = {
    "lstm_classifier": (
        {"seq_len": 10, "frame": 2, "hidden_size": 6, "flip_augment": True},
        get_task("ecg-arrhythmia").loss_kwargs(),
    ),
    "lstm_classifier_icu": (
        {"seq_len": 8, "n_features": 3, "frame": 2, "hidden_size": 6},
        get_task("icu-deterioration").loss_kwargs(),
    ),
    "lstm_classifier_aami5": (
        {"seq_len": 10, "frame": 2, "hidden_size": 6, "num_classes": 5},
        get_task("ecg-arrhythmia-aami5").loss_kwargs(),
    ),
    "lstm_regressor": ({"seq_len": 8, "n_features": 3, "hidden_size": 6}, {}),
    "dense_autoencoder": (
        {"seq_len": 12, "hidden": [8], "code_size": 3, "noise_std": 0.1, "l1": 0.01},
        {},
    ),
    "lstm_autoencoder": ({"seq_len": 10, "frame": 2, "hidden_size": 6}, {}),
}


def _model_name(case: str) -> str:
    return next(name for name in sm.model_names() if case.startswith(name))


def _batch(model: torch.nn.Module, n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = model.config
    x = torch.randn(n, cfg["seq_len"], cfg["n_features"])
    if "num_classes" in cfg:
        y = torch.tensor([k % cfg["num_classes"] for k in range(n)])
    else:
        y = torch.rand(n) * 10
    return x, y


def _grad_samples(model, loss_fn, x, y) -> list[torch.Tensor]:
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    try:
        torch.manual_seed(11)  # the same augmentation draws in every call
        model.zero_grad()
        loss_fn(x, y).backward()
        return [p.grad_sample.detach().clone() for p in model.parameters()]
    finally:
        gsm._close()


def _others_unchanged(model, loss_fn) -> float:
    """Largest change of examples 1.. per-sample grads when example 0 changes."""
    torch.manual_seed(0)
    x, y = _batch(model)
    before = _grad_samples(model, loss_fn, x, y)
    x2, y2 = x.clone(), y.clone()
    x2[0] = 5 * torch.randn_like(x2[0])
    y2[0] = (
        (y[0] + 1) % model.config["num_classes"]
        if "num_classes" in model.config
        else 99.0
    )
    after = _grad_samples(model, loss_fn, x2, y2)
    assert any(not torch.equal(b[0], a[0]) for b, a in zip(before, after, strict=True))
    return max(
        float((b[1:] - a[1:]).abs().max()) for b, a in zip(before, after, strict=True)
    )


def test_every_registered_model_is_covered():
    assert {_model_name(c) for c in CASES} == set(sm.model_names())


@pytest.mark.parametrize("case", sorted(CASES))
def test_production_loss_is_per_sample(case):
    config, loss_kwargs = CASES[case]
    model = sm.create_model(_model_name(case), dp=True, **config)
    model.train()
    change = _others_unchanged(model, lambda x, y: model.loss(x, y, **loss_kwargs))
    assert change < 1e-6, f"{case}: other examples' gradients moved by {change:.3g}"


def test_the_check_catches_a_batch_normalised_weighted_loss():
    """``F.cross_entropy(weight=w)`` divides by the batch's sum of weights: caught."""
    config, loss_kwargs = CASES["lstm_classifier"]
    model = sm.create_model(
        "lstm_classifier", dp=True, **{**config, "flip_augment": False}
    )
    weight = torch.tensor(loss_kwargs["class_weight"])
    change = _others_unchanged(
        model, lambda x, y: F.cross_entropy(model(x), y.long(), weight=weight)
    )
    assert change > 1e-4


def test_class_weights_are_public_constants():
    """The loss settings do not depend on any hospital's data."""
    for name in ("ecg-arrhythmia", "ecg-arrhythmia-aami5", "icu-deterioration"):
        weights = get_task(name).loss_kwargs()["class_weight"]
        assert weights == get_task(name).loss_kwargs()["class_weight"]
        assert all(0 < w <= 10 for w in weights)
