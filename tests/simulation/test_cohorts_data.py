"""Seeding, layout, atomic writes, anomaly labels, vitals drift and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from shared_models.errors import ConfigError, DataError
from simulation.cli.cohort import command
from simulation.cohorts import cohort as cohort_module
from simulation.cohorts import hospital_profile, stable_seed, write_hospital
from simulation.cohorts.profiles import ECG_PATIENTS, FLOORS, SESSIONS, STAYS
from simulation.cohorts.signals import synthesize_session
from simulation.cohorts.vitals import vitals_frame


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_stable_seed_is_pinned_and_part_sensitive() -> None:
    assert stable_seed(0, 1, "ecg") == stable_seed(0, 1, "ecg")
    assert stable_seed(0, 1, "ecg") != stable_seed(0, 2, "ecg")
    assert stable_seed(1, 0) != stable_seed(10)
    assert stable_seed("a") == 5470344894887002147


def test_same_seed_same_bytes_other_id_differs(tmp_path: Path) -> None:
    a = write_hospital(tmp_path / "a", 1, seed=5, scale=0.15)
    b = write_hospital(tmp_path / "b", 1, seed=5, scale=0.15)
    c = write_hospital(tmp_path / "c", 2, seed=5, scale=0.15)
    assert _files(a) == _files(b)
    assert _files(a)["ecg/p0001.dat"] != _files(c)["ecg/p0001.dat"]
    assert _files(a)["signals/s001.csv"] != _files(c)["signals/s001.csv"]


def test_layout_and_hospital_json(small_cohort: list[Path]) -> None:
    assert [p.name for p in small_cohort] == [f"hospital_0{i}" for i in (1, 2, 3)]
    for folder in small_cohort:
        meta = json.loads((folder / "hospital.json").read_text())
        profile = hospital_profile(meta["id"], seed=7, scale=0.5)
        assert meta["profile"]["fs"] == profile.fs
        assert meta["generator_version"]
        n = profile.n_ecg_patients
        names = {p.name for p in (folder / "ecg").iterdir()}
        assert names == {
            f"p{k:04d}.{e}" for k in range(1, n + 1) for e in ("hea", "dat", "atr")
        }
        assert len(list((folder / "signals").glob("s*.csv"))) == profile.n_sessions
        assert (folder / "vitals" / "vitals.parquet").is_file()
    assert not list(small_cohort[0].parent.glob(".*tmp"))


def test_refuses_overwrite_and_is_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_hospital(tmp_path, 1, scale=0.1, kinds=("vitals",))
    with pytest.raises(DataError, match="already exists"):
        write_hospital(tmp_path, 1, scale=0.1, kinds=("vitals",))

    def boom(*_: object) -> dict:
        raise RuntimeError("disk full")

    monkeypatch.setitem(cohort_module._WRITERS, "signals", ("signals", boom))
    with pytest.raises(RuntimeError):
        write_hospital(tmp_path, 2, scale=0.1, kinds=("vitals", "signals"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hospital_01"]
    with pytest.raises(ConfigError, match="kinds"):
        write_hospital(tmp_path, 3, kinds=("ecg", "xray"))


def test_signal_labels_cover_injected_segments(small_cohort: list[Path]) -> None:
    profile = hospital_profile(1, seed=7, scale=0.5)
    for k in range(1, profile.n_sessions + 1):
        session = synthesize_session(profile, k)
        frame = pd.read_csv(small_cohort[0] / "signals" / f"{session.name}.csv")
        assert list(frame.columns) == ["timestamp", "abp", "resp", "is_anomaly"]
        assert 750 <= len(frame) <= 1500  # 30-60 s at 25 Hz
        assert np.all(np.diff(frame["timestamp"]) > 0)
        assert any(seg.kind != "spike" for seg in session.segments)
        expected = np.zeros(len(frame), dtype=int)
        for seg in session.segments:
            expected[seg.start : seg.stop] = 1
            if seg.kind == "flatline":
                assert frame["abp"].iloc[seg.start : seg.stop].nunique() == 1
        assert np.array_equal(frame["is_anomaly"].to_numpy(), expected)
        assert 0.008 <= expected.mean() <= 0.06


def test_vitals_schema_and_deterioration_drift() -> None:
    frame = vitals_frame(hospital_profile(3, seed=1))
    assert pd.api.types.is_datetime64_any_dtype(frame["timestamp"])
    assert (frame["length_of_stay_days"] > 0).all()
    stays = frame.groupby("stay_id")
    assert (stays["deterioration"].nunique() == 1).all()
    assert 200 <= stays.ngroups <= 400
    assert frame["heart_rate"].isna().any()
    hours = (
        frame["timestamp"] - stays["timestamp"].transform("min")
    ).dt.total_seconds()
    frame = frame.assign(late=hours / 3600 >= 36, early=hours / 3600 < 12)
    late = (
        frame[frame["late"]].groupby("stay_id")[["heart_rate", "spo2", "sbp"]].median()
    )
    early = (
        frame[frame["early"]].groupby("stay_id")[["heart_rate", "spo2", "sbp"]].median()
    )
    change = (late - early).dropna().join(stays["deterioration"].first())
    det = change[change["deterioration"] == 1].median()
    stable = change[change["deterioration"] == 0].median()
    assert det["heart_rate"] > stable["heart_rate"] + 5
    assert det["spo2"] < stable["spo2"] - 1
    assert det["sbp"] < stable["sbp"] - 5
    los = stays[["length_of_stay_days", "deterioration"]].first()
    assert (
        los.groupby("deterioration")["length_of_stay_days"].median().diff().iloc[-1] > 0
    )


def test_cli_writes_reports_and_refuses(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(command)
    runner = CliRunner()
    args = ["--out", str(tmp_path), "--hospitals", "2", "--scale", "0.1"]
    result = runner.invoke(app, [*args, "--kinds", "ecg,vitals"])
    assert result.exit_code == 0, result.output
    assert "hospital_02: patients" in result.output and "deterioration" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    rewrite = runner.invoke(app, [*args, "--kinds", "signals,vitals", "--overwrite"])
    assert rewrite.exit_code == 0, rewrite.output
    bad = runner.invoke(app, [*args, "--kinds", "ecg,xray", "--overwrite"])
    assert bad.exit_code == 2 and "xray" in bad.output
    help_result = runner.invoke(app, ["--help"])
    assert help_result.exit_code == 0
    text = " ".join(help_result.output.replace("│", " ").split())
    low, high = ECG_PATIENTS
    assert f"{low}-{high} ECG patients" in text  # --scale's help is up to date
    assert f"{SESSIONS[0]}-{SESSIONS[1]} monitored" in text
    assert f"{STAYS[0]}-{STAYS[1]} ICU stays" in text
    assert "never below {ecg}, {signals} and {vitals}".format(**FLOORS) in text
