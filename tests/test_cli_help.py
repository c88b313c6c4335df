"""Every ``--help`` of every command shows each option's default.

An option shows its default either as Typer's ``[default: X]`` (a value set
in the code) or in its help text, in words ("(default: the task's
recipe)"), for options whose default depends on something else. Help text
is rendered by Rich, so the test also checks that no help text is lost to
markup: every word of each option's help appears in the rendered page.
"""

from __future__ import annotations

import re

import click
import pytest
import typer
from typer.testing import CliRunner

from simulation.cli.main import app


def _commands(
    group: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    if isinstance(group, click.Group):
        out = []
        for name, sub in sorted(group.commands.items()):
            out += _commands(sub, (*path, name))
        return out
    return [(path, group)]


COMMANDS = _commands(typer.main.get_command(app))


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9_.~<>/:'+-]+", text)


def _flat(text: str) -> str:
    """The rendered page without Rich's box drawing and line wrapping."""
    text = re.sub(r"[│╭╮╰╯─]", " ", text)
    return " ".join(text.split())


def test_every_command_is_listed() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"train", "simulate", "audit verify", "serve"} <= names
    assert len(names) >= 15


@pytest.mark.parametrize(
    "path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS]
)
def test_help_shows_every_default(path: tuple[str, ...], command) -> None:
    result = CliRunner().invoke(
        app, [*path, "--help"], terminal_width=200, env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    page = _flat(result.output)
    missing = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        help_text = param.help or ""
        # nothing the code wrote into the help text is swallowed by markup
        lost = [w for w in _words(help_text) if w not in page]
        if lost:
            missing.append(f"{param.opts[0]}: help words not shown {lost[:5]}")
        if param.required or (param.is_flag and not param.default):
            continue  # required, or a switch that is off unless given
        shown = param.show_default and param.default is not None
        if not shown and "default" not in help_text.lower():
            missing.append(f"{param.opts[0]}: no default shown")
    assert not missing, f"fedcare {' '.join(path)} --help: " + "; ".join(missing)
