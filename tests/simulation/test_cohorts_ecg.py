"""The synthetic ECG looks like MIT-BIH: format, annotations, beat morphology."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import wfdb
from cohort_measure import (
    header_seconds,
    p_wave_mv,
    qrs_width_s,
    read,
    record_paths,
    template,
)

from simulation.cohorts.ecg import synthesize_record
from simulation.cohorts.profiles import hospital_profile


def test_records_are_mitbih_style_wfdb(small_cohort: list[Path]) -> None:
    for path in record_paths(small_cohort, per_hospital=40):
        rec = wfdb.rdrecord(str(path))
        ann = wfdb.rdann(str(path), "atr")
        assert rec.sig_name == ["MLII", "V1"]
        assert rec.units == ["mV", "mV"]
        assert rec.fmt == ["212", "212"]
        assert rec.adc_gain == [200.0, 200.0] and rec.baseline == [1024, 1024]
        assert rec.fs in (250, 360, 500)
        assert 10 <= rec.sig_len / rec.fs <= 40
        assert rec.comments[0].endswith("synthetic")
        assert ann.symbol[0] == "+" and ann.sample[0] == 0
        assert ann.aux_note[0].rstrip("\x00") == "(N"
        assert set(ann.symbol[1:]) <= {"N", "V", "A", "F"}
        assert np.all(np.diff(ann.sample) > 0)
        assert ann.sample[-1] < rec.sig_len


def test_every_record_is_a_short_strip(small_cohort: list[Path]) -> None:
    seconds = [
        header_seconds(p.with_suffix(".hea")) for p in record_paths(small_cohort)
    ]
    assert 10.0 <= min(seconds) and max(seconds) <= 40.0
    resting = np.mean(np.isclose(seconds, 10.0))  # 10 s resting ECGs
    assert 0.2 < resting < 0.8
    assert np.percentile(seconds, 90) > 30.0  # and rhythm strips up to 40 s


def test_annotations_sit_on_r_peaks(small_cohort: list[Path]) -> None:
    hits, total = 0, 0
    for path in record_paths(small_cohort, per_hospital=60):
        mlii, fs, samples, _ = read(path)
        half = int(0.05 * fs)
        s = samples[(samples > half) & (samples < len(mlii) - half)]
        windows = np.abs(mlii[s[:, None] + np.arange(-half, half + 1)])
        off = np.abs(np.argmax(windows, axis=1) - half)
        hits += int(np.sum(off <= int(0.012 * fs)))
        total += len(s)
    assert total > 1000
    assert hits / total > 0.97


def test_pvcs_are_wide_premature_without_p_wave(small_cohort: list[Path]) -> None:
    widths_n, widths_v, p_n, p_v, measured = [], [], [], [], 0
    for path in record_paths(small_cohort):
        if wfdb.rdann(str(path), "atr").symbol.count("V") < 4:
            continue  # short strips: most have no or few PVCs
        mlii, fs, samples, symbols = read(path)
        rr_prev = np.diff(samples, prepend=0) / fs
        late_v = (symbols == "V") & (rr_prev >= 0.6)  # clear of the previous T wave
        if late_v.sum() < 4:
            continue
        measured += 1
        tpl_n = template(mlii, fs, samples[symbols == "N"])
        tpl_v = template(mlii, fs, samples[late_v])
        widths_n.append(qrs_width_s(tpl_n, fs, 0.1))
        widths_v.append(qrs_width_s(tpl_v, fs, 0.1))
        p_n.append(p_wave_mv(tpl_n, fs))
        p_v.append(p_wave_mv(tpl_v, fs))
    assert measured >= 5
    assert max(widths_n) < 0.110
    assert min(widths_v) > 0.120
    assert np.median(p_v) < 0.35 * np.median(p_n)
    assert np.mean(np.asarray(p_v) < np.asarray(p_n)) >= 0.9


def test_pvc_timing_premature_with_compensatory_pause() -> None:
    profile = hospital_profile(2, seed=3)
    ratios, pauses = [], []
    for patient in range(1, 81):
        rec = synthesize_record(profile, patient)
        s, sym = rec.ann_samples, rec.symbols
        for i in np.flatnonzero(sym == "V"):
            if 2 <= i < len(sym) - 1 and sym[i - 1] == sym[i - 2] == sym[i + 1] == "N":
                rr_normal = s[i - 1] - s[i - 2]
                ratios.append((s[i] - s[i - 1]) / rr_normal)
                pauses.append((s[i + 1] - s[i - 1]) / rr_normal)
    assert len(ratios) > 20
    assert 0.45 < np.median(ratios) < 0.82
    assert np.percentile(ratios, 90) < 0.9
    assert abs(np.median(pauses) - 2.0) < 0.1


def test_hospitals_differ_in_ectopy_and_fs() -> None:
    profiles = [hospital_profile(h, seed=0) for h in range(1, 6)]
    assert len({p.fs for p in profiles}) == 3
    assert len({p.mains_hz for p in profiles}) >= 1
    burden = [p.pvc_burden_mean * p.pvc_patient_fraction for p in profiles]
    assert max(burden) > 1.5 * min(burden)
    v_share = []
    for h in (1, 2):
        profile = hospital_profile(h, seed=0, scale=0.5)
        recs = [synthesize_record(profile, k) for k in range(1, 41)]
        v_share.append(np.mean([np.mean(r.symbols == "V") for r in recs]))
    assert v_share[0] != v_share[1]
