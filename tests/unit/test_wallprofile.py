"""bench/wallprofile.py: py-spy's collapsed stacks classed into where a dbroll run waits (pure).

The stacks are lines as `py-spy record --idle --nolineno --format raw` wrote them for
`dbroll migrate` (py-spy 0.4.3), trimmed of their common outer frames where noted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "wallprofile", Path(__file__).resolve().parents[2] / "bench" / "wallprofile.py"
)
assert _SPEC and _SPEC.loader
W = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(W)

CLI = (
    "<module> (dbroll);main (pipeline/cli.py);Command.__call__ (click/core.py);"
    "Command.main (click/core.py);Group.invoke (click/core.py);Command.invoke (click/core.py);"
    "Context.invoke (click/core.py);handle_errors.<locals>.wrapper (pipeline/cli.py);"
    "migrate (pipeline/cli.py)"
)
STEPS = (
    CLI + ";Runner.migrate (pipeline/db/runner.py);Runner._run_steps (pipeline/db/runner.py);"
    "Runner._run_steps_logged (pipeline/db/runner.py);"
    "Runner._run_per_statement (pipeline/db/runner.py)"
)
RECV = (
    "read_result (pipeline/db/connect.py);Connection._read_query_result "
    "(pymysql/connections.py);MySQLResult.read (pymysql/connections.py);"
    "Connection._read_packet (pymysql/connections.py);Connection._read_bytes "
    "(pymysql/connections.py);SocketIO.readinto (socket.py)"
)
RECORDING = [
    f"{STEPS};Runner._execute_after (pipeline/db/runner.py);Runner._query "
    f"(pipeline/db/runner.py);{RECV} 552",
    f"{STEPS};Runner._execute_after (pipeline/db/runner.py);Runner._query "
    "(pipeline/db/runner.py);send_query (pipeline/db/connect.py);Connection._execute_command "
    "(pymysql/connections.py);Connection._write_bytes (pymysql/connections.py) 34",
    f"{STEPS};Runner._execute_after (pipeline/db/runner.py);Runner._query "
    "(pipeline/db/runner.py);Runner._spare_time (pipeline/db/runner.py);"
    "_make_filtering_bound_logger.<locals>.make_method.<locals>.meth (structlog/_native.py) 34",
    f"{STEPS};Runner._insert_running (pipeline/db/runner.py);insert_event "
    "(pipeline/db/history.py);Cursor._mogrify (pymysql/cursors.py) 4",
    f"{CLI};build_runner (pipeline/cli.py);load_migration_set (pipeline/migrations/formats.py);"
    "_load_paired (pipeline/migrations/formats.py);_read (pipeline/migrations/formats.py) 54",
    f"{CLI};Runner.migrate (pipeline/db/runner.py);Runner._read_history "
    "(pipeline/db/runner.py);read_history (pipeline/db/history.py);"
    "MySQLResult._read_row_from_packet (pymysql/connections.py) 10",
    # the history read waits on the server: that is the server's time, not loading
    f"{CLI};Runner.migrate (pipeline/db/runner.py);Runner._read_history "
    f"(pipeline/db/runner.py);read_history (pipeline/db/history.py);{RECV} 7",
    "<module> (dbroll);_find_and_load (<frozen importlib._bootstrap>);"
    "_find_and_load_unlocked (<frozen importlib._bootstrap>) 91",
    f"{CLI};_find_and_load (<frozen importlib._bootstrap>);exec_module "
    "(<frozen importlib._bootstrap_external>) 12",
    " 38",  # no Python frame: the interpreter starting or exiting
    f"{CLI};render_run (pipeline/cli.py) 5",
]


def stack(line: str) -> list[str]:
    return W.parse_collapsed([line])[0][0]


def test_each_class_from_its_stack():
    got = [W.classify(stack(line)) for line in RECORDING]
    assert got == [
        "socket",
        "socket",
        "spare",
        "between",
        "load",
        "load",
        "socket",
        "startup",
        "startup",
        "startup",
        "other",
    ]


def test_breakdown_sums_samples_per_class_and_names_every_class():
    c = W.breakdown(W.tally(RECORDING))
    assert set(c) == {k for k, _ in W.KINDS}
    assert c == {
        "socket": 552 + 34 + 7,
        "startup": 91 + 12 + 38,
        "load": 54 + 10,
        "spare": 34,
        "between": 4,
        "other": 5,
    }
    assert sum(c.values()) == sum(n for _, n in W.parse_collapsed(RECORDING))


def test_tallies_of_several_runs_add_up():
    one = W.tally(RECORDING)
    assert W.breakdown(one + one) == {k: 2 * n for k, n in W.breakdown(one).items()}


def test_empty_recording_has_every_class_at_zero():
    assert W.breakdown(W.tally([])) == {k: 0 for k, _ in W.KINDS}


def test_top_frames_are_the_innermost_of_one_class():
    t = W.tally(RECORDING)
    assert W.top_frames(t, "load") == [
        ("_read (pipeline/migrations/formats.py)", 54),
        ("MySQLResult._read_row_from_packet (pymysql/connections.py)", 10),
    ]
    assert W.top_frames(t, "startup", 1) == [
        ("_find_and_load_unlocked (<frozen importlib._bootstrap>)", 91)
    ]


def test_a_record_left_without_a_count_is_refused_with_its_first_line():
    with pytest.raises(ValueError, match="line 2 .*no sample count"):
        W.parse_collapsed(["a (x.py) 3", "a (x.py);b (y.py)"])


# A record as py-spy 0.4.3 wrote it (bench/.work/profile-apply.txt, 2026-11-29): a frame
# seen while configparser was imported, named with a multi-line string, starting on a
# blank line; the records around it are whole lines (their outer frames trimmed).
SPANNING = [
    "<module> (dbroll);_find_and_load (<frozen importlib._bootstrap>);<module> (locale.py) 2\n",
    "\n",
    "        (?P<option>.*?)                    # very permissive!\n",
    "        \\s*(?P<vi>=|:)\\s*              # any number of space/tab,\n",
    "                                           # allowed delimiters,\n",
    "        (?P<value>.*)$                     # everything up to eol\n",
    "         (tab\n",
    "        ) 1\n",
    STEPS + ";Runner._insert_running (pipeline/db/runner.py) 4\n",
]


def test_a_frame_name_spanning_lines_is_one_record():
    records = W.parse_collapsed(SPANNING)
    assert [n for _, n in records] == [2, 1, 4]
    assert "very permissive" in records[1][0][0] and records[1][0][-1].endswith(")")
    c = W.breakdown(W.tally(SPANNING))
    assert c == {"socket": 0, "startup": 2, "load": 0, "spare": 0, "between": 4, "other": 1}
