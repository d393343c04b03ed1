"""Schema snapshots on a real MariaDB: equality, normalizations, every kind of difference,
and the `dbroll snapshot` / `snapshot diff` commands."""

from __future__ import annotations

import json

import pytest

from pipeline.db.connect import connect
from pipeline.db.snapshot import take_snapshot
from pipeline.snapshot_diff import diff, render_diff
from tests.conftest import dbroll

BASE = [
    "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(120) NOT NULL, "
    "name VARCHAR(50) NOT NULL DEFAULT 'anon', created DATETIME DEFAULT CURRENT_TIMESTAMP, "
    "UNIQUE KEY uq_email (email), CONSTRAINT chk_name CHECK (name <> '')) "
    "ENGINE=InnoDB COMMENT 'people'",
    "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, "
    "total DECIMAL(10,2) NOT NULL DEFAULT 0, note TEXT NULL, status ENUM('new','paid') "
    "NOT NULL DEFAULT 'new', KEY idx_x (customer_id, total), KEY idx_total (total), "
    "CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id) "
    "ON DELETE CASCADE)",
    "CREATE TABLE audit (id BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL) "
    "PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (1000), "
    "PARTITION pmax VALUES LESS THAN MAXVALUE)",
    "CREATE VIEW paid_orders AS SELECT o.id, c.email, o.total FROM orders o "
    "JOIN customers c ON c.id = o.customer_id WHERE o.status = 'paid'",
    "CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW "
    "SET NEW.total = GREATEST(NEW.total, 0)",
    "CREATE FUNCTION with_tax(x DECIMAL(10,2)) RETURNS DECIMAL(10,2) DETERMINISTIC RETURN x * 1.2",
    "CREATE PROCEDURE count_orders(IN cid INT, OUT n INT) "
    "SELECT COUNT(*) INTO n FROM orders WHERE customer_id = cid",
    "CREATE SEQUENCE invoice_no START WITH 100",
]


def run(spec, *statements: str) -> None:
    conn = connect(spec)
    try:
        cur = conn.cursor()
        for sql in statements:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def other(mariadb):
    """A second empty database on the same server (with a different name)."""
    spec = mariadb.create_database()
    try:
        yield spec
    finally:
        mariadb.drop_database(spec)


def lines(a, b) -> list[str]:
    return [str(d) for d in diff(a, b)]


# ---------------------------------------------------------------------------- equality


def test_same_ddl_gives_equal_snapshots_across_databases(db, other):
    run(db, *BASE)
    run(other, *BASE)
    a, b = take_snapshot(db), take_snapshot(other)
    assert db.database != other.database
    assert a == b
    assert diff(a, b) == []
    # JSON-serialisable and deterministic
    assert json.dumps(a, sort_keys=True) == json.dumps(take_snapshot(db), sort_keys=True)
    assert list(a["tables"]) == ["audit", "customers", "orders"]


def test_snapshot_describes_every_kind_of_object(db):
    run(db, *BASE)
    s = take_snapshot(db)
    assert s["format"] == 1
    orders = s["tables"]["orders"]
    assert [c["name"] for c in orders["columns"]] == [
        "id",
        "customer_id",
        "total",
        "note",
        "status",
    ]
    total = orders["columns"][2]
    assert (total["type"], total["nullable"], total["default"]) == ("decimal(10,2)", False, "0.00")
    assert orders["indexes"]["idx_x"] == {
        "columns": ["customer_id", "total"],
        "unique": False,
        "type": "BTREE",
        "comment": "",
        "ignored": False,
    }
    assert orders["foreign_keys"]["fk_customer"] == {
        "columns": ["customer_id"],
        "ref_schema": None,
        "ref_table": "customers",
        "ref_columns": ["id"],
        "on_update": "RESTRICT",
        "on_delete": "CASCADE",
    }
    customers = s["tables"]["customers"]
    assert customers["checks"] == {"chk_name": "`name` <> ''"}
    assert customers["indexes"]["uq_email"]["unique"] is True
    assert customers["comment"] == "people"
    assert customers["engine"] == "InnoDB" and customers["charset"] == "utf8mb4"
    assert s["tables"]["audit"]["partitioning"]["method"] == "RANGE"
    assert s["tables"]["audit"]["partitioning"]["partitions"] == ["p0: 1000", "pmax: MAXVALUE"]
    assert "`orders` `o`" in s["views"]["paid_orders"]["definition"]
    assert s["triggers"]["orders_bi"]["table"] == "orders"
    assert (s["triggers"]["orders_bi"]["timing"], s["triggers"]["orders_bi"]["event"]) == (
        "BEFORE",
        "INSERT",
    )
    assert s["functions"]["with_tax"]["returns"] == "decimal(10,2)"
    assert s["procedures"]["count_orders"]["parameters"] == ["IN cid int(11)", "OUT n int(11)"]
    assert "start with 100" in s["sequences"]["invoice_no"]["definition"]


