"""``fedcare cohort --hospitals-file``: the node configs ``flwr run`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from client.federated import NodeSettings
from simulation.cli.cohort import command


def _invoke(*args: str):
    app = typer.Typer()
    app.command()(command)
    return CliRunner().invoke(app, list(args))


SMALL = ("--hospitals", "3", "--scale", "0.05", "--kinds", "signals")


def test_hospitals_file_lists_each_hospital_with_its_ledger_and_budget(
    tmp_path: Path,
) -> None:
    out, file = tmp_path / "cohort", tmp_path / "run" / "hospitals.json"
    result = _invoke(*SMALL, "--out", str(out), "--hospitals-file", str(file),
                     "--epsilon", "4", "--delta", "1e-6")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {file} (ledgers in {tmp_path / 'run' / 'ledgers'})" in result.output
    entries = json.loads(file.read_text())
    names = [f"hospital_0{i}" for i in (1, 2, 3)]
    ledgers = (tmp_path / "run" / "ledgers").resolve()
    assert entries == [
        {
            "hospital-id": name,
            "data-path": str((out / name).resolve()),
            "ledger-path": str(ledgers / f"{name}.jsonl"),
            "epsilon": 4.0,
            "delta": 1e-6,
        }
        for name in names
    ]
    # a simulated node's partition 1 is the second hospital, as the ClientApp reads
    settings = NodeSettings.from_node_config({"partition-id": 1}, str(file))
    assert settings.hospital_id == "hospital_02" and settings.epsilon == 4.0


def test_ledger_dir_moves_the_ledgers(tmp_path: Path) -> None:
    file, ledgers = tmp_path / "h.json", tmp_path / "elsewhere"
    result = _invoke(*SMALL, "--out", str(tmp_path / "c"), "--hospitals-file",
                     str(file), "--ledger-dir", str(ledgers))  # fmt: skip
    assert result.exit_code == 0, result.output
    paths = [Path(e["ledger-path"]) for e in json.loads(file.read_text())]
    assert [p.parent for p in paths] == [ledgers.resolve()] * 3


def test_refused_before_any_hospital_is_written(tmp_path: Path) -> None:
    out = tmp_path / "c"
    alone = _invoke(*SMALL, "--out", str(out), "--ledger-dir", str(tmp_path / "l"))
    assert alone.exit_code == 2
    assert "--ledger-dir is for --hospitals-file" in alone.output
    folder = _invoke(*SMALL, "--out", str(out), "--hospitals-file", str(tmp_path))
    assert folder.exit_code == 2 and "is a folder" in folder.output
    budget = _invoke(*SMALL, "--out", str(out), "--hospitals-file",
                     str(tmp_path / "h.json"), "--delta", "2")  # fmt: skip
    assert budget.exit_code == 2 and "--delta 2" in budget.output
    assert not out.exists() and not (tmp_path / "h.json").exists()
