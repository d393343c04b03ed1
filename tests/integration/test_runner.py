"""The migration engine on a real MariaDB: formats, round trips, errors, history rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.db.connect import ConnectionSpec
from tests.conftest import (
    args,
    dbroll,
    mariadb_client,
    query,
    schema_objects,
    write_files,
)

SHOP = {
    "V1__customers.sql": """
        CREATE TABLE customers (
          id INT AUTO_INCREMENT PRIMARY KEY,
          name VARCHAR(100) NOT NULL,
          note VARCHAR(20) DEFAULT 'a;b -- not a comment'
        );
        CREATE INDEX customers_name ON customers (name);
        """,
    "U1__customers.sql": "DROP TABLE customers;\n",
    "V2__orders.sql": """
        CREATE TABLE orders (
          id INT AUTO_INCREMENT PRIMARY KEY,
          customer_id INT NOT NULL,
          total DECIMAL(10,2) NOT NULL DEFAULT 0,
          CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
        );
        # a hash comment; with a semicolon
        CREATE VIEW order_totals AS
          SELECT customer_id, SUM(total) AS total FROM orders GROUP BY customer_id;
        """,
    "U2__orders.sql": "DROP VIEW order_totals;\nDROP TABLE orders;\n",
    "V3__seed.sql": """
        INSERT INTO customers (name) VALUES ('ann'), ('bob');
        INSERT INTO orders (customer_id, total) SELECT id, 10 FROM customers;
        """,
    "U3__seed.sql": "DELETE FROM orders;\nDELETE FROM customers;\n",
    "V4__audit_trigger.sql": """
        ALTER TABLE customers ADD COLUMN updated_at DATETIME NULL;
        DELIMITER //
        CREATE TRIGGER customers_bu BEFORE UPDATE ON customers FOR EACH ROW
        BEGIN
          IF NEW.name <> OLD.name THEN
            SET NEW.updated_at = NOW();
          END IF;
        END //
        CREATE PROCEDURE rename_customer(IN p_id INT, IN p_name VARCHAR(100))
        BEGIN
          DECLARE n INT DEFAULT 0;
          SELECT COUNT(*) INTO n FROM customers WHERE id = p_id;
          IF n = 1 THEN
            UPDATE customers SET name = p_name WHERE id = p_id;
          END IF;
        END //
        DELIMITER ;
        SELECT 'audit installed' AS message;
        """,
    "U4__audit_trigger.sql": """
        DROP PROCEDURE rename_customer;
        DROP TRIGGER customers_bu;
        ALTER TABLE customers DROP COLUMN updated_at;
        """,
    "R__report_view.sql": """
        CREATE OR REPLACE VIEW customer_report AS SELECT id, name FROM customers;
        """,
}


def shop(tmp_path: Path, extra: dict[str, str] | None = None, name: str = "m") -> Path:
    return write_files(tmp_path / name, {**SHOP, **(extra or {})})


def history(spec: ConnectionSpec) -> list[tuple]:
    return query(
        spec,
        "SELECT id, version, kind, status, applied, statements_done, checksum, "
        "error, finished_at FROM dbroll_history ORDER BY id",
    )


def test_migrate_applies_everything_and_records_one_row_per_event(db, tmp_path):
    mdir = shop(tmp_path)
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    rows = history(db)
    assert [(v, k, s) for _, v, k, s, *_ in rows] == [
        ("1", "migrate", "success"),
        ("2", "migrate", "success"),
        ("3", "migrate", "success"),
        ("4", "migrate", "success"),
        (None, "repeatable", "success"),
    ]
    # checksums are the sha256 of the file bytes
    assert rows[0][6] == hashlib.sha256((mdir / "V1__customers.sql").read_bytes()).hexdigest()
    assert query(db, "SELECT name FROM customers ORDER BY id") == [("ann",), ("bob",)]
    st = dbroll("status", "--json", *args(db, mdir)).json
    assert st["current_version"] == "4"
    assert st["applied"] == ["1", "2", "3", "4"]
    assert st["pending"] == [] and st["blocked"] is None
    # a second run finds nothing to do and adds no row
    again = dbroll("migrate", *args(db, mdir))
    assert again.exit_code == 0 and "nothing to apply" in again.stdout
    assert len(history(db)) == len(rows)


def test_round_trip_matches_the_mariadb_client(mariadb, db, tmp_path):
    mdir = shop(tmp_path)
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    after_full = schema_objects(db)
    assert dbroll("undo", "--target", "1", "--accept-data-loss", *args(db, mdir)).exit_code == 0
    st = dbroll("status", "--json", *args(db, mdir)).json
    assert st["applied"] == ["1"] and st["pending"] == ["2", "3", "4"]
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    assert schema_objects(db) == after_full

    reference = mariadb.create_database()
    try:
        for name in (
            "V1__customers.sql",
            "V2__orders.sql",
            "V3__seed.sql",
            "V4__audit_trigger.sql",
            "R__report_view.sql",
        ):
            mariadb_client(reference, (mdir / name).read_text())
        assert schema_objects(reference) == after_full
    finally:
        mariadb.drop_database(reference)


def test_undo_to_zero_leaves_only_dbroll_tables(db, tmp_path):
    mdir = shop(tmp_path)
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    r = dbroll("undo", "--target", "0", "--accept-data-loss", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    # the repeatable's view stays (repeatables have no undo); every versioned object is gone
    assert set(schema_objects(db)) == {"view customer_report"}
    kinds = [(v, k) for _, v, k, *_ in history(db)][-4:]
    assert kinds == [("4", "undo"), ("3", "undo"), ("2", "undo"), ("1", "undo")]
    assert dbroll("status", "--json", *args(db, mdir)).json["applied"] == []


@pytest.mark.parametrize("fmt", ["flyway", "dbmate", "golang-migrate"])
def test_every_format_applies_and_undoes(db, tmp_path, fmt):
    body1 = "CREATE TABLE a (id INT PRIMARY KEY);"
    body2 = (
        "CREATE TRIGGER a_bi BEFORE INSERT ON a FOR EACH ROW\nBEGIN\n"
        "  IF NEW.id < 0 THEN SET NEW.id = 0; END IF;\nEND;"
    )
    if fmt == "flyway":
        files = {
            "V1__a.sql": body1,
            "U1__a.sql": "DROP TABLE a;",
            "V2__t.sql": body2,
            "U2__t.sql": "DROP TRIGGER a_bi;",
        }
    elif fmt == "dbmate":
        files = {
            "20240101000000_a.sql": f"-- migrate:up\n{body1}\n\n-- migrate:down\nDROP TABLE a;\n",
            # dbmate style: a trigger body with no DELIMITER
            "20240102000000_t.sql": f"-- migrate:up\n{body2}\n-- migrate:down\nDROP TRIGGER a_bi;\n",
        }
    else:
        files = {
            "1_a.up.sql": body1,
            "1_a.down.sql": "DROP TABLE a;",
            "2_t.up.sql": body2,
            "2_t.down.sql": "DROP TRIGGER a_bi;",
        }
    mdir = write_files(tmp_path / fmt, files)
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    query(db, "INSERT INTO a VALUES (-5)")
    assert query(db, "SELECT id FROM a") == [(0,)]  # the trigger body ran as one statement
    assert dbroll("undo", "--target", "0", "--accept-data-loss", *args(db, mdir)).exit_code == 0
    assert schema_objects(db) == {}


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        (
            {"V1__a.sql": "CREATE TABLE a (id INT);", "2_b.up.sql": "CREATE TABLE b (id INT);"},
            "mixed",
        ),
        (
            {"V1__a.sql": "CREATE TABLE a (id INT);", "V1.0__b.sql": "CREATE TABLE b (id INT);"},
            "V1.0__b.sql",
        ),
        ({"V1__a.sql": "CREATE TABLE a (id INT);", "U2__b.sql": "DROP TABLE b;"}, "U2__b.sql"),
        ({"V1_a.sql": "CREATE TABLE a (id INT);"}, "V1_a.sql"),
        ({"V1__a.sql": "-- nothing here\n"}, "V1__a.sql"),
    ],
    ids=["mixed-formats", "duplicate-version", "undo-without-forward", "bad-name", "empty"],
)
def test_bad_folders_are_refused_and_change_nothing(db, tmp_path, files, needle):
    mdir = write_files(tmp_path / "bad", files)
    for command in (["migrate"], ["status"], ["undo", "--target", "0"]):
        r = dbroll(*command, *args(db, mdir))
        assert r.exit_code == 2, (command, r.stdout, r.stderr)
        assert needle in r.stderr
        assert r.stderr.startswith("Error: ") or "\nError: " in r.stderr
    assert query(db, "SHOW TABLES") == []


def test_non_utf8_file_is_named_and_nothing_runs(db, tmp_path):
    mdir = tmp_path / "latin1"
    mdir.mkdir()
    (mdir / "V1__a.sql").write_text("CREATE TABLE a (id INT);")
    (mdir / "V2__b.sql").write_bytes(b"INSERT INTO a VALUES (1); -- caf\xe9\n")
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 2 and "V2__b.sql" in r.stderr and "UTF-8" in r.stderr
    assert query(db, "SHOW TABLES") == []


def test_failed_statement_blocks_until_resume(db, tmp_path):
    files = {
        "V1__a.sql": "CREATE TABLE a (id INT PRIMARY KEY);",
        "V2__b.sql": "CREATE TABLE b (id INT);\nCREATE TABLE c (id INT);\nCREATE TABLE d (id INT);",
        "V3__e.sql": "CREATE TABLE e (id INT);",
    }
    mdir = write_files(tmp_path / "m", files)
    query(db, "CREATE TABLE c (x INT)")  # someone made a table in the way
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 1
    assert "statement 2 of 3" in r.stderr and "line 2" in r.stderr and "1050" in r.stderr
    st = dbroll("status", "--json", *args(db, mdir)).json
    assert st["blocked"]["version"] == "2" and st["blocked"]["statements_done"] == 1
    assert st["blocked"]["status"] == "failed" and "already exists" in st["blocked"]["error"]
    blocked = dbroll("migrate", *args(db, mdir))
    assert blocked.exit_code == 3 and "dbroll resume" in blocked.stderr
    assert query(db, "SHOW TABLES LIKE 'e'") == []  # nothing after the failure ran
    query(db, "DROP TABLE c")  # the operator fixes the cause
    r = dbroll("resume", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert "1 migration(s) still pending" in r.stdout
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    tables = {t for (t,) in query(db, "SHOW TABLES")}
    assert {"a", "b", "c", "d", "e"} <= tables
    rows = history(db)
    # the failed row is kept as it was; the resume appended its own row
    failed = [r for r in rows if r[3] == "failed"]
    assert len(failed) == 1 and failed[0][5] == 1
    resumed = [r for r in rows if r[1] == "2" and r[3] == "success"]
    assert len(resumed) == 1 and resumed[0][5] == 3


def test_failed_dml_migration_rolls_back_whole(db, tmp_path):
    files = {
        "V1__a.sql": "CREATE TABLE a (id INT PRIMARY KEY);",
        "V2__seed.sql": "INSERT INTO a VALUES (1);\nINSERT INTO a VALUES (2);\nINSERT INTO a VALUES (1);",
    }
    mdir = write_files(tmp_path / "m", files)
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 1 and "statement 3 of 3" in r.stderr and "rolled back" in r.stderr
    assert query(db, "SELECT COUNT(*) FROM a") == [(0,)]
    st = dbroll("status", "--json", *args(db, mdir)).json
    assert st["blocked"]["version"] == "2" and st["blocked"]["statements_done"] == 0


def test_repair_marks_a_failed_migration(db, tmp_path):
    files = {
        "V1__a.sql": "CREATE TABLE a (id INT);\nCREATE TABLE a (id INT);",
        "V2__b.sql": "CREATE TABLE b (id INT);",
    }
    mdir = write_files(tmp_path / "m", files)
    assert dbroll("migrate", *args(db, mdir)).exit_code == 1
    r = dbroll("repair", *args(db, mdir))
    assert r.exit_code == 2 and "--as applied" in r.stderr
    before = history(db)
    r = dbroll("repair", "--as", "applied", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert history(db)[: len(before)] == before  # ended rows untouched
    assert history(db)[-1][2:5] == ("repair", "success", 1)
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    assert dbroll("status", "--json", *args(db, mdir)).json["applied"] == ["1", "2"]


def test_checksum_drift_is_refused_and_can_be_accepted(db, tmp_path):
    mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);"})
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    (mdir / "V1__a.sql").write_text("CREATE TABLE a (id BIGINT);")
    write_files(mdir, {"V2__b.sql": "CREATE TABLE b (id INT);"})
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 3 and "V1__a.sql" in r.stderr and "repair --checksums" in r.stderr
    assert query(db, "SHOW TABLES LIKE 'b'") == []
    v = dbroll("validate", *args(db, mdir))
    assert v.exit_code == 3 and "V1__a.sql" in v.stdout
    assert dbroll("repair", "--checksums", *args(db, mdir)).exit_code == 0
    assert dbroll("validate", *args(db, mdir)).exit_code == 0
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0


def test_future_versions_are_tolerated_and_gaps_are_not(db, tmp_path):
    full = write_files(
        tmp_path / "new",
        {
            "V1__a.sql": "CREATE TABLE a (id INT);",
            "V2__b.sql": "CREATE TABLE b (id INT);",
            "V3__c.sql": "CREATE TABLE c (id INT);",
        },
    )
    assert dbroll("migrate", *args(db, full)).exit_code == 0
    # an older image's container starts on the newer schema
    old = write_files(
        tmp_path / "old",
        {"V1__a.sql": "CREATE TABLE a (id INT);", "V2__b.sql": "CREATE TABLE b (id INT);"},
    )
    r = dbroll("migrate", *args(db, old))
    assert r.exit_code == 0 and "3" in r.stdout and "ahead" in r.stdout
    strict = dbroll("migrate", "--strict-future", *args(db, old))
    assert strict.exit_code == 3 and "3" in strict.stderr
    # another branch: version 2 is applied but this folder never had it
    branch = write_files(
        tmp_path / "branch",
        {"V1__a.sql": "CREATE TABLE a (id INT);", "V3__c.sql": "CREATE TABLE c (id INT);"},
    )
    gap = dbroll("migrate", *args(db, branch))
    assert gap.exit_code == 3 and "2" in gap.stderr and "no local file" in gap.stderr


def test_out_of_order_pending_needs_a_flag(db, tmp_path):
    mdir = write_files(
        tmp_path / "m",
        {"V1__a.sql": "CREATE TABLE a (id INT);", "V3__c.sql": "CREATE TABLE c (id INT);"},
    )
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    write_files(mdir, {"V2__b.sql": "CREATE TABLE b (id INT);"})
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 3 and "--out-of-order" in r.stderr
    assert dbroll("migrate", "--out-of-order", *args(db, mdir)).exit_code == 0
    assert query(db, "SHOW TABLES LIKE 'b'") == [("b",)]


def test_undo_refuses_missing_undo_scripts_before_running_anything(db, tmp_path):
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__a.sql": "CREATE TABLE a (id INT);",
            "U1__a.sql": "DROP TABLE a;",
            "V2__b.sql": "CREATE TABLE b (id INT);",
            "V3__c.sql": "CREATE TABLE c (id INT);",
            "U3__c.sql": "DROP TABLE c;",
        },
    )
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    before = history(db)
    r = dbroll("undo", "--target", "0", *args(db, mdir))
    assert r.exit_code == 3 and "version 2" in r.stderr and "V2__b.sql" in r.stderr
    assert history(db) == before
    assert {t for (t,) in query(db, "SHOW TABLES")} >= {"a", "b", "c"}


def test_session_settings_do_not_leak_between_migrations(db, tmp_path):
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__loose.sql": "SET FOREIGN_KEY_CHECKS = 0;\nSET SESSION sql_mode = '';\n"
            "SET @leak = 'x';\nCREATE TEMPORARY TABLE tmp_leak (id INT);\n"
            "CREATE TABLE a (id INT);",
            "V2__probe.sql": "CREATE TABLE probe AS SELECT @@foreign_key_checks AS fk, "
            "@@sql_mode AS mode, @leak AS uservar;",
            "V3__temp.sql": "CREATE TEMPORARY TABLE tmp_leak (id INT);\nCREATE TABLE b (id INT);",
        },
    )
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    default_mode = query(db, "SELECT @@GLOBAL.sql_mode")[0][0]
    assert query(db, "SELECT fk, mode, uservar FROM probe") == [(1, default_mode, None)]


def test_use_of_another_database_inside_a_migration(mariadb, db, tmp_path):
    other = f"{db.database}_x"
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__other.sql": f"CREATE DATABASE {other};\nUSE {other};\nCREATE TABLE t (id INT);",
            "V2__here.sql": "CREATE TABLE here (id INT);",
        },
    )
    try:
        r = dbroll("migrate", *args(db, mdir))
        assert r.exit_code == 0, r.stderr
        assert query(db, "SHOW TABLES LIKE 'here'") == [("here",)]  # V2 ran in the right db
        assert [v for _, v, *_ in history(db)] == ["1", "2"]
    finally:
        query(db, f"DROP DATABASE IF EXISTS {other}")


def test_prepared_statements_and_result_sets(db, tmp_path):
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__dyn.sql": "SELECT 'starting' AS msg;\nSET @s = 'CREATE TABLE dyn (id INT)';\n"
            "PREPARE stmt FROM @s;\nEXECUTE stmt;\nDEALLOCATE PREPARE stmt;\n"
            "SELECT COUNT(*) FROM information_schema.TABLES;",
        },
    )
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    assert query(db, "SHOW TABLES LIKE 'dyn'") == [("dyn",)]


def test_repeatable_reapplies_when_changed(db, tmp_path):
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__a.sql": "CREATE TABLE a (id INT, name VARCHAR(10));",
            "R__v.sql": "CREATE OR REPLACE VIEW v AS SELECT id FROM a;",
        },
    )
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    assert dbroll("migrate", *args(db, mdir)).stdout.startswith("nothing to apply")
    write_files(mdir, {"R__v.sql": "CREATE OR REPLACE VIEW v AS SELECT id, name FROM a;"})
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 0 and "R__v.sql" in r.stdout
    assert [c for (c, *_) in query(db, "SHOW COLUMNS FROM v")] == ["id", "name"]


def test_baseline_adopts_an_existing_database(db, tmp_path):
    query(db, "CREATE TABLE a (id INT)")
    mdir = write_files(
        tmp_path / "m",
        {"V1__a.sql": "CREATE TABLE a (id INT);", "V2__b.sql": "CREATE TABLE b (id INT);"},
    )
    bad = dbroll("baseline", "--version", "7", *args(db, mdir))
    assert bad.exit_code == 2 and "7" in bad.stderr
    assert dbroll("baseline", "--version", "1", *args(db, mdir)).exit_code == 0
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    assert [(v, k) for _, v, k, *_ in history(db)] == [("1", "baseline"), ("2", "migrate")]
    again = dbroll("baseline", "--version", "1", *args(db, mdir))
    assert again.exit_code == 3


def test_dry_run_changes_nothing(db, tmp_path):
    mdir = shop(tmp_path)
    r = dbroll("migrate", "--dry-run", *args(db, mdir))
    assert r.exit_code == 0 and "would apply 5" in r.stdout
    assert query(db, "SHOW TABLES") == []  # not even the history table


def test_target_applies_up_to_a_version(db, tmp_path):
    mdir = shop(tmp_path)
    assert dbroll("migrate", "--target", "2", *args(db, mdir)).exit_code == 0
    st = dbroll("status", "--json", *args(db, mdir)).json
    assert st["applied"] == ["1", "2"] and st["pending"] == ["3", "4"]


def test_an_empty_target_is_refused_not_taken_as_everything(db, tmp_path):
    """`--target "$UNSET"` must not apply every pending migration (breaking ones included)."""
    mdir = shop(tmp_path)
    assert dbroll("migrate", "--target", "2", *args(db, mdir)).exit_code == 0
    for command in (("migrate",), ("migrate", "--dry-run"), ("undo",)):
        r = dbroll(*command, "--target", "", *args(db, mdir))
        assert r.exit_code == 2 and "--target '' is not a version" in r.stderr, r.stderr
    assert dbroll("lint", "--since", "", "--migrations", str(mdir)).exit_code == 2
    assert dbroll("status", "--json", *args(db, mdir)).json["applied"] == ["1", "2"]


def test_a_history_row_with_no_version_syntax_is_named_not_a_traceback(db, tmp_path):
    mdir = shop(tmp_path)
    assert dbroll("migrate", "--target", "1", *args(db, mdir)).exit_code == 0
    query(
        db,
        "INSERT INTO dbroll_history (version, description, kind, script, checksum, status, "
        "applied, statements_done, statements_total, started_at, installed_by, host) VALUES "
        "('zz9', 'by hand', 'migrate', 'V9__x.sql', 'abc', 'success', 1, 1, 1, NOW(), 'x', 'x')",
    )
    (row_id,) = query(db, "SELECT MAX(id) FROM dbroll_history")[0]
    before = schema_objects(db)
    for command in ("status", "migrate"):
        r = dbroll(command, *args(db, mdir))
        assert r.exit_code == 3, r.stderr
        assert f"dbroll_history row {row_id} (migrate, V9__x.sql) has version 'zz9'" in r.stderr
        assert "Traceback" not in r.stderr
    assert schema_objects(db) == before


def test_resume_after_fixing_the_statement_that_failed(db, tmp_path):
    """The usual fix: a typo at statement 3 of 4, corrected in the file. A changed file's
    statement numbers may have moved, so plain `resume` refuses and names
    `--from-statement`; with it, the run goes on there and records the file as it is now.
    A script that failed at its first statement (nothing ran) is taken changed as it is."""
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__a.sql": "CREATE TABLE a (id INT);",
            "V2__b.sql": "CREATE TABLE b (id INT);\nCREATE TABLE c (id INT);\n"
            "CREATE TABLEX d (id INT);\nCREATE TABLE e (id INT);",
        },
    )
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 1 and "continues at statement 3" in r.stderr, r.stderr
    fixed = (mdir / "V2__b.sql").read_text().replace("TABLEX", "TABLE")
    (mdir / "V2__b.sql").write_text(fixed)
    before = history(db)
    r = dbroll("resume", *args(db, mdir))
    assert r.exit_code == 3, r.stderr
    assert "V2__b.sql changed since version 2 stopped at statement 3 (2 done)" in r.stderr
    assert "`dbroll resume --from-statement N`" in r.stderr and "N=3" in r.stderr
    assert history(db) == before
    r = dbroll("resume", "--from-statement", "3", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert {"table d", "table e"} <= set(schema_objects(db))
    assert dbroll("validate", *args(db, mdir)).exit_code == 0
    assert dbroll("status", "--json", *args(db, mdir)).json["applied"] == ["1", "2"]

    write_files(mdir, {"V3__v.sql": "CREATE VIEW v AS SELECT id FROM nosuch;"})
    assert dbroll("migrate", *args(db, mdir)).exit_code == 1
    write_files(mdir, {"V3__v.sql": "CREATE VIEW v AS SELECT id FROM a;"})
    r = dbroll("resume", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert "view v" in schema_objects(db)
    assert dbroll("validate", *args(db, mdir)).exit_code == 0


def test_from_statement_is_refused_for_a_script_that_runs_in_one_transaction(db, tmp_path):
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__k.sql": "CREATE TABLE k (id INT PRIMARY KEY, v INT);",
            "V2__data.sql": "INSERT INTO k VALUES (1, 1);\nINSERT INTO k VALUES (2, 2);\n"
            "INSERT INTO k VALUES (1, 3);\nINSERT INTO k VALUES (4, 4);",
        },
    )
    assert dbroll("migrate", *args(db, mdir)).exit_code == 1
    before = history(db)
    r = dbroll("resume", "--from-statement", "4", *args(db, mdir))
    assert r.exit_code == 2, r.stderr
    assert "--from-statement 4: V2__data.sql runs in one transaction" in r.stderr
    r = dbroll("resume", "--from-statement", "9", *args(db, mdir))
    assert r.exit_code == 2 and "outside 1..5 for V2__data.sql (4 statements;" in r.stderr
    assert history(db) == before and query(db, "SELECT COUNT(*) FROM k") == [(0,)]


def test_a_database_that_does_not_exist_is_a_configuration_error(db, tmp_path):
    """Exit 2, as for every missing resource: the DSN names a schema the server lacks."""
    mdir = shop(tmp_path)
    gone = db.with_database(db.database + "_gone")
    for command in ("status", "migrate"):
        r = dbroll(command, *args(gone, mdir))
        assert r.exit_code == 2, r.stderr
        assert f"Unknown database '{gone.database}'" in r.stderr
        assert f"CREATE DATABASE `{gone.database}`" in r.stderr


def test_an_empty_migrations_folder_beside_applied_versions_is_the_wrong_folder(db, tmp_path):
    mdir = shop(tmp_path)
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    before = history(db)
    wrong = tmp_path / "app"
    write_files(wrong / "migrations", {"V1__a.sql": "CREATE TABLE a (id INT);"})  # a subfolder
    for command in ("migrate", "validate", "undo"):
        extra = ("--target", "1") if command == "undo" else ()
        r = dbroll(command, *extra, *args(db, wrong))
        assert r.exit_code == 2, (command, r.stderr)
        assert f"{wrong} holds no migration files, but the database has 4 applied" in r.stderr
        assert "subfolders are not read" in r.stderr
    assert history(db) == before
    # a new database and an empty folder: nothing to do, not an error
    fresh = db.with_database(db.database + "_fresh")
    query(db, f"CREATE DATABASE `{fresh.database}`")
    try:
        assert dbroll("migrate", *args(fresh, wrong)).exit_code == 0
    finally:
        query(db, f"DROP DATABASE `{fresh.database}`")


def test_json_output_on_an_error_is_json_with_what_ran(db, tmp_path):
    """A pipeline reading --json gets JSON on a failure too: the error (type, message,
    hint, exit code, version and statement) and the steps that ran before it."""
    mdir = write_files(
        tmp_path / "m",
        {"V1__a.sql": "CREATE TABLE a (id INT);", "V2__dup.sql": "CREATE TABLE a (id INT);"},
    )
    r = dbroll("migrate", "--json", *args(db, mdir))
    assert r.exit_code == 1 and "Error: migrate 2 (V2__dup.sql)" in r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["type"] == "MigrationFailedError" and err["exit_code"] == 1
    assert (err["version"], err["statement"]) == ("2", 1)
    assert "Table 'a' already exists" in err["message"] and "dbroll resume" in err["hint"]
    assert [(s["version"], s["status"]) for s in err["ran"]["steps"]] == [
        ("1", "applied"),
        ("2", "failed"),
    ]
    r = dbroll("status", "--json", *args(db.with_database(db.database + "_gone"), mdir))
    assert r.exit_code == 2
    assert json.loads(r.stdout)["error"]["type"] == "ConfigError"
