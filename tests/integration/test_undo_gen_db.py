"""Generated undo on a real MariaDB: forward, then the generated undo, restores the schema."""

from __future__ import annotations

import re
import subprocess
import textwrap

import pytest

from pipeline.undo_gen import generate_undo
from tests.conftest import dbroll, query, schema_objects, write_files
from tests.conftest import mariadb_client as _client


def mariadb_client(spec, sql: str) -> None:
    """The reference client; its error message in the failure when it fails."""
    try:
        _client(spec, sql)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"mariadb client failed:\n{e.stderr}\n--- script ---\n{sql}")


BASE = """
CREATE TABLE parents (id INT PRIMARY KEY);
CREATE TABLE customers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(100) NOT NULL,
  name VARCHAR(50) NULL,
  parent_id INT NULL,
  KEY ix_parent (parent_id)
);
CREATE TABLE a (id INT PRIMARY KEY);
CREATE TABLE b (id INT PRIMARY KEY, note VARCHAR(10));
INSERT INTO parents VALUES (1), (2);
INSERT INTO customers (email, name, parent_id) VALUES ('x@example.com', 'X', 1), ('y@example.com', NULL, 2);
INSERT INTO a VALUES (1);
INSERT INTO b VALUES (7, 'b');
"""

FORWARD = {
    "new objects": """
        CREATE TABLE orders (
          id INT AUTO_INCREMENT PRIMARY KEY,
          customer_id INT NOT NULL,
          total DECIMAL(10, 2) NOT NULL DEFAULT 0,
          CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
        );
        CREATE TABLE order_lines (
          order_id INT NOT NULL,
          sku VARCHAR(20) NOT NULL,
          PRIMARY KEY (order_id, sku),
          CONSTRAINT fk_lines_order FOREIGN KEY (order_id) REFERENCES orders (id)
        );
        INSERT INTO orders (customer_id, total) VALUES (1, 10.50);
        INSERT INTO order_lines VALUES (1, 'A-1');
        CREATE INDEX ix_orders_total ON orders (total);
        CREATE INDEX ix_customers_name ON customers (name);
        CREATE VIEW order_totals AS
          SELECT customer_id, SUM(total) AS total FROM orders GROUP BY customer_id;
        CREATE SEQUENCE invoice_numbers START WITH 1000;
        CREATE TABLE customers_copy LIKE customers;
        DELIMITER //
        CREATE PROCEDURE count_orders(OUT n INT)
        BEGIN
          SELECT COUNT(*) INTO n FROM orders;
        END //
        CREATE FUNCTION order_count() RETURNS INT READS SQL DATA
        BEGIN
          DECLARE n INT;
          SELECT COUNT(*) INTO n FROM orders;
          RETURN n;
        END //
        DELIMITER ;
        CREATE TRIGGER customers_lower_email BEFORE INSERT ON customers
        FOR EACH ROW SET NEW.email = LOWER(NEW.email);
        CREATE EVENT purge_nothing ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM orders WHERE 1 = 0;
        """,
    "columns, keys and checks": """
        ALTER TABLE customers
          ADD COLUMN phone VARCHAR(20) NULL AFTER email,
          ADD COLUMN points INT NOT NULL DEFAULT 0,
          ADD COLUMN code CHAR(8) NULL UNIQUE,
          ADD INDEX (phone),
          ADD UNIQUE KEY ux_customers_points_email (points, email),
          ADD CONSTRAINT ck_points CHECK (points >= 0);
        ALTER TABLE b ADD COLUMN parent_id INT NULL,
          ADD CONSTRAINT fk_b_parent FOREIGN KEY (parent_id) REFERENCES parents (id);
        ALTER TABLE customers ADD CONSTRAINT fk_customers_parent
          FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE SET NULL;
        ALTER TABLE a ADD COLUMN (x INT, y INT, INDEX ix_xy (x, y));
        ALTER TABLE a ADD COLUMN note_text TEXT, ADD FULLTEXT INDEX ft_b (note_text);
        """,
    "foreign key checks off": """
        SET foreign_key_checks = 0;
        CREATE TABLE child (
          id INT PRIMARY KEY,
          family_id INT,
          CONSTRAINT fk_child_family FOREIGN KEY (family_id) REFERENCES family (id)
        );
        CREATE TABLE family (id INT PRIMARY KEY);
        SET foreign_key_checks = 1;
        """,
    "renames": """
        RENAME TABLE a TO tmp_swap, b TO a, tmp_swap TO b;
        ALTER TABLE customers RENAME COLUMN name TO full_name;
        ALTER TABLE customers RENAME INDEX ix_parent TO ix_customers_parent;
        ALTER TABLE parents ADD COLUMN label VARCHAR(10), RENAME TO families;
        """,
    "churn inside the script": """
        CREATE TABLE work (id INT);
        INSERT INTO work SELECT id FROM customers;
        UPDATE work SET id = id + 1;
        DROP TABLE work;
        ALTER TABLE customers ADD COLUMN tmp INT;
        ALTER TABLE customers MODIFY tmp BIGINT NULL DEFAULT 0;
        ALTER TABLE customers CHANGE tmp tier BIGINT NULL DEFAULT 1;
        CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20));
        ALTER TABLE audit ADD COLUMN at DATETIME, DROP COLUMN what;
        CREATE TEMPORARY TABLE scratch (n INT);
        INSERT INTO scratch VALUES (1);
        SET @n = 1;
        SELECT 1;
        """,
}


