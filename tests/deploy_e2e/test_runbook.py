"""The runbook's one-machine quickstart, run verbatim: its bash blocks, in order,
in one shell, from (a snapshot of) the repository root.

The blocks are taken from docs/RUNBOOK.md ("One-machine quickstart") at test
time, so the document cannot drift from what works. Only ``DEMO`` is set (to a
temporary folder); PATH gets the project's environment, as `. .venv/bin/activate`
would. The quickstart uses the fixed ports 9091-9096 of 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "RUNBOOK.md"
BIN = Path(sys.executable).parent
PORTS = range(9091, 9097)
TIMEOUT = 1200.0


def quickstart_blocks() -> list[str]:
    text = RUNBOOK.read_text()
    section = text.split("## One-machine quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.DOTALL)


def test_quickstart_blocks_are_found() -> None:
    blocks = quickstart_blocks()
    assert len(blocks) >= 6
    assert blocks[-1].strip() == "kill $(jobs -p)"
    assert any("flwr run . demo" in b for b in blocks)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # a listener, not TIME_WAIT
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_runbook_quickstart_verbatim(tmp_path: Path) -> None:
    busy = [p for p in PORTS if not _port_free(p)]
    assert not busy, f"the quickstart needs 127.0.0.1 ports {list(PORTS)}; busy: {busy}"
    demo = tmp_path / "demo"
    # "from the repository root": a snapshot of it, so that edits made while the
    # test runs cannot change the app bundle between its approval and its run
    checkout = tmp_path / "checkout"
    shutil.copytree(
        REPO,
        checkout,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "runs", "__pycache__", "*.egg-info", ".pytest_cache"
        ),
    )
    blocks = quickstart_blocks()
    script = tmp_path / "quickstart.sh"
    # one shell, every block in order; a failing command stops it (set -e)
    script.write_text(
        "set -eu\n"  # as a shell at a terminal: no pipefail (`| head` is fine)
        + "".join(f"echo '### block {i}'\n{b}\n" for i, b in enumerate(blocks))
    )
    env = {
        **os.environ,
        "DEMO": str(demo),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin",
        "COLUMNS": "200",  # flwr's tables unwrapped, as on a wide terminal
    }
    env.pop("FLWR_HOME", None)
    log = tmp_path / "quickstart.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", str(script)],
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            try:  # whatever the blocks left running
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            subprocess.run(
                ["pkill", "-9", "-f", str(demo)], check=False, capture_output=True
            )
    text = log.read_text()
    tail = text[-6000:] + "".join(
        f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(demo.glob("*.log"))
    )
    assert code == 0, tail
    history = json.loads((demo / "run" / "history.json").read_text())
    assert [r["round"] for r in history["rounds"]] == [1, 2], tail
    for record in history["rounds"]:
        assert len(record["participating"]) == 3, record
    assert "finished:completed" in text, tail  # flwr ls
    assert re.search(r"^OK \S+audit\.jsonl: 2 record", text, re.M), tail  # audit verify
