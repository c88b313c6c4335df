"""Opacus grad samplers for fedcare's layers (registered on import).

:class:`shared_models.layers.SequenceGates` sees a whole sequence's gate
inputs at once. Its per-sample gradients, for ``backprops`` ``g`` (B, T, 4H) =
the gate gradients of every step, input ``x`` (B, T, F) and saved previous
hidden states ``h`` (B, T, H), are one einsum per weight:

* ``W_ih``: sum_t g_t x_t^T,  ``b_ih`` and ``b_hh``: sum_t g_t,
* ``W_hh``: sum_t g_t h_{t-1}^T (the recurrent term of step t is added to
  the gate input of step t, so its output gradient is ``g_t`` too).

They equal what Opacus' ``nn.Linear`` sampler accumulates over the per-step
calls of the hooks path (tests/client/privacy/test_dp_gradients_all_models.py).
"""

from __future__ import annotations

import torch
from opacus.grad_sample import register_grad_sampler
from torch import nn

from shared_models.layers import SequenceGates


@register_grad_sampler(SequenceGates)
def sequence_gates_grad_sample(
    layer: SequenceGates, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[nn.Parameter, torch.Tensor]:
    """Per-sample gradients of ``W_ih, b_ih, W_hh, b_hh`` for one sequence call."""
    x = activations[0]
    previous = layer.recurrent_input.pop()
    out: dict[nn.Parameter, torch.Tensor] = {}
    if layer.weight.requires_grad:
        out[layer.weight] = torch.einsum("bto,bti->boi", backprops, x)
    if layer.hh.weight.requires_grad:
        out[layer.hh.weight] = torch.einsum("bto,bti->boi", backprops, previous)
    summed = backprops.sum(dim=1)
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = summed
    if layer.hh.bias is not None and layer.hh.bias.requires_grad:
        out[layer.hh.bias] = summed.clone()
    return out
