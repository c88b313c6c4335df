"""`validate`: load a hospital's data for a task and summarise what was found."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from client.data.aami import AAMI_CLASSES
from client.data.beats import load_beats
from client.data.paths import resolve_data_path
from client.data.signals import load_signals
from client.data.splits import split_groups
from client.data.vitals import load_vitals
from shared_models.errors import DataError

logger = logging.getLogger(__name__)

TASKS: dict[str, str] = {
    "ecg-arrhythmia": "ecg",
    "ecg-anomaly": "ecg",
    "signal-anomaly": "signals",
    "icu-deterioration": "vitals",
    "icu-los": "vitals",
}


def _split_check(groups: np.ndarray, what: str) -> dict[str, Any]:
    try:
        split = split_groups(groups)
    except DataError as exc:
        return {"by_patient_possible": False, "reason": str(exc)}
    return {
        "by_patient_possible": True,
        "groups": what,
        "examples": {
            "train": len(split.train),
            "val": len(split.val),
            "test": len(split.test),
        },
    }


def _ecg_report(path: Path, task: str) -> dict[str, Any]:
    beats = load_beats(path)
    counts = {c: int((beats.aami == i).sum()) for i, c in enumerate(AAMI_CLASSES)}
    if task == "ecg-anomaly":
        normal = counts["N"]
        balance: dict[str, Any] = {
            "normal": normal,
            "anomalous": len(beats.aami) - normal,
            "per_class": counts,
        }
    else:
        balance = counts
    src = beats.source
    return {
        "format": src["format"],
        "files": src["files"],
        "records": src.get("records", []),
        "patients": len(np.unique(beats.patient.astype(str))),
        "beats": len(beats.aami),
        "beat_length": int(beats.beats.shape[1]),
        "label_balance": balance,
        "sampling_rates": src.get("sampling_rate", {}),
        "lead": src.get("lead"),
        "skipped": src.get("skipped", {}),
        "split": _split_check(beats.patient, "patients"),
    }


def _signal_report(path: Path) -> dict[str, Any]:
    sig = load_signals(path)
    names, rows = np.unique(sig.series.astype(str), return_counts=True)
    balance = None
    if sig.is_anomaly is not None:
        balance = {
            "normal": int((sig.is_anomaly == 0).sum()),
            "anomalous": int(sig.is_anomaly.sum()),
        }
    split = _split_check(sig.series, "series (one file = one patient session)")
    if not split["by_patient_possible"]:
        split["fallback"] = "contiguous time blocks within the series"
    return {
        "format": sig.source["format"],
        "files": sig.source["files"],
        "series": len(names),
        "patients": len(names),
        "rows": int(len(sig.values)),
        "rows_per_series": dict(zip(names.tolist(), rows.tolist(), strict=True)),
        "channels": list(sig.channels),
        "label_balance": balance,
        "train_end": sig.train_end,
        "missing_filled": {
            n: info.get("filled_missing", {})
            for n, info in sig.source["per_series"].items()
        },
        "split": split,
    }


def _vitals_report(path: Path, task: str) -> dict[str, Any]:
    vit = load_vitals(path)
    column = "deterioration" if task == "icu-deterioration" else "length_of_stay_days"
    if column not in vit.labels:
        raise DataError(
            f"{vit.source['files'][0]}: task {task!r} needs a per-stay label column "
            f"{column!r}, which the file does not have; found labels "
            f"{sorted(vit.labels) or 'none'}"
        )
    label = vit.labels[column]
    if column == "deterioration":
        balance: dict[str, Any] = {"0": int((label == 0).sum()), "1": int(label.sum())}
    else:
        balance = {
            "min": float(label.min()),
            "median": float(np.median(label)),
            "max": float(label.max()),
        }
    src = vit.source
    return {
        "format": src["format"],
        "files": src["files"],
        "rows": src["rows"],
        "patients": src["patients"],
        "stays": src["stays"],
        "hours": src["hours"],
        "features": list(vit.features),
        "label_balance": balance,
        "missingness": src["missingness"],
        "time_span_hours": src["time_span_hours"],
        "split": _split_check(vit.patient, "patients"),
    }


def validate(path: str | Path, task: str) -> dict[str, Any]:
    """Load the data a ``task`` needs from ``path``; return a JSON-able report.

    Raises :class:`DataError` when the data cannot be used for the task.
    """
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; expected one of {list(TASKS)}")
    data_path = resolve_data_path(path, TASKS[task])
    if TASKS[task] == "ecg":
        report = _ecg_report(data_path, task)
    elif TASKS[task] == "signals":
        report = _signal_report(data_path)
    else:
        report = _vitals_report(data_path, task)
    logger.info("validated %s for %s", data_path, task)
    return {"task": task, "path": str(data_path), **report}
