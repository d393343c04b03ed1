"""Every `dbroll ...` command written in a buildspec exists with those options: each is
parsed by the installed CLI with --help appended (an unknown command or option fails)."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import cli
from tests.conftest import REPO

BUILDSPECS = [REPO / "buildspec.yml", *sorted((REPO / "infra" / "buildspecs").glob("*.yml"))]


def commands(path) -> list[str]:
    spec = yaml.safe_load(path.read_text())
    out = []
    for phase in (spec.get("phases") or {}).values():
        for line in phase.get("commands", []):
            out.append(" ".join(line.split()))
    return out


def dbroll_invocations(line: str) -> list[list[str]]:
    """The argument lists of each `dbroll` call in a shell line ($(...), pipes included)."""
    calls = []
    for m in re.finditer(r"(?:^|[\s(;|&])dbroll\s", line):
        rest = line[m.end() :]
        depth, end = 0, len(rest)
        for i, c in enumerate(rest):
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    end = i
                    break
                depth -= 1
            elif c in "|;&>" and depth == 0:
                end = i
                break
        calls.append(shlex.split(rest[:end]))
    return calls


ALL = [
    (f"{p.relative_to(REPO)}: dbroll {' '.join(args)}", args)
    for p in BUILDSPECS
    for line in commands(p)
    for args in dbroll_invocations(line)
]


def test_every_buildspec_calls_dbroll():
    assert {p.name for p in BUILDSPECS} >= {
        "buildspec.yml",
        "deploy.yml",
        "rollback-plan.yml",
        "rollback-execute.yml",
    }
    used = {args[0] for _, args in ALL}
    assert used >= {"manifest", "lint", "verify", "deploy", "plan", "rollback"}


@pytest.mark.parametrize(("where", "args"), ALL, ids=[w for w, _ in ALL])
def test_command_parses(where, args):
    r = CliRunner().invoke(cli, [*args, "--help"])
    assert r.exit_code == 0 and "Usage:" in r.output, f"{where}\n{r.output}"


def test_the_check_catches_an_unknown_option():
    r = CliRunner().invoke(cli, ["rollback", "--cluster", "c", "--no-such-flag", "--help"])
    assert r.exit_code == 2
    assert dbroll_invocations('X=$(dbroll manifest build --out "b c") && dbroll lint | tee') == [
        ["manifest", "build", "--out", "b c"],
        ["lint"],
    ]
