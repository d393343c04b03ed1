"""Data at risk measured on a real MariaDB; backup to (moto) S3 and restore, row for row."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pipeline.db.backup import backup as do_backup
from pipeline.db.backup import list_backups, restore
from pipeline.db.connect import connect
from pipeline.db.risk import measure
from pipeline.errors import BlockedError
from pipeline.risk import destructive_targets
from tests.conftest import query


def seed(db):
    query(
        db,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50) CHARACTER SET utf8mb4, "
        "price DECIMAL(12,4), blob_col BLOB, seen DATETIME(6), day DATE, span TIME, ratio DOUBLE, "
        "note TEXT NULL, updated_at DATETIME NOT NULL)",
    )
    rows = [
        (
            1,
            "plain",
            Decimal("1.5000"),
            b"\x00\xff\x10",
            dt.datetime(2026, 1, 2, 3, 4, 5, 6),
            dt.date(2026, 1, 2),
            dt.timedelta(hours=25, seconds=7),
            0.1,
            None,
            dt.datetime(2025, 1, 1),
        ),
        (
            2,
            "emoji \U0001f600 ü",
            Decimal("-99999999.9999"),
            b"",
            None,
            None,
            None,
            -1e300,
            "x" * 5000,
            dt.datetime(2027, 1, 1),
        ),
        (
            3,
            "quote ' \" \\ `",
            None,
            None,
            dt.datetime(1970, 1, 1),
            dt.date(1000, 1, 1),
            dt.timedelta(0),
            None,
            "",
            dt.datetime(2027, 6, 1),
        ),
    ]
    conn = connect(db)
    try:
        conn.cursor().executemany(
            "INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows
        )
    finally:
        conn.close()


def all_rows(db, cols="*"):
    return query(db, f"SELECT {cols} FROM items ORDER BY id")


@pytest.fixture
def s3(aws):
    client = aws.client("s3")
    client.create_bucket(
        Bucket="backups-bk", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return client


def test_measure_counts_rows_values_and_recent_writes(db):
    seed(db)
    targets = destructive_targets(
        "ALTER TABLE items DROP COLUMN note; DROP TABLE ghost;", "U2__x.sql", version="2"
    ) + destructive_targets("DROP TABLE items;", "U1__x.sql", version="1")
    conn = connect(db)
    try:
        risks = measure(conn, targets, {"2": dt.datetime(2026, 6, 1), "1": dt.datetime(2026, 6, 1)})
    finally:
        conn.close()
    by = {r.target.what: r for r in risks}
    assert by["items.note"].rows == 2 and by["items.note"].written_after == 2  # ids 2, 3
    assert by["items"].rows == 3 and by["items"].written_after == 2
    assert by["items"].basis == "updated_at"
    assert not by["ghost"].exists


def test_measure_details_the_tables_that_hold_rows(db):
    """Empty tables are counted and found empty (no per-table details asked); a table
    holding rows gets its AUTO_INCREMENT and its recent writes; column targets are checked
    against the columns whether or not their table holds rows."""
    query(db, "CREATE TABLE empty_one (id INT AUTO_INCREMENT PRIMARY KEY, x INT)")
    query(
        db,
        "CREATE TABLE full_one (id INT AUTO_INCREMENT PRIMARY KEY, x INT, "
        "updated_at DATETIME NOT NULL)",
    )
    query(db, "INSERT INTO full_one (x, updated_at) VALUES (1, '2026-01-01'), (NULL, '2027-01-01')")
    targets = destructive_targets(
        "DROP TABLE empty_one; DROP TABLE full_one;", "U2__x.sql", version="2"
    ) + destructive_targets(
        "ALTER TABLE empty_one DROP COLUMN x; ALTER TABLE full_one DROP COLUMN nope;",
        "U1__y.sql",
        version="1",
    )
    conn = connect(db)
    try:
        risks = measure(conn, targets, {"2": dt.datetime(2026, 6, 1)})
    finally:
        conn.close()
    by = {r.target.what: r for r in risks}
    assert (by["empty_one"].exists, by["empty_one"].rows) == (True, 0)
    full = by["full_one"]
    assert (full.rows, full.auto_increment, full.written_after) == (2, 3, 1)
    assert (by["empty_one.x"].exists, by["empty_one.x"].rows) == (True, 0)
    assert not by["full_one.nope"].exists


def test_a_table_whose_name_has_capitals_is_measured_and_backed_up(db, s3):
    """The lint reads `DROP TABLE Items` as `items`; a server on Linux compares table names
    by case. The risk must still be the table the server has (counted, not "does not
    exist"), and the backup must hold its rows; two tables differing only by case are both
    at risk."""
    query(db, "CREATE TABLE Items (id INT PRIMARY KEY, name VARCHAR(10))")
    query(db, "INSERT INTO Items VALUES (1, 'a'), (2, 'b')")
    targets = destructive_targets("DROP TABLE Items;", "U1__x.sql", version="1")
    assert [t.table for t in targets] == ["items"]  # what the lint gives
    conn = connect(db)
    try:
        (risk,) = measure(conn, targets)
    finally:
        conn.close()
    assert (risk.target.table, risk.exists, risk.rows) == ("Items", True, 2)
    manifest = do_backup(lambda: connect(db), [risk.target], s3, "s3://backups-bk/c", run_id="c")
    assert manifest["rows"] == 2
    (fold,) = query(db, "SELECT @@lower_case_table_names")[0]
    if not fold:
        query(db, "CREATE TABLE items (id INT PRIMARY KEY)")
        query(db, "INSERT INTO items VALUES (7)")
        conn = connect(db)
        try:
            risks = measure(conn, targets)
        finally:
            conn.close()
        assert [(r.target.table, r.rows) for r in risks] == [("Items", 2), ("items", 1)]


def test_table_backup_restores_every_row_byte_for_byte(db, s3):
    seed(db)
    before = all_rows(db)
    targets = destructive_targets("DROP TABLE items;", "U1__items.sql", version="1")
    manifest = do_backup(lambda: connect(db), targets, s3, "s3://backups-bk/dbroll", run_id="run/1")
    assert manifest["rows"] == 3 and manifest["uri"] == "s3://backups-bk/dbroll/backups/run_1/"
    query(db, "DROP TABLE items")
    done = restore(lambda: connect(db, autocommit=False), s3, manifest["uri"])
    assert done == [{"table": "items", "column": None, "rows": 3}]
    assert all_rows(db) == before
    assert [m["run_id"] for m in list_backups(s3, "s3://backups-bk/dbroll")] == ["run/1"]


def test_column_backup_restores_after_the_forward_migration(db, s3):
    seed(db)
    before = all_rows(db, "id, note")
    targets = destructive_targets("ALTER TABLE items DROP COLUMN note;", "U2__n.sql")
    manifest = do_backup(lambda: connect(db), targets, s3, "s3://backups-bk/p", run_id="r2")
    assert [e["columns"] for e in manifest["entries"]] == [["id", "note"]]
    query(db, "ALTER TABLE items DROP COLUMN note")
    with pytest.raises(BlockedError, match="column items.note does not exist"):
        restore(lambda: connect(db, autocommit=False), s3, manifest["uri"])
    query(db, "ALTER TABLE items ADD COLUMN note TEXT NULL")  # the forward migration again
    restore(lambda: connect(db, autocommit=False), s3, manifest["uri"])
    assert all_rows(db, "id, note") == before


def test_a_damaged_backup_object_is_refused_by_name(db, s3):
    seed(db)
    targets = destructive_targets("DROP TABLE items;", "U1__items.sql")
    manifest = do_backup(lambda: connect(db), targets, s3, "s3://backups-bk/d", run_id="r3")
    key = "d/backups/r3/items.jsonl.gz"
    s3.put_object(Bucket="backups-bk", Key=key, Body=b"not the backup")
    query(db, "DROP TABLE items")
    with pytest.raises(BlockedError, match="items.jsonl.gz does not match its sha256"):
        restore(lambda: connect(db, autocommit=False), s3, manifest["uri"])
    assert query(db, "SHOW TABLES LIKE 'items'") == []  # nothing was restored


def test_restore_refuses_to_mix_rows(db, s3):
    seed(db)
    targets = destructive_targets("DROP TABLE items;", "U1__items.sql")
    manifest = do_backup(lambda: connect(db), targets, s3, "s3://backups-bk/m", run_id="r4")
    with pytest.raises(BlockedError, match="table items exists and has rows"):
        restore(lambda: connect(db, autocommit=False), s3, manifest["uri"])
    assert len(all_rows(db)) == 3


def test_dbroll_undo_guards_data_like_a_bundle(db, s3, tmp_path):
    """`dbroll undo` whose script drops a column holding values: refused (exit 3, nothing
    run) with the values counted, a dry run says so too; --backup dumps them first and
    `backup restore` puts them back; --accept-data-loss runs it; an empty column is no
    risk at all."""
    from tests.conftest import args, dbroll, history_rows, schema_objects, write_files

    mdir = write_files(
        tmp_path / "m",
        {
            "V1__people.sql": "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20));",
            "U1__people.sql": "DROP TABLE people;",
            "V2__nick.sql": "ALTER TABLE people ADD COLUMN nick VARCHAR(20) NULL;",
            "U2__nick.sql": "ALTER TABLE people DROP COLUMN nick;",
        },
    )
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    query(db, "INSERT INTO people VALUES (1, 'ann', NULL), (2, 'bob', NULL)")
    # nick is empty: nothing at risk in it, so the undo of 2 alone runs without a flag
    assert dbroll("undo", "--target", "1", *args(db, mdir)).exit_code == 0
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    query(db, "UPDATE people SET nick = 'annie' WHERE id = 1")
    before, rows = schema_objects(db), history_rows(db)

    for extra in ((), ("--dry-run",)):
        r = dbroll("undo", "--target", "1", *extra, *args(db, mdir))
        assert r.exit_code == 3, r.stderr
        assert "people.nick (dropped, U2__nick.sql:1): 1 non-NULL value(s)" in r.stderr
        assert "--accept-data-loss" in r.stderr
        assert schema_objects(db) == before and history_rows(db) == rows

    dry = dbroll("undo", "--target", "1", "--accept-data-loss", "--dry-run", *args(db, mdir))
    assert dry.exit_code == 0, dry.stderr
    assert "would destroy without a backup (--accept-data-loss): people.nick" in dry.stdout
    assert schema_objects(db) == before

    backup = ("--backup", "s3://backups-bk/x")
    dry = dbroll("undo", "--target", "1", *backup, "--dry-run", *args(db, mdir))
    assert dry.exit_code == 0 and "would back up: people.nick" in dry.stdout, dry.stderr
    assert list_backups(s3, "s3://backups-bk/x") == []
    r = dbroll("undo", "--target", "1", *backup, *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert "nick" not in str(schema_objects(db)["table people"])
    (found,) = list_backups(s3, "s3://backups-bk/x")
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    assert dbroll("backup", "restore", found["uri"], "--dsn", db.to_dsn()).exit_code == 0
    assert query(db, "SELECT id, nick FROM people ORDER BY id") == [(1, "annie"), (2, None)]

    r = dbroll("undo", "--target", "0", "--accept-data-loss", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert "table people" not in schema_objects(db)


def test_resuming_an_undo_guards_what_was_written_since_it_started(db, s3, tmp_path):
    """An undo stopped on its way (a statement failed), while the app goes on writing into
    a table its remaining statements drop: `dbroll resume` counts those rows and refuses
    (exit 3, nothing run) unless --backup or --accept-data-loss says what to do; with
    --backup they are kept. A table the undo dropped before it stopped is no risk."""
    from tests.conftest import args, dbroll, history_rows, schema_objects, write_files

    mdir = write_files(
        tmp_path / "m",
        {
            "V1__tables.sql": "CREATE TABLE gone (id INT PRIMARY KEY);\n"
            "CREATE TABLE orders (id INT PRIMARY KEY);",
            "U1__tables.sql": "DROP TABLE gone;\nINSERT INTO gate VALUES (1);\nDROP TABLE orders;",
        },
    )
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    r = dbroll("undo", "--target", "0", *args(db, mdir))  # both tables empty: no flag needed
    assert r.exit_code == 1 and "gate" in r.stderr, r.stderr  # stopped at statement 2
    query(db, "INSERT INTO orders VALUES (1), (2)")  # the app still runs the newer code
    query(db, "CREATE TABLE gate (i INT)")  # the cause fixed
    before, rows = schema_objects(db), history_rows(db)

    for extra in ((), ("--dry-run",)):
        r = dbroll("resume", *extra, *args(db, mdir))
        assert r.exit_code == 3, r.stderr
        assert "orders (dropped, U1__tables.sql:3): 2 row(s)" in r.stderr, r.stderr
        assert "gone" not in r.stderr.split("would destroy data")[1], r.stderr
        assert schema_objects(db) == before and history_rows(db) == rows

    backup = ("--backup", "s3://backups-bk/r")
    r = dbroll("resume", *backup, *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert "table orders" not in schema_objects(db)
    (found,) = list_backups(s3, "s3://backups-bk/r")
    assert found["rows"] == 2
    query(db, "CREATE TABLE orders (id INT PRIMARY KEY)")
    assert dbroll("backup", "restore", found["uri"], "--dsn", db.to_dsn()).exit_code == 0
    assert query(db, "SELECT id FROM orders ORDER BY id") == [(1,), (2,)]


def test_an_undo_whose_session_was_ended_during_its_backup_runs_nothing(db, tmp_path):
    """`dbroll unlock` (or a dropped connection) while the data guard backed data up: the
    runner lock went with the runner's session, so not one undo statement may run."""
    from pipeline.db.runner import Runner, RunnerOptions
    from pipeline.errors import DatabaseError
    from pipeline.migrations.formats import load_migration_set
    from pipeline.migrations.model import ZERO
    from tests.conftest import args, dbroll, history_rows, schema_objects, write_files

    mdir = write_files(
        tmp_path / "m",
        {"V1__t.sql": "CREATE TABLE t (id INT);", "U1__t.sql": "DROP TABLE t;"},
    )
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    before, rows = schema_objects(db), history_rows(db)
    runner = Runner(db, load_migration_set(str(mdir)), RunnerOptions())

    def guard_ended_meanwhile(steps, history, result):
        query(db, "KILL CONNECTION %s", (runner._control.thread_id(),))

    with pytest.raises(DatabaseError, match="was ended.*nothing of the undo was run"):
        runner.undo(ZERO, guard=guard_ended_meanwhile)
    assert schema_objects(db) == before and history_rows(db) == rows