def test_snapshot_accepts_an_open_connection_and_excludes_dbroll_tables(db):
    run(
        db,
        "CREATE TABLE dbroll_history (id INT PRIMARY KEY)",
        "CREATE TABLE dbroll_lock (name VARCHAR(64) PRIMARY KEY)",
        "CREATE TRIGGER h_bi BEFORE INSERT ON dbroll_history FOR EACH ROW SET NEW.id = NEW.id",
        "CREATE TABLE t (id INT)",
    )
    conn = connect(db)
    try:
        s = take_snapshot(conn)
        assert conn.open  # left open for the caller
    finally:
        conn.close()
    assert list(s["tables"]) == ["t"]
    assert s["triggers"] == {}
    assert set(take_snapshot(db, exclude=())["tables"]) == {"dbroll_history", "dbroll_lock", "t"}


def test_empty_database(db):
    s = take_snapshot(db)
    assert all(s[k] == {} for k in ("tables", "views", "procedures", "functions", "triggers"))


# ---------------------------------------------------------------------------- normalizations


def test_auto_increment_counters_and_row_counts_are_ignored(db, other):
    run(db, *BASE)
    run(other, *BASE)
    run(
        other,
        "INSERT INTO customers (email) VALUES ('a@x'), ('b@x'), ('c@x')",
        "INSERT INTO orders (customer_id, total) VALUES (1, 5), (2, 7)",
        "ALTER TABLE customers AUTO_INCREMENT = 1000",
        "ANALYZE TABLE orders",
    )
    assert diff(take_snapshot(db), take_snapshot(other)) == []


def test_definers_are_ignored(db, other):
    run(db, *BASE)
    statements = [
        s.replace("CREATE VIEW", "CREATE DEFINER=`someone_else`@`%` VIEW")
        .replace("CREATE TRIGGER", "CREATE DEFINER=`someone_else`@`%` TRIGGER")
        .replace("CREATE FUNCTION", "CREATE DEFINER=`someone_else`@`%` FUNCTION")
        .replace("CREATE PROCEDURE", "CREATE DEFINER=`someone_else`@`%` PROCEDURE")
        for s in BASE
    ]
    assert statements != BASE
    run(other, *statements)
    assert diff(take_snapshot(db), take_snapshot(other)) == []


def test_the_schema_name_is_normalized_away(db, other):
    # the view names its tables with the schema, as a dump or an ORM would
    run(db, *BASE, f"CREATE VIEW v2 AS SELECT id FROM `{db.database}`.customers")
    run(other, *BASE, f"CREATE VIEW v2 AS SELECT id FROM `{other.database}`.customers")
    a, b = take_snapshot(db), take_snapshot(other)
    assert diff(a, b) == []
    assert db.database not in json.dumps(a)
    assert other.database not in json.dumps(b)


# ---------------------------------------------------------------------------- differences


CHANGES = [
    (
        "ALTER TABLE orders MODIFY total DECIMAL(12,2) NOT NULL DEFAULT 0",
        "table orders: column total: type decimal(10,2) -> decimal(12,2)",
    ),
    (
        "ALTER TABLE customers ALTER name SET DEFAULT 'nobody'",
        "table customers: column name: default 'anon' -> 'nobody'",
    ),
    (
        "ALTER TABLE orders MODIFY note TEXT NOT NULL",
        "table orders: column note: nullable yes -> no",
    ),
    (
        "ALTER TABLE orders ADD COLUMN paid_at DATETIME NULL",
        "table orders: + column paid_at datetime NULL DEFAULT NULL",
    ),
    ("ALTER TABLE customers DROP COLUMN created", "table customers: - column created"),
    ("CREATE INDEX idx_status ON orders (status)", "+ index idx_status on orders (status)"),
    ("DROP INDEX idx_total ON orders", "- index idx_total on orders"),
    (
        "ALTER TABLE orders DROP FOREIGN KEY fk_customer",
        "- foreign key fk_customer on orders",
    ),
    (
        "CREATE TABLE audit_log (id INT PRIMARY KEY)",
        "+ table audit_log",
    ),
    (
        "CREATE OR REPLACE VIEW paid_orders AS SELECT o.id, c.email, o.total FROM orders o "
        "JOIN customers c ON c.id = o.customer_id WHERE o.status = 'new'",
        "view paid_orders: definition ",
    ),
    (
        "DROP TRIGGER orders_bi",
        "- trigger orders_bi on orders",
    ),
    (
        "CREATE TRIGGER orders_bu BEFORE UPDATE ON orders FOR EACH ROW SET NEW.total = 1",
        "+ trigger orders_bu on orders (BEFORE UPDATE)",
    ),
    (
        "CREATE OR REPLACE FUNCTION with_tax(x DECIMAL(10,2)) RETURNS DECIMAL(10,2) "
        "DETERMINISTIC RETURN x * 1.25",
        "function with_tax: body RETURN x * 1.2 -> RETURN x * 1.25",
    ),
    ("DROP PROCEDURE count_orders", "- procedure count_orders"),
    (
        "ALTER TABLE customers DROP CONSTRAINT chk_name",
        "- check chk_name on customers",
    ),
    ("ALTER TABLE customers COMMENT 'clients'", "table customers: comment people -> clients"),
]


