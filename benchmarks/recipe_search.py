"""Fast recipe exploration: a federation's rounds in one process, without Ray.

Each round, every hospital of a cohort trains with ``client.training.train``
(the same DP-SGD, ledger plan and sampling as a real hospital), and the
weights are aggregated by Flower's own strategy object (``FedAdam`` or
``FedAvg``'s ``aggregate_fit``), exactly as the ServerApp does, but without
the Simulation Engine, SecAgg+ and global evaluation's histograms. It prints
the pooled and per-hospital test AUROC after every round. Use it to compare
recipes in seconds per round; ``benchmarks/utility.py`` measures the real
federation. The figures in docs/benchmarks.md's "levers" table came from it.

    python benchmarks/recipe_search.py COHORT --rounds 10 --epsilon 8 \\
        --strategy fedadam --server-lr 0.05 --local-lr 1 --clip 0.3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np
    import torch
    from flwr.common import FitRes, Status, ndarrays_to_parameters
    from flwr.common import parameters_to_ndarrays as to_arrays
    from flwr.server.strategy import FedAdam, FedAvg, FedAvgM
    from sklearn.metrics import roc_auc_score

    from client.federated import scores_and_labels
    from client.privacy import PrivacyBudget, PrivacyLedger, Units, sample_rate_for
    from client.privacy import steps_per_epoch as per_epoch
    from client.tasks import get_task
    from client.training import OptimizerCarry, PrivateRun, TrainConfig, train
    from shared_models import create_model
    from shared_models.export import get_weights, set_weights

    torch.set_num_threads(1)
    task = get_task(args.task)
    dirs = sorted(p for p in Path(args.cohort).iterdir() if p.is_dir())
    preps = [task.prepare(d, seed=0) for d in dirs]
    model_kw = json.loads(args.model) if args.model else {}

    def build(dp: bool) -> Any:
        return create_model(
            task.model, **{**task.model_config(preps[0]), **model_kw}, dp=dp
        )

    torch.manual_seed(args.seed)
    weights = get_weights(build(False))
    common: dict[str, Any] = {"initial_parameters": ndarrays_to_parameters(weights)}
    if args.strategy == "fedadam":
        strategy = FedAdam(
            eta=args.server_lr,
            eta_l=args.local_lr,
            tau=args.tau,
            beta_1=args.beta1,
            beta_2=args.beta2,
            **common,
        )
    elif args.server_momentum or args.strategy == "fedavgm":
        strategy = FedAvgM(
            server_learning_rate=args.server_lr,
            server_momentum=args.server_momentum,
            **common,
        )
    else:
        strategy = FedAvg(**common)
    carries = [OptimizerCarry() for _ in dirs]
    tmp = Path(tempfile.mkdtemp())
    ledgers = [
        PrivacyLedger.open(tmp / f"{i}.jsonl", PrivacyBudget(1e6, 1e-5), f"h{i}")
        for i in range(len(dirs))
    ]
    history = []
    averages = Averages(args.ema, args.tail)

    def judge(w: list) -> tuple[float, list[float]]:
        model = build(False)
        set_weights(model, w)
        judged = [scores_and_labels(task, model, p.test) for p in preps]
        scores = np.concatenate([s for s, _ in judged])
        ys = np.concatenate([y for _, y in judged])
        per = [round(float(roc_auc_score(y, s)), 4) for s, y in judged]
        return float(roc_auc_score(ys, scores)), per

    alone: dict[str, Any] = {}
    if args.alone:  # each hospital alone: all the run's steps, Adam, own budget
        steps = args.alone_steps or args.rounds * args.local_steps
        own, pooled_of = [], []
        for i, prep in enumerate(preps):
            fit = task.fit_arrays(prep)
            model = build(not args.no_dp)
            set_weights(model, weights)
            config = TrainConfig(
                steps=steps,
                sample_rate=args.alone_sample_rate or args.sample_rate,
                lr=args.alone_lr or args.local_lr,
                optimizer="adam",
                max_grad_norm=args.clip,
                seed=args.seed + i,
                loss_kwargs=task.loss_kwargs(),
            )
            ledger = PrivacyLedger.open(
                tmp / f"alone{i}.jsonl", PrivacyBudget(1e6, 1e-5), f"a{i}"
            )
            private = None
            if not args.no_dp:
                private = PrivateRun(
                    ledger, "alone", args.epsilon, privacy_unit=args.unit
                )
            train(model, fit.x, fit.y, config, private, groups=fit.groups)
            pooled, per = judge(get_weights(model))
            own.append(per[i])
            pooled_of.append(round(pooled, 4))
        alone = {"local_only": own, "single_pooled": pooled_of}
        print(json.dumps({"alone": alone}), flush=True)
    for rnd in range(1, args.rounds + 1):
        if args.strategy == "fedadam":
            strategy.eta = args.server_lr * lr_factor(args.lr_schedule, rnd)
        results = []
        for i, prep in enumerate(preps):
            fit = task.fit_arrays(prep)
            model = build(not args.no_dp)
            set_weights(model, weights)
            config = TrainConfig(
                epochs=args.local_epochs,
                steps=args.local_steps,
                batch_size=args.batch_size,
                sample_rate=args.sample_rate,
                lr=args.local_lr,
                optimizer=args.local_optimizer,
                max_grad_norm=args.clip,
                seed=args.seed + 1000 * rnd + i,
                loss_kwargs=task.loss_kwargs(),
                class_scaled_clip=args.class_scaled_clip,
            )
            private = None
            if not args.no_dp:
                units = Units.of(fit.groups, len(fit), args.unit).count
                steps = args.local_steps or args.local_epochs * per_epoch(
                    sample_rate_for(units, config.unit_batch(units))
                )
                private = PrivateRun(
                    ledgers[i],
                    "search",
                    args.epsilon,
                    planned_steps=args.rounds * steps,
                    privacy_unit=args.unit,
                )
            train(
                model,
                fit.x,
                fit.y,
                config,
                private,
                groups=fit.groups,
                carry=carries[i] if args.keep_state else None,
            )
            res = FitRes(
                Status(code=0, message=""),
                ndarrays_to_parameters(get_weights(model)),
                len(fit),
                {},
            )
            results.append((None, res))
        params, _ = strategy.aggregate_fit(rnd, results, [])
        weights = to_arrays(params)
        averages.add(weights)

        pooled, per = judge(weights)
        row = {
            "round": rnd,
            "pooled_auroc": pooled,
            "hospitals": per,
            "epsilon_spent": ledgers[0].spent_epsilon,
        }
        for name, avg in averages.models().items():
            row[f"pooled_{name}"], row[f"hospitals_{name}"] = judge(avg)
        if alone:
            row["best_single"] = max(alone["single_pooled"])
            row["worse_than_alone"] = sum(
                f < a for f, a in zip(per, alone["local_only"], strict=True)
            )
        history.append(row)
        print(json.dumps(row), flush=True)
    return history


def lr_factor(schedule: str, rnd: int) -> float:
    """The server learning rate's factor in round ``rnd`` (1-based)."""
    if schedule == "sqrt":
        return float(rnd) ** -0.5
    if schedule == "step":  # halve every 3 rounds
        return 0.5 ** ((rnd - 1) // 3)
    if schedule == "linear":  # to 0.1 at the last round of 10
        return max(0.1, 1.0 - 0.1 * (rnd - 1))
    return 1.0


class Averages:
    """Post-processing of the released global models: EMAs and tail means."""

    def __init__(self, emas: list[float], tails: list[int]) -> None:
        self.emas = {beta: None for beta in emas}
        self.tails = tails
        self.seen: list[list] = []

    def add(self, weights: list) -> None:
        self.seen.append([w.copy() for w in weights])
        for beta, avg in self.emas.items():
            self.emas[beta] = (
                [w.copy() for w in weights]
                if avg is None
                else [
                    beta * a + (1 - beta) * w for a, w in zip(avg, weights, strict=True)
                ]
            )

    def models(self) -> dict[str, list]:
        out = {f"ema{beta}": avg for beta, avg in self.emas.items()}
        for k in self.tails:
            last = self.seen[-k:]
            out[f"tail{k}"] = [sum(ws) / len(last) for ws in zip(*last, strict=True)]
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cohort", type=Path, help="a fedcare cohort folder")
    parser.add_argument("--task", default="ecg-arrhythmia")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--local-steps", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--sample-rate", type=float, default=0.5)
    parser.add_argument("--local-lr", type=float, default=1.0)
    parser.add_argument("--local-optimizer", default="sgd")
    parser.add_argument(
        "--strategy", default="fedadam", choices=("fedadam", "fedavg", "fedavgm")
    )
    parser.add_argument(
        "--server-lr", type=float, default=0.05, help="FedAdam's or FedAvgM's"
    )
    parser.add_argument(
        "--server-momentum", type=float, default=0.0, help="FedAvgM's momentum"
    )
    parser.add_argument(
        "--keep-state",
        action="store_true",
        help="each hospital keeps its local optimizer's state across rounds",
    )
    parser.add_argument("--clip", type=float, default=0.3)
    parser.add_argument("--tau", type=float, default=1e-6, help="FedAdam's epsilon")
    parser.add_argument("--beta2", type=float, default=0.99, help="FedAdam's beta_2")
    parser.add_argument("--beta1", type=float, default=0.9, help="FedAdam's beta_1")
    parser.add_argument(
        "--lr-schedule",
        default="const",
        choices=("const", "sqrt", "step", "linear"),
        help="server lr schedule over rounds",
    )
    parser.add_argument(
        "--ema", type=float, nargs="*", default=[], help="EMA betas to evaluate"
    )
    parser.add_argument(
        "--tail", type=int, nargs="*", default=[], help="last-k averages to evaluate"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs (noise draws; the DP noise is secret, so each run differs)",
    )
    parser.add_argument(
        "--alone",
        action="store_true",
        help="also train each hospital alone (rounds x local-steps Adam steps): "
        "local-only AUROCs and the best single hospital's pooled AUROC",
    )
    parser.add_argument(
        "--alone-lr", type=float, default=0.0, help="[default: --local-lr]"
    )
    parser.add_argument(
        "--alone-steps", type=int, default=0, help="[default: rounds x local-steps]"
    )
    parser.add_argument(
        "--alone-sample-rate", type=float, default=0.0, help="[default: --sample-rate]"
    )
    parser.add_argument("--epsilon", type=float, default=2.0)
    parser.add_argument("--unit", default="patient")
    parser.add_argument("--no-dp", action="store_true")
    parser.add_argument(
        "--class-scaled-clip",
        action="store_true",
        help="clip each unit to C x its class weight / the largest (README Privacy)",
    )
    parser.add_argument("--model", default="", help='JSON, e.g. {"hidden_size": 32}')
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import numpy as np

    finals: dict[str, list[float]] = {}
    start = time.monotonic()
    for _ in range(args.repeat):
        last = run(args)[-1]
        for key, value in last.items():
            if key.startswith("pooled") or key in ("best_single", "worse_than_alone"):
                finals.setdefault(key, []).append(round(value, 4))
        print(json.dumps({"final": {k: v[-1] for k, v in finals.items()}}))
    summary = {
        key: {
            "runs": v,
            "mean": round(float(np.mean(v)), 4),
            "sd": round(float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, 4),
        }
        for key, v in finals.items()
    }
    summary["seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps({"summary": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
