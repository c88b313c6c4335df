"""Dirichlet label skew: deterministic shares, real spread of labels, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
import wfdb
from typer.testing import CliRunner

from shared_models.errors import ConfigError
from simulation.cli.cohort import command
from simulation.cohorts import hospital_profile, write_cohort
from simulation.cohorts.skew import DETERIORATION_RANGE, label_shares


def _v_percent(hospital: Path) -> float:
    symbols = np.concatenate(
        [
            np.asarray(wfdb.rdann(str(p.with_suffix("")), "atr").symbol)
            for p in sorted((hospital / "ecg").glob("*.atr"))
        ]
    )
    beats = symbols[symbols != "+"]
    return 100.0 * float(np.mean(beats == "V"))


def test_same_seed_same_shares_independent_of_order() -> None:
    shares = label_shares(4, 6, 0.3)
    assert np.array_equal(shares, label_shares(4, 6, 0.3))
    assert not np.array_equal(shares, label_shares(5, 6, 0.3))
    assert shares.sum() == pytest.approx(1.0)
    backwards = [
        hospital_profile(h, seed=4, scale=0.2, hospitals=6, label_skew=0.3)
        for h in range(6, 0, -1)
    ]
    got = [p.label_share for p in reversed(backwards)]
    assert got == pytest.approx(shares.tolist(), abs=1e-6)
    for p in backwards:
        assert p.label_skew == 0.3 and p.cohort_size == 6
        assert DETERIORATION_RANGE[0] <= p.deterioration_prevalence
        assert p.deterioration_prevalence <= DETERIORATION_RANGE[1]


def test_without_skew_the_profile_is_unchanged() -> None:
    plain = hospital_profile(2, seed=3, scale=0.5)
    assert plain == hospital_profile(2, seed=3, scale=0.5, hospitals=5)
    assert plain.label_skew is None and plain.label_share is None
    skewed = hospital_profile(2, seed=3, scale=0.5, hospitals=5, label_skew=0.3)
    assert skewed.fs == plain.fs and skewed.n_stays == plain.n_stays


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_alpha_is_refused(alpha: float, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="positive finite"):
        write_cohort(tmp_path, hospitals=2, scale=0.1, label_skew=alpha)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="hospitals=N"):
        hospital_profile(1, label_skew=0.3)


def test_small_alpha_spreads_ectopy_far_more_than_large(tmp_path: Path) -> None:
    spread, json_shares = {}, {}
    for alpha in (0.3, 100.0):
        folders = write_cohort(
            tmp_path / str(alpha),
            hospitals=5,
            seed=0,
            scale=0.1,  # the floor: 30-44 ECG patients per hospital
            kinds=("ecg",),
            label_skew=alpha,
        )
        v = [_v_percent(f) for f in folders]
        spread[alpha] = (float(np.std(v)), min(v))
        profiles = [json.loads((f / "hospital.json").read_text()) for f in folders]
        assert {m["profile"]["label_skew"] for m in profiles} == {alpha}
        json_shares[alpha] = [m["profile"]["label_share"] for m in profiles]
        assert json_shares[alpha] == pytest.approx(
            label_shares(0, 5, alpha).tolist(), abs=1e-6
        )
    assert spread[0.3][0] > 2.5 * spread[100.0][0]
    assert spread[0.3][1] < 1.0  # one hospital with next to no ectopy
    assert spread[100.0][1] > 3.0  # near IID: every hospital has some


def test_skew_moves_deterioration_with_the_share(tmp_path: Path) -> None:
    folders = write_cohort(
        tmp_path, hospitals=5, seed=0, scale=0.3, kinds=("vitals",), label_skew=0.3
    )
    metas = [json.loads((f / "hospital.json").read_text()) for f in folders]
    shares = [m["profile"]["label_share"] for m in metas]
    rates = [
        m["summary"]["vitals"]["deteriorated"] / m["summary"]["vitals"]["stays"]
        for m in metas
    ]
    assert rates[int(np.argmin(shares))] < 0.05
    assert rates[int(np.argmax(shares))] > 0.2


def test_cli_label_skew(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(command)
    runner = CliRunner()
    args = ["--out", str(tmp_path), "--hospitals", "2", "--scale", "0.1"]
    for bad in ("0", "-0.5"):
        result = runner.invoke(app, [*args, "--label-skew", bad])
        assert result.exit_code == 2, result.output
        assert "positive finite" in result.output
    not_a_number = runner.invoke(app, [*args, "--label-skew", "lots"])
    assert not_a_number.exit_code == 2
    ok = runner.invoke(app, [*args, "--kinds", "vitals", "--label-skew", "0.5"])
    assert ok.exit_code == 0, ok.output
    assert "label share" in ok.output
    assert "--label-skew" in runner.invoke(app, ["--help"]).output