@pytest.mark.parametrize("case", sorted(FORWARD))
def test_generated_undo_restores_the_previous_schema(db, case):
    mariadb_client(db, BASE)
    before = schema_objects(db)
    forward = textwrap.dedent(FORWARD[case]).lstrip()
    gen = generate_undo(forward, f"V2__{case}.sql", created_before={"parents", "customers"})
    assert gen.exact, gen.reasons
    mariadb_client(db, forward)
    assert schema_objects(db) != before
    mariadb_client(db, gen.sql)
    assert schema_objects(db) == before
    # the rows of the tables that were there before are untouched
    assert query(db, "SELECT COUNT(*) FROM customers") == [(2,)]


def test_foreign_key_undo_keeps_an_index_that_was_there_before(db):
    mariadb_client(db, BASE)
    forward = "ALTER TABLE customers ADD CONSTRAINT fk_c FOREIGN KEY (parent_id) REFERENCES parents (id);\n"
    gen = generate_undo(forward, "V2__fk.sql")
    mariadb_client(db, forward)
    indexes = query(
        db,
        "SELECT DISTINCT index_name FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND table_name = 'customers'",
    )
    assert ("fk_c",) not in indexes  # ix_parent serves the foreign key
    before_undo = schema_objects(db)["table customers"]
    assert "KEY `ix_parent`" in before_undo
    mariadb_client(db, gen.sql)
    assert "KEY `ix_parent`" in schema_objects(db)["table customers"]
    assert "fk_c" not in schema_objects(db)["table customers"]


def test_undo_gen_write_then_migrate_and_undo_with_dbroll(db, tmp_path):
    """The CLI path: write the proposals into a Flyway folder, run them with dbroll."""
    files = {"V1__base.sql": BASE, "U1__base.sql": "DROP TABLE b, a, customers, parents;\n"}
    for i, case in enumerate(sorted(FORWARD), start=2):
        files[f"V{i}__{re.sub('[^a-z]+', '_', case)}.sql"] = FORWARD[case]
    folder = write_files(tmp_path / "migrations", files)
    r = dbroll("undo-gen", "--migrations", str(folder), "--write")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.stdout.count("GENERATED undo, review before use") == len(FORWARD)
    written = sorted(p.name for p in folder.glob("U*.sql"))
    assert len(written) == len(FORWARD) + 1
    assert (
        (folder / "U2__churn_inside_the_script.sql")
        .read_text()
        .startswith(
            "-- generated by dbroll from V2__churn_inside_the_script.sql: review before use\n"
        )
    )
    # never overwritten: a second run writes nothing and says so
    again = dbroll("undo-gen", "--migrations", str(folder), "--version", "2", "--write")
    assert again.exit_code == 0
    assert "not written: U2__churn_inside_the_script.sql exists: never overwritten" in again.stdout

    dsn = db.to_dsn()
    assert (
        dbroll("migrate", "--migrations", str(folder), "--dsn", dsn, "--target", "1").exit_code == 0
    )
    base = schema_objects(db)
    m = dbroll("migrate", "--migrations", str(folder), "--dsn", dsn)
    assert m.exit_code == 0, m.stdout + m.stderr
    u = dbroll(
        "undo", "--migrations", str(folder), "--dsn", dsn, "--target", "1", "--accept-data-loss"
    )
    assert u.exit_code == 0, u.stdout + u.stderr
    assert schema_objects(db) == base


def test_undo_gen_refuses_with_exit_3_and_names_the_lines(tmp_path):
    folder = write_files(
        tmp_path / "m",
        {
            "V1__t.sql": "CREATE TABLE t (id INT, phone VARCHAR(9));\n",
            "V2__drop_phone.sql": "-- contract\nALTER TABLE t DROP COLUMN phone;\n",
        },
    )
    r = dbroll("undo-gen", "--migrations", str(folder), "--write", "--json")
    assert r.exit_code == 3
    by_version = {m["version"]: m for m in r.json["migrations"]}
    assert by_version["1"]["exact"] is True and by_version["1"]["written"]
    assert by_version["2"]["exact"] is False and by_version["2"]["written"] is None
    assert by_version["2"]["reasons"] == [
        "line 2: DROP COLUMN phone has no exact inverse (the values of t.phone are gone)"
    ]
    assert r.json["blocked"] == 1
    assert "1 migration(s) have no exact inverse: 2" in r.stderr
    assert not (folder / "U2__drop_phone.sql").exists()


def test_undo_gen_dbmate_and_golang_folders(tmp_path):
    dbmate = write_files(
        tmp_path / "dbmate",
        {"20240101000000_t.sql": "-- migrate:up\nCREATE TABLE t (id INT);\n"},
    )
    r = dbroll("undo-gen", "--migrations", str(dbmate), "--write")
    assert r.exit_code == 0
    assert "DROP TABLE t;" in r.stdout
    assert "not written: dbmate keeps the undo in the '-- migrate:down' section" in r.stdout
    assert sorted(p.name for p in dbmate.iterdir()) == ["20240101000000_t.sql"]

    golang = write_files(tmp_path / "golang", {"000001_t.up.sql": "CREATE TABLE t (id INT);\n"})
    r = dbroll("undo-gen", "--migrations", str(golang), "--write")
    assert r.exit_code == 0
    assert (golang / "000001_t.down.sql").read_text().endswith("DROP TABLE t;\n")
    again = dbroll("undo-gen", "--migrations", str(golang))
    assert "every migration has an undo script: nothing to generate" in again.stdout


def test_undo_gen_unknown_version_is_a_usage_error(tmp_path):
    folder = write_files(tmp_path / "m", {"V1__t.sql": "CREATE TABLE t (id INT);\n"})
    r = dbroll("undo-gen", "--migrations", str(folder), "--version", "7")
    assert r.exit_code == 2
    assert "--version 7" in r.stderr
