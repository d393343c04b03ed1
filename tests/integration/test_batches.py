"""Consecutive DDL-only migrations share packets (Runner._run_batch).

A packet holds each migration's running row, its statements with a statements_done mark
after each, and its success mark; the server runs it in order and stops at the first
error, so the history is what one round trip per statement would have written. These
tests pin that on a real server: what travels together (read back from the server's
general log), what a failure or a lock wait in the middle of a packet leaves, and that a
runner killed mid-packet, whose work session goes on without it, is waited for by the next
one before it reads the history.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.db import runner
from pipeline.db.connect import ConnectionSpec, connect
from pipeline.db.runner import work_lock_name
from tests.conftest import (
    SLOW,
    args,
    dbroll,
    history_rows,
    query,
    slow_create,
    slow_files,
    start_and_signal,
    user_tables,
    write_files,
)


@pytest.fixture
def general_log(db: ConnectionSpec) -> Iterator[callable]:
    """The server's general log as a table while the test runs: a function that returns
    the packets (COM_QUERY texts) that mention `marker`, in order."""
    query(db, "SET GLOBAL log_output = 'TABLE', general_log = 1")
    query(db, "TRUNCATE TABLE mysql.general_log")

    def packets(marker: str) -> list[str]:
        got = query(
            db,
            "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log "
            "WHERE command_type = 'Query' ORDER BY event_time",
        )
        return [a for (a,) in got if marker in a and "general_log" not in a]

    try:
        yield packets
    finally:
        query(db, "SET GLOBAL general_log = 0")
        query(db, "TRUNCATE TABLE mysql.general_log")


FIVE = {
    f"V{v}__m{v}.sql": f"CREATE TABLE bt_{v}a (id INT PRIMARY KEY) -- ends in a comment\n;\n"
    f"CREATE TABLE bt_{v}b (id INT PRIMARY KEY);\n"
    for v in range(1, 6)
}
FIVE.update({f"U{v}__m{v}.sql": f"DROP TABLE bt_{v}b;\nDROP TABLE bt_{v}a;\n" for v in range(1, 6)})


def test_ddl_migrations_apply_and_undo_in_one_packet(db, tmp_path, general_log):
    mdir = write_files(tmp_path / "m", FIVE)
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    sent = general_log("bt_")
    assert len(sent) == 1, sent  # ten statements, five running rows and their marks
    assert sent[0].count("CREATE TABLE bt_") == 10
    assert history_rows(db) == [(str(v), "migrate", "success", 2, 2) for v in range(1, 6)]
    assert user_tables(db) == {f"bt_{v}{s}" for v in range(1, 6) for s in "ab"}
    # each migration is still logged on its own, in order
    lines = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert [e["version"] for e in lines if e["event"] == "migrate"] == ["1", "2", "3", "4", "5"]

    r = dbroll("undo", *args(db, mdir, "--target", "0"))
    assert r.exit_code == 0, r.stderr
    drops = [p for p in general_log("bt_") if "DROP TABLE" in p]
    assert len(drops) == 1 and drops[0].count("DROP TABLE bt_") == 10, drops
    assert history_rows(db)[5:] == [(str(v), "undo", "success", 2, 2) for v in range(5, 0, -1)]
    assert user_tables(db) == set()


def test_a_dml_migration_runs_on_its_own_between_batches(db, tmp_path, general_log):
    files = {k: v for k, v in FIVE.items() if k.startswith("V")}
    files["V3__m3.sql"] = (
        "CREATE TABLE bt_3a (id INT PRIMARY KEY);\nINSERT INTO bt_3a VALUES (1);\n"
    )
    mdir = write_files(tmp_path / "m", files)
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    creates = [p.count("CREATE TABLE bt_") for p in general_log("bt_") if "CREATE TABLE" in p]
    assert creates == [4, 1, 4], creates  # V1-V2 | V3 (its CREATE alone) | V4-V5
    assert [r[2:4] for r in history_rows(db)] == [("success", 2)] * 5


@pytest.mark.parametrize(
    ("cap", "packets"),
    [
        (4, [4, 4, 2]),  # two migrations of two statements per packet, then the last
        (1, [1] * 10),  # a migration over the cap runs statement by statement
    ],
)
def test_packets_stop_at_the_statement_cap(db, tmp_path, general_log, monkeypatch, cap, packets):
    monkeypatch.setattr(runner, "BATCH_STATEMENTS", cap)
    mdir = write_files(tmp_path / "m", {k: v for k, v in FIVE.items() if k.startswith("V")})
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert [p.count("CREATE TABLE bt_") for p in general_log("CREATE TABLE bt_")] == packets
    assert history_rows(db) == [(str(v), "migrate", "success", 2, 2) for v in range(1, 6)]


def test_a_failure_mid_packet_leaves_the_exact_record(db, tmp_path):
    mdir = write_files(tmp_path / "m", {k: v for k, v in FIVE.items() if k.startswith("V")})
    query(db, "CREATE TABLE bt_3b (id INT PRIMARY KEY)")  # V3's second statement will fail
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 1
    assert "migrate 3 (V3__m3.sql): statement 2 of 2 (line 3" in r.stderr, r.stderr
    assert "already exists" in r.stderr
    assert history_rows(db) == [
        ("1", "migrate", "success", 2, 2),
        ("2", "migrate", "success", 2, 2),
        ("3", "migrate", "failed", 1, 2),
    ]
    assert user_tables(db) == {"bt_1a", "bt_1b", "bt_2a", "bt_2b", "bt_3a", "bt_3b"}

    query(db, "DROP TABLE bt_3b")
    r = dbroll("resume", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert [(v, s, d) for v, _, s, d, _ in history_rows(db)][-3:] == [
        ("3", "success", 2),
        ("4", "success", 2),
        ("5", "success", 2),
    ]
    assert len(user_tables(db)) == 10


def test_a_lock_wait_mid_packet_is_retried_from_that_statement(db, tmp_path):
    query(db, "CREATE TABLE held (id INT PRIMARY KEY)")
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__a.sql": "CREATE TABLE a (id INT);",
            "V2__b.sql": "CREATE TABLE b1 (id INT);\nALTER TABLE held ADD COLUMN c INT;\n"
            "CREATE TABLE b2 (id INT);",
            "V3__c.sql": "CREATE TABLE c (id INT);",
        },
    )
    holder = connect(db)
    try:
        cur = holder.cursor()
        cur.execute("START TRANSACTION")
        cur.execute("SELECT * FROM held")  # a metadata lock the ALTER waits for
        release = threading.Timer(2.5, holder.rollback)
        release.start()
        r = dbroll("migrate", *args(db, mdir, "--lock-wait-timeout", "1", "--lock-retries", "8"))
        release.join()
    finally:
        holder.close()
    assert r.exit_code == 0, r.stderr
    retries = [line for line in r.stderr.splitlines() if "retrying" in line]
    assert retries and all('"statement": 2' in line for line in retries), r.stderr
    # one row per migration: the retry went on with version 2's running row
    assert history_rows(db) == [
        ("1", "migrate", "success", 1, 1),
        ("2", "migrate", "success", 3, 3),
        ("3", "migrate", "success", 1, 1),
    ]
    assert user_tables(db) == {"a", "b1", "b2", "c", "held"}
    assert ("c",) in query(
        db,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = 'held'",
    )


def test_a_work_session_left_behind_is_waited_for(db, tmp_path):
    mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);"})
    other = connect(db)
    try:
        cur = other.cursor()
        cur.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()", (work_lock_name(db.database),))
        got, other_id = cur.fetchone()
        assert got == 1
        r = dbroll("migrate", *args(db, mdir, "--lock-timeout", "1"))
        assert r.exit_code == 4, r.stderr
        assert f"connection {other_id}" in r.stderr and "still running" in r.stderr, r.stderr
        assert query(db, "SHOW TABLES") == []  # not even dbroll's own tables

        release = threading.Timer(
            0.5, cur.execute, ("DO RELEASE_LOCK(%s)", (work_lock_name(db.database),))
        )
        release.start()
        r = dbroll("migrate", *args(db, mdir, "--lock-timeout", "30"))
        release.join()
        assert r.exit_code == 0, r.stderr
        assert "waiting for statements a stopped runner left running" in r.stderr
        assert history_rows(db) == [("1", "migrate", "success", 1, 1)]
    finally:
        other.close()


@pytest.mark.timeout(120)
def test_a_runner_killed_mid_packet_is_waited_for_by_the_next(db, tmp_path):
    mdir = write_files(tmp_path / "m", slow_files())
    start_and_signal(db, mdir, signal.SIGKILL)
    r = dbroll("migrate", *args(db, mdir, "--lock-timeout", "60"))
    assert r.exit_code == 0, r.stderr
    # MariaDB ran the killed runner's packet to its end; the next runner waited for it
    # instead of reading a history still being written, and found nothing left to do
    assert "waiting for statements a stopped runner left running" in r.stderr, r.stderr
    assert history_rows(db) == [(str(v), "migrate", "success", 1, 1) for v in range(1, SLOW + 1)]
    assert user_tables(db) == {f"slow_{v}" for v in range(1, SLOW + 1)}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_mid_packet_stops_the_packet_on_the_server(db, tmp_path, sig):
    # SIGTERM is how ECS stops a task (StopTask, a deployment replacing it), and how
    # `docker stop` and supervisors stop a process: it takes Ctrl-C's way out
    mdir = write_files(tmp_path / "m", slow_files())
    err = start_and_signal(db, mdir, sig)
    assert "stopping the statements sent to the server" in err, err
    r = dbroll("migrate", *args(db, mdir, "--lock-timeout", "60"))
    # the statement running was interrupted (and rolled back by MariaDB), the rest of the
    # packet never ran: blocked at that migration with nothing of it in effect
    assert r.exit_code == 3, r.stderr
    blocked = history_rows(db)[-1]
    assert blocked[2:4] == ("running", 0), history_rows(db)
    k = int(blocked[0])
    assert 2 <= k < SLOW
    assert history_rows(db)[:-1] == [(str(v), "migrate", "success", 1, 1) for v in range(1, k)]
    assert user_tables(db) == {f"slow_{v}" for v in range(1, k)}
    r = dbroll("resume", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert user_tables(db) == {f"slow_{v}" for v in range(1, SLOW + 1)}


@pytest.mark.timeout(60)
def test_a_stop_that_reaches_the_server_while_it_reads_the_packet_still_stops_it(db):
    # the race behind a rare CI failure, made certain: the signal comes just after a packet
    # was sent, and the runner's KILL reaches the work session while the server still reads
    # that packet. MariaDB clears a KILL QUERY as it starts on a packet, so the whole packet
    # ran; the stop must hold whenever it lands
    r = runner.Runner(db, None)
    with r._session(lock=True):
        r._work_cursor()
        work = r._work
        thread = work.thread_id()
        sql = b"CREATE TABLE after_stop (i INT)"
        payload = b"\x03" + sql  # COM_QUERY
        packet = len(payload).to_bytes(3, "little") + b"\x00" + payload
        work._sock.sendall(packet[:10])  # the server now waits for the rest of the packet
        r._interrupt_work()
        with contextlib.suppress(OSError):  # the server may have closed the session
            work._sock.sendall(packet[10:])
        deadline = time.monotonic() + 30
        while True:  # until the work session is idle again, or gone
            rows = query(
                db, "SELECT command FROM information_schema.processlist WHERE id = %s", (thread,)
            )
            if not rows or rows[0][0] == "Sleep":
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.05)
    assert "after_stop" not in user_tables(db)


@pytest.mark.timeout(120)
def test_sigterm_stops_a_statement_run_on_its_own(db, tmp_path):
    # a migration that changes its session is not batched: its statements go one round trip
    # each. Stopped mid-statement, the statement is interrupted on the server too, instead
    # of running on to its end (a long ALTER or CREATE ... SELECT nobody waits for)
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__big.sql": "SET @rows := 1000000;\n" + slow_create("big", 1_000_000),
        },
    )
    err = start_and_signal(db, mdir, signal.SIGTERM, running="CREATE TABLE big %")
    assert "stopping the statements sent to the server" in err, err
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 3, r.stderr
    assert "waiting for statements a stopped runner left running" not in r.stderr, r.stderr
    assert history_rows(db) == [("1", "migrate", "running", 1, 2)]
    assert user_tables(db) == set()
    r = dbroll("resume", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert user_tables(db) == {"big"}
