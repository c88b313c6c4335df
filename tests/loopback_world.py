"""A provisioned consortium on loopback, for the deployment tests.

``fedcare provision`` makes the consortium in a temporary directory; the
operator's ``start-superlink.sh`` and ``start-proxy.sh`` start a real
``flower-superlink`` (TLS with the consortium CA, ``--enable-supernode-auth``)
behind nginx, ``register-hospitals.sh`` registers the hospitals' keys, and each
hospital's ``start-supernode.sh`` starts a real ``flower-supernode``. Used by
``tests/deploy_e2e/test_loopback_e2e.py`` (3 hospitals) and
``test_loopback_load.py`` (20). Every process is started in its own session and
killed with its descendants by :meth:`Consortium.stop`.
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
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulation.cohorts import write_cohort

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAME = "loopback"
RUN_TIMEOUT = 900.0
APP_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "runs", "__pycache__", "*.egg-info", ".pytest_cache"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            out += [child, *children(child)]
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Proc:
    """A process in its own session, its output in ``log``."""

    popen: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, cmd: list[str], log: Path, env: dict[str, str]) -> Proc:
        handle = log.open("wb")
        popen = subprocess.Popen(
            cmd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=log.parent,
        )
        handle.close()
        return cls(popen, log)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, n: int = 40) -> str:
        return f"--- {self.log} ---\n" + "\n".join(self.text().splitlines()[-n:])

    def kill(self) -> None:
        """SIGKILL the process, its group and every descendant (Flower's
        SuperExec, ServerApp and ClientApp processes start sessions of their own)."""
        pids = [self.popen.pid, *children(self.popen.pid)]
        for sig_target in (
            lambda: os.killpg(self.popen.pid, signal.SIGKILL),
            *[lambda p=p: os.kill(p, signal.SIGKILL) for p in pids],
        ):
            try:
                sig_target()
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


@dataclass
class Consortium:
    root: Path
    out: Path
    env: dict[str, str]
    data: dict[str, Path]
    ledgers: dict[str, Path]
    app: Path  # the approved release: a snapshot of this repository
    hospitals: tuple[str, ...] = ()
    procs: list[Proc] = field(default_factory=list)
    node_ids: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, Proc] = field(default_factory=dict)
    superlink: Proc | None = None
    address: str = ""
    nodes_online_s: float = 0.0  # start_supernodes: until all were online

    def start(self, cmd: list[str], log: str, **extra_env: str) -> Proc:
        proc = Proc.start(cmd, self.root / log, {**self.env, **extra_env})
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()

    def flwr(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "flwr"), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def online(self) -> set[int]:
        done = self.flwr("supernode", "list", NAME, "--format", "json")
        nodes = json.loads(done.stdout).get("nodes", []) if done.returncode == 0 else []
        return {int(n["node-id"]) for n in nodes if n.get("status") == "online"}


def _fedcare(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "fedcare"), *args], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def provision(
    root: Path, hospitals: tuple[str, ...], node_extra: str = "", scale: float = 0.3
) -> Consortium:
    """Provision a consortium of ``hospitals`` in ``root`` with synthetic ECG data;
    ``node_extra`` is appended to each hospital's node config."""
    port = free_port()
    env = {
        **os.environ,
        "FLWR_HOME": str(root / "flwr-home"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for h in hospitals:  # each hospital makes its key pair in its own folder
        _fedcare(env, "provision", "node-key", str(root / f"at-{h}"), "--id", h,
                 "--consortium", NAME)  # fmt: skip
    (root / "consortium.toml").write_text(
        f'name = "{NAME}"\n[aggregator]\nhosts = ["127.0.0.1", "localhost"]\n'
        f"port = {port}\ncontrol_port = {free_port()}\n"
        f"internal_port = {free_port()}\n"
        + "".join(
            f'[[hospitals]]\nid = "{h}"\npublic_key = "at-{h}/node.pub"\n'
            for h in hospitals
        )
    )
    out = root / "provisioned"
    _fedcare(env, "provision", "init", str(root / "consortium.toml"), "--out", str(out))
    (root / "flwr-home").mkdir()
    (root / "flwr-home" / "config.toml").write_text(
        (out / "operator" / "flwr-config.toml").read_text()
    )
    folders = write_cohort(
        root / "data", hospitals=len(hospitals), seed=0, scale=scale, kinds=("ecg",)
    )
    data = dict(zip(hospitals, folders, strict=True))
    ledgers = {h: root / "ledgers" / f"{h}.jsonl" for h in hospitals}
    # the release: a snapshot of this repository (so edits made while the test
    # runs do not change the bundle), which each hospital reviews and approves
    app = root / "app"
    shutil.copytree(REPO, app, ignore=APP_IGNORE)
    approved = _fedcare(env, "provision", "app-hash", str(app))
    for h in hospitals:  # what each hospital does with its bundle
        (out / "hospitals" / h / "approved-apps.txt").write_text(approved)
        (out / "hospitals" / h / "node-config.txt").write_text(
            f'hospital-id="{h}" data-path="{data[h]}" ledger-path="{ledgers[h]}" '
            f"epsilon=8.0 delta=1e-05 {node_extra}".rstrip()
            + "\n"
        )
    return Consortium(
        root, out, env, data, ledgers, app, hospitals, address=f"127.0.0.1:{port}"
    )


def start_superlink(c: Consortium, database: str | None = None) -> None:
    """The operator's SuperLink and proxy; then the hospitals' keys registered.

    ``database``: the SuperLink's ``--database`` (default a SQLite file in
    the consortium's folder, as an operator runs it)."""
    c.superlink = c.start(
        ["sh", str(c.out / "operator" / "start-superlink.sh")],
        "superlink.log",
        FEDCARE_SUPERLINK_HOST="127.0.0.1",
        FEDCARE_SUPERLINK_DB=database or str(c.root / "superlink.db"),
    )
    assert shutil.which("nginx") or Path("/usr/sbin/nginx").exists(), (
        "the proxy needs nginx: apt-get install nginx-light (deploy/system-deps.sh)"
    )
    proxy = c.start(
        ["sh", str(c.out / "operator" / "start-proxy.sh")],
        "proxy.log",
        PATH=f"{c.env['PATH']}{os.pathsep}/usr/sbin",
        FEDCARE_PROXY_STATE=str(c.root / "proxy-state"),
    )
    deadline = time.monotonic() + 90
    while "Uvicorn running" not in c.superlink.text() or (
        "start worker process" not in proxy.text()
    ):
        assert c.superlink.popen.poll() is None, c.superlink.tail()
        assert proxy.popen.poll() is None, proxy.tail()
        assert time.monotonic() < deadline, c.superlink.tail() + proxy.tail()
        time.sleep(0.5)
    done = subprocess.run(
        ["sh", str(c.out / "operator" / "register-hospitals.sh")],
        env=c.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # each node id is printed and recorded with its hospital's name
    found = re.findall(r"^(\S+): SuperNode (\d+) registered", done.stdout, re.M)
    c.node_ids = {h: int(i) for h, i in found}
    assert sorted(c.node_ids) == sorted(c.hospitals), done.stdout
    recorded = (c.out / "operator" / "state" / "node-ids.tsv").read_text()
    assert sorted(recorded.split()) == sorted(
        [*c.hospitals, *map(str, c.node_ids.values())]
    ), recorded


def start_supernodes(c: Consortium, online_timeout: float = 180.0) -> None:
    """Start every hospital's SuperNode; wait until all are online."""
    start = time.monotonic()
    for h in c.hospitals:
        c.nodes[h] = c.start(
            [
                "sh",
                str(c.out / "hospitals" / h / "start-supernode.sh"),
                "--max-retries",
                "20",
            ],
            f"supernode-{h}.log",
            FEDCARE_SUPERNODE_PORT=str(free_port()),
            FEDCARE_NODE_KEY=str(c.root / f"at-{h}" / "node.key"),
        )
    deadline = time.monotonic() + online_timeout
    while c.online() != set(c.node_ids.values()):
        for h, proc in c.nodes.items():
            assert proc.popen.poll() is None, f"SuperNode {h} exited\n{proc.tail()}"
        assert time.monotonic() < deadline, "\n".join(
            p.tail() for p in c.nodes.values()
        )
        time.sleep(2)
    c.nodes_online_s = time.monotonic() - start


def flwr_run(c: Consortium, run_dir: Path, log: str, rounds: int, **extra: str) -> Proc:
    """``flwr run`` of the approved release, streaming its logs to ``log``."""
    n = str(len(c.hospitals))
    config = {
        "num-server-rounds": str(rounds),
        "run-dir": f'"{run_dir}"',
        "min-available-hospitals": n,
        "min-fit-hospitals": n,
        "min-evaluate-hospitals": n,
        **extra,
    }
    return c.start(
        [
            str(BIN / "flwr"),
            "run",
            str(c.app),
            NAME,
            "--stream",
            "--run-config",
            " ".join(f"{k}={v}" for k, v in config.items()),
        ],
        log,
    )


def wait_run(proc: Proc, c: Consortium, timeout: float = RUN_TIMEOUT) -> int:
    try:
        return proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(
            "flwr run timed out\n"
            + proc.tail(80)
            + "\n"
            + "\n".join(p.tail(15) for p in c.nodes.values())
        )
