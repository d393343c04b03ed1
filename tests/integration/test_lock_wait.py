"""A migration that meets a long open transaction: it must give up cleanly, not pile up.

* DDL: a connection holds `START TRANSACTION; SELECT * FROM t` (a metadata lock on t).
  `dbroll migrate --lock-wait-timeout 1 --lock-retries 2` with an ALTER of t exits 1,
  names the holder's connection id, leaves a `failed` migrate row whose error says
  "lock wait", and meanwhile a reader on a third connection keeps getting answers from
  t between the attempts. After the holder commits, `dbroll resume` applies the ALTER.
* DML: a connection holds `SELECT ... FOR UPDATE` on a row; a DML-only migration that
  needs the row fails cleanly (its transaction rolled back: nothing changed) and resumes
  once the row lock is released.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from pipeline.db.connect import ConnectionSpec, connect
from tests.conftest import REPO, dbroll, query, run_cli, schema_objects, write_files

V1 = """
CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(32) NOT NULL, KEY t_v_idx (v));
INSERT INTO t (id, v) SELECT seq, CONCAT('v', seq) FROM seq_1_to_200;
CREATE TABLE audit (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64) NOT NULL);
"""
V2_DDL = """
CREATE TABLE before_alter (id INT NOT NULL PRIMARY KEY);
ALTER TABLE t ADD COLUMN note VARCHAR(64) NULL;
CREATE INDEX t_note_idx ON t (note);
"""
V2_MIXED = """
CREATE TABLE side (id INT NOT NULL PRIMARY KEY);
UPDATE t SET v = 'changed' WHERE id = 7;
INSERT INTO audit (note) VALUES ('first');
INSERT INTO audit (note) VALUES ('second');
"""
V2_DML = """
INSERT INTO audit (note) VALUES ('first');
UPDATE t SET v = 'changed' WHERE id = 7;
INSERT INTO audit (note) VALUES ('second');
"""


def status(dsn: str, migrations: Path) -> dict:
    res = dbroll("status", "--dsn", dsn, "--migrations", str(migrations), "--json")
    assert res.exit_code == 0, (res.stdout, res.stderr)
    return res.json


def history(spec: ConnectionSpec) -> list[tuple]:
    return query(
        spec,
        "SELECT id, version, kind, status, statements_done, statements_total, "
        "applied, error FROM dbroll_history ORDER BY id",
    )


def columns(spec: ConnectionSpec, table: str) -> list[str]:
    return [
        r[0]
        for r in query(
            spec,
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION",
            (table,),
        )
    ]


def setup_v1(dsn: str, root: Path) -> Path:
    migrations = write_files(root, {"V1__t.sql": V1})
    proc = run_cli("migrate", "--dsn", dsn, "--migrations", str(migrations))
    assert proc.returncode == 0, proc.stderr
    return migrations


def log_lines(stderr: str) -> list[dict]:
    out = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


class Reader(threading.Thread):
    """`SELECT COUNT(*) FROM t` every ~20 ms on its own connection, no statement time limit."""

    def __init__(self, spec: ConnectionSpec) -> None:
        super().__init__(daemon=True)
        self.conn = connect(spec)
        cur = self.conn.cursor()
        cur.execute("SET SESSION max_statement_time = 0")
        cur.execute("SELECT CONNECTION_ID()")
        self.connection_id = cur.fetchone()[0]
        self.done: list[float] = []  # wall-clock time each answer arrived
        self.counts: set[int] = set()
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def run(self) -> None:
        cur = self.conn.cursor()
        while not self.stop.is_set():
            try:
                cur.execute("SELECT COUNT(*) FROM t")
                self.counts.add(cur.fetchone()[0])
                self.done.append(time.time())
            except BaseException as e:  # noqa: BLE001 - recorded and asserted on
                self.errors.append(e)
                return
            self.stop.wait(0.02)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=60)
        assert not self.is_alive(), "the reader is stuck"
        self.conn.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lock_wait", ["1", "0"])
def test_ddl_behind_an_open_transaction_gives_up_and_resumes(db, tmp_path, lock_wait):
    """lock_wait 1: each attempt queues for 1 s; 0: an attempt never queues at all."""
    dsn = db.to_dsn()
    migrations = setup_v1(dsn, tmp_path / "migrations")
    write_files(migrations, {"V2__alter_t.sql": V2_DDL})

    holder = connect(db, autocommit=False)
    reader = None
    try:
        hcur = holder.cursor()
        hcur.execute("SELECT CONNECTION_ID()")
        holder_id = hcur.fetchone()[0]
        hcur.execute("START TRANSACTION")
        hcur.execute("SELECT * FROM t")
        hcur.fetchall()

        reader = Reader(db)
        assert reader.connection_id != holder_id
        reader.start()
        t_start = time.time()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "migrate",
                "--dsn",
                dsn,
                "--migrations",
                str(migrations),
                "--lock-wait-timeout",
                lock_wait,
                "--lock-retries",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=REPO,
            env={**os.environ, "DBROLL_LOG_FORMAT": "json"},
        )
        t_end = time.time()
        time.sleep(0.1)  # let the reader answer once more after the run
        reader.finish()

        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        assert re.search(rf"\bconnection {holder_id}\b", proc.stderr), proc.stderr
        assert not re.search(rf"\bconnection {reader.connection_id}\b", proc.stderr), proc.stderr

        # it retried twice, backing off in between: 3 attempts in all
        retries = [e for e in log_lines(proc.stderr) if "retrying" in e.get("event", "")]
        assert len(retries) == 2, proc.stderr
        assert f"3 attempts of {lock_wait} s" in proc.stderr, proc.stderr

        # the reader kept answering, also between the attempts
        assert reader.errors == [], reader.errors
        assert reader.counts == {200}, reader.counts
        during = [t for t in reader.done if t_start <= t <= t_end]
        # a failed attempt is logged, then dbroll sleeps delay_s before the next attempt,
        # which then waits lock_wait s: an answer within 0.5 s of that pause came between
        # attempts (with lock_wait 1 the windows do not reach the end of the run)
        windows = []
        for e in retries:
            ts = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
            windows.append((ts - 0.5, ts + float(e["delay_s"]) + 0.5))
        between = [t for t in during if any(lo <= t <= hi for lo, hi in windows)]
        print(
            f"reader: {len(reader.done)} answers, {len(during)} during the run, "
            f"{len(between)} between attempts"
        )
        print(proc.stderr[-2000:])
        assert len(during) >= 3, len(during)
        assert between, "no reader query completed between the migration's attempts"

        st = status(dsn, migrations)
        b = st["blocked"]
        assert b is not None, st
        assert (b["version"], b["kind"], b["status"]) == ("2", "migrate", "failed"), b
        assert b["statements_done"] == 1 and b["statements_total"] == 3, b
        assert "lock wait" in b["error"].lower(), b
        assert st["applied"] == ["1"], st
        assert "note" not in columns(db, "t")
        # a blocked database refuses a plain migrate
        assert run_cli("migrate", "--dsn", dsn, "--migrations", str(migrations)).returncode == 3
    finally:
        if reader is not None and reader.is_alive():
            reader.finish()
        holder.rollback()
        holder.close()

    ended = [r for r in history(db) if r[3] != "running"]
    proc = run_cli(
        "resume",
        "--dsn",
        dsn,
        "--migrations",
        str(migrations),
        "--lock-wait-timeout",
        "1",
        "--lock-retries",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    assert columns(db, "t") == ["id", "v", "note"]
    indexes = {r[2] for r in query(db, "SHOW INDEX FROM t")}
    assert "t_note_idx" in indexes
    st = status(dsn, migrations)
    assert st["blocked"] is None and st["applied"] == ["1", "2"], st
    rows = history(db)
    assert [r for r in rows if r[0] in {e[0] for e in ended}] == ended, "an ended row changed"
    ok = [r for r in rows if r[1] == "2" and r[2] == "migrate" and r[3] == "success"]
    assert len(ok) == 1 and ok[0][4] == ok[0][5] == 3 and ok[0][6] == 1, rows


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["dml_only", "mixed"])
def test_dml_behind_a_row_lock_fails_cleanly_and_resumes(db, tmp_path, kind):
    """dml_only runs in one transaction: rolled back whole, resumed from statement 1.
    mixed runs statement by statement: the CREATE TABLE before the blocked UPDATE stays,
    the UPDATE's own transaction is rolled back, resume continues at the UPDATE."""
    dsn = db.to_dsn()
    migrations = setup_v1(dsn, tmp_path / "migrations")
    script = V2_DML if kind == "dml_only" else V2_MIXED
    n = 3 if kind == "dml_only" else 4
    done = 0 if kind == "dml_only" else 1
    write_files(migrations, {"V2__touch_rows.sql": script})
    data_before = (query(db, "SELECT * FROM t ORDER BY id"), query(db, "SELECT * FROM audit"))
    schema_before = schema_objects(db)

    holder = connect(db, autocommit=False)
    try:
        hcur = holder.cursor()
        hcur.execute("SELECT CONNECTION_ID()")
        holder_id = hcur.fetchone()[0]
        hcur.execute("START TRANSACTION")
        hcur.execute("SELECT * FROM t WHERE id = 7 FOR UPDATE")
        hcur.fetchall()

        proc = run_cli(
            "migrate",
            "--dsn",
            dsn,
            "--migrations",
            str(migrations),
            "--lock-wait-timeout",
            "1",
            "--lock-retries",
            "1",
        )
        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        print(proc.stderr[-1500:])
        assert f"statement 2 of {n} (line 2: UPDATE t" in proc.stderr, proc.stderr
        if kind == "dml_only":
            assert "rolled back" in proc.stderr, proc.stderr
        else:
            assert re.search(rf"\bconnection {holder_id}\b", proc.stderr), proc.stderr

        # no row changed: in dml_only the first INSERT was rolled back with the rest
        assert (
            query(db, "SELECT * FROM t ORDER BY id"),
            query(db, "SELECT * FROM audit"),
        ) == data_before
        schema_after = schema_objects(db)
        if kind == "mixed":
            assert schema_after.pop("table side", None) is not None, schema_after
        assert schema_after == schema_before
        st = status(dsn, migrations)
        b = st["blocked"]
        assert b is not None, st
        assert (b["version"], b["kind"], b["status"]) == ("2", "migrate", "failed"), b
        assert b["statements_done"] == done and b["statements_total"] == n, b
        assert "lock wait" in b["error"].lower(), b
        assert st["applied"] == ["1"], st
        # the holder's lock was not stolen and its session is intact
        hcur.execute("SELECT CONNECTION_ID()")
        assert hcur.fetchone()[0] == holder_id
        holder.commit()
    finally:
        holder.close()

    ended = [r for r in history(db) if r[3] != "running"]
    proc = run_cli("resume", "--dsn", dsn, "--migrations", str(migrations))
    assert proc.returncode == 0, proc.stderr
    assert query(db, "SELECT v FROM t WHERE id = 7") == [("changed",)]
    assert [r[0] for r in query(db, "SELECT note FROM audit ORDER BY id")] == ["first", "second"]
    st = status(dsn, migrations)
    assert st["blocked"] is None and st["applied"] == ["1", "2"], st
    rows = history(db)
    assert [r for r in rows if r[0] in {e[0] for e in ended}] == ended, "an ended row changed"
    ok = [r for r in rows if r[1] == "2" and r[2] == "migrate" and r[3] == "success"]
    assert len(ok) == 1 and ok[0][4] == ok[0][5] == n and ok[0][6] == 1, rows


