"""One benchmark configuration of ``dp_overhead.py``, run in its own process.

``python benchmarks/dp_step.py '<config json>'`` trains the configuration for
warm-up + timed steps and prints one JSON row: throughput, peak RSS (and CUDA
allocator peaks on a GPU), or the error that stopped it. A fresh process per
configuration makes ``ru_maxrss`` (process-wide and monotone) its own.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

MODELS = ("lstm_classifier", "lstm_regressor", "dense_autoencoder", "lstm_autoencoder")


def _maxrss_mb() -> float:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes vs KiB


def _data(model: Any, name: str, n: int, seed: int) -> tuple[Any, Any]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(
        n, model.config["seq_len"], model.config["n_features"], generator=gen
    )
    if name == "lstm_classifier":
        return x, torch.randint(0, 2, (n,), generator=gen)
    if name == "lstm_regressor":
        return x, 0.5 + 20 * torch.rand(n, generator=gen)  # length of stay, days
    return x, None  # autoencoders


def per_sample_loss(name: str, model: Any, x: Any, y: Any) -> Any:
    """``model.loss`` as one loss per example, shape (B,), whose mean is ``.loss``.

    Ghost clipping needs this. The class-weighted cross-entropy of
    ``lstm_classifier`` (``class_weight=...``) is a weighted mean normalised by
    the batch's total weight, not a mean of per-example losses: it has no such
    form, so ghost clipping is only measured for the unweighted loss.
    """
    import torch
    from torch.nn import functional as F

    if name == "lstm_classifier":
        return F.cross_entropy(model(x), y.long(), reduction="none")
    if name == "lstm_regressor":
        target = torch.log1p(y.to(x.dtype))
        return F.huber_loss(model(x), target, delta=1.0, reduction="none")
    if name == "dense_autoencoder":
        noisy = x + model.noise_std * torch.randn_like(x) if model.noise_std else x
        code = model.encoder(noisy.flatten(1))
        per = (model.decoder(code).view_as(x) - x).pow(2).flatten(1).mean(1)
        return per + model.l1 * code.abs().mean(1) if model.l1 else per
    if name == "lstm_autoencoder":
        return (model(x) - x).pow(2).flatten(1).mean(1)
    raise ValueError(f"no per-sample loss for model {name!r}; known: {MODELS}")


class _Criterion:
    """A criterion with a ``reduction`` switch, as Opacus' ghost wrapper expects."""

    def __init__(self, name: str, model: Any) -> None:
        self.name, self.model, self.reduction = name, model, "mean"

    def __call__(self, x: Any, y: Any) -> Any:
        per = per_sample_loss(self.name, self.model, x, y)
        return per if self.reduction == "none" else per.mean()


def _make_private(cfg: dict[str, Any], model: Any, opt: Any, x: Any, y: Any) -> Any:
    """Wrap for DP; return ``step_loss(xb, yb) -> loss`` with ``.backward()``."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    tensors = (x,) if y is None else (x, y)
    loader = DataLoader(TensorDataset(*tensors), batch_size=cfg["batch"])
    sigma, clip = 1.0, 1.0
    if cfg["mode"] == "ghost":
        from opacus import PrivacyEngine

        check = per_sample_loss(
            cfg["model"], model, x[:8], None if y is None else y[:8]
        )
        ref = model.loss(x[:8], None if y is None else y[:8])
        if not torch.allclose(check.mean(), ref, atol=1e-6):
            raise AssertionError("per-sample loss does not average to model.loss")
        engine = PrivacyEngine(accountant="rdp")
        dp_model, dp_opt, criterion, _ = engine.make_private(
            module=model,
            optimizer=opt,
            data_loader=loader,
            noise_multiplier=sigma,
            max_grad_norm=clip,
            poisson_sampling=True,
            grad_sample_mode="ghost",
            criterion=_Criterion(cfg["model"], model),
        )
        return dp_opt, criterion
    if cfg["mode"] not in ("hooks", "fast"):
        raise NotImplementedError(
            f"fedcare's engine computes per-sample gradients with Opacus' hooks; "
            f"mode {cfg['mode']!r} is not wired into client/privacy"
        )
    import numpy as np

    from client.privacy import SpendPlan, make_private
    from client.privacy.sampling import UnitBatch

    plan = SpendPlan(
        run_id="benchmark",
        noise_multiplier=sigma,
        sample_rate=1 / len(loader),
        planned_steps=cfg["warmup"] + cfg["steps"],
        max_grad_norm=clip,
        target_epsilon=1e6,
        accountant="rdp",
        privacy_unit="example",
    )
    _, dp_opt = make_private(model, opt, plan, n_units=len(x))
    rows = np.arange(cfg["batch"])
    batch = UnitBatch(rows, rows, np.ones(len(rows)), len(rows))
    device = next(model.parameters()).device
    original_step = dp_opt.step

    def step() -> Any:  # example-level: each row of the batch is its own unit
        dp_opt.set_batch(batch, device)
        return original_step()

    dp_opt.step = step  # type: ignore[method-assign]
    return dp_opt, model.loss


def run_one(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train ``cfg`` for warm-up + timed steps in this process; measure it."""
    import torch

    from shared_models import create_model
    from shared_models.layers import per_step_hooks

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    device = torch.device(cfg["device"])
    kwargs = {} if cfg["frame"] is None else {"frame": cfg["frame"]}
    with contextlib.ExitStack() as stack:
        if cfg["mode"] not in ("plain", "fast"):  # the per-time-step hook cells
            stack.enter_context(per_step_hooks())
        model = create_model(cfg["model"], dp=cfg["mode"] != "plain", **kwargs)
    model = model.to(device)
    n_batches = 4
    x, y = _data(model, cfg["model"], cfg["batch"] * n_batches, cfg["seed"])
    x, y = x.to(device), None if y is None else y.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    if cfg["mode"] == "plain":
        step_loss = model.loss
    else:
        opt, step_loss = _make_private(cfg, model, opt, x, y)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _maxrss_mb()
    times: list[float] = []
    for k in range(cfg["warmup"] + cfg["steps"]):
        i = (k % n_batches) * cfg["batch"]
        xb, yb = x[i : i + cfg["batch"]], None if y is None else y[i : i + cfg["batch"]]
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        step_loss(xb, yb).backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if k >= cfg["warmup"]:
            times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    row: dict[str, Any] = {
        "status": "ok",
        "samples_per_s": cfg["batch"] / median,
        "samples_per_s_mean": cfg["batch"] * len(times) / sum(times),
        "step_ms_median": 1e3 * median,
        "step_ms_min": 1e3 * times[0],
        "peak_rss_mb": _maxrss_mb(),
        "rss_before_training_mb": rss_before,
        "train_rss_delta_mb": _maxrss_mb() - rss_before,
        "params": sum(p.numel() for p in model.parameters()),
    }
    if cuda:
        row["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        row["cuda_peak_reserved_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
    return row


def main(cfg_json: str) -> None:
    cfg = json.loads(cfg_json)
    try:
        row = run_one(cfg)
    except Exception as exc:  # reported in the JSON, not hidden
        status = "unsupported" if isinstance(exc, NotImplementedError) else "error"
        row = {"status": status, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1])
