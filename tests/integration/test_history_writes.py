"""History writes travel with the statements they guard (one round trip per statement).

The runner sends the previous migration's success mark, the next migration's running row and
each statements_done mark in the same packet as the next statement, on the work connection,
while that connection's session is as dbroll opened it. These tests pin what that must not
change: the server stops at the first error, so a history write that fails leaves the
statement not run; and once a migration has touched its session (autocommit, USE, temporary
tables) the writes go on the control connection, where they cannot be rolled back with it.
"""

from __future__ import annotations

import pytest

from pipeline.db import history as H
from pipeline.db.runner import keeps_session_clean
from pipeline.migrations.sqlsplit import split_statements
from tests.conftest import args, dbroll, history_rows, query, write_files


def test_a_failed_history_write_stops_before_its_statement(db, tmp_path):
    query(db, H.DDL)
    query(db, H.LOCK_DDL)
    # the server refuses the running row of version 2, as a full disk or a revoked grant would
    query(
        db,
        "CREATE TRIGGER refuse_v2 BEFORE INSERT ON dbroll_history FOR EACH ROW "
        "IF NEW.version = '2' THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'history refused'; END IF",
    )
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__a.sql": "CREATE TABLE a (id INT);\nCREATE TABLE a2 (id INT);",
            "V2__b.sql": "CREATE TABLE b (id INT);",
            "V3__c.sql": "CREATE TABLE c (id INT);",
        },
    )
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 1
    assert "could not write dbroll_history before migrate 2 (V2__b.sql)" in r.stderr
    assert "history refused" in r.stderr and "did not run" in r.stderr
    tables = {t for (t,) in query(db, "SHOW TABLES")}
    assert {"a", "a2"} <= tables and not {"b", "c"} & tables
    # version 1's success mark went in the same packet, before the refused row: it is kept
    assert history_rows(db) == [("1", "migrate", "success", 2, 2)]

    query(db, "DROP TRIGGER refuse_v2")
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert [(v, s, d) for v, _, s, d, _ in history_rows(db)] == [
        ("1", "success", 2),
        ("2", "success", 1),
        ("3", "success", 1),
    ]


def test_writes_after_autocommit_off_are_still_committed(db, tmp_path):
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__loose.sql": "CREATE TABLE a (id INT);\nSET autocommit = 0;\n"
            "CREATE TABLE b (id INT);\nCREATE TABLE c (id INT);",
            "V2__d.sql": "CREATE TABLE d (id INT);",
            "V3__fails.sql": "CREATE TABLE e (id INT);\nSET autocommit = 0;\n"
            "CREATE TABLE f (id INT);\nCREATE TABLE a (id INT);",
        },
    )
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 1 and "statement 4 of 4" in r.stderr
    # read from another connection: every write is committed, none waits in an open transaction
    assert history_rows(db) == [
        ("1", "migrate", "success", 4, 4),
        ("2", "migrate", "success", 1, 1),
        ("3", "migrate", "failed", 3, 4),
    ]
    assert {"a", "b", "c", "d", "e", "f"} <= {t for (t,) in query(db, "SHOW TABLES")}


@pytest.mark.parametrize(
    ("sql", "clean"),
    [
        ("CREATE TABLE t (id INT)", True),
        ("ALTER TABLE t ADD COLUMN c INT", True),
        ("DROP TABLE t", True),
        ("INSERT INTO t VALUES (1)", True),
        ("/*!40101 CREATE TABLE t (id INT) */", True),
        ("SET autocommit = 0", False),
        ("SET SESSION sql_mode = ''", False),
        ("USE other", False),
        ("START TRANSACTION", False),
        ("BEGIN", False),
        ("XA START 'x'", False),
        ("SAVEPOINT s", False),
        ("LOCK TABLES t WRITE", False),
        ("CREATE TEMPORARY TABLE tmp (id INT)", False),
        ("PREPARE s FROM 'SELECT 1'", False),
        ("CALL refresh_totals()", False),
        ("HANDLER t OPEN", False),
        ("FLUSH TABLES t WITH READ LOCK", False),
    ],
)
def test_which_statements_leave_the_session_as_opened(sql, clean):
    (stmt,) = split_statements(sql + ";\n")
    assert keeps_session_clean(stmt) is clean
