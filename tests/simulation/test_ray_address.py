"""``fedcare simulate --ray-address`` against a real Ray head on loopback (slow).

The head is the venv's own ``ray start --head --block`` on 127.0.0.1 with its
own temp dir and free ports; it is stopped by terminating that process (which
stops the processes it started), not by ``ray stop``, which would stop every
Ray node on the machine. The shortest federation that can run: 2 hospitals,
1 round, tiny data, no DP, no SecAgg+ (it needs 3), no baselines.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, head: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no Ray head on 127.0.0.1:{port} after {timeout:.0f} s")


@pytest.fixture
def ray_head() -> Iterator[tuple[str, Path, dict[str, str]]]:
    # A short path: Ray's unix sockets live under it (108-byte limit).
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    ports = {
        flag: _free_port()
        for flag in (
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--runtime-env-agent-port",
            "--metrics-export-port",
            "--ray-client-server-port",
        )
    }
    cmd = [str(BIN / "ray"), "start", "--head", "--block",
           "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
           "--include-dashboard=false", "--disable-usage-stats",
           f"--temp-dir={temp}", *(f"{k}={v}" for k, v in ports.items())]  # fmt: skip
    with open(temp / "ray-start.log", "w") as log:
        head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, head)
        yield f"127.0.0.1:{port}", temp, env
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_simulate_runs_on_a_ray_head_at_ray_address(
    ray_head: tuple[str, Path, dict[str, str]], tmp_path: Path
) -> None:
    address, temp, env = ray_head
    out = tmp_path / "run"
    cmd = [str(BIN / "fedcare"), "simulate", "--task", "signal-anomaly",
           "--hospitals", "2", "--rounds", "1", "--scale", "0.05", "--no-dp",
           "--no-secagg", "--no-baselines", "--ray-address", address,
           "--out", str(out), "--format", "json"]  # fmt: skip

    proc = subprocess.run(
        cmd,
        env={**env, "FLWR_HOME": str(tmp_path / "flwr")},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 1
    history = json.loads((out / "history.json").read_text())
    assert history["rounds"][0]["participating"] == ["hospital_01", "hospital_02"]
    # The run's driver and its workers are the head's, not a Ray of its own.
    logs = temp / "session_latest" / "logs"
    assert list(logs.glob("python-core-driver-*")), sorted(os.listdir(logs))
    assert list(logs.glob("python-core-worker-*"))
