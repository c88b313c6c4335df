"""The federation's run configuration, parsed once into a validated dataclass.

Keys are Flower's kebab-case ``[tool.flwr.app.config]`` keys. The defaults
below are the single source of truth: ``pyproject.toml`` mirrors them (a test
checks it) and ``fedcare simulate`` starts from them. Handlers never read raw
keys; they get a :class:`RunConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from client.errors import ConfigError

TASKS = (
    "ecg-arrhythmia",
    "ecg-anomaly",
    "signal-anomaly",
    "icu-deterioration",
    "icu-los",
)
STRATEGIES = ("fedavg", "fedprox", "fedadam")


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one federated run (see README, "Run configuration")."""

    task: str = "ecg-arrhythmia"
    num_server_rounds: int = 4
    strategy: str = "fedavg"
    proximal_mu: float = 0.0
    server_learning_rate: float = 0.05
    fraction_fit: float = 1.0
    fraction_evaluate: float = 1.0
    min_fit_hospitals: int = 2
    min_evaluate_hospitals: int = 2
    min_available_hospitals: int = 2
    local_epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 0.001
    max_grad_norm: float = 1.0
    run_epsilon: float = 2.0
    dp: bool = True
    secagg: bool = True
    secagg_num_shares: int = 3
    secagg_reconstruction_threshold: int = 2
    secagg_clipping_range: float = 8.0
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
        _check(self.task in TASKS, "task", self.task, f"one of {', '.join(TASKS)}")
        _check(
            self.strategy in STRATEGIES,
            "strategy",
            self.strategy,
            f"one of {', '.join(STRATEGIES)}",
        )
        _check(
            self.num_server_rounds >= 1,
            "num-server-rounds",
            self.num_server_rounds,
            ">= 1",
        )
        for key in ("fraction_fit", "fraction_evaluate"):
            value = getattr(self, key)
            _check(0 < value <= 1, _kebab(key), value, "in (0, 1]")
        for key in (
            "min_fit_hospitals",
            "min_evaluate_hospitals",
            "min_available_hospitals",
            "local_epochs",
            "batch_size",
        ):
            _check(getattr(self, key) >= 1, _kebab(key), getattr(self, key), ">= 1")
        for key in (
            "learning_rate",
            "max_grad_norm",
            "run_epsilon",
            "server_learning_rate",
            "secagg_clipping_range",
            "secagg_max_weight",
            "secagg_timeout",
        ):
            _check(getattr(self, key) > 0, _kebab(key), getattr(self, key), "> 0")
        _check(self.proximal_mu >= 0, "proximal-mu", self.proximal_mu, ">= 0")
        _check(
            self.secagg_num_shares >= 2,
            "secagg-num-shares",
            self.secagg_num_shares,
            ">= 2",
        )
        _check(
            1 <= self.secagg_reconstruction_threshold <= self.secagg_num_shares,
            "secagg-reconstruction-threshold",
            self.secagg_reconstruction_threshold,
            f"between 1 and secagg-num-shares ({self.secagg_num_shares})",
        )

    @classmethod
    def from_run_config(cls, raw: dict[str, Any]) -> RunConfig:
        """Parse Flower's ``context.run_config`` (kebab-case); unknown keys are errors."""
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
        return cls(**values)

    def to_run_config(self) -> dict[str, Any]:
        return {_kebab(f.name): getattr(self, f.name) for f in fields(self)}


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
