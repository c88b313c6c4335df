"""client.pipeline: train on one hospital, export, evaluate on another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from client.pipeline import evaluate_dir, train_local
from client.privacy import PrivacyBudget, PrivacyLedger
from client.tasks import TASKS
from client.training import PrivateRun, TrainConfig, predict
from shared_models.export import load_model_dir, read_card

FAST = TrainConfig(epochs=1, batch_size=256, lr=5e-3, seed=0, device="cpu")
HEADLINE = {
    "binary": "auroc",
    "multiclass": "macro_f1",
    "regression": "mae_days",
    "reconstruction": "auroc",
}


@pytest.mark.parametrize("name", list(TASKS))
def test_train_on_one_hospital_evaluate_on_another(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    ledger = PrivacyLedger.open(tmp_path / "ledger.jsonl", PrivacyBudget(3.0, 1e-5))
    private = PrivateRun(ledger, f"run-{name}", run_epsilon=1.0)
    result = train_local(name, tiny_hospitals[0], FAST, private, tmp_path / "model")

    card = read_card(tmp_path / "model")
    assert card.task == name and card.metrics["test"] == result.metrics
    assert card.privacy["epsilon_spent"] == pytest.approx(ledger.spent_epsilon)
    assert 0 < card.privacy["epsilon_spent"] <= 1.0 + 1e-6
    assert card.privacy["run_id"] == f"run-{name}"
    assert card.privacy["delta"] == 1e-5 and card.privacy["accountant"] == "rdp"
    assert [e["steps"] for e in ledger.entries] == [result.training["steps"]]

    report = evaluate_dir(tmp_path / "model", tiny_hospitals[1])
    assert report["task"] == name and report["examples"] > 0
    headline = report["metrics"][HEADLINE[TASKS[name].kind]]
    assert headline is None or np.isfinite(headline)


def test_the_exported_directory_reloads_the_same_model(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    result = train_local(
        "icu-deterioration", tiny_hospitals[0], FAST, None, tmp_path / "m"
    )
    model, card = load_model_dir(tmp_path / "m")
    assert card.privacy is None and card.threshold is not None
    assert card.normalisation["features"]
    # counts of the training data are not DP-protected: they stay out of the card
    assert "examples" not in card.training_data
    x = np.random.default_rng(0).normal(
        size=(5, 48, len(card.normalisation["features"]))
    )
    again, _ = load_model_dir(result.model_dir, dp=True)
    np.testing.assert_allclose(predict(model, x), predict(again, x), atol=1e-6)
    from client.tasks import get_task

    split = get_task("icu-deterioration").prepare(tiny_hospitals[0])
    everything = len(split.train) + len(split.val) + len(split.test)
    assert evaluate_dir(tmp_path / "m", tiny_hospitals[0])["examples"] == everything


def test_the_same_seed_gives_the_same_model(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    a = train_local("icu-los", tiny_hospitals[0], FAST, None, tmp_path / "a")
    b = train_local("icu-los", tiny_hospitals[0], FAST, None, tmp_path / "b")
    assert a.card.weights_sha256 == b.card.weights_sha256
    assert a.metrics == b.metrics


def test_calibrate_moves_the_threshold_to_this_hospital(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    import dataclasses
    import json

    from client.pipeline import calibrate_dir
    from client.tasks import get_task
    from shared_models.export import CARD

    train_local("ecg-arrhythmia", tiny_hospitals[0], FAST, None, tmp_path / "m")
    model, card = load_model_dir(tmp_path / "m")
    assert card.threshold_source.startswith("this hospital's validation split")
    # A threshold that fits nowhere: nothing is called positive.
    bad = json.loads((tmp_path / "m" / CARD).read_text())
    bad.update(threshold=0.99999, threshold_source="somewhere else")
    (tmp_path / "m" / CARD).write_text(json.dumps(bad))

    result = calibrate_dir(tmp_path / "m", tiny_hospitals[1], tmp_path / "local")

    task = get_task("ecg-arrhythmia")
    prepared = task.prepare(tiny_hospitals[1], seed=0)
    assert result["after"]["threshold"] == pytest.approx(
        task.calibrate(model, prepared)
    )
    assert result["before"]["threshold_source"] == "somewhere else"
    assert result["before"]["test"]["recall"] == 0.0
    assert result["after"]["test"]["recall"] > 0.0
    again, new = load_model_dir(tmp_path / "local")
    assert new.weights_sha256 == card.weights_sha256
    assert new.threshold == result["after"]["threshold"]
    assert "fedcare calibrate" in new.threshold_source
    assert dataclasses.asdict(new)["model_config"] == card.model_config
    report = evaluate_dir(tmp_path / "local", tiny_hospitals[1])
    assert report["threshold_source"] == new.threshold_source


def test_calibrate_refuses_a_task_without_a_threshold(
    tiny_hospitals: tuple[Path, Path], tmp_path: Path
) -> None:
    from client.pipeline import calibrate_dir
    from shared_models.errors import ConfigError

    train_local("icu-los", tiny_hospitals[0], FAST, None, tmp_path / "m")
    with pytest.raises(ConfigError, match="icu-los has no decision threshold"):
        calibrate_dir(tmp_path / "m", tiny_hospitals[1], None)
