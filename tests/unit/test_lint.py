"""Expand/contract lint: statement classes, migration classes, allow comments (pure)."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.migrations.lint import (
    ADDITIVE,
    BREAKING,
    DATA,
    SEVERITY,
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
    ("CREATE TABLE c3 AS SELECT * FROM customers", ADDITIVE, None, None),
    ("CREATE OR REPLACE TABLE customers (id INT)", UNKNOWN, "replace-table", "customers"),
    ("CREATE SPATIAL INDEX sp ON places (geo)", ADDITIVE, None, None),
    ("CREATE SEQUENCE s START WITH 1", ADDITIVE, None, None),
    ("CREATE OR REPLACE DEFINER=`app`@`%` PROCEDURE p() SELECT 1", ADDITIVE, None, None),
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
    ("ALTER TABLE orders DROP FOREIGN KEY fk", BREAKING, "drop-foreign-key", "orders"),
    ("ALTER TABLE orders DROP CONSTRAINT chk", BREAKING, "drop-constraint", "orders"),
    ("ALTER TABLE orders DROP CHECK chk", BREAKING, "drop-constraint", "orders"),
    ("ALTER TABLE orders DROP KEY k", BREAKING, "drop-index", "orders"),
    ("ALTER TABLE orders DROP INDEX IF EXISTS k", BREAKING, "drop-index", "orders"),
    ("ALTER TABLE orders DROP PARTITION p2019", BREAKING, "drop-partition", "orders"),
    ("ALTER TABLE orders TRUNCATE PARTITION p2019", BREAKING, "truncate", "orders"),
    (
        "ALTER TABLE orders ADD PARTITION (PARTITION p9 VALUES LESS THAN (9))",
        UNKNOWN,
        "table-options",
        "orders",
    ),
    ("ALTER TABLE orders ALTER INDEX i IGNORED", UNKNOWN, "ignore-index", "orders"),
    ("ALTER TABLE orders ALTER INDEX i NOT IGNORED", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD FULLTEXT ft (note)", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD FULLTEXT INDEX ft (note)", ADDITIVE, None, None),
    (
        "ALTER TABLE orders ADD COLUMN id2 INT NOT NULL AUTO_INCREMENT",
        BREAKING,
        "add-column-not-null",
        "orders",
    ),
    (
        "ALTER TABLE orders ADD COLUMN id2 INT AUTO_INCREMENT PRIMARY KEY",
        BREAKING,
        "add-primary-key",
        "orders",
    ),
    ("ALTER TABLE orders ADD COLUMN ref VARCHAR(9) NULL UNIQUE", BREAKING, "add-unique", "orders"),
    (
        "ALTER TABLE orders ADD COLUMN c INT NULL REFERENCES customers (id)",
        BREAKING,
        "add-foreign-key",
        "orders",
    ),
    (
        "ALTER TABLE orders ADD COLUMN g INT AS (total * 2) STORED NOT NULL",
        BREAKING,
        "add-column-not-null",
        "orders",
    ),
    ("ALTER TABLE orders ADD COLUMN s VARCHAR(3) NOT NULL DEFAULT ''", ADDITIVE, None, None),
    (
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS s INT NULL, ALGORITHM=INSTANT",
        ADDITIVE,
        None,
        None,
    ),
    ("ALTER TABLE IF EXISTS orders ADD COLUMN s INT NULL", ADDITIVE, None, None),
    ("ALTER ONLINE TABLE orders ADD INDEX (total)", ADDITIVE, None, None),
    ("ALTER TABLE `shop`.`Orders` DROP COLUMN `note`", BREAKING, "drop-column", "orders"),
    ("ALTER TABLE orders ALGORITHM=INSTANT, LOCK=NONE, ADD COLUMN s INT", ADDITIVE, None, None),
    ("ALTER TABLE orders CHANGE COLUMN IF EXISTS a b INT", BREAKING, "rename-column", "orders"),
    ("ALTER TABLE orders RENAME KEY a TO b", BREAKING, "rename-index", "orders"),
    ("ALTER TABLE orders DEFAULT CHARSET=utf8mb4", UNKNOWN, "table-options", "orders"),
    ("ALTER TABLE orders DISCARD TABLESPACE", UNKNOWN, "unknown-alter", "orders"),
    (
        "ALTER TABLE orders ADD COLUMN a INT NOT NULL, DROP b, ENGINE=Aria",
        BREAKING,
        "table-options",
        "orders",
    ),
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
    ("DROP FUNCTION IF EXISTS f", BREAKING, "drop-routine", None),
    ("DROP EVENT e", BREAKING, "drop-routine", None),
    ("DROP TABLE a, b", BREAKING, "drop-table", "a"),
    ("DROP INDEX IF EXISTS i ON shop.orders", BREAKING, "drop-index", "orders"),
    ("RENAME TABLE IF EXISTS orders TO purchases", BREAKING, "rename-table", "orders"),
    ("RENAME TABLE a TO b, c TO d", BREAKING, "rename-table", "a"),
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
    ("INSERT customers (name) VALUES ('a')", DATA, "data-insert", "customers"),
    ("INSERT INTO shop.customers SET name = 'a'", DATA, "data-insert", "customers"),
    ("UPDATE LOW_PRIORITY `shop`.`orders` SET total = 0", DATA, "data-update", "orders"),
    ("DELETE o FROM orders o JOIN customers c ON c.id = o.c", DATA, "data-delete", "orders"),
    ("LOAD DATA LOCAL INFILE 'f.csv' REPLACE INTO TABLE logs", DATA, "data-load", "logs"),
    ("CALL cleanup()", UNKNOWN, "call", None),
    ("REVOKE ALL ON shop.* FROM 'ro'@'%'", UNKNOWN, "grant", None),
    ("SET PASSWORD FOR 'u'@'%' = PASSWORD('x')", UNKNOWN, "grant", None),
    ("SET GLOBAL max_connections = 10", UNKNOWN, "set-global", None),
    ("SET @@global.sql_mode = ''", UNKNOWN, "set-global", None),
    ("SET SESSION sql_mode = 'STRICT_ALL_TABLES'", ADDITIVE, None, None),
    ("SET @x = 1", ADDITIVE, None, None),
    ("SET NAMES utf8mb4", ADDITIVE, None, None),
    ("BEGIN NOT ATOMIC UPDATE t SET a = 1; END", UNKNOWN, "compound-statement", None),
    ("SHOW TABLES", ADDITIVE, None, None),
    ("DO SLEEP(1)", ADDITIVE, None, None),
    ("START TRANSACTION", ADDITIVE, None, None),
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
    ("ALTER TABLE orders -- DROP COLUMN x\n ADD COLUMN y INT NULL", ADDITIVE, None, None),
    ("ALTER TABLE orders # DROP COLUMN x\n ADD COLUMN y INT NULL", ADDITIVE, None, None),
    ("/*Migration note: DROP TABLE x */ SELECT 1", ADDITIVE, None, None),
    ("/*!50001 DROP VIEW v */", BREAKING, "drop-view", "v"),
    ("/*M!100100 ALTER TABLE orders DROP COLUMN x */", BREAKING, "drop-column", "orders"),
    (
        "ALTER TABLE orders ADD COLUMN note VARCHAR(9) DEFAULT 'it''s, (a) \\' DROP'",
        ADDITIVE,
        None,
        None,
    ),
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


def mset(*bodies):
    return MigrationSet(
        "m",
        "flyway",
        [
            Migration(Version.parse(str(i)), f"m{i}", script(b, f"V{i}__m.sql"), None)
            for i, b in enumerate(bodies, 1)
        ],
    )


def test_modify_is_additive_only_when_provably_widening():
    base = (
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL, n INT, d DECIMAL(8,2),"
        " u INT UNSIGNED, s VARCHAR(9) NOT NULL DEFAULT 'x', e ENUM('a','b'));"
    )
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
        ("ALTER TABLE t CHANGE name name VARCHAR(30) NOT NULL;", ADDITIVE),
        ("ALTER TABLE t CHANGE COLUMN n n MEDIUMINT;", BREAKING),
        ("ALTER TABLE t MODIFY n INT UNSIGNED;", BREAKING),
        ("ALTER TABLE t MODIFY u BIGINT;", ADDITIVE),
        ("ALTER TABLE t MODIFY u INT;", BREAKING),
        ("ALTER TABLE t MODIFY s VARCHAR(9) NOT NULL DEFAULT 'x';", ADDITIVE),
        ("ALTER TABLE t MODIFY s VARCHAR(9) NOT NULL DEFAULT 'y';", BREAKING),
        ("ALTER TABLE t MODIFY s VARCHAR(9) NOT NULL;", BREAKING),
        ("ALTER TABLE t MODIFY s VARCHAR(9) CHARACTER SET latin1 NOT NULL DEFAULT 'x';", BREAKING),
        ("ALTER TABLE t MODIFY e ENUM('a','b','c');", ADDITIVE),
        ("ALTER TABLE t MODIFY e ENUM('b','a','c');", BREAKING),
        ("ALTER TABLE t MODIFY e ENUM('a');", BREAKING),
        ("ALTER TABLE t MODIFY missing INT;", BREAKING),
        ("ALTER TABLE t MODIFY name VARCHAR(20) NOT NULL, MODIFY n BIGINT;", ADDITIVE),
        ("ALTER TABLE t MODIFY name VARCHAR(20) NOT NULL, MODIFY n TINYINT;", BREAKING),
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


def test_modify_with_unknown_old_definition_says_so():
    (f,) = lint_script(script("ALTER TABLE orders MODIFY note VARCHAR(99) NULL;"))[1]
    assert (f.code, f.klass, f.table) == ("modify-column", BREAKING, "orders")
    assert "could not prove it widening" in f.message and "orders.note" in f.message


def test_modify_learns_columns_from_earlier_migrations_and_like():
    sets = mset(
        "CREATE TABLE t (name VARCHAR(10));",
        "CREATE TABLE t2 LIKE t;",
        "ALTER TABLE t2 MODIFY name VARCHAR(50);",
        "ALTER TABLE t ADD COLUMN x INT NULL;",
        "ALTER TABLE t MODIFY x BIGINT NULL, MODIFY name VARCHAR(3);",
    )
    lints = lint_set(sets, Version.parse("2"))
    assert [x.klass for x in lints] == [ADDITIVE, ADDITIVE, BREAKING]
    assert [(f.code, f.table) for f in lints[2].findings] == [("modify-column", "t")]


def test_renamed_new_tables_stay_new():
    text = (
        "CREATE TABLE a (id INT);\nRENAME TABLE a TO b;\nINSERT INTO b VALUES (1);\n"
        "ALTER TABLE b RENAME TO c;\nINSERT INTO c VALUES (2);\nDROP TABLE c;"
    )
    klass, findings, created = lint_script(script(text))
    assert (klass, findings) == (ADDITIVE, ())
    assert "a" not in created
    # an existing table renamed is breaking, and the new name is not new
    klass, findings, _ = lint_script(script("RENAME TABLE x TO y;\nINSERT INTO y VALUES (1);"))
    assert [(f.code, f.klass, f.table) for f in findings] == [
        ("rename-table", BREAKING, "x"),
        ("data-insert", DATA, "y"),
    ]


def test_insert_into_table_created_in_same_migration_vs_existing():
    m = Migration(
        Version.parse("3"),
        "seed",
        script(
            "INSERT INTO plans VALUES (0);\n"
            "CREATE TABLE coupons (code VARCHAR(9));\n"
            "INSERT INTO coupons VALUES ('A');\n"
            "REPLACE INTO `shop`.`COUPONS` VALUES ('B');\n"
        ),
        None,
    )
    lint = lint_migration(m)
    assert lint.klass == DATA and lint.created_tables == frozenset({"coupons"})
    assert [(f.code, f.table, f.line) for f in lint.findings] == [("data-insert", "plans", 1)]
    assert lint.blocking == ()  # data is not blocking
    assert lint_migration(m, {"plans"}).klass == ADDITIVE


def test_lint_set_since_selects_and_accumulates():
    sets = mset(
        "CREATE TABLE a (id INT);",
        "CREATE TABLE b (id INT);",
        "INSERT INTO b VALUES (1);\nALTER TABLE b ADD COLUMN n INT NOT NULL;",
        "INSERT INTO a VALUES (1);",
        "CREATE TABLE c (id INT);\nINSERT INTO c VALUES (1);",
    )
    release = lint_set(sets, Version.parse("1"))
    assert [str(x.version) for x in release] == ["2", "3", "4", "5"]
    assert [x.klass for x in release] == [ADDITIVE, ADDITIVE, DATA, ADDITIVE]
    assert [x.created_tables for x in release] == [{"b"}, set(), set(), {"c"}]
    assert [str(x.version) for x in lint_set(sets, Version.parse("4"))] == ["5"]
    assert lint_set(sets, Version.parse("9")) == []
    everything = lint_set(sets, Version.parse("0"))
    assert [x.klass for x in everything] == [ADDITIVE, ADDITIVE, ADDITIVE, ADDITIVE, ADDITIVE]
    # without since, each migration is judged on its own (what a manifest records)
    alone = lint_set(sets)
    assert [x.klass for x in alone] == [ADDITIVE, ADDITIVE, BREAKING, DATA, ADDITIVE]
    assert [f.code for f in alone[2].findings] == ["data-insert", "add-column-not-null"]


def test_allow_marks_every_finding_of_that_code_in_that_script_only():
    text = (
        "ALTER TABLE t DROP COLUMN a;\n"
        "ALTER TABLE t DROP COLUMN b, DROP INDEX i;\n"
        "   --   dbroll:allow   drop-column   both unused since 2.1  \n"
    )
    lint = lint_migration(Migration(Version.parse("1"), "x", script(text), None))
    assert lint.klass == BREAKING
    got = [(f.code, f.line, f.allowed, f.reason) for f in lint.findings]
    assert got == [
        ("drop-column", 1, True, "both unused since 2.1"),
        ("drop-column", 2, True, "both unused since 2.1"),
        ("drop-index", 2, False, None),
    ]
    assert [f.code for f in lint.blocking] == ["drop-index"]
    other = lint_migration(
        Migration(Version.parse("2"), "y", script("ALTER TABLE t DROP COLUMN c;"), None)
    )
    assert [f.allowed for f in other.findings] == [False]


def test_allow_without_reason_is_breaking_and_cannot_be_allowed():
    text = (
        "-- dbroll:allow drop-table\n"
        "-- dbroll:allow allow-without-reason because I say so\n"
        "DROP TABLE old;\n"
    )
    lint = lint_migration(Migration(Version.parse("1"), "x", script(text), None))
    got = sorted((f.code, f.line, f.allowed) for f in lint.findings)
    assert got == [("allow-without-reason", 1, False), ("drop-table", 3, False)]
    assert len(lint.blocking) == 2 and lint.klass == BREAKING
    f = next(f for f in lint.findings if f.code == "allow-without-reason")
    assert f.klass == BREAKING and f.hint


def test_allowed_data_and_unknown_findings():
    text = "# dbroll:allow data-update backfill is tiny\nUPDATE t SET a = 1;\nCALL p();\n"
    lint = lint_migration(Migration(Version.parse("1"), "x", script(text), None))
    assert lint.klass == UNKNOWN
    assert [(f.code, f.allowed) for f in lint.findings] == [("data-update", True), ("call", False)]
    assert [f.code for f in lint.blocking] == ["call"]


def test_line_numbers_with_delimiter_and_comments():
    text = (
        "-- header\n"
        "CREATE TABLE a (id INT);\n"
        "DELIMITER //\n"
        "CREATE PROCEDURE p()\nBEGIN\n  DELETE FROM x;\nEND //\n"
        "DELIMITER ;\n"
        "\n"
        "/* note */ UPDATE b\n  SET c = 1;\n"
        "SELECT 1; DROP VIEW v;\n"
    )
    _, findings, _ = lint_script(script(text, "db/V7__p.sql"))
    assert [(f.code, f.line, f.path) for f in findings] == [
        ("data-update", 10, "db/V7__p.sql"),
        ("drop-view", 12, "db/V7__p.sql"),
    ]


def test_every_non_additive_finding_has_a_hint_and_names_its_table():
    for sql, _klass, _, _ in CASES:
        for f in lint_script(script(sql + ";"))[1]:
            assert f.klass in (DATA, UNKNOWN, BREAKING)
            assert f.hint and "\n" not in f.message, sql
            assert f.code == f.code.lower() and " " not in f.code
            if f.table:
                assert f.table in f.message, sql


def test_finding_to_dict_keys_and_defaults():
    f = Finding("data-update", DATA, "V1__x.sql", 2, "updates t", None)
    d = f.to_dict()
    assert list(d) == [
        "code",
        "class",
        "path",
        "line",
        "message",
        "hint",
        "table",
        "allowed",
        "reason",
    ]
    assert d["class"] == DATA and d["allowed"] is False and d["table"] is None
    assert Finding.from_dict(d) == f
    minimal = {"code": "x", "class": UNKNOWN, "path": "p", "line": "4", "message": "m"}
    assert Finding.from_dict(minimal) == Finding("x", UNKNOWN, "p", 4, "m", None)


def test_classes_and_severity_order():
    assert SEVERITY[ADDITIVE] < SEVERITY[DATA] < SEVERITY[UNKNOWN] < SEVERITY[BREAKING]
    assert lint_migration(Migration(Version.parse("1"), "x", script(""), None)).klass == ADDITIVE


def test_ten_thousand_migrations():
    bodies = [
        "CREATE TABLE t{i} (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL);\n"
        "INSERT INTO t{i} VALUES (1, 'a');",
        "ALTER TABLE t{j} ADD COLUMN c{i} INT NULL, ADD INDEX (name), ALGORITHM=INPLACE;",
        "-- dbroll:allow drop-column gone\nALTER TABLE t{j} DROP COLUMN c{k};\n"
        "UPDATE t{j} SET name = 'x';",
        "ALTER TABLE t{j} MODIFY name VARCHAR(20) NOT NULL;",
    ]
    # i % 4 == 0 creates t{i}; the next three alter that table
    texts = [bodies[i % 4].format(i=i, j=i - i % 4, k=i - 1) for i in range(4, 10_004)]
    lints = lint_set(mset(*texts))
    assert len(lints) == 10_000
    counts = {}
    for x in lints:
        counts[x.klass] = counts.get(x.klass, 0) + 1
    assert counts == {ADDITIVE: 7500, BREAKING: 2500}
    assert sum(len(x.blocking) for x in lints) == 0
    assert len(lint_set(mset(*texts), Version.parse("5000"))) == 5000


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE orders RENAME COLUMN",
        "DROP INDEX i ON",
        "LOAD DATA INFILE 'x' INTO TABLE",
    ],
)
def test_statements_that_cannot_be_read_are_unknown(sql):
    klass, (f,), _ = lint_script(script(sql + ";"))
    assert (klass, f.code, f.klass) == (UNKNOWN, "unknown-statement", UNKNOWN)
    assert sql[:20] in f.message and f.hint
