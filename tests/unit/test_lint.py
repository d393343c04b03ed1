"""Expand/contract lint: statement classes, migration classes, allow comments (pure)."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.migrations.lint import (
    ADDITIVE,
    BREAKING,
    DATA,
    UNKNOWN,
    Finding,
    lint_migration,
    lint_script,
    lint_set,
)
from pipeline.migrations.model import Migration, MigrationSet, Script, Version


def script(text: str, path: str = "V9__x.sql") -> Script:
    return Script(path, hashlib.sha256(text.encode()).hexdigest(), text)


EXISTING = ()  # nothing created in context: every table below is an existing one

CASES = [
    # (statement, class, code, table)
    ("CREATE TABLE coupons (code VARCHAR(20) PRIMARY KEY)", ADDITIVE, None, None),
    ("CREATE TABLE IF NOT EXISTS `shop`.`coupons` (id INT)", ADDITIVE, None, None),
    ("CREATE TABLE c2 LIKE customers", ADDITIVE, None, None),
    ("CREATE TEMPORARY TABLE tmp (id INT)", ADDITIVE, None, None),
    ("CREATE INDEX i ON orders (total)", ADDITIVE, None, None),
    ("CREATE FULLTEXT INDEX ft ON orders (note)", ADDITIVE, None, None),
    ("CREATE UNIQUE INDEX u ON customers (email)", BREAKING, "add-unique", "customers"),
    ("CREATE OR REPLACE VIEW v AS SELECT 1", ADDITIVE, None, None),
    (
        "CREATE ALGORITHM=MERGE DEFINER=`app`@`%` SQL SECURITY INVOKER VIEW v AS SELECT 1",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE DEFINER=`app`@`%` TRIGGER t BEFORE INSERT ON c FOR EACH ROW SET NEW.x = 1",
        ADDITIVE,
        None,
        None,
    ),
    ("CREATE PROCEDURE p() BEGIN SELECT 1; END", ADDITIVE, None, None),
    ("CREATE FUNCTION f() RETURNS INT RETURN 1", ADDITIVE, None, None),
    ("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO DELETE FROM logs", ADDITIVE, None, None),
    ("CREATE DATABASE x", ADDITIVE, None, None),
    ("CREATE USER 'u'@'%'", UNKNOWN, "grant", None),
    ("ALTER TABLE orders ADD COLUMN coupon VARCHAR(20) NULL", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD coupon VARCHAR(20)", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD COLUMN IF NOT EXISTS n INT NOT NULL DEFAULT 0", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD COLUMN n INT NOT NULL", BREAKING, "add-column-not-null", "orders"),
    (
        "ALTER TABLE orders ADD COLUMN (a INT, b INT NOT NULL)",
        BREAKING,
        "add-column-not-null",
        "orders",
    ),
    ("ALTER TABLE orders ADD COLUMN g INT AS (total * 2) VIRTUAL", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD INDEX i (total)", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD KEY (total), ALGORITHM=INPLACE, LOCK=NONE", ADDITIVE, None, None),
    ("ALTER TABLE orders WAIT 5 ADD INDEX i (total)", ADDITIVE, None, None),
    ("ALTER TABLE orders NOWAIT ADD INDEX i (total)", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD UNIQUE (ref)", BREAKING, "add-unique", "orders"),
    ("ALTER TABLE orders ADD CONSTRAINT u UNIQUE KEY (ref)", BREAKING, "add-unique", "orders"),
    ("ALTER TABLE orders ADD PRIMARY KEY (id)", BREAKING, "add-primary-key", "orders"),
    (
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id)",
        BREAKING,
        "add-foreign-key",
        "orders",
    ),
    (
        "ALTER TABLE orders ADD FOREIGN KEY (c) REFERENCES customers (id)",
        BREAKING,
        "add-foreign-key",
        "orders",
    ),
    ("ALTER TABLE orders ADD CONSTRAINT chk CHECK (total >= 0)", BREAKING, "add-check", "orders"),
    ("ALTER TABLE orders DROP COLUMN note", BREAKING, "drop-column", "orders"),
    ("ALTER TABLE orders DROP note", BREAKING, "drop-column", "orders"),
    ("ALTER TABLE orders DROP COLUMN IF EXISTS note", BREAKING, "drop-column", "orders"),
    ("ALTER TABLE orders DROP INDEX i", BREAKING, "drop-index", "orders"),
    ("ALTER TABLE orders DROP PRIMARY KEY", BREAKING, "drop-primary-key", "orders"),
    ("ALTER TABLE orders DROP FOREIGN KEY fk", BREAKING, "drop-constraint", "orders"),
    ("ALTER TABLE orders RENAME TO purchases", BREAKING, "rename-table", "orders"),
    ("ALTER TABLE orders RENAME AS purchases", BREAKING, "rename-table", "orders"),
    ("ALTER TABLE orders RENAME COLUMN note TO remark", BREAKING, "rename-column", "orders"),
    ("ALTER TABLE orders RENAME INDEX a TO b", BREAKING, "rename-index", "orders"),
    ("ALTER TABLE orders CHANGE note remark TEXT", BREAKING, "rename-column", "orders"),
    ("ALTER TABLE orders CHANGE COLUMN note note VARCHAR(10)", BREAKING, "modify-column", "orders"),
    ("ALTER TABLE orders MODIFY note VARCHAR(10)", BREAKING, "modify-column", "orders"),
    ("ALTER TABLE orders ALTER COLUMN total SET DEFAULT 0", ADDITIVE, None, None),
    ("ALTER TABLE orders ALTER COLUMN total DROP DEFAULT", BREAKING, "drop-default", "orders"),
    ("ALTER TABLE orders ENGINE=InnoDB", UNKNOWN, "table-options", "orders"),
    ("ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4", UNKNOWN, "table-options", "orders"),
    ("ALTER TABLE orders COMMENT 'orders'", ADDITIVE, None, None),
    ("ALTER TABLE orders FORCE", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD COLUMN x INT NULL, DROP COLUMN y", BREAKING, "drop-column", "orders"),
    ("ALTER VIEW v AS SELECT 2", UNKNOWN, "unknown-alter", None),
    ("DROP TABLE orders", BREAKING, "drop-table", "orders"),
    ("DROP TABLE IF EXISTS `shop`.`orders`", BREAKING, "drop-table", "orders"),
    ("DROP TEMPORARY TABLE tmp", ADDITIVE, None, None),
    ("DROP VIEW v", BREAKING, "drop-view", "v"),
    ("DROP PROCEDURE IF EXISTS p", BREAKING, "drop-routine", None),
    ("DROP TRIGGER t", BREAKING, "drop-routine", None),
    ("DROP INDEX i ON orders", BREAKING, "drop-index", "orders"),
    ("DROP DATABASE shop", BREAKING, "drop-database", None),
    ("RENAME TABLE orders TO purchases", BREAKING, "rename-table", "orders"),
    ("TRUNCATE TABLE logs", BREAKING, "truncate", "logs"),
    ("TRUNCATE logs", BREAKING, "truncate", "logs"),
    ("INSERT INTO customers (name) VALUES ('a')", DATA, "data-insert", "customers"),
    ("INSERT IGNORE INTO customers SELECT * FROM old", DATA, "data-insert", "customers"),
    ("REPLACE INTO settings VALUES ('k', 'v')", DATA, "data-insert", "settings"),
    ("UPDATE customers SET name = 'x' WHERE id = 1", DATA, "data-update", "customers"),
    ("DELETE FROM logs WHERE created < NOW()", DATA, "data-delete", "logs"),
    ("LOAD DATA INFILE '/x' INTO TABLE logs", DATA, "data-load", "logs"),
    ("CALL cleanup()", UNKNOWN, "call", None),
    ("PREPARE s FROM @sql", UNKNOWN, "dynamic-sql", None),
    ("EXECUTE s", UNKNOWN, "dynamic-sql", None),
    ("GRANT SELECT ON shop.* TO 'ro'@'%'", UNKNOWN, "grant", None),
    ("SET FOREIGN_KEY_CHECKS = 0", ADDITIVE, None, None),
    ("/*!40101 SET NAMES utf8mb4 */", ADDITIVE, None, None),
    ("SELECT 'starting' AS msg", ADDITIVE, None, None),
    ("USE shop", ADDITIVE, None, None),
    ("FROBNICATE everything", UNKNOWN, "unknown-statement", None),
    ("ALTER TABLE orders ADD COLUMN note VARCHAR(10) DEFAULT 'DROP TABLE x'", ADDITIVE, None, None),
    ("ALTER TABLE orders /* DROP COLUMN x */ ADD COLUMN y INT NULL", ADDITIVE, None, None),
]


@pytest.mark.parametrize(("sql", "klass", "code", "table"), CASES, ids=[c[0][:48] for c in CASES])
def test_statement_classes(sql, klass, code, table):
    got_class, findings, _ = lint_script(script(sql + ";"), EXISTING)
    assert got_class == klass
    if code is None:
        assert findings == ()
    else:
        assert code in [f.code for f in findings]
        f = next(f for f in findings if f.code == code)
        assert f.table == table and f.klass in (klass, DATA, UNKNOWN, BREAKING)
        assert f.hint and f.message and f.line == 1 and f.path == "V9__x.sql"


def test_everything_on_a_table_created_in_context_is_additive():
    text = (
        "CREATE TABLE coupons (code VARCHAR(20));\n"
        "INSERT INTO coupons VALUES ('A');\n"
        "ALTER TABLE coupons ADD COLUMN n INT NOT NULL, ADD UNIQUE (code);\n"
        "ALTER TABLE coupons RENAME COLUMN n TO m;"
    )
    klass, findings, created = lint_script(script(text))
    assert klass == ADDITIVE and findings == () and created == {"coupons"}
    assert lint_script(script("INSERT INTO coupons VALUES ('B');"), {"coupons"})[0] == ADDITIVE
    assert lint_script(script("INSERT INTO coupons VALUES ('B');"))[0] == DATA


def test_findings_carry_line_numbers():
    text = "CREATE TABLE a (id INT);\n\n-- comment\nALTER TABLE b\n  DROP COLUMN c;\n"
    _, findings, _ = lint_script(script(text))
    assert [(f.code, f.line) for f in findings] == [("drop-column", 4)]


def test_multi_spec_alter_takes_the_worst_and_reports_each():
    _, findings, _ = lint_script(
        script(
            "ALTER TABLE t ADD COLUMN a INT NULL, DROP COLUMN b, RENAME COLUMN c TO d, "
            "ADD INDEX (a);"
        )
    )
    assert [f.code for f in findings] == ["drop-column", "rename-column"]


def test_allow_comments():
    text = (
        "-- dbroll:allow drop-column nobody has read it since 2.3\n"
        "ALTER TABLE t DROP COLUMN legacy;\nDROP TABLE old;\n"
    )
    m = Migration(Version.parse("5"), "x", script(text), None)
    lint = lint_migration(m)
    assert lint.klass == BREAKING
    allowed = [f for f in lint.findings if f.allowed]
    assert [(f.code, f.reason) for f in allowed] == [
        ("drop-column", "nobody has read it since 2.3")
    ]
    assert [f.code for f in lint.blocking] == ["drop-table"]
    no_reason = lint_migration(
        Migration(
            Version.parse("6"), "y", script("# dbroll:allow drop-table\nDROP TABLE old;"), None
        )
    )
    assert {f.code for f in no_reason.blocking} == {"allow-without-reason", "drop-table"}


def test_modify_is_additive_only_when_provably_widening():
    def mset(*bodies):
        return MigrationSet(
            "m",
            "flyway",
            [
                Migration(Version.parse(str(i)), f"m{i}", script(b, f"V{i}__m.sql"), None)
                for i, b in enumerate(bodies, 1)
            ],
        )

    base = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL, n INT, d DECIMAL(8,2));"
    for change, expected in [
        ("ALTER TABLE t MODIFY name VARCHAR(20) NOT NULL;", ADDITIVE),
        ("ALTER TABLE t MODIFY name VARCHAR(20) NULL;", ADDITIVE),
        ("ALTER TABLE t MODIFY name VARCHAR(5) NOT NULL;", BREAKING),
        ("ALTER TABLE t MODIFY n BIGINT;", ADDITIVE),
        ("ALTER TABLE t MODIFY n SMALLINT;", BREAKING),
        ("ALTER TABLE t MODIFY n INT NOT NULL;", BREAKING),
        ("ALTER TABLE t MODIFY d DECIMAL(10,2);", ADDITIVE),
        ("ALTER TABLE t MODIFY d DECIMAL(8,3);", BREAKING),
        ("ALTER TABLE t MODIFY name TEXT;", BREAKING),
    ]:
        lints = lint_set(mset(base, change))
        assert lints[1].klass == expected, change


def test_lint_set_with_since_treats_the_range_as_one_release():
    bodies = [
        "CREATE TABLE a (id INT);",
        "CREATE TABLE b (id INT);",
        "INSERT INTO b VALUES (1);",
        "INSERT INTO a VALUES (1);",
    ]
    mset = MigrationSet(
        "m",
        "flyway",
        [
            Migration(Version.parse(str(i)), f"m{i}", script(b, f"V{i}__m.sql"), None)
            for i, b in enumerate(bodies, 1)
        ],
    )
    per_migration = lint_set(mset)
    assert [x.klass for x in per_migration] == [ADDITIVE, ADDITIVE, DATA, DATA]
    release = lint_set(mset, Version.parse("1"))
    assert [str(x.version) for x in release] == ["2", "3", "4"]
    assert [x.klass for x in release] == [ADDITIVE, ADDITIVE, DATA]  # a is older than 1


def test_finding_round_trip():
    f = Finding("drop-column", BREAKING, "V1__x.sql", 3, "drops c", "in steps", "t", True, "ok")
    assert Finding.from_dict(f.to_dict()) == f


def test_unparsable_script_is_unknown():
    klass, findings, _ = lint_script(script("SELECT 'unterminated;"))
    assert klass == UNKNOWN and findings[0].code == "unparsable"
