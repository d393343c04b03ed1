"""The CLI's options as --help shows them and as they parse (no database, no AWS)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from pipeline.cli import cli


def _commands(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_environment_variable_is_named_in_the_help_of_its_command():
    """An option read from DBROLL_* says so in --help: a variable left set in a task
    definition (DBROLL_BACKUP, DBROLL_STRATEGY...) changes what a command does."""
    seen = 0
    for path, command in _commands(cli):
        envvars = [p.envvar for p in command.params if isinstance(p, click.Option) and p.envvar]
        if not envvars:
            continue
        shown = CliRunner().invoke(cli, [*path, "--help"], terminal_width=400)
        assert shown.exit_code == 0, shown.output
        for name in envvars:
            assert f"[env {name}" in shown.output, (path, name)
            seen += 1
    assert seen > 40  # the lock options on each runner command, the DSN on each db command


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
@pytest.mark.parametrize(
    "command",
    [
        ("migrate", "--lock-timeout"),
        ("apply-bundle", "x.tgz", "--lock-timeout"),
        ("rollback", "--cluster", "c", "--service", "s", "--to", "t", "--timeout"),
    ],
)
def test_seconds_must_be_a_finite_number(command, value):
    r = CliRunner().invoke(cli, [*command, value])
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{command[-1]}'" in r.output
