"""``fedcare calibrate``: a model's decision threshold, chosen at this hospital."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shared_models.cli import (
    FORMAT_OPTION,
    SEED_RANGE,
    OutputFormat,
    check_output_dir,
    emit,
    setup_logging,
    user_errors,
)

_MODEL = typer.Option(..., "--model", help="Model directory (card.json + weights).")
_DATA = typer.Option(..., "--data", help="This hospital's folder or data file.")
_OUT = typer.Option(
    None,
    "--out",
    help="Write the calibrated model here (same weights, this hospital's "
    "threshold); keep it at the hospital (default: report only).",
)
_SPLIT_SEED = typer.Option(
    0, "--split-seed", help="Patient split of DATA (as fedcare train).", **SEED_RANGE
)
_FORMAT = FORMAT_OPTION


def command(
    model: Path = _MODEL,
    data: Path = _DATA,
    out: Path = _OUT,
    split_seed: int = _SPLIT_SEED,
    format: OutputFormat = _FORMAT,
) -> None:
    """Choose MODEL's threshold on DATA's validation patients; compare on its test ones.

    A threshold chosen at one hospital (or on the federation's pooled
    validation data) rarely fits another hospital's score distribution. The
    new threshold is a statistic of this hospital's patients, outside any DP
    accounting: the calibrated model should stay at the hospital.
    """
    setup_logging()
    with user_errors():
        from client.pipeline import calibrate_dir

        if out is not None:
            check_output_dir(out)
        payload = calibrate_dir(model, data, out, split_seed)
        emit(payload, format, lambda: _print(payload))


def _print(payload: dict[str, Any]) -> None:
    ex = payload["examples"]
    typer.echo(
        f"{payload['task']}: calibrated on {ex['val']} validation examples of "
        f"{payload['data']}, judged on {ex['test']} test examples"
    )
    for name in ("before", "after"):
        part = payload[name]
        if part["test"] is None:
            typer.echo(f"  {name}: no threshold ({part['threshold_source']})")
            continue
        shown = ", ".join(
            f"{k} {'n/a' if v is None else f'{v:.3f}'}"
            for k, v in part["test"].items()
            if k in ("f1", "precision", "recall", "auroc")
            and (v is None or isinstance(v, float))
        )
        typer.echo(
            f"  {name}: threshold {part['threshold']:.4g} ({part['threshold_source']})"
        )
        typer.echo(f"    test: {shown}")
    if payload["model_dir"]:
        typer.echo(f"wrote {payload['model_dir']}")
