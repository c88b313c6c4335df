"""Every ``fedcare`` command driven with bad flags and files (issue 10).

The commands are found by walking the Typer app, so a command or option added
later is covered without editing this file: numeric options get non-numbers,
infinities, NaN and negatives; path parameters get missing paths, folders for
files, regular files for folders and garbage contents (a new path parameter
must be classified in ``PATH_KINDS``, the test says so). Every case must exit
2 with Typer's usage box or one ``error:`` line of fedcare's own, never a
traceback, and write nothing. ``audit verify`` keeps its meaning: a log that
is not a valid chain is tampered (1), a check that cannot be made is 2.

Each case changes one value of a baseline that is valid (``test_baseline``
checks it), so it is that value which must be refused. Where the long work
would begin (training, a federation, a server) a stub raises ``Started``:
reaching it means the bad value was accepted.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import reliability
import typer
from cli_hostile_world import World, build_world, make_junk
from typer.testing import CliRunner, Result

from simulation.cli.main import app

ROOT_COMMAND = typer.main.get_command(app)


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple]:
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, (*path, name))
    else:
        yield path, command


COMMANDS = {" ".join(path): command for path, command in _walk(ROOT_COMMAND)}

# What a path parameter must be: "<command> <param>" first, then "<param>".
PATH_KINDS = {
    "data": "data",  # a data file or a hospital folder
    "model": "model",
    "out": "out_dir",
    "normalisation": "in_file",
    "tls_cert": "in_file",
    "tls_key": "in_file",
    "token_file": "in_file",
    "train ledger": "out_file",  # created by the first private run
    "cohort hospitals_file": "out_file",
    "budget ledger": "ledger",
    "audit verify log": "audit_log",
    "audit verify heads": "in_file",
    "ledger verify ledger": "ledger",
    "ledger verify against": "audit_log",
    "checkpoints": "checkpoints",
    "consortium": "in_file",
    "public_key": "in_file",
    "provision add-hospital out": "in_dir",
    "provision revoke out": "in_dir",
    "provision status out": "in_dir",
    "folder": "out_dir",
    "project": "in_dir",
    "validate-data path": "data",
    "data_dir": "in_dir",
    "ledger_dir": "out_dir",
    "dashboard run_dir": "run_dir",  # may be missing or empty: a run starts later
}
# The bad values of each kind ({name} are World paths) and the exit status.
PATH_CASES = {
    "data": ["missing", "garbage", "empty_dir"],
    "model": ["missing", "garbage", "empty_dir", "junk_model"],
    "in_file": ["missing", "empty_dir", "garbage"],
    "in_dir": ["missing", "garbage", "empty_dir"],
    "out_dir": ["under_file", "file"],
    "out_file": ["under_file", "empty_dir"],
    "ledger": ["missing", "empty_dir", "garbage"],
    "audit_log": ["missing", "empty_dir", "garbage"],
    "checkpoints": ["missing", "garbage", "junk_checkpoints"],
    "run_dir": ["file", "under_file"],
}
# Text options that take one of a few words (free text, e.g. --name, is left out).
WORDS = {
    "task": "ecg-arythmia",
    "privacy_unit": "hospital",
    "device": "tpu",
    "strategy": "fedsgd",
    "server_lr_schedule": "cosine",
    "kinds": "xrays",
    "host": "no-such-host.invalid",
    "id": "../hospital",
}
# a log or ledger that is no chain: tampered
EXIT = {("audit verify log", "garbage"): 1, ("ledger verify ledger", "garbage"): 1}

# A valid invocation of each command with required parameters ({name}: World).
FAST_TRAIN = {"epochs": "1", "batch_size": "8", "device": "cpu"}
BASELINES: dict[str, dict[str, object]] = {
    "audit verify": {"log": "{audit_log}", "checkpoints": "{checkpoints}"},
    "budget": {"ledger": "{ledger}"},
    "dashboard": {"run_dir": "{run_dir}", "port": "{free_port}"},
    "ledger verify": {"ledger": "{ledger}"},
    "calibrate": {"model": "{model}", "data": "{hospital}", "out": "{new}"},
    "cohort": {
        "out": "{new}",
        "hospitals": "2",
        "scale": "0.05",
        "kinds": "signals",
        "hospitals_file": "{new}/hospitals.json",  # so --ledger-dir is checked
    },
    "evaluate": {"model": "{model}", "data": "{hospital}"},
    "privacy-audit": {
        "task": "icu-deterioration",
        "data": "{hospital}",
        "epsilon": "2",
        **FAST_TRAIN,
    },
    "provision add-hospital": {"out": "{prov}", "id": "hospital_03"},
    "provision app-hash": {"project": "{project}"},
    "provision init": {"consortium": "{consortium}", "out": "{new}"},
    "provision node-key": {"folder": "{new}", "id": "hospital_09"},
    "provision revoke": {"out": "{prov}", "id": "hospital_02"},
    "provision status": {"out": "{prov}"},
    "serve": {"model": "{model}", "port": "{free_port}"},
    "simulate": {"out": "{new}", "scale": "0.05", "hospitals": "3"},
    "train": {
        "task": "icu-deterioration",
        "data": "{hospital}",
        "out": "{new}",
        "ledger": "{root}/train-ledger.jsonl",
        **FAST_TRAIN,
    },
    "validate-data": {"path": "{hospital}", "task": "icu-deterioration"},
}


class Started(BaseException):
    """Raised where a command's long work begins: the input was accepted."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("hostile")
    build_world(root)
    return World(root)


