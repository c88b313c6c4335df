"""Profile 5 DP steps: python benchmarks/profile_dp_step.py MODEL hooks|fast."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import dp_step
from torch.profiler import ProfilerActivity, profile

from shared_models import create_model
from shared_models.layers import per_step_hooks

torch.set_num_threads(1)
torch.manual_seed(0)
name = sys.argv[1]
if sys.argv[2] == "hooks":  # the per-time-step cells
    with per_step_hooks():
        model = create_model(name, dp=True)
else:
    model = create_model(name, dp=True)
x, y = dp_step._data(model, name, 256, 0)
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
cfg = {
    "mode": sys.argv[2],
    "model": name,
    "batch": 64,
    "warmup": 3,
    "steps": 5,
    "seed": 0,
    "device": "cpu",
    "threads": 1,
    "frame": None,
}
opt, step_loss = dp_step._make_private(cfg, model, opt, x, y)


def step(k):
    i = (k % 4) * 64
    opt.zero_grad(set_to_none=True)
    step_loss(x[i : i + 64], None if y is None else y[i : i + 64]).backward()
    opt.step()


for k in range(3):
    step(k)
with profile(activities=[ProfilerActivity.CPU]) as p:
    for k in range(5):
        step(k)
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
