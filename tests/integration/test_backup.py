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
