"""client.tasks: shapes, patient-disjoint splits, train-only statistics, row scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from client.data import fit_signal_stats, load_signals
from client.tasks import TASKS, get_task
from client.tasks.signals import WINDOW, row_parts
from shared_models import create_model
from shared_models.errors import ConfigError, DataError
from shared_models.export import ModelCard

SHAPES = {  # task: (seq_len, n_features or None, label values)
    "ecg-arrhythmia": (90, 1, {0, 1}),
    "ecg-arrhythmia-aami5": (90, 1, {0, 1, 2, 3, 4}),
    "ecg-anomaly": (90, 1, {0, 1}),
    "signal-anomaly": (WINDOW, None, {0, 1}),
    "icu-deterioration": (48, None, {0, 1}),
}


@pytest.fixture(scope="module")
def prepared(tiny_hospitals: tuple[Path, Path]) -> dict:
    return {name: get_task(name).prepare(tiny_hospitals[0], seed=0) for name in TASKS}


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known tasks: ecg-arrhythmia, "):
        get_task("ecg-arythmia")


@pytest.mark.parametrize("name", list(SHAPES))
def test_arrays_have_the_model_shapes(prepared: dict, name: str) -> None:
    seq_len, n_features, labels = SHAPES[name]
    for part in (prepared[name].train, prepared[name].val, prepared[name].test):
        assert len(part) > 0
        assert part.x.ndim == 3 and part.x.shape[1] == seq_len
        assert part.x.dtype == np.float32 and np.isfinite(part.x).all()
        assert len(part.y) == len(part.groups) == len(part)
        assert set(np.unique(part.y)) <= labels
        if n_features is not None:
            assert part.x.shape[2] == n_features


def test_icu_los_targets_are_days(prepared: dict) -> None:
    p = prepared["icu-los"]
    assert p.train.x.shape[1:] == prepared["icu-deterioration"].train.x.shape[1:]
    assert (p.train.y > 0).all() and p.train.y.dtype.kind == "f"


@pytest.mark.parametrize("name", list(TASKS))
def test_the_model_config_builds_a_model_that_reads_the_arrays(
    prepared: dict, name: str
) -> None:
    task, p = get_task(name), prepared[name]
    model = create_model(task.model, **task.model_config(p), dp=True)
    out = model.predict(__import__("torch").as_tensor(p.train.x[:3]))
    assert out.shape[0] == 3


@pytest.mark.parametrize("name", [n for n in TASKS if n != "signal-anomaly"])
def test_splits_never_share_a_patient(prepared: dict, name: str) -> None:
    p = prepared[name]
    train, val, test = (set(np.unique(a.groups)) for a in (p.train, p.val, p.test))
    assert train and val and test
    assert not (train & val or train & test or val & test)


@pytest.mark.parametrize("name", ["ecg-arrhythmia", "icu-los"])
def test_the_split_follows_the_seed(
    tiny_hospitals: tuple[Path, Path], prepared: dict, name: str
) -> None:
    again = get_task(name).prepare(tiny_hospitals[0], seed=0)
    np.testing.assert_array_equal(again.test.x, prepared[name].test.x)
    other = get_task(name).prepare(tiny_hospitals[0], seed=1)
    assert set(np.unique(other.test.groups)) != set(np.unique(again.test.groups))


def test_signal_windows_never_cross_parts(
    tiny_hospitals: tuple[Path, Path], prepared: dict
) -> None:
    """No window mixes parts or series (sessions are split whole or cut in time)."""
    p = prepared["signal-anomaly"]
    raw = load_signals(tiny_hospitals[0] / "signals")
    parts, series = row_parts(raw, seed=0), np.asarray(raw.series)
    for sid in np.unique(series):
        assert (np.diff(parts[series == sid]) >= 0).all()
    for code, arrays in enumerate((p.train, p.val, p.test)):
        for start in arrays.extra["starts"]:
            assert (parts[start : start + WINDOW] == code).all()
            assert len(set(series[start : start + WINDOW])) == 1


def test_signal_sessions_are_split_whole_when_there_are_three(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    for source in sorted((tiny_hospitals[0] / "signals").glob("*.csv"))[:3]:
        shutil.copy(source, tmp_path / f"a_{source.name}")
    p = get_task("signal-anomaly").prepare(tmp_path, seed=0)
    train, val, test = (set(np.unique(a.groups)) for a in (p.train, p.val, p.test))
    assert len(train | val | test) == 3
    assert not (train & val or train & test or val & test)


def test_anomaly_models_fit_on_normal_examples_only(prepared: dict) -> None:
    for name in ("ecg-anomaly", "signal-anomaly"):
        p = prepared[name]
        fit = get_task(name).fit_arrays(p)
        assert len(fit) < len(p.train) and (fit.y == 0).all()


def test_vitals_normalisation_is_public_not_fitted(prepared: dict) -> None:
    """Imputation, clipping and z-score use public clinical constants only."""
    from client.data import public_vitals_stats

    p = prepared["icu-deterioration"]
    expected = public_vitals_stats(p.normalisation["features"])
    for key, values in expected.items():
        np.testing.assert_allclose(p.normalisation[key], values)
    with pytest.raises(DataError, match="no public normalisation constants"):
        public_vitals_stats(["heart_rate", "lactate"])


def test_signal_statistics_come_from_normal_training_rows_only(
    tiny_hospitals: tuple[Path, Path], prepared: dict
) -> None:
    p = prepared["signal-anomaly"]
    raw = load_signals(tiny_hospitals[0] / "signals")
    rows = (row_parts(raw, seed=0) == 0) & (raw.is_anomaly == 0)
    np.testing.assert_allclose(
        p.normalisation["mean"], fit_signal_stats(raw.values[rows])["mean"]
    )
    assert not np.allclose(p.normalisation["mean"], raw.values.mean(axis=0))


def test_signal_row_scores_cover_every_row(
    tiny_hospitals: tuple[Path, Path], prepared: dict
) -> None:
    task, p = get_task("signal-anomaly"), prepared["signal-anomaly"]
    model = create_model(task.model, **task.model_config(p), dp=False)
    card = ModelCard(
        model=task.model,
        model_config=dict(model.config),
        task=task.name,
        input_spec={},
        normalisation=p.normalisation,
        threshold=1.0,
    )
    other = task.prepare_all(tiny_hospitals[1], card)
    scores = task.row_scores(model, other)
    n_rows = len(load_signals(tiny_hospitals[1] / "signals").values)
    assert scores.shape == (n_rows,) and np.isfinite(scores).all()
    assert task.score(model, other, card)["rows_unscored"] == 0
    test_scores = task.row_scores(model, p.test)
    assert len(test_scores) == len(p.test.extra["rows"])


def test_every_task_recommends_a_training_config() -> None:
    for name, task in TASKS.items():
        config = task.recommended_config(seed=3)
        assert config.seed == 3 and config.epochs >= 1, name
    icu = get_task("icu-los").recommended_config(epochs=None, lr=0.1)
    assert icu.lr == 0.1 and icu.epochs == get_task("icu-los").recipe.epochs
    assert icu.batch_size < 64  # ~50 training stays: never the whole split per step
