"""A generated cohort appears whole or not at all (a run killed while writing
it is resumed with a complete cohort)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared_models.run_config import RunConfig
from simulation import runner
from simulation.runner import SimulationOptions, hospital_dirs


def _opts(out: Path, resume: bool) -> SimulationOptions:
    run = RunConfig(task="icu-los", resume=resume).resolved()
    return SimulationOptions(out=out, run=run, hospitals=2, scale=0.1)


def test_a_cohort_cut_off_while_written_is_written_again_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simulation.cohorts as cohorts

    real = cohorts.write_cohort

    def killed(out_dir: Path, **kwargs: object) -> list[Path]:
        (Path(out_dir) / "hospital_01").mkdir(parents=True)  # half written
        raise KeyboardInterrupt  # stands for SIGKILL

    monkeypatch.setattr(cohorts, "write_cohort", killed)
    with pytest.raises(KeyboardInterrupt):
        hospital_dirs(_opts(tmp_path, resume=False), {})
    assert not (tmp_path / "cohort").exists()  # nothing for --resume to take

    monkeypatch.setattr(cohorts, "write_cohort", real)
    dirs = hospital_dirs(_opts(tmp_path, resume=True), {})

    assert [d.name for d in dirs] == ["hospital_01", "hospital_02"]
    assert all((d / "hospital.json").is_file() for d in dirs)
    assert all(d.parent == tmp_path / "cohort" for d in dirs)
    assert not (tmp_path / "cohort.partial").exists()
    assert hospital_dirs(_opts(tmp_path, resume=True), {}) == dirs  # kept
    assert runner.PRESETS["icu-los"] == "vitals"