@pytest.mark.parametrize("change,expected", CHANGES, ids=[e for _, e in CHANGES])
def test_diff_reports_each_kind_of_change(db, change, expected):
    run(db, *BASE)
    before = take_snapshot(db)
    run(db, change)
    found = lines(before, take_snapshot(db))
    assert any(line.startswith(expected) for line in found), found


def test_diff_reports_foreign_key_and_trigger_changes_in_place(db):
    run(db, *BASE)
    before = take_snapshot(db)
    run(
        db,
        "ALTER TABLE orders DROP FOREIGN KEY fk_customer",
        "ALTER TABLE orders ADD CONSTRAINT fk_customer FOREIGN KEY (customer_id) "
        "REFERENCES customers (id) ON DELETE RESTRICT",
        "DROP TRIGGER orders_bi",
        "CREATE TRIGGER orders_bi AFTER INSERT ON orders FOR EACH ROW SET @last = NEW.id",
    )
    found = lines(before, take_snapshot(db))
    assert "foreign key fk_customer on orders: on delete CASCADE -> RESTRICT" in found
    assert "trigger orders_bi on orders: timing BEFORE -> AFTER" in found
    assert any(line.startswith("trigger orders_bi on orders: body ") for line in found)
    # and the reverse direction names the same things the other way round
    back = lines(take_snapshot(db), before)
    assert "foreign key fk_customer on orders: on delete RESTRICT -> CASCADE" in back


def test_diff_reports_column_order(db, other):
    run(db, "CREATE TABLE t (a INT, b INT, c INT)")
    run(other, "CREATE TABLE t (a INT, c INT, b INT)")
    assert lines(take_snapshot(db), take_snapshot(other)) == [
        "table t: columns: order (a, b, c) -> (a, c, b)"
    ]


# ---------------------------------------------------------------------------- CLI


def test_cli_snapshot_out_then_diff(db, tmp_path):
    run(db, *BASE)
    out = tmp_path / "before.json"
    r = dbroll("snapshot", "--dsn", db.to_dsn(), "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert "written to" in r.stdout
    assert json.loads(out.read_text()) == take_snapshot(db)

    r = dbroll("snapshot", "diff", str(out), db.to_dsn())
    assert r.exit_code == 0, r.stderr
    assert "no differences" in r.stdout

    run(db, "ALTER TABLE orders MODIFY total DECIMAL(12,2) NOT NULL DEFAULT 0")
    r = dbroll("snapshot", "diff", str(out), db.to_dsn())
    assert r.exit_code == 1
    assert "table orders: column total: type decimal(10,2) -> decimal(12,2)" in r.stdout

    r = dbroll("snapshot", "diff", str(out), db.to_dsn(), "--json")
    assert r.exit_code == 1
    data = r.json
    assert data["equal"] is False
    assert data["differences"][0]["subject"] == "column total"
    assert data["differences"][0]["before"] == "decimal(10,2)"


def test_cli_snapshot_prints_json_without_out(db):
    run(db, "CREATE TABLE t (id INT PRIMARY KEY)")
    r = dbroll("snapshot", "--dsn", db.to_dsn())
    assert r.exit_code == 0, r.stderr
    assert r.json == take_snapshot(db)


def test_cli_snapshot_out_json_summary(db, tmp_path):
    run(db, *BASE)
    r = dbroll("snapshot", "--dsn", db.to_dsn(), "--out", str(tmp_path / "s.json"), "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["counts"]["tables"] == 3
    assert r.json["database"] == db.describe()


def test_cli_snapshot_diff_of_two_databases(db, other):
    run(db, *BASE)
    run(other, *BASE[:2])
    r = dbroll("snapshot", "diff", db.to_dsn(), other.to_dsn())
    assert r.exit_code == 1
    assert "  - table audit" in r.stdout
    assert "  - view paid_orders" in r.stdout


def test_cli_snapshot_diff_rejects_files_that_are_not_snapshots(tmp_path, db):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    r = dbroll("snapshot", "diff", str(bad), db.to_dsn())
    assert r.exit_code == 2
    assert "not a dbroll schema snapshot" in r.stderr
    r = dbroll("snapshot", "diff", str(tmp_path / "missing.json"), db.to_dsn())
    assert r.exit_code == 2
    assert "cannot read" in r.stderr
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**take_snapshot(db), "format": 99}))
    r = dbroll("snapshot", "diff", str(old), str(old))
    assert r.exit_code == 2
    assert "format 99" in r.stderr


def test_render_diff_of_live_databases(db, other):
    run(db, *BASE)
    run(other, *BASE, "ALTER TABLE orders ADD KEY idx_status (status)")
    text = render_diff(diff(take_snapshot(db), take_snapshot(other)), before="A", after="B")
    assert text == "1 difference(s) from A to B:\n  + index idx_status on orders (status)"
