"""``fedcare simulate`` refuses an output folder it cannot make before any work."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from simulation.cli.main import app


def test_out_under_a_regular_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = CliRunner().invoke(
        app, ["simulate", "--out", str(tmp_path / "file" / "s")]
    )
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
