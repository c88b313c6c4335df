"""A model folder that was damaged or edited is refused with a ModelError
naming the file (``fedcare evaluate`` / ``calibrate`` / ``serve`` then exit 2),
never loaded and never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import reliability
from typer.testing import CliRunner

from shared_models.errors import ModelError
from shared_models.export import ModelCard, load_model_dir, save_model_dir
from shared_models.registry import create_model
from simulation.cli.main import app

CONFIG = {"n_features": 1, "seq_len": 90, "hidden_size": 8, "num_layers": 1}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model = create_model("lstm_classifier", **CONFIG)
    card = ModelCard(
        model="lstm_classifier",
        model_config=CONFIG,
        task="ecg-arrhythmia",
        input_spec={"seq_len": 90, "n_features": 1},
    )
    return save_model_dir(tmp_path / "model", model, card)


def _weights(write: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def mutate(directory: Path) -> None:
        path = directory / "weights.safetensors"
        path.write_bytes(write(path.read_bytes()))

    return mutate


def _card(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(directory: Path) -> None:
        path = directory / "card.json"
        card = json.loads(path.read_text())
        edit(card)
        path.write_text(json.dumps(card))

    return mutate


DAMAGE = {
    "garbage weights": (_weights(lambda b: b"garbage" * 10), "safetensors"),
    "truncated weights": (_weights(lambda b: b[:100]), "safetensors"),
    "empty weights": (_weights(lambda b: b""), "safetensors"),
    "one flipped byte": (
        _weights(lambda b: b[:-5] + bytes([b[-5] ^ 1]) + b[-4:]),
        "sha256 does not match",
    ),
    "no weights_sha256": (_card(lambda c: c.pop("weights_sha256")), "weights_sha256"),
    "empty weights_sha256": (
        _card(lambda c: c.__setitem__("weights_sha256", "")),
        "weights_sha256",
    ),
    "card is a JSON list": (
        lambda d: (d / "card.json").write_text("[[1], 2]"),
        "expected a JSON object",
    ),
    "threshold NaN": (
        _card(lambda c: c.__setitem__("threshold", float("nan"))),
        "threshold",
    ),
    "threshold a string": (
        _card(lambda c: c.__setitem__("threshold", "0.5")),
        "threshold",
    ),
    "classes a number": (_card(lambda c: c.__setitem__("classes", 5)), "classes"),
    "model_config a list": (
        _card(lambda c: c.__setitem__("model_config", [1])),
        "model_config",
    ),
    "model_config of the wrong type": (
        _card(lambda c: c["model_config"].__setitem__("bogus_key", 1)),
        "model_config",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_model_folder_is_refused(model_dir: Path, case: str) -> None:
    mutate, message = DAMAGE[case]
    mutate(model_dir)
    with reliability.case("model folder: damaged card or weights"):
        with pytest.raises(ModelError, match=message):
            load_model_dir(model_dir)


@pytest.mark.parametrize("command", ["evaluate", "serve"])
def test_cli_exits_2_on_garbage_weights(
    model_dir: Path, tmp_path: Path, command: str
) -> None:
    (model_dir / "weights.safetensors").write_bytes(b"\x00" * 64)
    args = ["--model", str(model_dir)]
    if command == "evaluate":
        args += ["--data", str(tmp_path)]
    result = CliRunner().invoke(app, [command, *args])
    assert result.exit_code == 2, result.output
    assert "weights.safetensors" in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    )
