"""The hospital's ClientApp runner: only approved app bundles are unpacked.

The runner wraps Flower's own ``flwr-clientapp`` (pull the task, install the
bundle, load it); these tests drive the wrapped steps with fake task inputs.
The loopback e2e (tests/deploy_e2e) runs it under a real SuperNode.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from client import node_runtime
from client.node_runtime import AppNotApprovedError, Guard, judge
from shared_models.bundle import BundleError, build_bundle, read_approved
from shared_models.errors import PolicyError
from simulation.cli.main import app

REPO = Path(__file__).resolve().parents[2]
BUNDLE = b"PK\x03\x04 a stand-in for a bundle's zip bytes"
DIGEST = hashlib.sha256(BUNDLE).hexdigest()


def approved_file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "approved-apps.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_approved_list_format(tmp_path: Path) -> None:
    path = approved_file(
        tmp_path, "# fedcare releases", "", f"{DIGEST.upper()}  # 1.0", "a" * 64
    )
    assert read_approved(path) == {DIGEST, "a" * 64}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["not-a-hash"], "approved-apps.txt:1: expected a bundle sha256"),
        ([DIGEST, "abc"], "approved-apps.txt:2: expected a bundle sha256"),
        (["# only a comment"], "the approved app list is empty"),
    ],
)
def test_bad_approved_list_is_an_error_naming_the_line(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    with pytest.raises(BundleError, match=message):
        read_approved(approved_file(tmp_path, *lines))
    with pytest.raises(BundleError, match="cannot read"):
        read_approved(tmp_path / "missing.txt")


def test_judge(tmp_path: Path) -> None:
    listed = approved_file(tmp_path, DIGEST)
    other = tmp_path / "other.txt"
    other.write_text("b" * 64 + "\n")
    config = {node_runtime.APPROVED_KEY: str(listed)}
    assert judge(config, BUNDLE, DIGEST).approved
    refusals = {
        "no list": judge({}, BUNDLE, DIGEST),
        "not listed": judge({node_runtime.APPROVED_KEY: str(other)}, BUNDLE, DIGEST),
        "renamed": judge(config, BUNDLE, "c" * 64),
        "modified": judge(config, BUNDLE + b"!", DIGEST),
        "bad list": judge({node_runtime.APPROVED_KEY: str(tmp_path)}, BUNDLE, DIGEST),
    }
    for case, verdict in refusals.items():
        assert not verdict.approved and verdict.reason, case
    assert "no 'approved-apps' key" in refusals["no list"].reason
    assert "is not on the approved list" in refusals["not listed"].reason
    assert "the run names" in refusals["renamed"].reason


def fake_flower(node_config: dict[str, str], content: bytes, named: str):
    installed: list[bytes] = []
    fab = SimpleNamespace(content=content, hash_str=named)
    context = SimpleNamespace(node_config=node_config)

    def pull(client: object) -> tuple:
        return "message", context, "run", fab

    def install(data: bytes, skip_prompt: bool = False) -> str:
        installed.append(data)
        return "installed"

    return Guard(pull, install), installed


def test_guard_installs_an_approved_bundle(tmp_path: Path) -> None:
    config = {node_runtime.APPROVED_KEY: str(approved_file(tmp_path, DIGEST))}
    guard, installed = fake_flower(config, BUNDLE, DIGEST)
    message, *_, fab = guard.pull_task_input(object())
    assert guard.install_from_fab(fab.content, skip_prompt=True) == "installed"
    assert installed == [BUNDLE]


def test_guard_refuses_before_unpacking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    listed = approved_file(tmp_path, DIGEST)
    changed = BUNDLE + b"\n# one more line"
    guard, installed = fake_flower(
        {node_runtime.APPROVED_KEY: str(listed)},
        changed,
        hashlib.sha256(changed).hexdigest(),
    )
    *_, fab = guard.pull_task_input(object())
    with pytest.raises(AppNotApprovedError) as refused:
        guard.install_from_fab(fab.content, skip_prompt=True)
    assert installed == []
    assert isinstance(refused.value, PolicyError)
    # the aggregator sees the refusal and the bundle's hash, not the hospital's path
    text = str(refused.value)
    assert hashlib.sha256(changed).hexdigest() in text and str(tmp_path) not in text
    assert "not on the approved list" in caplog.text  # the hospital's own log


def test_guard_refuses_bytes_it_did_not_check(tmp_path: Path) -> None:
    config = {node_runtime.APPROVED_KEY: str(approved_file(tmp_path, DIGEST))}
    guard, installed = fake_flower(config, BUNDLE, DIGEST)
    with pytest.raises(AppNotApprovedError):  # install without a pull first
        guard.install_from_fab(BUNDLE)
    guard.pull_task_input(object())
    with pytest.raises(AppNotApprovedError):  # other bytes than the pulled ones
        guard.install_from_fab(BUNDLE + b"x")
    assert installed == []


def test_clientapp_main_runs_flower_with_the_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flwr.supernode import cli as flower_cli
    from flwr.supernode.runtime import run_clientapp

    seen = {}
    monkeypatch.setattr(run_clientapp, "pull_task_input", run_clientapp.pull_task_input)
    monkeypatch.setattr(
        run_clientapp, "install_from_fab", run_clientapp.install_from_fab
    )

    def flower_main() -> None:
        seen["pull"] = run_clientapp.pull_task_input
        seen["install"] = run_clientapp.install_from_fab

    monkeypatch.setattr(flower_cli, "flwr_clientapp", flower_main)
    monkeypatch.setattr("sys.argv", ["fedcare-clientapp", "--token", "t"])
    node_runtime.clientapp_main()
    assert isinstance(seen["pull"].__self__, Guard)
    assert seen["install"].__self__ is seen["pull"].__self__

    monkeypatch.setattr(
        "sys.argv", ["fedcare-clientapp", "--allow-runtime-dependency-installation"]
    )
    with pytest.raises(SystemExit, match="refusing"):
        node_runtime.clientapp_main()


def test_superexec_launches_only_the_guarded_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flwr.supercore import cli as superexec_cli
    from flwr.supercore import constant

    for task_type, command in list(constant.TASK_TYPE_TO_COMMAND.items()):
        monkeypatch.setitem(constant.TASK_TYPE_TO_COMMAND, task_type, command)
    monkeypatch.setattr(superexec_cli, "flower_superexec", lambda: None)
    monkeypatch.setattr("sys.argv", ["fedcare-superexec", "--insecure"])
    node_runtime.superexec_main()
    commands = constant.TASK_TYPE_TO_COMMAND
    assert commands[constant.TaskType.CLIENT_APP] == "fedcare-clientapp"
    others = {c for t, c in commands.items() if t != constant.TaskType.CLIENT_APP}
    assert others == {"fedcare-refuse-task"}

    monkeypatch.setattr(
        "sys.argv", ["fedcare-superexec", "--allow-runtime-dependency-installation"]
    )
    with pytest.raises(SystemExit, match="refusing"):
        node_runtime.superexec_main()


def test_app_hash_is_the_hash_flwr_run_submits(tmp_path: Path) -> None:
    from flwr.cli.build import build_fab_from_disk

    expected = hashlib.sha256(build_fab_from_disk(REPO)).hexdigest()
    assert build_bundle(REPO)[1] == expected
    done = CliRunner().invoke(app, ["provision", "app-hash", str(REPO)])
    assert done.exit_code == 0 and done.output.startswith(expected + "  # ")
    # the printed line is itself a valid approved-list line
    assert read_approved(approved_file(tmp_path, done.output.strip())) == {expected}
    as_json = CliRunner().invoke(
        app, ["provision", "app-hash", str(REPO), "--format", "json"]
    )
    assert json.loads(as_json.output)["sha256"] == expected
    bad = CliRunner().invoke(app, ["provision", "app-hash", str(tmp_path)])
    assert bad.exit_code == 2 and "not a Flower app folder" in bad.output
