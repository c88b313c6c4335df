"""The package layers (README "Layout"), checked by import-linter's contracts.

shared_models is the bottom layer, client and server are independent peers on
it, simulation is on top; the contracts are ``[tool.importlinter]`` in
pyproject.toml, the same ones ``make lint`` runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_import_contracts_are_kept() -> None:
    pytest.importorskip(
        "importlinter",
        reason="import-linter is not installed (pip install -e '.[dev]')",
    )
    # This checkout first on the path, so an editable install of another
    # checkout is not the code analysed.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    code = "import sys; from importlinter.cli import lint_imports_command as c; c()"
    result = subprocess.run(
        [sys.executable, "-c", code, "--no-cache"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout


def test_the_layers_the_contracts_name() -> None:
    config = PYPROJECT["tool"]["importlinter"]
    layers = ["shared_models", "client", "server", "simulation"]
    assert config["root_packages"] == layers
    rules = {
        (c["type"], tuple(c.get("source_modules", c.get("modules", ())))): tuple(
            c.get("forbidden_modules", ())
        )
        for c in config["contracts"]
    }
    assert rules == {
        ("forbidden", ("shared_models",)): ("client", "server", "simulation"),
        ("independence", ("client", "server")): (),
        ("forbidden", ("client", "server")): ("simulation",),
    }


def test_the_fedcare_command_is_composed_in_the_top_layer() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["fedcare"] == "simulation.cli.main:app"
    # the hospital's own runner lives at the hospital
    runners = {k: v for k, v in scripts.items() if k != "fedcare"}
    assert runners and all(
        v.startswith("client.node_runtime:") for v in runners.values()
    )
    from simulation.cli.main import app

    names = [c.name for c in app.registered_commands] + [
        g.name for g in app.registered_groups
    ]
    assert names == [
        "validate-data",
        "train",
        "evaluate",
        "calibrate",
        "budget",
        "privacy-audit",
        "serve",
        "dashboard",
        "cohort",
        "simulate",
        "provision",
        "audit",
        "ledger",
    ]
