"""DP-SGD overhead: throughput and peak memory, plain PyTorch vs fedcare's DP-SGD.

For every registered model this trains batch-64 Adam steps on the same
synthetic batches (the model's default shape) with

* ``plain``: ``dp=False`` (``nn.LSTM``), no Opacus;
* ``fast``: ``dp=True`` (``LinearLSTM`` with ``SequenceGates`` cells: one
  per-sample-gradient einsum per weight per sequence) made private by
  ``client.privacy.make_private``, the code a hospital runs;
* ``hooks`` / ``functorch``: the older per-time-step cells
  (``shared_models.layers.per_step_hooks``), Opacus hooks once per step;
* ``ghost``: Opacus' ghost clipping. ``client.privacy`` does not expose the
  wrapped criterion it needs, so this mode calls ``opacus.PrivacyEngine``
  directly, with a per-sample version of the model's ``.loss``.

Each configuration runs in a fresh subprocess (``dp_step.py``) so its peak RSS
is its own. Run ``python benchmarks/dp_overhead.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MODELS = ("lstm_classifier", "lstm_regressor", "dense_autoencoder", "lstm_autoencoder")
DP_MODES = ("hooks", "fast", "functorch", "ghost")
FEDCARE_MODE = "fast"  # what make_lstm(dp=True) + client.privacy.make_private do
SCHEMA = "fedcare.benchmarks.dp_overhead/1"


def configs(args: argparse.Namespace, device: str) -> list[dict[str, Any]]:
    """Every (model, mode) pair, plus lstm_classifier at frame 1 (plain, hooks)."""
    base = {
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "device": device,
        "seed": args.seed,
    }
    out = [
        {**base, "model": m, "mode": mode, "frame": None}
        for m in args.models
        for mode in ("plain", *args.modes)
    ]
    if args.frame_study and "lstm_classifier" in args.models:
        out += [
            {**base, "model": "lstm_classifier", "mode": mode, "frame": 1}
            for mode in ("plain", FEDCARE_MODE)
        ]
    return out


def spawn(cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its JSON row, or the failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg["threads"])}
    cmd = [sys.executable, str(Path(__file__).with_name("dp_step.py")), json.dumps(cfg)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"timed out after {timeout:.0f} s"}
    sys.stderr.write(proc.stderr)  # the child's warnings stay visible
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {
            "status": "error",
            "error": f"exit code {proc.returncode}: " + " | ".join(tail),
        }
    return json.loads(lines[-1])


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each DP row: plain/DP throughput and DP/plain memory of the same model."""
    plain = {
        (r["model"], r["frame"]): r
        for r in rows
        if r["mode"] == "plain" and r["status"] == "ok"
    }
    for row in rows:
        ref = plain.get((row["model"], row["frame"]))
        if row["mode"] == "plain" or row["status"] != "ok" or ref is None:
            continue
        row["slowdown_vs_plain"] = ref["samples_per_s"] / row["samples_per_s"]
        row["peak_rss_ratio_vs_plain"] = row["peak_rss_mb"] / ref["peak_rss_mb"]
        if ref["train_rss_delta_mb"] > 0:
            delta = row["train_rss_delta_mb"] / ref["train_rss_delta_mb"]
            row["train_rss_delta_ratio_vs_plain"] = delta


