"""An LSTM whose parameters all live in ``nn.Linear`` modules.

Opacus computes exact per-sample gradients for ``nn.Linear`` (also when a layer
is applied several times in one forward pass), but not for ``nn.LSTM``. This
layer computes the same function as ``nn.LSTM(batch_first=True)``:

* the input projection of every time step is one ``Linear`` on the whole
  sequence (``(B, T, F)`` at once, one per-sample-gradient einsum);
* the recurrent projection is a ``Linear`` applied once per time step.

Its ``state_dict`` uses ``nn.LSTM``'s parameter names (``weight_ih_l0``, ...),
so weights move freely between a DP-trained copy of a model and a plain copy
that uses the fast cuDNN/oneDNN ``nn.LSTM``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_LINEAR_KEY = re.compile(
    r"^(?P<prefix>.*)cells\.(?P<layer>\d+)\.(?:ih\.)?(?P<kind>ih|hh)\.(?P<p>weight|bias)$"
)
_LSTM_KEY = re.compile(
    r"^(?P<prefix>.*)(?P<p>weight|bias)_(?P<kind>ih|hh)_l(?P<layer>\d+)$"
)


# make_lstm(dp=True) builds the fast SequenceGates cells unless this is False
# (per_step_hooks(): the old per-time-step Opacus hooks, kept as a reference
# and for the benchmark's side-by-side run).
_FAST_DEFAULT = True


@contextmanager
def per_step_hooks() -> Iterator[None]:
    """Within this block, ``make_lstm(dp=True)`` builds the per-step-hook cells."""
    global _FAST_DEFAULT
    previous, _FAST_DEFAULT = _FAST_DEFAULT, False
    try:
        yield
    finally:
        _FAST_DEFAULT = previous


class _Cell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, 4 * hidden_size)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size)


class SequenceGates(nn.Linear):
    """Gate inputs of a whole sequence; owns ``W_ih`` and (as ``hh``) ``W_hh``.

    ``forward(x (B, T, F))`` is ``x W_ih^T + b_ih`` (one matmul for all steps).
    The recurrence adds ``h_{t-1} W_hh^T + b_hh`` to step ``t``, so the gradient
    of the loss w.r.t. this output is the gate gradient of every step, and the
    per-sample gradient of ``W_hh`` is one einsum of it with the saved
    ``h_{t-1}`` (``recurrent_input``). client.privacy registers that grad
    sampler for this type; the hidden states are saved only in training mode.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, 4 * hidden_size)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size)
        self.recurrent_input: list[torch.Tensor] = []


class _FastCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = SequenceGates(input_size, hidden_size)

    @property
    def hh(self) -> nn.Linear:
        return self.ih.hh


class LinearLSTM(nn.Module):
    """Multi-layer LSTM, batch first, built from ``nn.Linear`` (see module doc)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        fast: bool = False,
    ) -> None:
        super().__init__()
        self.fast = fast
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        cell = _FastCell if fast else _Cell
        self.cells = nn.ModuleList(
            cell(input_size if k == 0 else hidden_size, hidden_size)
            for k in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()
        self._register_state_dict_hook(_to_lstm_names)
        self._register_load_state_dict_pre_hook(_from_lstm_names, with_module=True)

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)), the same initialisation as nn.LSTM."""
        bound = self.hidden_size**-0.5
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Return ``(outputs (B, T, H), (h_n, c_n) each (L, B, H))`` like nn.LSTM."""
        batch, steps, _ = x.shape
        h_last, c_last = [], []
        layer_input = x
        for k, cell in enumerate(self.cells):
            if k > 0:
                layer_input = self.dropout(layer_input)
            projected = cell.ih(layer_input)  # (B, T, 4H)
            h = x.new_zeros(batch, self.hidden_size)
            c = x.new_zeros(batch, self.hidden_size)
            outputs = []
            weight, bias = cell.hh.weight, cell.hh.bias
            for t in range(steps):
                if self.fast:  # W_hh's per-sample gradient: see SequenceGates
                    gates = projected[:, t] + nn.functional.linear(h, weight, bias)
                else:
                    gates = projected[:, t] + cell.hh(h)
                i, f, g, o = gates.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs.append(h)
            # Saved only when Opacus captured this call (its forward hook keeps
            # one activation per call), so plain training never accumulates.
            captured = len(getattr(cell.ih, "activations", ()))
            if self.fast and captured > len(cell.ih.recurrent_input):
                previous = torch.stack([h.new_zeros(h.shape), *outputs[:-1]], dim=1)
                cell.ih.recurrent_input.append(previous.detach())
            layer_input = torch.stack(outputs, dim=1)
            h_last.append(h)
            c_last.append(c)
        return layer_input, (torch.stack(h_last), torch.stack(c_last))


def _to_lstm_names(
    module: nn.Module, state: dict[str, Any], prefix: str, local: Any
) -> OrderedDict:
    renamed: OrderedDict[str, Any] = OrderedDict()
    for key, value in state.items():
        match = _LINEAR_KEY.match(key)
        if match and match["prefix"] == prefix:
            key = f"{prefix}{match['p']}_{match['kind']}_l{match['layer']}"
        renamed[key] = value
    state.clear()
    state.update(renamed)
    return state


def _from_lstm_names(
    module: nn.Module, state: dict[str, Any], prefix: str, *args: Any
) -> None:
    fast = getattr(module, "fast", False)
    for key in list(state):
        match = _LSTM_KEY.match(key)
        if match and match["prefix"] == prefix:
            kind = "ih.hh" if fast and match["kind"] == "hh" else match["kind"]
            new = f"{prefix}cells.{match['layer']}.{kind}.{match['p']}"
            state[new] = state.pop(key)


def make_lstm(
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    dp: bool,
    fast: bool | None = None,
) -> nn.Module:
    """The DP-compatible ``LinearLSTM`` when ``dp``, else the fast ``nn.LSTM``.

    Both have the same parameter names and compute the same function. ``fast``
    (default: True outside :func:`per_step_hooks`) picks ``SequenceGates``
    cells, whose per-sample gradients are one einsum per weight per sequence.
    """
    if dp:
        fast = _FAST_DEFAULT if fast is None else fast
        return LinearLSTM(input_size, hidden_size, num_layers, dropout, fast)
    return nn.LSTM(
        input_size, hidden_size, num_layers, batch_first=True, dropout=dropout
    )


class Framing(nn.Module):
    """Read a sequence in frames of ``frame`` steps: (B, T, F) -> (B, T/frame, frame*F).

    An LSTM over 18 frames of 5 samples sees the same beat as one over 90
    samples, with a fifth of the recurrent steps (the per-step cost dominates
    DP-SGD, whose per-sample gradients are computed once per step).
    """

    def __init__(self, seq_len: int, frame: int) -> None:
        super().__init__()
        if frame < 1 or seq_len % frame:
            raise ValueError(
                f"frame must divide seq_len: seq_len {seq_len}, frame {frame}"
            )
        self.frame = frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, features = x.shape
        return x.reshape(batch, steps // self.frame, self.frame * features)
