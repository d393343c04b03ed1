"""A query sent and read in two steps (pipeline.db.connect.send_query / read_result), and the
runner's work done in between: on a real MariaDB, with PyMySQL's split path and without."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pymysql
import pytest

from pipeline.db import connect as C
from tests.conftest import dbroll, query, write_files


@pytest.fixture(params=["split", "whole"])
def path(request, monkeypatch):
    """Both ways send_query can work: PyMySQL's send and read apart, or execute() at once."""
    if request.param == "split":
        assert C._SPLIT, "this PyMySQL lacks the calls send_query splits execute() into"
    else:
        monkeypatch.setattr(C, "_SPLIT", False)
    return request.param


def test_a_packet_sent_then_read_gives_what_execute_gives(db, path):
    conn = C.connect(db, multi_statements=True)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO t (v) VALUES (1), (2)")
        C.send_query(cur, "INSERT INTO t (v) VALUES (3);\nSELECT v FROM t ORDER BY id")
        # the connection's other users wait: the client does its own work here
        C.read_result(cur)
        assert cur.lastrowid == 3  # the first result is the INSERT's
        assert cur.nextset()
        assert cur.fetchall() == ((1,), (2,), (3,))
        assert not cur.nextset()
    finally:
        conn.close()


def test_an_error_comes_with_the_read_and_the_connection_stays_usable(db, path):
    conn = C.connect(db, multi_statements=True)
    try:
        cur = conn.cursor()
        with pytest.raises(pymysql.MySQLError) as e:
            C.send_query(cur, "SELECT * FROM no_such_table;\nCREATE TABLE never (id INT)")
            assert path == "split", "execute() at once raises in send_query"
            C.read_result(cur)  # split: the packet is on its way, its answer comes here
        assert e.value.args[0] == 1146
        cur.execute("SELECT 1")
        assert cur.fetchall() == ((1,),)
    finally:
        conn.close()
    # the server stopped at the error: the statement after it never ran
    assert query(db, "SHOW TABLES LIKE 'never'") == []


def _events(stderr: str) -> list[tuple[str, str | None]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            e = json.loads(line)
            out.append((e["event"], e.get("version")))
    return out


def _migrations(tmp_path, broken: bool):
    files = {f"V{i}__t{i}.sql": f"CREATE TABLE t{i} (id INT PRIMARY KEY);\n" for i in (1, 2, 3)}
    if broken:
        files["V4__broken.sql"] = "CREATE TABLE t1 (id INT PRIMARY KEY);\n"
    return write_files(tmp_path / "m", files)


def test_every_migrations_line_is_written_in_order_the_last_one_included(db, tmp_path, path):
    # a migration's line is written while the server runs the next one's statement; the last
    # one's when the run ends
    r = dbroll("migrate", "--dsn", db.to_dsn(), "--migrations", str(_migrations(tmp_path, False)))
    assert r.exit_code == 0, r.stderr
    assert _events(r.stderr) == [("migrate", "1"), ("migrate", "2"), ("migrate", "3")]


def test_the_lines_of_the_migrations_done_come_before_a_later_failure(db, tmp_path, path):
    r = dbroll("migrate", "--dsn", db.to_dsn(), "--migrations", str(_migrations(tmp_path, True)))
    assert r.exit_code == 1
    assert _events(r.stderr) == [("migrate", "1"), ("migrate", "2"), ("migrate", "3")]
    assert r.stderr.index('"version": "3"') < r.stderr.index("migrate 4 (V4__broken.sql)")
    assert "already exists" in r.stderr


def _history(db) -> list[tuple]:
    return query(db, "SELECT version, status FROM dbroll_history ORDER BY id")


def test_a_log_line_that_cannot_be_written_loses_no_migration(db, tmp_path):
    # stderr is a pipe nobody reads any more (`dbroll migrate 2>&1 | head -1` gone wrong):
    # every log line fails to be written. The statement on its way is still read and
    # recorded; the error is raised once every history write is in.
    mdir = _migrations(tmp_path, False)
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run(
            [sys.executable, "-m", "pipeline", "--log-format", "json", "migrate"]
            + ["--dsn", db.to_dsn(), "--migrations", str(mdir)],
            stdout=subprocess.DEVNULL,
            stderr=w,
            timeout=120,
        )
    finally:
        os.close(w)
    assert p.returncode != 0  # it could not say what it did: not a success
    assert _history(db) == [("1", "success"), ("2", "success"), ("3", "success")]


def test_a_script_that_cannot_be_split_keeps_the_success_of_the_migration_before_it(db, tmp_path):
    files = {
        "V1__a.sql": "CREATE TABLE a (id INT PRIMARY KEY);\n",
        "V2__b.sql": "CREATE TABLE b (v VARCHAR(10) DEFAULT 'never closed);\n",
    }
    mdir = write_files(tmp_path / "m", files)
    r = dbroll("migrate", "--dsn", db.to_dsn(), "--migrations", str(mdir))
    assert r.exit_code != 0
    assert "V2__b.sql: line 1" in r.stderr and "unterminated" in r.stderr
    # version 1 finished: its success mark (sent with the next statement, which never came)
    # is written all the same, so the database is not left blocked on it
    assert _history(db) == [("1", "success")]
    st = dbroll("status", "--json", "--dsn", db.to_dsn(), "--migrations", str(mdir))
    assert st.exit_code == 0, st.stderr
    got = json.loads(st.stdout)
    assert got["blocked"] is None and got["applied"] == ["1"] and got["pending"] == ["2"]
