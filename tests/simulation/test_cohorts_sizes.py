"""Hospital sizes: many patients (the privacy unit), short records, sane floors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from cohort_measure import header_seconds

from simulation.cohorts import hospital_profile, write_cohort
from simulation.cohorts.profiles import ECG_PATIENTS, FLOORS, SESSIONS, STAYS

HOSPITALS = 5


@pytest.fixture(scope="module")
def default_cohort(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """``fedcare cohort``'s default: five hospitals, seed 0, scale 1."""
    return write_cohort(tmp_path_factory.mktemp("default"), hospitals=HOSPITALS)


def _meta(hospital: Path) -> dict:
    return json.loads((hospital / "hospital.json").read_text())


def test_counts_at_scale_1_vary_within_their_ranges() -> None:
    profiles = [hospital_profile(h, seed=s) for s in (0, 7) for h in range(1, 6)]
    for attr, (low, high) in (
        ("n_ecg_patients", ECG_PATIENTS),
        ("n_sessions", SESSIONS),
        ("n_stays", STAYS),
    ):
        counts = [getattr(p, attr) for p in profiles]
        assert low <= min(counts) and max(counts) <= high, attr
        assert len(set(counts)) >= 8, attr  # non-IID sizes


@pytest.mark.parametrize("scale", [0.2, 0.3])
def test_ci_scales_keep_enough_patients(scale: float) -> None:
    for h in range(1, 6):
        p = hospital_profile(h, seed=0, scale=scale)
        assert p.n_ecg_patients >= 30 and p.n_sessions >= 12 and p.n_stays >= 40


def test_tiny_scales_stop_at_the_floors() -> None:
    p = hospital_profile(3, seed=0, scale=0.01)
    floors = (p.n_ecg_patients, p.n_sessions, p.n_stays)
    assert floors == (FLOORS["ecg"], FLOORS["signals"], FLOORS["vitals"])
    big = hospital_profile(3, seed=0, scale=2.0)
    one = hospital_profile(3, seed=0)
    assert big.n_ecg_patients == 2 * one.n_ecg_patients  # a multiplier above them


def test_default_hospital_has_hundreds_of_ecg_patients(
    default_cohort: list[Path],
) -> None:
    for hospital in default_cohort:
        heads = sorted((hospital / "ecg").glob("*.hea"))
        names = [h.stem for h in heads]
        assert len(names) == _meta(hospital)["profile"]["n_ecg_patients"] >= 150
        assert len(set(names)) == len(names)  # one record, one patient id
        seconds = np.array([header_seconds(h) for h in heads])
        assert 10.0 <= seconds.min() and seconds.max() <= 40.0
        beats = sum(_meta(hospital)["summary"]["ecg"].values())
        assert 2_000 <= beats <= 15_000  # a few thousand beats, as before


def test_every_hospital_has_usable_v_beats(default_cohort: list[Path]) -> None:
    v_beats = []
    for hospital in default_cohort:
        counts = _meta(hospital)["summary"]["ecg"]
        v_beats.append(counts["V"])
        assert counts["V"] >= 150
        assert 0.02 <= counts["V"] / sum(counts.values()) <= 0.15
    # the hospital with the fewest V beats: from many patients, some bigeminy
    poorest = default_cohort[int(np.argmin(v_beats))]
    with_v, bigeminy = 0, 0
    for atr in sorted((poorest / "ecg").glob("*.atr")):
        symbols = "".join(wfdb.rdann(str(atr.with_suffix("")), "atr").symbol)
        with_v += "V" in symbols
        bigeminy += "NVNVNVNV" in symbols
    assert with_v >= 40
    assert bigeminy >= 2


def test_monitoring_sessions_are_many_short_patients(
    default_cohort: list[Path],
) -> None:
    for hospital in default_cohort:
        files = sorted((hospital / "signals").glob("s*.csv"))
        assert 40 <= len(files) <= 80
        summary = _meta(hospital)["summary"]["signals"]
        assert 0.01 <= summary["anomalous_rows"] / summary["rows"] <= 0.06
        assert min(summary[k] for k in ("spike", "level_shift", "flatline")) >= 3


def test_icu_has_hundreds_of_stays_and_some_readmissions(
    default_cohort: list[Path],
) -> None:
    for hospital in default_cohort:
        frame = pd.read_parquet(hospital / "vitals" / "vitals.parquet")
        per_stay = frame.groupby("stay_id")["patient_id"].nunique()
        assert len(per_stay) >= 200 and (per_stay == 1).all()
        stays = frame.groupby("patient_id")["stay_id"].nunique()
        assert set(stays.unique()) <= {1, 2}
        assert 0.02 <= (stays == 2).mean() <= 0.3
        assert frame["patient_id"].min() // 10_000 == _meta(hospital)["id"]


def test_a_cohort_of_100_hospitals_names_and_profiles_each() -> None:
    from simulation.cohorts.profiles import MAX_HOSPITALS, hospital_dirname

    profile = hospital_profile(100, seed=0, scale=0.1, hospitals=100, label_skew=1.0)

    assert hospital_dirname(100) == profile.name == "hospital_100"
    assert hospital_dirname(1) == "hospital_01"  # the layout contract is unchanged
    with pytest.raises(Exception, match=f"1..{MAX_HOSPITALS}"):
        hospital_profile(MAX_HOSPITALS + 1)
