"""Write whole synthetic hospitals, atomically, in the agreed folder layout.

``OUT/hospital_XX/`` holds ``hospital.json``, ``ecg/`` (WFDB), ``signals/``
(anomaly CSVs) and ``vitals/vitals.parquet``. Each hospital is first written to
``OUT/.hospital_XX.tmp`` and renamed into place, so an interrupted run never
leaves half a hospital behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from shared_models.errors import ConfigError, DataError
from simulation.cohorts.ecg import write_ecg
from simulation.cohorts.profiles import (
    GENERATOR_VERSION,
    MAX_HOSPITALS,
    HospitalProfile,
    hospital_dirname,
    hospital_profile,
)
from simulation.cohorts.signals import write_signals
from simulation.cohorts.skew import check_label_skew
from simulation.cohorts.vitals import write_vitals

logger = logging.getLogger(__name__)

KINDS = ("ecg", "signals", "vitals")
_WRITERS: dict[str, tuple[str, Callable[[Path, HospitalProfile], dict[str, Any]]]] = {
    "ecg": ("ecg", write_ecg),
    "signals": ("signals", write_signals),
    "vitals": ("vitals", write_vitals),
}


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(kinds))
    unknown = [k for k in chosen if k not in KINDS]
    if unknown or not chosen:
        raise ConfigError(
            f"kinds {list(chosen)} are not valid: choose one or more of {list(KINDS)}."
        )
    return chosen


def write_hospital(
    out_dir: Path,
    hospital_id: int,
    seed: int = 0,
    scale: float = 1.0,
    kinds: Iterable[str] = KINDS,
    overwrite: bool = False,
    hospitals: int | None = None,
    label_skew: float | None = None,
) -> Path:
    """Write hospital ``hospital_id`` under ``out_dir``; return its folder.

    ``label_skew`` (a Dirichlet alpha, with the cohort size ``hospitals``) skews
    ectopy and deterioration across hospitals; see :func:`hospital_profile`.
    Raises :class:`DataError` if the folder exists and ``overwrite`` is false.
    """
    chosen = _check_kinds(kinds)
    profile = hospital_profile(
        hospital_id, seed=seed, scale=scale, hospitals=hospitals, label_skew=label_skew
    )
    out_dir = Path(out_dir)
    final = out_dir / profile.name
    if final.exists() and not overwrite:
        raise DataError(
            f"{final} already exists; pass overwrite=True (--overwrite) to replace it."
        )
    tmp = out_dir / f".{profile.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        summary = {k: _WRITERS[k][1](tmp / _WRITERS[k][0], profile) for k in chosen}
        meta = {
            "id": hospital_id,
            "name": profile.name,
            "seed": seed,
            "generator": "fedcare.simulation.cohorts",
            "generator_version": GENERATOR_VERSION,
            "kinds": list(chosen),
            "profile": _profile_json(profile),
            "summary": summary,
        }
        text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
        (tmp / "hospital.json").write_text(text, encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %s (%s)", final, ", ".join(chosen))
    return final


def _profile_json(profile: HospitalProfile) -> dict[str, Any]:
    """The profile as JSON; the label-skew fields only when skew is on."""
    data = asdict(profile)
    if profile.label_skew is None:
        for key in ("label_skew", "label_share", "cohort_size"):
            del data[key]
    return data


def write_cohort(
    out_dir: Path,
    hospitals: int = 5,
    seed: int = 0,
    scale: float = 1.0,
    kinds: Iterable[str] = KINDS,
    overwrite: bool = False,
    workers: int | None = None,
    label_skew: float | None = None,
) -> list[Path]:
    """Write hospitals ``1..hospitals``; existing ones are refused up front.

    ``label_skew`` is the alpha of a Dirichlet label skew over the hospitals
    (small, e.g. 0.3: strongly non-IID ectopy and deterioration; 100: near IID).

    Hospitals are written in parallel by ``workers`` processes (default: one per
    CPU); the files do not depend on it.
    """
    if isinstance(hospitals, bool) or not 1 <= int(hospitals) <= MAX_HOSPITALS:
        raise ConfigError(f"hospitals={hospitals} must be in 1..{MAX_HOSPITALS}.")
    chosen = _check_kinds(kinds)
    check_label_skew(label_skew, hospitals)
    out_dir = Path(out_dir)
    existing = [
        hospital_dirname(h)
        for h in range(1, hospitals + 1)
        if (out_dir / hospital_dirname(h)).exists()
    ]
    if existing and not overwrite:
        raise DataError(
            f"{out_dir} already holds {', '.join(existing)}; pass --overwrite to "
            "replace them or choose another --out."
        )
    ids = list(range(1, hospitals + 1))
    n_workers = min(len(ids), workers or os.cpu_count() or 1)
    job = partial(
        write_hospital,
        out_dir,
        seed=seed,
        scale=scale,
        kinds=chosen,
        overwrite=overwrite,
        hospitals=hospitals if label_skew is not None else None,
        label_skew=label_skew,
    )
    if n_workers <= 1:
        return [job(h) for h in ids]
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        return list(pool.map(job, ids))


def read_summary(hospital_dir: Path) -> dict[str, Any]:
    """The ``hospital.json`` of a written hospital."""
    return json.loads((Path(hospital_dir) / "hospital.json").read_text("utf-8"))
