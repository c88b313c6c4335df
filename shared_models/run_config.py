"""The federation's run configuration, parsed once into a validated dataclass.

Keys are Flower's kebab-case ``[tool.flwr.app.config]`` keys. The defaults
below are the single source of truth: ``pyproject.toml`` mirrors them (a test
checks it) and ``fedcare simulate`` starts from them. Handlers never read raw
keys; they get a :class:`RunConfig`.

The training keys (rounds, strategy, local epochs, batch, learning rates,
clipping norm, local optimizer, sample rate) default to 0 or "", which means
"the task's recipe" (``shared_models.recipe``): :meth:`RunConfig.resolved`
fills them, so ``fedcare train``, the federation and the baselines train the
same way unless a key is set.

It lives in ``shared_models`` because both sides parse it: the ServerApp
(``server``) and every hospital's ClientApp (``client``) receive the same keys,
and the aggregator sends the resolved keys with each instruction
(``shared_models.wire.pack_run_config``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from shared_models.errors import ConfigError
from shared_models.recipe import SCHEDULES, recipe_of

TASKS = (
    "ecg-arrhythmia",
    "ecg-anomaly",
    "signal-anomaly",
    "icu-deterioration",
    "icu-los",
)
STRATEGIES = ("fedavg", "fedprox", "fedadam")
# A strategy's local optimiser when it is not the task recipe's own strategy.
LOCAL_OPTIMIZER = {"fedavg": "adam", "fedprox": "adam", "fedadam": "sgd"}
FEDADAM_SERVER_LR = 0.05


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one federated run (see README, "Run configuration")."""

    task: str = "ecg-arrhythmia"
    num_server_rounds: int = 0
    strategy: str = ""
    proximal_mu: float = 0.0
    server_learning_rate: float = 0.0
    server_lr_schedule: str = ""
    fraction_fit: float = 1.0
    fraction_evaluate: float = 1.0
    min_fit_hospitals: int = 2
    min_evaluate_hospitals: int = 2
    min_available_hospitals: int = 2
    local_epochs: int = 0
    local_steps: int = -1
    batch_size: int = 0
    learning_rate: float = 0.0
    local_optimizer: str = ""
    sample_rate: float = 0.0
    max_grad_norm: float = 0.0
    class_scaled_clip: bool = False
    run_epsilon: float = 2.0
    dp: bool = True
    secagg: bool = True
    secagg_num_shares: float = 1.0
    secagg_reconstruction_threshold: float = 0.67
    min_secagg_hospitals: int = 3
    # hospitals send updates (wire.update_of): |update| stays below ~1 in every
    # recipe of shared_models/recipe.py, so +-2 resolves them 4x finer than the
    # +-8 whole weights needed
    secagg_clipping_range: float = 2.0
    secagg_quantization_range: int = 4194304
    secagg_max_weight: float = 20000.0
    secagg_timeout: float = 300.0
    server_eval_data: str = ""
    hospitals_file: str = ""
    run_dir: str = "runs/flwr"
    run_name: str = ""
    resume: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):  # inf or nan passes every comparison below
            value = getattr(self, f.name)
            if isinstance(value, float):
                _check(math.isfinite(value), _kebab(f.name), value, "a finite number")
        _check(self.task in TASKS, "task", self.task, f"one of {', '.join(TASKS)}")
        _check(
            self.strategy in ("", *STRATEGIES),
            "strategy",
            self.strategy,
            f"one of {', '.join(STRATEGIES)} (or empty for the task's)",
        )
        _check(
            self.server_lr_schedule in ("", *SCHEDULES),
            "server-lr-schedule",
            self.server_lr_schedule,
            f"one of {', '.join(SCHEDULES)} (or empty for the task's)",
        )
        _check(
            self.local_optimizer in ("", "sgd", "adam"),
            "local-optimizer",
            self.local_optimizer,
            "sgd or adam (or empty for the task's)",
        )
        _check(
            self.num_server_rounds >= 0,
            "num-server-rounds",
            self.num_server_rounds,
            ">= 1 (or 0 for the task's)",
        )
        _check(
            0 <= self.sample_rate <= 1,
            "sample-rate",
            self.sample_rate,
            "in (0, 1] (or 0 for the task's)",
        )
        for key in ("fraction_fit", "fraction_evaluate"):
            value = getattr(self, key)
            _check(0 < value <= 1, _kebab(key), value, "in (0, 1]")
        for key in (
            "min_fit_hospitals",
            "min_evaluate_hospitals",
            "min_available_hospitals",
        ):
            _check(getattr(self, key) >= 1, _kebab(key), getattr(self, key), ">= 1")
        _check(
            self.local_steps >= -1,
            "local-steps",
            self.local_steps,
            ">= 1, 0 for local-epochs epochs, or -1 for the task's",
        )
        for key in ("local_epochs", "batch_size"):
            value = getattr(self, key)
            _check(value >= 0, _kebab(key), value, ">= 1 (or 0 for the task's)")
        for key in ("learning_rate", "max_grad_norm", "server_learning_rate"):
            value = getattr(self, key)
            _check(value >= 0, _kebab(key), value, "> 0 (or 0 for the task's)")
        for key in (
            "run_epsilon",
            "secagg_clipping_range",
            "secagg_max_weight",
            "secagg_timeout",
        ):
            _check(getattr(self, key) > 0, _kebab(key), getattr(self, key), "> 0")
        _check(self.proximal_mu >= 0, "proximal-mu", self.proximal_mu, ">= 0")
        _check(
            self.min_secagg_hospitals >= 2,
            "min-secagg-hospitals",
            self.min_secagg_hospitals,
            ">= 2 (with 1 the masked sum is that hospital's update)",
        )
        self._check_secagg()

    def _check_secagg(self) -> None:
        """SecAgg+'s settings, by Flower's own rules (its workflow's checks)
        and fedcare's margin: a reconstruction threshold above half the
        shares, so no one party can collect both of a hospital's secrets."""
        shares, threshold = self.secagg_shares()
        _check(
            (0 < shares <= 1) or (isinstance(shares, int) and shares >= 3),
            "secagg-num-shares",
            self.secagg_num_shares,
            "a fraction in (0, 1] of the sampled hospitals, or a count >= 3",
        )
        _check(
            (0.5 < threshold <= 1)
            if isinstance(threshold, float)
            else threshold > shares / 2
            if isinstance(shares, int)
            else threshold >= 2,
            "secagg-reconstruction-threshold",
            self.secagg_reconstruction_threshold,
            "a fraction in (0.5, 1] of the shares, or a count above half of "
            "secagg-num-shares (and below it)",
        )
        try:  # Flower's own checks, now rather than at the first round
            from flwr.server.workflow import SecAggPlusWorkflow

            SecAggPlusWorkflow(
                num_shares=shares,
                reconstruction_threshold=threshold,
                max_weight=self.secagg_max_weight,
                clipping_range=self.secagg_clipping_range,
                quantization_range=self.secagg_quantization_range,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"run-config secagg-*: Flower's SecAgg+ refuses these settings: {exc}"
            ) from None

    def secagg_shares(self) -> tuple[int | float, int | float]:
        """(num_shares, reconstruction_threshold) as Flower reads them: a float
        <= 1 is a fraction (of the sampled hospitals; of the shares), a
        larger whole number a count."""
        return _count_or_fraction(self.secagg_num_shares), _count_or_fraction(
            self.secagg_reconstruction_threshold
        )

    @classmethod
    def from_run_config(cls, raw: dict[str, Any]) -> RunConfig:
        """Parse Flower's ``context.run_config`` (kebab-case), resolved; unknown
        keys are errors."""
        known = {_kebab(f.name): f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown run-config key(s) {unknown}; known: {sorted(known)}"
            )
        values = {}
        for key, value in raw.items():
            field = known[key]
            values[field.name] = _coerce(key, value, type(getattr(cls, field.name)))
        return cls(**values).resolved()

    def resolved(self) -> RunConfig:
        """This config with every unset training key taken from the task's recipe.

        Idempotent. The optimiser keys are resolved as a group: a strategy
        other than the recipe's keeps the optimiser that strategy needs
        (FedAdam: plain SGD at 1.0 at the hospitals, Adam at the server;
        FedAvg/FedProx: Adam at the hospitals, at the rate the recipe uses
        alone), never the other strategy's learning rates. ``batch-size``
        stays 0 when a ``sample-rate`` of each hospital's patients is asked
        for (or is the recipe's).
        """
        recipe = recipe_of(self.task)
        strategy = self.strategy or recipe.strategy
        same = strategy == recipe.strategy
        optimizer = self.local_optimizer or (
            recipe.local_optimizer if same else LOCAL_OPTIMIZER[strategy]
        )
        alone_lr = recipe.alone_lr or recipe.server_lr
        if optimizer == recipe.local_optimizer and same:
            local_lr = recipe.local_lr
        else:
            local_lr = 1.0 if optimizer == "sgd" else alone_lr
        server_lr = recipe.server_lr if same else FEDADAM_SERVER_LR
        schedule = recipe.server_lr_schedule if same else "const"
        batch = self.batch_size or (0 if self.sample_rate else recipe.batch_size)
        return replace(
            self,
            num_server_rounds=self.num_server_rounds or recipe.rounds,
            strategy=strategy,
            server_learning_rate=self.server_learning_rate or server_lr,
            server_lr_schedule=self.server_lr_schedule or schedule,
            local_epochs=self.local_epochs or recipe.local_epochs,
            local_steps=self._local_steps(recipe.local_steps),
            batch_size=batch,
            learning_rate=self.learning_rate or local_lr,
            local_optimizer=optimizer,
            sample_rate=self.sample_rate or recipe.sample_rate,
            max_grad_norm=self.max_grad_norm or recipe.max_grad_norm,
        )

    def for_unit(self, unit: str) -> RunConfig:
        """This config with its unset keys taken from the recipe's variant for
        ``unit`` (``example``: the recipe's ``example`` keys), when every
        hospital protects that unit, as in ``fedcare simulate``; then resolve.
        Keys the operator set are kept."""
        keys = recipe_of(self.task).example if unit == "example" else {}
        unset = {
            name: value
            for name, value in ((k.replace("-", "_"), v) for k, v in keys.items())
            if (
                self._local_steps(-1) < 0
                if name == "local_steps"
                else not getattr(self, name)
            )
        }
        return replace(self, **unset).resolved()

    def _local_steps(self, recipes: int) -> int:
        """DP steps per round: the operator's (0 = ``local-epochs`` epochs);
        0 when they set ``local-epochs`` but no steps (they asked for epochs);
        else ``recipes``."""
        if self.local_steps >= 0:
            return self.local_steps
        return 0 if self.local_epochs else recipes

    def training_keys(self) -> dict[str, Any]:
        """The resolved keys that decide how hospitals train (compared on resume)."""
        run = self.resolved()
        return {
            _kebab(k): getattr(run, k)
            for k in (
                "task",
                "num_server_rounds",
                "strategy",
                "server_learning_rate",
                "server_lr_schedule",
                "local_epochs",
                "local_steps",
                "batch_size",
                "learning_rate",
                "local_optimizer",
                "sample_rate",
                "max_grad_norm",
                "class_scaled_clip",
                "dp",
            )
        }

    def to_run_config(self) -> dict[str, Any]:
        return {_kebab(f.name): getattr(self, f.name) for f in fields(self)}


def _count_or_fraction(value: float) -> int | float:
    if value > 1 and float(value).is_integer():
        return int(value)
    return float(value)


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"run-config {key} = {value!r}: expected {expected}")


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
    elif kind is int and not isinstance(value, bool):
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif kind is float and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    elif kind is str:
        return str(value)
    raise ConfigError(f"run-config {key} = {value!r}: expected a {kind.__name__}")