@pytest.fixture(autouse=True)
def _sandbox(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray writes to the real cwd or home; stubs where the long work starts."""
    import uvicorn

    import client.pipeline
    import client.privacy.audit
    import simulation.runner

    def started(what: str):
        def stub(*args: object, **kwargs: object) -> None:
            raise Started(what)

        return stub

    monkeypatch.chdir(world.root / "cwd")
    monkeypatch.setenv("HOME", str(world.root / "home"))
    monkeypatch.setattr(client.pipeline, "train", started("training"))
    monkeypatch.setattr(client.privacy.audit, "_train", started("audit training"))
    monkeypatch.setattr(simulation.runner, "prepare_out", started("simulation"))
    monkeypatch.setattr(uvicorn, "run", started("server"))


UNKNOWN_FLAG = "--no-such-flag"


def _argv(world: World, name: str, changes: dict[str, object]) -> list[str]:
    """``fedcare NAME`` with the baseline's values, ``changes`` applied."""
    values = {**BASELINES.get(name, {}), **changes}
    params = COMMANDS[name].params
    argv = name.split()
    argv += [
        str(values[p.name])
        for p in params
        if isinstance(p, click.Argument) and p.name in values
    ]
    for param in params:
        if param.name in values and isinstance(param, click.Option):
            value = values[param.name]
            if param.is_flag:
                argv += [param.opts[0]] if value else []
            else:
                argv += [param.opts[0], str(value)]
    argv += [key for key in changes if key == UNKNOWN_FLAG]
    paths = world.paths()
    return [a.format(**paths) for a in argv]


def _run(world: World, name: str, changes: dict[str, object]) -> Result | Started:
    """The command's result, or the ``Started`` its stub raised."""
    try:
        return CliRunner().invoke(app, _argv(world, name, changes))
    except Started as exc:
        return exc


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
    }


def _path_kind(name: str, param: str) -> str | None:
    return PATH_KINDS.get(f"{name} {param}", PATH_KINDS.get(param))


def _cases() -> Iterator[object]:
    for name, command in COMMANDS.items():
        yield pytest.param(name, {UNKNOWN_FLAG: None}, 2, id=f"{name}:unknown-flag")
        for param in command.params:
            if isinstance(param.type, click.Path):
                kind = _path_kind(name, param.name)
                for case in PATH_CASES.get(kind, ["unclassified"]):
                    value = "{" + case + "}"
                    code = EXIT.get((f"{name} {param.name}", case), 2)
                    yield pytest.param(
                        name,
                        {param.name: value},
                        code,
                        id=f"{name}:{param.name}={case}",
                    )
            elif isinstance(param.type, click.types.IntParamType):
                for bad in ("abc", "1.5", "-1"):
                    yield pytest.param(
                        name, {param.name: bad}, 2, id=f"{name}:{param.name}={bad}"
                    )
            elif isinstance(param.type, click.types.FloatParamType):
                for bad in ("abc", "inf", "nan", "-1"):
                    yield pytest.param(
                        name, {param.name: bad}, 2, id=f"{name}:{param.name}={bad}"
                    )
            elif isinstance(param.type, click.Choice) or param.name in WORDS:
                bad = WORDS.get(param.name, "no-such-choice")
                yield pytest.param(
                    name, {param.name: bad}, 2, id=f"{name}:{param.name}=bad-word"
                )


@pytest.mark.parametrize(("name", "changes", "code"), list(_cases()))
def test_bad_input_exits_with_one_line_and_writes_nothing(
    world: World, name: str, changes: dict[str, object], code: int
) -> None:
    ((param, value),) = changes.items()
    assert value != "{unclassified}", (
        f"{name}: classify path parameter {param!r} in PATH_KINDS"
    )
    kind = "bad paths and files" if str(value).startswith("{") else "bad flag values"
    # the world's ledger is in the snapshot: unchanged files = no budget spent
    with reliability.case(f"CLI: {kind}", checks_lost=True, checks_spent=True):
        before = _snapshot(world.root)
        result = _run(world, name, changes)
        written = _snapshot(world.root) != before
        if written:
            make_junk(world.root)
        argv = " ".join(_argv(world, name, changes))
        assert not isinstance(result, Started), (
            f"fedcare {argv}: accepted, {result} began"
        )
        assert not written, f"fedcare {argv} wrote files: {result.output}"
        output = result.output
        assert "Traceback" not in output, output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"fedcare {argv}: {type(result.exception).__name__}: {result.exception}"
        )
        assert result.exit_code == code, output
        _assert_short(output)


def _assert_short(output: str) -> None:
    """Typer's usage box, or one line of fedcare's (besides warnings and logs)."""
    if "Usage:" in output or "╭─ Error" in output:
        return
    lines = [
        line
        for line in output.splitlines()
        if line.strip() and not line.startswith(("warning:", "INFO ", "WARNING "))
    ]
    assert len(lines) == 1 and lines[0].startswith(("error: ", "TAMPERED ")), output
    assert len(lines[0]) < 600, output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_baseline(tmp_path: Path, world: World, name: str) -> None:
    """The baseline each case changes is valid: it runs (or reaches the stub)."""
    required = [p.name for p in COMMANDS[name].params if p.required]
    missing = [p for p in required if p not in BASELINES.get(name, {})]
    assert not missing, f"{name}: add its required {missing} to BASELINES"
    copy = World(tmp_path / "w")
    shutil.copytree(world.root, copy.root, symlinks=True)
    os.chdir(copy.root / "cwd")
    result = _run(copy, name, {})
    assert isinstance(result, Started) or result.exit_code == 0, result.output


def test_serve_on_a_port_in_use_fails_fast(world: World) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(world, "serve", {"port": str(port)})
    assert not isinstance(result, Started), "serve started on a port in use"
    assert result.exit_code == 2, result.output
    assert f"127.0.0.1:{port}" in result.output
    _assert_short(result.output)