def best_modes(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model at its default frame: the fastest DP mode that ran."""
    best: dict[str, Any] = {}
    for row in rows:
        if row["mode"] == "plain" or row["frame"] is not None or row["status"] != "ok":
            continue
        cur = best.get(row["model"])
        if cur is None or row["samples_per_s"] > cur["samples_per_s"]:
            best[row["model"]] = row
    return {
        m: {"mode": r["mode"], "samples_per_s": r["samples_per_s"]}
        for m, r in best.items()
    }


def machine_info(device: str, threads: int) -> dict[str, Any]:
    import opacus
    import torch

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "opacus": opacus.__version__,
        "device": device,
        "torch_threads": threads,
        "loadavg_at_start": list(os.getloadavg())
        if hasattr(os, "getloadavg")
        else None,
    }
    if device.startswith("cuda"):
        info["cuda_device"] = torch.cuda.get_device_name(torch.device(device))
    return info


def markdown(result: dict[str, Any]) -> str:
    """The README table: one line per configuration."""
    lines = [
        "| model | frame | mode | samples/s | slowdown (plain/DP) "
        "| peak RSS MB | RSS ratio (DP/plain) | train RSS delta MB | status |",
        "|---|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for r in result["rows"]:
        frame = r["frame"] or "default"
        if r["status"] != "ok":
            reason = r["error"].split("\n")[0][:90].replace("|", "/")
            lines.append(
                f"| {r['model']} | {frame} | {r['mode']} | - | - | - | - | - "
                f"| {r['status']}: {reason} |"
            )
            continue
        slow = r.get("slowdown_vs_plain")
        ratio = r.get("peak_rss_ratio_vs_plain")
        lines.append(
            f"| {r['model']} | {frame} | {r['mode']} | {r['samples_per_s']:.0f} "
            f"| {'-' if slow is None else f'{slow:.1f}x'} | {r['peak_rss_mb']:.0f} "
            f"| {'-' if ratio is None else f'{ratio:.2f}'} "
            f"| {r['train_rss_delta_mb']:.0f} | ok |"
        )
    return "\n".join(lines)


BEGIN = (
    "<!-- dp_overhead table: generated by benchmarks/dp_overhead.py, do not edit -->"
)
END = "<!-- end of dp_overhead table -->"


def block(result: dict[str, Any]) -> str:
    m = result["machine"]
    return "\n".join(
        [
            BEGIN,
            "",
            f"Run {result['created']} (`{result['command']}`), "
            f"{m.get('device', 'cpu')}, {result['config'].get('threads')} thread(s), "
            f"batch {result['config'].get('batch')}; fedcare's mode: "
            f"`{result['fedcare_mode']}`.",
            "",
            markdown(result),
            "",
            END,
        ]
    )


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name!r} asked for, but CUDA is not available")
    return name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--modes", nargs="+", choices=DP_MODES, default=list(DP_MODES))
    p.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads in every run (default 1: on a shared 2-core "
        "machine, 2 OpenMP threads made steps up to 100x slower)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-frame-study",
        dest="frame_study",
        action="store_false",
        help="skip lstm_classifier at frame=1",
    )
    p.add_argument("--timeout", type=float, default=600, help="seconds per run")
    p.add_argument("--out", type=Path, help="also write the JSON here (atomically)")
    p.add_argument("--format", choices=("json", "markdown"), default="json")
    p.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="regenerate this file's dp_overhead table (docs/benchmarks.md)",
    )
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="render a saved result (with --format markdown); no runs",
    )
    args = p.parse_args(argv)
    if args.source is not None and not args.source.is_file():
        p.error(f"--from {args.source}: no such file; pass a saved result JSON")
    if args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.threads < 1:
        p.error("--steps, --batch, --threads must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.source is not None:
        result = json.loads(args.source.read_text())
    else:
        device = resolve_device(args.device)
        rows = []
        for cfg in configs(args, device):
            print(
                f"running {cfg['model']} frame={cfg['frame']} {cfg['mode']}",
                file=sys.stderr,
                flush=True,
            )
            rows.append({**cfg, **spawn(cfg, args.timeout)})
        add_ratios(rows)
        result = {
            "schema": SCHEMA,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/dp_overhead.py", *sys.argv[1:]]),
            "machine": machine_info(device, args.threads),
            "config": {
                k: v for k, v in vars(args).items() if k not in ("out", "source")
            },
            "fedcare_mode": FEDCARE_MODE,
            "fastest_dp_mode": best_modes(rows),
            "rows": rows,
        }
        result["config"] = json.loads(json.dumps(result["config"], default=str))
        if args.out is not None:
            write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    if args.markdown is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from benchmarks.markdown import replace_block

        replace_block(args.markdown, BEGIN, END, block(result))
    print(
        markdown(result) if args.format == "markdown" else json.dumps(result, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
