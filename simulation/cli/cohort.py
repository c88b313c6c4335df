"""``fedcare cohort``: write synthetic hospitals (the embedded default data)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from shared_models.cli import SEED_RANGE, check_output_dir, user_errors
from shared_models.errors import ConfigError


def _parse_kinds(text: str) -> tuple[str, ...]:
    from simulation.cohorts import KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ConfigError(
            f"--kinds {text!r} is not valid: give a comma-separated subset of "
            f"{','.join(KINDS)}."
        )
    return kinds


def _line(summary: dict) -> str:
    parts = [summary["name"]]
    ecg = summary["summary"].get("ecg")
    if ecg is not None:
        beats = sum(ecg.values())
        n_v = ecg.get("V", 0)
        pct_v = 100.0 * n_v / max(beats, 1)
        fs = summary["profile"]["fs"]
        n = summary["profile"]["n_ecg_patients"]
        parts.append(f"patients {n}, beats {beats}, V {n_v} ({pct_v:.1f}%), fs {fs} Hz")
    sig = summary["summary"].get("signals")
    if sig is not None:
        pct = 100.0 * sig["anomalous_rows"] / max(sig["rows"], 1)
        sessions = summary["profile"]["n_sessions"]
        parts.append(f"sessions {sessions}, anomalous rows {pct:.1f}%")
    vit = summary["summary"].get("vitals")
    if vit is not None:
        pct = 100.0 * vit["deteriorated"] / max(vit["stays"], 1)
        parts.append(f"stays {vit['stays']}, deterioration {pct:.1f}%")
    share = summary["profile"].get("label_share")
    if share is not None:
        parts.append(f"label share {share:.3f}")
    return ": ".join(parts[:2]) + "".join(f"; {p}" for p in parts[2:])


_HOSPITALS = typer.Option(
    5, "--hospitals", help="Number of hospitals to write (hospital_01..)."
)
_OUT = typer.Option(..., "--out", help="Folder that receives the hospital_XX folders.")
_SEED = typer.Option(
    0, "--seed", help="Cohort seed; same seed, same bytes.", **SEED_RANGE
)
_SCALE = typer.Option(
    1.0,
    "--scale",
    help=(
        "Multiplies the patient counts (scale 1: 150-450 ECG patients, 40-80 "
        "monitored patients, 200-400 ICU stays per hospital), never below 30, "
        "12 and 40 (e.g. 0.2 for CI)."
    ),
)
_OVERWRITE = typer.Option(
    False, "--overwrite", help="Replace hospital folders that already exist."
)
_KINDS = typer.Option(
    "ecg,signals,vitals",
    "--kinds",
    help="Comma-separated data kinds to write: ecg, signals, vitals.",
)
_LABEL_SKEW = typer.Option(
    None,
    "--label-skew",
    metavar="ALPHA",
    help=(
        "Dirichlet label skew across hospitals: alpha > 0; 0.1-0.5 puts most "
        "ectopy and deterioration in a few hospitals, 100 is close to IID. "
        "Off by default."
    ),
)


_HOSPITALS_FILE = typer.Option(
    None,
    "--hospitals-file",
    metavar="FILE",
    help=(
        "Also write FILE: the JSON list of the hospitals' node configs "
        "(hospital-id, data-path, ledger-path, epsilon, delta), for the run "
        "config key hospitals-file of `flwr run` (default: not written)."
    ),
)
_LEDGER_DIR = typer.Option(
    None,
    "--ledger-dir",
    help=(
        "With --hospitals-file: where the hospitals' ledgers go, "
        "<hospital>.jsonl (default: ledgers/ beside FILE)."
    ),
)
_EPSILON = typer.Option(
    8.0, "--epsilon", help="With --hospitals-file: each hospital's total budget."
)
_DELTA = typer.Option(
    1e-5, "--delta", help="With --hospitals-file: each hospital's delta."
)


def command(
    hospitals: int = _HOSPITALS,
    out: Path = _OUT,
    seed: int = _SEED,
    scale: float = _SCALE,
    overwrite: bool = _OVERWRITE,
    kinds: str = _KINDS,
    label_skew: float | None = _LABEL_SKEW,
    hospitals_file: Path | None = _HOSPITALS_FILE,
    ledger_dir: Path | None = _LEDGER_DIR,
    epsilon: float = _EPSILON,
    delta: float = _DELTA,
) -> None:
    """Write synthetic hospitals: WFDB ECG, anomaly CSVs and ICU vitals."""
    from simulation.cohorts import read_summary, write_cohort
    from simulation.hospitals_file import check_hospitals_file, write_hospitals_file

    with user_errors():
        chosen = _parse_kinds(kinds)
        check_output_dir(out)
        ledgers = ledger_dir
        if hospitals_file is not None:
            ledgers = ledger_dir or hospitals_file.parent / "ledgers"
            check_hospitals_file(hospitals_file, ledgers, epsilon, delta)
        elif ledger_dir is not None:
            raise ConfigError("--ledger-dir is for --hospitals-file; add it")
        start = time.perf_counter()
        paths = write_cohort(
            out,
            hospitals=hospitals,
            seed=seed,
            scale=scale,
            kinds=chosen,
            overwrite=overwrite,
            label_skew=label_skew,
        )
        for path in paths:
            typer.echo(_line(read_summary(path)))
        typer.echo(
            f"wrote {len(paths)} hospitals to {out} in "
            f"{time.perf_counter() - start:.1f} s"
        )
        if hospitals_file is not None and ledgers is not None:
            write_hospitals_file(hospitals_file, paths, ledgers, epsilon, delta)
            typer.echo(f"wrote {hospitals_file} (ledgers in {ledgers})")
