"""The README's "Running with `flwr run`" blocks, run as they are.

The three bash blocks of that section are joined into one script and run from
the repository's root, with ``TMPDIR`` in the test's folder (the blocks'
``mktemp -d`` is the work folder, Flower's home included) and this venv's
commands first on ``PATH``. The run must complete (its status in ``flwr ls``,
its run folder, every ledger charged) and the SuperLink the blocks started
must be stopped by the blocks themselves; if it is not (or the script fails
halfway), the test stops it by its saved process id and fails.
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
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTION = "### Running with `flwr run`"
HOSPITALS = ("hospital_01", "hospital_02", "hospital_03")


def readme_blocks() -> list[str]:
    """The bash blocks of the README section, in order."""
    text = (ROOT / "README.md").read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = re.split(r"\n##+ ", text.split(SECTION, 1)[1], maxsplit=1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def test_the_section_starts_its_own_superlink_and_stops_exactly_it() -> None:
    blocks = readme_blocks()
    script = "\n".join(blocks)

    assert len(blocks) == 3
    assert "pkill" not in script and "killall" not in script
    assert 'export FLWR_HOME="$WORK/' in blocks[0]  # never the user's ~/.flwr
    assert "--disable-runtime-dependency-installation" in blocks[0]
    assert "fedcare cohort" in blocks[1] and "--hospitals-file" in blocks[1]
    assert "flwr run . fedcare-sim" in blocks[1]
    assert "flwr ls fedcare-sim" in blocks[2]
    assert blocks[2].rstrip().endswith('kill "$(cat "$WORK/superlink.pid")"')


def _stopped(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (it holds no port any more)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait_stopped(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _stopped(pid):
            return True
        time.sleep(0.5)
    return _stopped(pid)


def _stop(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _wait_stopped(pid, 15):
            return


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """TMPDIR for the blocks: Ray puts its sockets under it, and a socket path
    beyond 107 bytes (pytest's tmp_path is long) fails the simulation."""
    path = Path(tempfile.mkdtemp(prefix="flwr-run-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run_blocks(tmp: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the blocks; whatever happens, stop the SuperLink they started if they
    did not, and fail then."""
    env = dict(os.environ)
    env.pop("FLWR_HOME", None)  # the blocks set their own
    env["TMPDIR"] = str(tmp)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = "set -euo pipefail\n" + "\n".join(readme_blocks())
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        works = [p for p in tmp.glob("tmp.*") if p.is_dir()]  # mktemp -d's
        pidfile = works[0] / "superlink.pid" if len(works) == 1 else None
        left_running = False
        if pidfile is not None and pidfile.is_file():
            pid = int(pidfile.read_text())
            left_running = not _wait_stopped(pid, 30)
            if left_running:
                _stop(pid)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert pidfile is not None and pidfile.is_file(), "no superlink.pid written"
    assert not left_running, "the README's blocks left their SuperLink running"
    return done, works[0]


# Measured: 1 round, 3 hospitals at --scale 0.2 (ECG only): 394 s on the 2
# shared cores with 4 other test suites running (`uptime` load average 15 to
# 57); the same blocks by hand at load about 5 took 85 s (cohort 7 s,
# `flwr run` 77 s).
@pytest.mark.slow
def test_flwr_run_as_the_readme_says(short_tmp: Path) -> None:
    from client.privacy import PrivacyLedger

    _, work = _run_blocks(short_tmp)
    config = (work / "flwr-home" / "config.toml").read_text()
    port = int(re.search(r'address = "127\.0\.0\.1:(\d+)"', config).group(1))
    assert not _port_open(port)
    runs = json.loads((work / "runs.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["finished:completed"]

    history = json.loads((work / "run" / "history.json").read_text())
    assert [r["round"] for r in history["rounds"]] == [1]
    assert history["rounds"][0]["participating"] == list(HOSPITALS)
    for model in ("final", "best"):
        assert (work / "run" / "models" / model / "card.json").is_file()
    nodes = json.loads((work / "hospitals.json").read_text())
    assert [n["hospital-id"] for n in nodes] == list(HOSPITALS)
    for node in nodes:
        ledger = PrivacyLedger.open(Path(node["ledger-path"]), None)
        assert Path(node["ledger-path"]).parent == work / "ledgers"
        assert len(ledger.entries) == 1  # one charge for the one round
        assert 0 < ledger.spent_epsilon <= node["epsilon"]
