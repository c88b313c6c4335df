"""Self-describing checkpoints: round trip, hash chain, tamper and crash detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from server import checkpoint
from server.checkpoint import CheckpointError
from shared_models import create_model
from shared_models.errors import ModelError
from shared_models.export import ModelCard, arrays_hash, get_weights

CONFIG = {
    "model": "dense_autoencoder",
    "model_config": {"seq_len": 8, "n_features": 1, "hidden": [4], "code_size": 2},
}


def _card() -> ModelCard:
    return ModelCard(
        model=CONFIG["model"],
        model_config=CONFIG["model_config"],
        task="ecg-anomaly",
        input_spec={"seq_len": 8, "n_features": 1},
    )


def _weights(seed: int) -> list[np.ndarray]:
    torch.manual_seed(seed)
    return get_weights(
        create_model(CONFIG["model"], **CONFIG["model_config"], dp=False)
    )


def test_round_trip_keeps_weights_state_and_chain(tmp_path: Path) -> None:
    first, second = _weights(0), _weights(1)
    moments = {
        "m_t": [np.ones(3, dtype=np.float32), np.zeros((2, 2), dtype=np.float32)]
    }

    checkpoint.save(tmp_path, 1, "r", first, _card(), {"seed": 0})
    checkpoint.save(tmp_path, 2, "r", second, _card(), {"seed": 0}, moments)
    loaded = checkpoint.load_latest(tmp_path)

    assert loaded is not None and loaded.round == 2 and loaded.run_name == "r"
    for got, want in zip(loaded.weights, second, strict=True):
        np.testing.assert_array_equal(got, want)
    assert [a.tolist() for a in loaded.strategy_state["m_t"]] == [
        [1, 1, 1],
        [[0, 0], [0, 0]],
    ]
    assert loaded.state["weights_sha256"] == arrays_hash(second)
    assert loaded.state["previous_sha256"] == arrays_hash(first)
    assert loaded.state["run_config"] == {"seed": 0}
    assert (
        json.loads(
            (tmp_path / "checkpoints" / "round_0001" / "state.json").read_text()
        )["previous_sha256"]
        == ""
    )


def test_no_checkpoint_is_none(tmp_path: Path) -> None:
    assert checkpoint.load_latest(tmp_path) is None
    assert checkpoint.latest_state(tmp_path) is None


def test_tampered_weights_are_detected(tmp_path: Path) -> None:
    directory = checkpoint.save(tmp_path, 1, "r", _weights(0), _card(), {})
    weights_file = next(directory.glob("*.safetensors"))
    tensors = load_file(str(weights_file))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, str(weights_file))

    with pytest.raises(
        ModelError, match="sha256 does not match card.json; the file was altered"
    ):
        checkpoint.load_latest(tmp_path)


def test_tampered_state_hash_is_detected(tmp_path: Path) -> None:
    directory = checkpoint.save(tmp_path, 1, "r", _weights(0), _card(), {})
    state_file = directory / "state.json"
    state = json.loads(state_file.read_text())
    state["weights_sha256"] = arrays_hash(_weights(1))
    state_file.write_text(json.dumps(state))

    with pytest.raises(CheckpointError, match="do not match state.json's sha256"):
        checkpoint.load_latest(tmp_path)


def test_pointer_to_an_incomplete_checkpoint_is_an_error(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, 1, "r", _weights(0), _card(), {})
    (tmp_path / "checkpoints" / "latest.json").write_text(
        json.dumps({"round": 2, "path": "round_0002"})
    )

    with pytest.raises(CheckpointError, match="round_0002, which has no state.json"):
        checkpoint.load_latest(tmp_path)
