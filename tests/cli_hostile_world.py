"""The files tests/test_cli_hostile.py drives fedcare's commands with: a valid
one of each kind (a hospital, a model, a ledger, an audit log, a provisioned
consortium, a Flower app folder) and the bad ones (garbage, a regular file,
an empty folder, a junk model and checkpoints)."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from simulation.cli.main import app

CONSORTIUM = """\
name = "hostile"
[aggregator]
hosts = ["127.0.0.1"]
port = 9092
[[hospitals]]
id = "hospital_01"
[[hospitals]]
id = "hospital_02"
"""


@dataclass(frozen=True)
class World:
    root: Path

    def paths(self) -> dict[str, str]:
        r = self.root
        return {
            "root": str(r),
            "hospital": str(r / "cohort" / "hospital_01"),
            "model": str(r / "model"),
            "ledger": str(r / "ledger.jsonl"),
            "audit_log": str(r / "run" / "audit.jsonl"),
            "checkpoints": str(r / "run" / "checkpoints"),
            "run_dir": str(r / "run"),
            "consortium": str(r / "consortium.toml"),
            "prov": str(r / "prov"),
            "project": str(r / "project"),
            "new": str(r / "new"),
            "free_port": str(_free_port()),
            # bad values
            "missing": str(r / "missing" / "nothing"),
            "garbage": str(r / "garbage.bin"),
            "file": str(r / "FILE"),
            "under_file": str(r / "FILE" / "sub"),
            "empty_dir": str(r / "empty"),
            "junk_model": str(r / "junk_model"),
            "junk_checkpoints": str(r / "junk_checkpoints"),
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_world(root: Path) -> None:
    import client.pipeline
    from client.privacy import PrivacyBudget, PrivacyLedger
    from simulation.cohorts import write_hospital

    hospital = write_hospital(root / "cohort", 1, seed=0, scale=0.1, kinds=("vitals",))
    with pytest.MonkeyPatch.context() as patch:  # a valid model dir, untrained
        patch.setattr(client.pipeline, "train", lambda *args, **kwargs: {})
        trained = CliRunner().invoke(
            app,
            ["train", "--task", "icu-deterioration", "--data", str(hospital)]
            + ["--no-dp", "--out", str(root / "model"), "--device", "cpu"],
        )
    assert trained.exit_code == 0, trained.output
    ledger = PrivacyLedger.open(root / "ledger.jsonl", PrivacyBudget(3.0, 1e-5))
    ledger.settle(ledger.reserve(ledger.plan("r", 0.5, 4, 1.0, run_epsilon=1.0), 4), 4)
    _fake_run(root / "run")
    (root / "consortium.toml").write_text(CONSORTIUM)
    made = CliRunner().invoke(
        app,
        [
            "provision",
            "init",
            str(root / "consortium.toml"),
            "--out",
            str(root / "prov"),
        ],
    )
    assert made.exit_code == 0, made.output
    (root / "project").mkdir()
    shutil.copy(Path(__file__).parents[1] / "pyproject.toml", root / "project")
    make_junk(root)
    (root / "cwd").mkdir()
    (root / "home").mkdir()


JUNK = ("garbage.bin", "FILE", "empty", "junk_model", "junk_checkpoints", "new")
JUNK += ("missing", "train-ledger.jsonl")


def make_junk(root: Path) -> None:
    """The bad inputs, made again after a case that wrote over them."""
    for name in JUNK:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    rng = np.random.default_rng(0)
    (root / "garbage.bin").write_bytes(rng.integers(0, 256, 4096).astype(np.uint8))
    (root / "FILE").write_text("a regular file\n")
    (root / "empty").mkdir()
    for junk in ("junk_model/card.json", "junk_model/model.safetensors"):
        (root / junk).parent.mkdir(exist_ok=True)
        (root / junk).write_bytes(b"\x00\xff{not json" * 50)
    state = root / "junk_checkpoints" / "round_0001" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")


def _fake_run(run_dir: Path) -> None:
    """One round of an audited run (as tests/server/test_audit.py builds one)."""
    from tiny_model import tiny_card, tiny_weights

    from server.run_state import FederatedRun
    from shared_models.run_config import RunConfig

    card = tiny_card("signal-anomaly")
    weights = tiny_weights(0)
    run = FederatedRun(RunConfig(task="signal-anomaly").resolved(), run_dir, "a", card)
    run.set_initial(weights)
    run.on_fit(1, weights, [(1, {"hospital-id": 1}), (1, {"hospital-id": 2})], [])
