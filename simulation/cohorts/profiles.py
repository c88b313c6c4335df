"""Per-hospital parameters, derived deterministically from ``(seed, hospital_id)``.

Hospitals are deliberately non-IID: they differ in size, sampling rate, mains
frequency, noise, heart-rate range, prevalence of ectopy, ICU case mix and how
often the nurses chart vitals. An optional Dirichlet label skew (``skew.py``)
redistributes ectopy and deterioration across the cohort on top of that.

Sizes follow a real hospital's archive, because the privacy unit is the patient
(patient-level DP needs many patients): at scale 1, 150-450 ECG patients with
one short record each (10 s resting ECGs, rhythm strips and Holter excerpts up
to 40 s), 40-80 monitored patients with a 30-60 s session each and 200-400 ICU
stays. ``scale`` multiplies these counts down to the floors in ``FLOORS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared_models.errors import ConfigError
from simulation.cohorts.seeding import rng_for, stable_seed
from simulation.cohorts.skew import apply_label_skew, check_label_skew

GENERATOR_VERSION = "2.0.0"
FS_CHOICES = (250, 360, 500)
# patient counts at scale 1 (lower bound, upper bound inclusive)
ECG_PATIENTS = (150, 450)
SESSIONS = (40, 80)
STAYS = (200, 400)
# the fewest of each a hospital gets at any scale: enough patients for a
# 70/15/15 split by patient and for DP-SGD to sample patients
FLOORS = {"ecg": 30, "signals": 12, "vitals": 40}


@dataclass(frozen=True)
class HospitalProfile:
    """Everything that makes one synthetic hospital different from another."""

    hospital_id: int
    seed: int
    scale: float
    # ECG department
    n_ecg_patients: int
    fs: int
    mains_hz: int
    record_seconds: tuple[float, float]
    resting_ecg_fraction: float  # records of exactly record_seconds[0] (10 s)
    hr_range: tuple[float, float]
    pvc_patient_fraction: float
    pvc_burden_mean: float
    frequent_ectopy_fraction: float  # of PVC patients: bigeminy, 30-45 % V
    multifocal_fraction: float
    apc_rate: float
    fusion_rate: float
    baseline_wander_mv: float
    emg_noise_mv: float
    mains_noise_mv: float
    motion_bursts_per_min: float
    # anomaly-detection monitoring sessions
    n_sessions: int
    signals_fs: float
    session_seconds: tuple[float, float]
    anomaly_fraction: tuple[float, float]
    # ICU vitals
    n_stays: int
    deterioration_prevalence: float
    severity_beta: tuple[float, float]
    vitals_interval_hours: float
    missing_rate: float
    artefact_rate: float
    second_stay_fraction: float
    # Dirichlet label skew (None without it; then left out of hospital.json)
    label_skew: float | None = None
    label_share: float | None = None
    cohort_size: int | None = None

    def __post_init__(self) -> None:
        if self.fs not in FS_CHOICES:
            raise ConfigError(f"fs={self.fs} is not one of {FS_CHOICES}.")
        counts = (self.n_ecg_patients, self.n_sessions, self.n_stays)
        if min(counts) < 1:
            raise ConfigError(
                f"hospital {self.hospital_id}: counts {counts} must all be >= 1; "
                "use a larger --scale."
            )

    @property
    def name(self) -> str:
        return hospital_dirname(self.hospital_id)


# A synthetic cohort's largest size; ids from 100 on are named hospital_100 ...
MAX_HOSPITALS = 999


def hospital_dirname(hospital_id: int) -> str:
    """``hospital_01`` for id 1: the folder name of the layout contract."""
    return f"hospital_{hospital_id:02d}"


def _scaled(count: float, scale: float, floor: int) -> int:
    return max(floor, int(round(count * scale)))


def hospital_profile(
    hospital_id: int,
    seed: int = 0,
    scale: float = 1.0,
    hospitals: int | None = None,
    label_skew: float | None = None,
) -> HospitalProfile:
    """Derive the profile of hospital ``hospital_id`` (1-based) for ``seed``.

    ``scale`` multiplies the numbers of ECG patients, monitoring sessions and ICU
    stays (CI uses small scales), never below ``FLOORS`` (30 ECG patients, 12
    sessions, 40 stays); every other parameter is independent of it.
    With ``label_skew`` (a Dirichlet alpha) the hospital's ectopy and
    deterioration prevalence follow its share of the cohort of ``hospitals``
    (see :mod:`simulation.cohorts.skew`); without it the profile is unchanged.
    """
    check_label_skew(label_skew, hospitals)
    profile = _base_profile(hospital_id, seed, scale)
    if label_skew is None:
        return profile
    if isinstance(hospitals, bool) or not 1 <= int(hospitals) <= MAX_HOSPITALS:
        raise ConfigError(f"hospitals={hospitals} must be in 1..{MAX_HOSPITALS}.")
    if not 1 <= hospital_id <= hospitals:
        raise ConfigError(
            f"hospital_id={hospital_id} is outside the cohort 1..{hospitals}."
        )
    cohort = [_base_profile(h, seed, scale) for h in range(1, int(hospitals) + 1)]
    return apply_label_skew(profile, cohort, label_skew)


def _base_profile(hospital_id: int, seed: int, scale: float) -> HospitalProfile:
    if isinstance(hospital_id, bool) or not isinstance(hospital_id, int):
        raise ConfigError(f"hospital_id must be an int, got {hospital_id!r}.")
    if not 1 <= hospital_id <= MAX_HOSPITALS:
        raise ConfigError(f"hospital_id={hospital_id} must be in 1..{MAX_HOSPITALS}.")
    if not 0.0 < scale <= 10.0:
        raise ConfigError(f"scale={scale} must be in (0, 10].")
    r = rng_for(seed, hospital_id, "profile")
    # rotate fs through the choices so neighbouring hospitals never share it
    fs = FS_CHOICES[(stable_seed(seed, "fs-offset") + hospital_id) % len(FS_CHOICES)]
    hr_low = float(r.uniform(52, 72))
    return HospitalProfile(
        hospital_id=hospital_id,
        seed=seed,
        scale=scale,
        n_ecg_patients=_scaled(
            r.integers(*ECG_PATIENTS, endpoint=True), scale, FLOORS["ecg"]
        ),
        fs=fs,
        mains_hz=int(r.choice([50, 60])),
        record_seconds=(10.0, 40.0),
        resting_ecg_fraction=round(float(r.uniform(0.3, 0.7)), 3),
        hr_range=(round(hr_low, 1), round(hr_low + float(r.uniform(20, 40)), 1)),
        pvc_patient_fraction=round(float(r.uniform(0.25, 0.8)), 3),
        pvc_burden_mean=round(float(r.uniform(0.06, 0.18)), 3),
        frequent_ectopy_fraction=round(float(r.uniform(0.05, 0.2)), 3),
        multifocal_fraction=round(float(r.uniform(0.1, 0.4)), 3),
        apc_rate=round(float(r.uniform(0.002, 0.02)), 4),
        fusion_rate=round(float(r.uniform(0.0, 0.08)), 3),
        baseline_wander_mv=round(float(r.uniform(0.05, 0.3)), 3),
        emg_noise_mv=round(float(r.uniform(0.005, 0.03)), 4),
        mains_noise_mv=round(float(r.uniform(0.0, 0.03)), 4),
        motion_bursts_per_min=round(float(r.uniform(0.0, 0.5)), 3),
        n_sessions=_scaled(
            r.integers(*SESSIONS, endpoint=True), scale, FLOORS["signals"]
        ),
        signals_fs=25.0,
        session_seconds=(30.0, 60.0),
        anomaly_fraction=(0.01, 0.05),
        n_stays=_scaled(r.integers(*STAYS, endpoint=True), scale, FLOORS["vitals"]),
        deterioration_prevalence=round(float(r.uniform(0.05, 0.30)), 3),
        severity_beta=(round(float(r.uniform(1.5, 3.5)), 2), 3.0),
        vitals_interval_hours=round(float(r.uniform(1.0, 4.0)), 2),
        missing_rate=round(float(r.uniform(0.02, 0.12)), 3),
        artefact_rate=round(float(r.uniform(0.002, 0.01)), 4),
        second_stay_fraction=round(float(r.uniform(0.05, 0.25)), 3),
    )