@pytest.mark.timeout(120)
def test_blocker_is_named_among_unrelated_open_transactions(mariadb, db, tmp_path):
    """A busy server has other open transactions, on other databases, that do not touch t.

    They are older than the real blocker. The error must still name the connection that
    holds t's metadata lock: that is the one the operator is told to end or KILL.
    """
    dsn = db.to_dsn()
    migrations = setup_v1(dsn, tmp_path / "migrations")
    write_files(migrations, {"V2__alter_t.sql": V2_DDL})
    other = mariadb.create_database()
    bystanders = []
    holder = None
    try:
        query(other, "CREATE TABLE x (id INT NOT NULL PRIMARY KEY)")
        for _ in range(5):
            conn = connect(other, autocommit=False)
            cur = conn.cursor()
            cur.execute("START TRANSACTION")
            cur.execute("SELECT * FROM x")
            cur.fetchall()
            bystanders.append(conn)
        time.sleep(1.1)  # trx_started has 1 s resolution: the bystanders are older
        holder = connect(db, autocommit=False)
        hcur = holder.cursor()
        hcur.execute("SELECT CONNECTION_ID()")
        holder_id = hcur.fetchone()[0]
        hcur.execute("START TRANSACTION")
        hcur.execute("SELECT * FROM t")
        hcur.fetchall()

        proc = run_cli(
            "migrate",
            "--dsn",
            dsn,
            "--migrations",
            str(migrations),
            "--lock-wait-timeout",
            "1",
            "--lock-retries",
            "0",
        )
        print(proc.stderr[-2500:])
        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        assert "lock wait" in proc.stderr.lower(), proc.stderr
        assert re.search(rf"\bconnection {holder_id}\b", proc.stderr), (
            f"the blocker (connection {holder_id}) is not named; bystanders "
            f"{[c.thread_id() for c in bystanders]} on database {other.database} are:\n"
            + proc.stderr
        )
    finally:
        for conn in [*bystanders, holder]:
            if conn is not None:
                conn.rollback()
                conn.close()
        mariadb.drop_database(other)
