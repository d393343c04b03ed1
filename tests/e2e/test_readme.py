"""Every README block marked `<!-- runnable -->` runs, in order, against the demo's end state.

A line's expected exit code is 0 unless it ends with `# exit N`. Blocks run with bash in
a scratch directory (examples/ linked in), with the `dbroll` console script of this venv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.demo import BUCKET
from tests.conftest import REPO, dbroll

pytestmark = pytest.mark.e2e

_BLOCK = re.compile(r"<!-- runnable -->\s*```sh\n(.*?)```", re.S)
_EXIT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")


def runnable_commands(text: str) -> list[tuple[str, int]]:
    out = []
    for block in _BLOCK.findall(text):
        pending = ""
        for raw in block.splitlines():
            line = raw.rstrip()
            if pending:
                line = pending + " " + line.lstrip()
                pending = ""
            if line.endswith("\\"):
                pending = line[:-1].rstrip()
                continue
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = _EXIT.search(line)
            out.append((_EXIT.sub("", line) if m else line, int(m.group(1)) if m else 0))
    return out


def test_the_readme_has_runnable_blocks_that_name_real_commands():
    commands = runnable_commands((REPO / "README.md").read_text())
    assert len(commands) >= 8
    assert all(c.startswith("dbroll ") for c, _ in commands)


def test_readme_blocks_run_after_the_demo(aws, db, tmp_path, monkeypatch):
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    r = dbroll("demo", "--dsn", db.to_dsn(), "--aws-endpoint", aws.endpoint, "--json")
    assert r.exit_code == 0, r.stderr[-3000:]
    (tmp_path / "examples").symlink_to(REPO / "examples")
    env = {
        **os.environ,
        **aws.env,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "DBROLL_DSN": db.to_dsn(),
        "DBROLL_BUCKET": BUCKET,
        "DBROLL_POLL_SECONDS": "0.05",
        "DBROLL_LOG_FORMAT": "json",
    }
    for command, expected in runnable_commands((REPO / "README.md").read_text()):
        p = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == expected, f"{command}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    # the tutorial's deploy moved the service to v3 and left the schema at 7
    st = dbroll("status", "--migrations", str(REPO / "examples/shop/migrations"), "--json",
                env={"DBROLL_DSN": db.to_dsn()})  # fmt: skip
    assert st.json["applied"] == [str(v) for v in range(1, 8)]
    assert "revert 3 migration(s) (7, 6, 5)" in (tmp_path / "plan.md").read_text()
