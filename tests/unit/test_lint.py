"""Expand/contract lint: statement classes, migration classes, context, allow comments (pure)."""

from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.migrations.lint import (
    ADDITIVE,
    BREAKING,
    DATA,
    HINTS,
    SEVERITY,
    UNKNOWN,
    Finding,
    MigrationLint,
    lint_migration,
    lint_script,
    lint_set,
)
from pipeline.migrations.model import Migration, MigrationSet, Script, Version


def script(text: str, path: str = "V9__x.sql") -> Script:
    return Script(path, hashlib.sha256(text.encode()).hexdigest(), text)


def migration(version: str, text: str) -> Migration:
    return Migration(
        Version.parse(version), f"m{version}", script(text, f"V{version}__m.sql"), None
    )


def mset(*bodies: str) -> MigrationSet:
    return MigrationSet("m", "flyway", [migration(str(i), b) for i, b in enumerate(bodies, 1)])


def after(history: str, text: str) -> MigrationLint:
    """Lint `text` as the only migration of a release, `history` applied before it."""
    (lint,) = lint_set(mset(history, text), since=Version.parse("1"))
    return lint


# (statement, class, code, table): each statement alone, every table an existing one
STATEMENTS = [
    # --- CREATE: new objects
    ("CREATE TABLE coupons (code VARCHAR(20) PRIMARY KEY)", ADDITIVE, None, None),
    ("CREATE TABLE IF NOT EXISTS `shop`.`coupons` (id INT)", ADDITIVE, None, None),
    ("CREATE TABLE c2 LIKE customers", ADDITIVE, None, None),
    ("CREATE TABLE c3 AS SELECT * FROM customers", ADDITIVE, None, None),
    ("CREATE TEMPORARY TABLE tmp (id INT)", ADDITIVE, None, None),
    (
        "CREATE TABLE t (id BIGINT NOT NULL AUTO_INCREMENT, n VARCHAR(10) NOT NULL, "
        "PRIMARY KEY (id), UNIQUE KEY u (n), CONSTRAINT fk FOREIGN KEY (n) REFERENCES p (n)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        ADDITIVE,
        None,
        None,
    ),
    ("CREATE INDEX i ON orders (total)", ADDITIVE, None, None),
    ("CREATE FULLTEXT INDEX ft ON orders (note)", ADDITIVE, None, None),
    ("CREATE INDEX IF NOT EXISTS i ON orders (total)", ADDITIVE, None, None),
    ("CREATE UNIQUE INDEX u ON customers (email)", BREAKING, "add-unique", "customers"),
    ("CREATE OR REPLACE VIEW v AS SELECT 1", ADDITIVE, None, None),
    (
        "CREATE ALGORITHM=MERGE DEFINER=`app`@`%` SQL SECURITY INVOKER VIEW v AS SELECT 1",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE DEFINER=`app`@`%` TRIGGER t BEFORE INSERT ON c FOR EACH ROW "
        "BEGIN SET NEW.x = 1; END",
        ADDITIVE,
        None,
        None,
    ),
    ("CREATE PROCEDURE p() BEGIN UPDATE orders SET x = 1; END", ADDITIVE, None, None),
    ("CREATE FUNCTION f() RETURNS INT RETURN 1", ADDITIVE, None, None),
    ("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO DELETE FROM logs", ADDITIVE, None, None),
    ("CREATE SEQUENCE s START WITH 1", ADDITIVE, None, None),
    ("CREATE DATABASE IF NOT EXISTS reports", ADDITIVE, None, None),
    ("CREATE USER 'u'@'%' IDENTIFIED BY 'x'", UNKNOWN, "grant", None),
    # --- ALTER TABLE ADD COLUMN
    ("ALTER TABLE orders ADD COLUMN coupon VARCHAR(20) NULL", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD coupon VARCHAR(20)", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD COLUMN IF NOT EXISTS n INT NOT NULL DEFAULT 0", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD COLUMN s ENUM('a','b') NOT NULL DEFAULT 'a'", ADDITIVE, None, None),
    (
        "ALTER TABLE orders ADD COLUMN ts TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP "
        "ON UPDATE CURRENT_TIMESTAMP",
        ADDITIVE,
        None,
        None,
    ),
    ("ALTER TABLE orders ADD COLUMN g INT AS (total * 2) VIRTUAL", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD COLUMN g INT GENERATED ALWAYS AS (a) STORED", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD COLUMN x INT NULL FIRST", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD COLUMN n INT NOT NULL", BREAKING, "add-column-not-null", "orders"),
    (
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS n INT NOT NULL AFTER id",
        BREAKING,
        "add-column-not-null",
        "orders",
    ),
    (
        "ALTER TABLE orders ADD COLUMN (a INT, b INT NOT NULL)",
        BREAKING,
        "add-column-not-null",
        "orders",
    ),
    (
        "ALTER TABLE orders ADD COLUMN seq BIGINT NOT NULL AUTO_INCREMENT",
        BREAKING,
        "add-column-not-null",
        "orders",
    ),
    ("ALTER TABLE orders ADD COLUMN seq SERIAL", BREAKING, "add-column-not-null", "orders"),
    (
        "ALTER TABLE orders ADD COLUMN ref CHAR(8) NOT NULL DEFAULT '' UNIQUE",
        BREAKING,
        "add-unique",
        "orders",
    ),
    ("ALTER TABLE orders ADD COLUMN ref CHAR(8) NULL UNIQUE", ADDITIVE, None, None),
    # --- ALTER TABLE indexes and constraints
    ("ALTER TABLE orders ADD INDEX i (total)", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD INDEX IF NOT EXISTS i (total)", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD KEY (total), ALGORITHM=INPLACE, LOCK=NONE", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD FULLTEXT INDEX ft (note)", ADDITIVE, None, None),
    ("ALTER TABLE orders ADD UNIQUE (ref)", BREAKING, "add-unique", "orders"),
    ("ALTER TABLE orders ADD UNIQUE KEY u (ref)", BREAKING, "add-unique", "orders"),
    ("ALTER TABLE orders ADD CONSTRAINT u UNIQUE KEY (ref)", BREAKING, "add-unique", "orders"),
    ("ALTER TABLE orders ADD PRIMARY KEY (id)", BREAKING, "add-primary-key", "orders"),
    (
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id) "
        "ON DELETE CASCADE",
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
    ("ALTER TABLE orders DROP INDEX i", UNKNOWN, "drop-index", "orders"),
    ("ALTER TABLE orders DROP KEY IF EXISTS i", UNKNOWN, "drop-index", "orders"),
    ("DROP INDEX i ON orders", UNKNOWN, "drop-index", "orders"),
    ("ALTER TABLE orders DROP PRIMARY KEY", BREAKING, "drop-primary-key", "orders"),
    ("ALTER TABLE orders DROP FOREIGN KEY fk", BREAKING, "drop-foreign-key", "orders"),
    ("ALTER TABLE orders DROP FOREIGN KEY IF EXISTS fk", BREAKING, "drop-foreign-key", "orders"),
    ("ALTER TABLE orders DROP CONSTRAINT chk", BREAKING, "drop-constraint", "orders"),
    ("ALTER TABLE orders DROP CHECK chk", BREAKING, "drop-constraint", "orders"),
    ("ALTER TABLE orders RENAME INDEX a TO b", UNKNOWN, "rename-index", "orders"),
    # --- ALTER TABLE drop / rename / change columns
    ("ALTER TABLE orders DROP COLUMN note", BREAKING, "drop-column", "orders"),
    ("ALTER TABLE orders DROP note", BREAKING, "drop-column", "orders"),
    ("ALTER TABLE orders DROP COLUMN IF EXISTS note", BREAKING, "drop-column", "orders"),
    ("ALTER TABLE orders RENAME TO purchases", BREAKING, "rename-table", "orders"),
    ("ALTER TABLE orders RENAME AS purchases", BREAKING, "rename-table", "orders"),
    ("ALTER TABLE orders RENAME COLUMN note TO remark", BREAKING, "rename-column", "orders"),
    ("ALTER TABLE orders CHANGE note remark TEXT", BREAKING, "rename-column", "orders"),
    ("ALTER TABLE orders CHANGE COLUMN a b VARCHAR(10)", BREAKING, "rename-column", "orders"),
    (
        "ALTER TABLE orders CHANGE COLUMN note note VARCHAR(10)",
        UNKNOWN,
        "modify-column-unknown",
        "orders",
    ),
    ("ALTER TABLE orders MODIFY note VARCHAR(10)", UNKNOWN, "modify-column-unknown", "orders"),
    (
        "ALTER TABLE orders MODIFY COLUMN IF EXISTS n BIGINT",
        UNKNOWN,
        "modify-column-unknown",
        "orders",
    ),
    ("ALTER TABLE orders ALTER COLUMN total SET DEFAULT 0", ADDITIVE, None, None),
    ("ALTER TABLE orders ALTER total SET DEFAULT (1 + 1)", ADDITIVE, None, None),
    ("ALTER TABLE orders ALTER COLUMN total DROP DEFAULT", BREAKING, "drop-default", "orders"),
    # --- ALTER TABLE options, engine, partitions, MariaDB forms
    ("ALTER TABLE orders ENGINE=InnoDB", UNKNOWN, "table-engine", "orders"),
    ("ALTER TABLE orders ROW_FORMAT=DYNAMIC ENGINE=Aria", UNKNOWN, "table-engine", "orders"),
    ("ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4", UNKNOWN, "convert-charset", "orders"),
    ("ALTER TABLE orders DEFAULT CHARSET = utf8mb4", ADDITIVE, None, None),
    ("ALTER TABLE orders COMMENT 'orders'", ADDITIVE, None, None),
    ("ALTER TABLE orders COMMENT = 'orders', AUTO_INCREMENT = 1000", ADDITIVE, None, None),
    ("ALTER TABLE orders FORCE", ADDITIVE, None, None),
    ("ALTER TABLE orders ROW_FORMAT=DYNAMIC", ADDITIVE, None, None),
    ("/*!40000 ALTER TABLE orders DISABLE KEYS */", ADDITIVE, None, None),
    (
        "ALTER TABLE orders ADD PARTITION (PARTITION p9 VALUES LESS THAN (2030))",
        ADDITIVE,
        None,
        None,
    ),
    ("ALTER TABLE orders DROP PARTITION p1", BREAKING, "drop-partition", "orders"),
    ("ALTER TABLE orders TRUNCATE PARTITION p1", BREAKING, "drop-partition", "orders"),
    ("ALTER TABLE orders OPTIMIZE PARTITION p1", ADDITIVE, None, None),
    ("ALTER TABLE orders REMOVE PARTITIONING", UNKNOWN, "partitioning", "orders"),
    ("ALTER TABLE orders PARTITION BY HASH (id) PARTITIONS 4", UNKNOWN, "partitioning", "orders"),
    ("ALTER TABLE orders ADD SYSTEM VERSIONING", UNKNOWN, "unknown-alter", "orders"),
    ("ALTER TABLE orders DISCARD TABLESPACE", UNKNOWN, "unknown-alter", "orders"),
    ("ALTER TABLE orders WAIT 5 ADD INDEX i (total)", ADDITIVE, None, None),
    ("ALTER TABLE orders NOWAIT ADD INDEX i (total)", ADDITIVE, None, None),
    ("ALTER TABLE orders WAIT 5 DROP COLUMN note", BREAKING, "drop-column", "orders"),
    ("ALTER ONLINE TABLE orders ADD COLUMN x INT NULL", ADDITIVE, None, None),
    ("ALTER IGNORE TABLE orders ADD UNIQUE (ref)", BREAKING, "add-unique", "orders"),
    ("ALTER TABLE IF EXISTS orders DROP COLUMN note", BREAKING, "drop-column", "orders"),
    ("ALTER TABLE orders ALGORITHM=INSTANT, ADD COLUMN x INT NULL", ADDITIVE, None, None),
    ("ALTER TABLE `shop`.`Orders` DROP COLUMN `note`", BREAKING, "drop-column", "orders"),
    # --- other ALTERs
    ("ALTER VIEW v AS SELECT 2", ADDITIVE, None, None),
    ("ALTER DATABASE shop CHARACTER SET utf8mb4", ADDITIVE, None, None),
    ("ALTER PROCEDURE p COMMENT 'x'", ADDITIVE, None, None),
    ("ALTER EVENT e DISABLE", UNKNOWN, "unknown-alter", None),
    ("ALTER SEQUENCE s RESTART WITH 100", UNKNOWN, "unknown-alter", None),
    ("ALTER TABLE orders ALTER COLUMN note SET INVISIBLE", UNKNOWN, "unknown-alter", "orders"),
    ("ALTER USER 'u'@'%' IDENTIFIED BY 'y'", UNKNOWN, "grant", None),
    # --- DROP / RENAME / TRUNCATE
    ("DROP TABLE orders", BREAKING, "drop-table", "orders"),
    ("DROP TABLE IF EXISTS `shop`.`orders`", BREAKING, "drop-table", "orders"),
    ("DROP TEMPORARY TABLE tmp", ADDITIVE, None, None),
    ("DROP VIEW v", BREAKING, "drop-view", "v"),
    ("DROP VIEW IF EXISTS v CASCADE", BREAKING, "drop-view", "v"),
    ("DROP PROCEDURE IF EXISTS p", BREAKING, "drop-routine", None),
    ("DROP FUNCTION f", BREAKING, "drop-routine", None),
    ("DROP TRIGGER shop.t", BREAKING, "drop-routine", None),
    ("DROP EVENT IF EXISTS e", BREAKING, "drop-routine", None),
    ("DROP SEQUENCE s", BREAKING, "drop-sequence", "s"),
    ("DROP DATABASE shop", BREAKING, "drop-database", None),
    ("DROP SCHEMA IF EXISTS shop", BREAKING, "drop-database", None),
    ("DROP USER 'u'@'%'", UNKNOWN, "grant", None),
    ("RENAME TABLE orders TO purchases", BREAKING, "rename-table", "orders"),
    ("RENAME TABLE `shop`.`orders` TO `shop`.`purchases`", BREAKING, "rename-table", "orders"),
    ("RENAME TABLE orders WAIT 3 TO purchases", BREAKING, "rename-table", "orders"),
    ("TRUNCATE TABLE logs", BREAKING, "truncate", "logs"),
    ("TRUNCATE logs", BREAKING, "truncate", "logs"),
    # --- data
    ("INSERT INTO customers (name) VALUES ('a')", DATA, "data-insert", "customers"),
    ("INSERT IGNORE INTO customers SELECT * FROM old", DATA, "data-insert", "customers"),
    ("INSERT customers SET name = 'x'", DATA, "data-insert", "customers"),
    (
        "INSERT INTO settings (k, v) VALUES ('a', 1) ON DUPLICATE KEY UPDATE v = 2",
        DATA,
        "data-insert",
        "settings",
    ),
    ("REPLACE INTO settings VALUES ('k', 'v')", DATA, "data-replace", "settings"),
    ("UPDATE customers SET name = 'x' WHERE id = 1", DATA, "data-update", "customers"),
    ("UPDATE LOW_PRIORITY IGNORE customers SET name = 'x'", DATA, "data-update", "customers"),
    (
        "UPDATE orders o JOIN customers c ON c.id = o.cid SET o.total = 0",
        DATA,
        "data-update",
        "orders",
    ),
    ("DELETE FROM logs WHERE created < NOW()", DATA, "data-delete", "logs"),
    ("DELETE o FROM orders o JOIN customers c ON c.id = o.cid", DATA, "data-delete", "orders"),
    ("DELETE FROM o USING orders AS o JOIN c ON c.id = o.cid", DATA, "data-delete", "orders"),
    ("LOAD DATA INFILE '/x' INTO TABLE logs", DATA, "data-load", "logs"),
    ("LOAD DATA LOCAL INFILE '/x' REPLACE INTO TABLE `logs`", DATA, "data-load", "logs"),
    ("LOAD XML INFILE '/x.xml' INTO TABLE logs", DATA, "data-load", "logs"),
    # --- wrappers, dynamic SQL, privileges, session
    (
        "SET STATEMENT max_statement_time=60 FOR ALTER TABLE t DROP COLUMN c",
        BREAKING,
        "drop-column",
        "t",
    ),
    ("SET STATEMENT lock_wait_timeout=5 FOR CREATE INDEX i ON t (c)", ADDITIVE, None, None),
    ("ANALYZE UPDATE customers SET name = 'x'", DATA, "data-update", "customers"),
    ("ANALYZE TABLE customers", ADDITIVE, None, None),
    ("EXECUTE IMMEDIATE 'ALTER TABLE t DROP COLUMN c'", BREAKING, "drop-column", "t"),
    ("EXECUTE IMMEDIATE CONCAT('DROP TABLE ', @t)", UNKNOWN, "dynamic-sql", None),
    ("EXECUTE s", UNKNOWN, "dynamic-sql", None),
    ("PREPARE s FROM @sql", ADDITIVE, None, None),
    ("CALL cleanup()", UNKNOWN, "call", None),
    ("GRANT SELECT ON shop.* TO 'ro'@'%'", UNKNOWN, "grant", None),
    ("REVOKE ALL ON shop.* FROM 'ro'@'%'", UNKNOWN, "grant", None),
    ("SET PASSWORD FOR 'u'@'%' = PASSWORD('x')", UNKNOWN, "grant", None),
    ("SET FOREIGN_KEY_CHECKS = 0", ADDITIVE, None, None),
    (
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES', @x = @@global.max_connections",
        ADDITIVE,
        None,
        None,
    ),
    ("SET NAMES utf8mb4", ADDITIVE, None, None),
    ("/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */", ADDITIVE, None, None),
    ("SET GLOBAL max_connections = 10", UNKNOWN, "set-global", None),
    ("SET @@global.innodb_lock_wait_timeout = 5", UNKNOWN, "set-global", None),
    ("SELECT 'starting' AS msg", ADDITIVE, None, None),
    ("WITH x AS (SELECT 1) SELECT * FROM x", ADDITIVE, None, None),
    ("WITH x AS (SELECT 1) UPDATE customers SET n = 1", DATA, "data-update", "customers"),
    ("EXPLAIN DELETE FROM customers", ADDITIVE, None, None),
    ("HANDLER orders OPEN", ADDITIVE, None, None),
    ("LOAD INDEX INTO CACHE orders", ADDITIVE, None, None),
    ("IF 1 THEN DROP TABLE x", UNKNOWN, "unknown-statement", None),
    ("(SELECT 1)", ADDITIVE, None, None),
    ("USE shop", ADDITIVE, None, None),
    ("DO SLEEP(0)", ADDITIVE, None, None),
    ("START TRANSACTION", ADDITIVE, None, None),
    ("LOCK TABLES orders WRITE", ADDITIVE, None, None),
    ("OPTIMIZE TABLE orders", ADDITIVE, None, None),
    ("FLUSH TABLES", ADDITIVE, None, None),
    ("BEGIN NOT ATOMIC UPDATE t SET a = 1; END", UNKNOWN, "compound-statement", None),
    ("INSTALL SONAME 'ha_rocksdb'", UNKNOWN, "unknown-statement", None),
    ("FROBNICATE everything", UNKNOWN, "unknown-statement", None),
    # --- the tokenizer: strings, comments and quoted names do not fool it
    ("ALTER TABLE orders ADD COLUMN note VARCHAR(10) DEFAULT 'DROP TABLE x'", ADDITIVE, None, None),
    ("ALTER TABLE orders /* DROP COLUMN x */ ADD COLUMN y INT NULL", ADDITIVE, None, None),
    ("ALTER TABLE orders -- DROP COLUMN x\n ADD COLUMN y INT NULL", ADDITIVE, None, None),
    ("ALTER TABLE orders /*M plain comment */ ADD COLUMN y INT NULL", ADDITIVE, None, None),
    ("ALTER TABLE orders /*!50100 DROP COLUMN y */", BREAKING, "drop-column", "orders"),
    ("ALTER TABLE `drop` ADD COLUMN `drop` INT NULL", ADDITIVE, None, None),
    ("ALTER TABLE `odd``name` DROP COLUMN x", BREAKING, "drop-column", "odd`name"),
    ("ALTER TABLE orders ADD COLUMN `check` ENUM('a,b', 'c') NULL", ADDITIVE, None, None),
]


@pytest.mark.parametrize(
    ("sql", "klass", "code", "table"), STATEMENTS, ids=[s[0][:60] for s in STATEMENTS]
)
def test_statement_class_code_and_table(sql, klass, code, table):
    got, findings, _ = lint_script(script(sql + ";\n"))
    assert got == klass
    if code is None:
        assert findings == ()
        return
    assert {f.code for f in findings} == {code}
    assert findings[0].table == table
    for f in findings:
        assert f.klass == klass
        assert f.path == "V9__x.sql" and f.line == 1
        assert f.message and "\n" not in f.message
        assert f.hint and f.hint == HINTS[code]
        assert not f.allowed and f.reason is None


def test_the_statement_table_is_big_enough():
    assert len(STATEMENTS) >= 60
    codes = {c for _, _, c, _ in STATEMENTS if c}
    assert codes >= set(HINTS) - {"unparsable", "allow-without-reason", "replace-table"} - {
        "modify-column",
        "drop-unique-index",
    }


# (history migration, release migration, class, code, table): history teaches definitions
WITH_HISTORY = [
    # MODIFY / CHANGE: widening is provable only against the old definition
    (
        "CREATE TABLE t (name VARCHAR(10) NOT NULL)",
        "ALTER TABLE t MODIFY name VARCHAR(20) NOT NULL",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (name VARCHAR(10) NOT NULL)",
        "ALTER TABLE t MODIFY name VARCHAR(20) NULL",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (name VARCHAR(10) NOT NULL)",
        "ALTER TABLE t CHANGE name name VARCHAR(10)",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (name VARCHAR(10) NOT NULL)",
        "ALTER TABLE t MODIFY name VARCHAR(5) NOT NULL",
        BREAKING,
        "modify-column",
        "t",
    ),
    (
        "CREATE TABLE t (name VARCHAR(10) NULL)",
        "ALTER TABLE t MODIFY name VARCHAR(10) NOT NULL",
        BREAKING,
        "modify-column",
        "t",
    ),
    (
        "CREATE TABLE t (name VARCHAR(10))",
        "ALTER TABLE t MODIFY name TEXT",
        BREAKING,
        "modify-column",
        "t",
    ),
    (
        "CREATE TABLE t (name VARCHAR(10))",
        "ALTER TABLE t MODIFY name CHAR(20)",
        BREAKING,
        "modify-column",
        "t",
    ),
    (
        "CREATE TABLE t (name VARCHAR(10) CHARACTER SET latin1)",
        "ALTER TABLE t MODIFY name VARCHAR(20) CHARACTER SET utf8mb4",
        BREAKING,
        "modify-column",
        "t",
    ),
    (
        "CREATE TABLE t (name VARCHAR(10) CHARSET utf8mb4)",
        "ALTER TABLE t MODIFY name VARCHAR(20) CHARACTER SET utf8mb4",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (name VARCHAR(10) NOT NULL DEFAULT 'a')",
        "ALTER TABLE t MODIFY name VARCHAR(20) NOT NULL",
        BREAKING,
        "modify-column",
        "t",
    ),
    (
        "CREATE TABLE t (name VARCHAR(10) NOT NULL DEFAULT 'a')",
        "ALTER TABLE t MODIFY name VARCHAR(20) NOT NULL DEFAULT 'a'",
        ADDITIVE,
        None,
        None,
    ),
    ("CREATE TABLE t (n INT)", "ALTER TABLE t MODIFY n BIGINT", ADDITIVE, None, None),
    ("CREATE TABLE t (n TINYINT(1))", "ALTER TABLE t MODIFY n SMALLINT", ADDITIVE, None, None),
    ("CREATE TABLE t (n SMALLINT)", "ALTER TABLE t MODIFY n MEDIUMINT", ADDITIVE, None, None),
    ("CREATE TABLE t (n INT)", "ALTER TABLE t MODIFY n SMALLINT", BREAKING, "modify-column", "t"),
    (
        "CREATE TABLE t (n INT)",
        "ALTER TABLE t MODIFY n INT UNSIGNED",
        BREAKING,
        "modify-column",
        "t",
    ),
    (
        "CREATE TABLE t (n INT UNSIGNED NOT NULL DEFAULT '0')",
        "ALTER TABLE t MODIFY n BIGINT UNSIGNED NOT NULL DEFAULT 0",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)",
        "ALTER TABLE t MODIFY id BIGINT NOT NULL AUTO_INCREMENT",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)",
        "ALTER TABLE t MODIFY id BIGINT NOT NULL",
        BREAKING,
        "modify-column",
        "t",
    ),
    ("CREATE TABLE t (n INT)", "ALTER TABLE t MODIFY n DOUBLE", BREAKING, "modify-column", "t"),
    (
        "CREATE TABLE t (d DECIMAL(8,2))",
        "ALTER TABLE t MODIFY d DECIMAL(10,2)",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (d DECIMAL(8,2))",
        "ALTER TABLE t MODIFY d DECIMAL(8,3)",
        BREAKING,
        "modify-column",
        "t",
    ),
    ("CREATE TABLE t (b TEXT)", "ALTER TABLE t MODIFY b MEDIUMTEXT", ADDITIVE, None, None),
    (
        "CREATE TABLE t (b MEDIUMBLOB)",
        "ALTER TABLE t MODIFY b BLOB",
        BREAKING,
        "modify-column",
        "t",
    ),
    (
        "CREATE TABLE t (s ENUM('a','b'))",
        "ALTER TABLE t MODIFY s ENUM('a','b','c')",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (s ENUM('a','b'))",
        "ALTER TABLE t MODIFY s ENUM('c','a','b')",
        BREAKING,
        "modify-column",
        "t",
    ),
    ("CREATE TABLE t (at DATETIME)", "ALTER TABLE t MODIFY at DATETIME(6)", ADDITIVE, None, None),
    (
        "CREATE TABLE t (n INT); ALTER TABLE t MODIFY n BIGINT",
        "ALTER TABLE t MODIFY n INT",
        BREAKING,
        "modify-column",
        "t",
    ),
    (
        "CREATE TABLE t (n INT); ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4",
        "ALTER TABLE t MODIFY n BIGINT",
        UNKNOWN,
        "modify-column-unknown",
        "t",
    ),
    (
        "CREATE TABLE t (n INT); CALL p()",
        "ALTER TABLE t MODIFY n BIGINT",
        UNKNOWN,
        "modify-column-unknown",
        "t",
    ),
    (
        "CREATE TABLE t (n INT); ALTER TABLE t RENAME COLUMN n TO m",
        "ALTER TABLE t MODIFY m BIGINT",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (n INT); RENAME TABLE t TO u",
        "ALTER TABLE u MODIFY n BIGINT",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE t (n INT); ALTER TABLE t ADD COLUMN m VARCHAR(3)",
        "ALTER TABLE t MODIFY m VARCHAR(9)",
        ADDITIVE,
        None,
        None,
    ),
    (
        "CREATE TABLE s (n INT); CREATE TABLE t LIKE s",
        "ALTER TABLE t MODIFY n BIGINT",
        ADDITIVE,
        None,
        None,
    ),
    # indexes known from history: dropping a unique one is breaking
    (
        "CREATE TABLE t (e VARCHAR(9), UNIQUE KEY uq_e (e))",
        "ALTER TABLE t DROP INDEX uq_e",
        BREAKING,
        "drop-unique-index",
        "t",
    ),
    (
        "CREATE TABLE t (e VARCHAR(9) UNIQUE)",
        "ALTER TABLE t DROP INDEX e",
        BREAKING,
        "drop-unique-index",
        "t",
    ),
    (
        "CREATE TABLE t (e INT); CREATE UNIQUE INDEX u ON t (e)",
        "DROP INDEX u ON t",
        BREAKING,
        "drop-unique-index",
        "t",
    ),
    (
        "CREATE TABLE t (e INT, CONSTRAINT uq UNIQUE (e))",
        "ALTER TABLE t DROP CONSTRAINT uq",
        BREAKING,
        "drop-unique-index",
        "t",
    ),
    ("CREATE TABLE t (e INT, KEY k (e))", "ALTER TABLE t DROP INDEX k", UNKNOWN, "drop-index", "t"),
    (
        "CREATE TABLE t (id INT PRIMARY KEY)",
        "DROP INDEX `PRIMARY` ON t",
        BREAKING,
        "drop-primary-key",
        "t",
    ),
    # tables known to exist
    (
        "CREATE TABLE t (id INT)",
        "CREATE TABLE IF NOT EXISTS t (id INT); INSERT INTO t VALUES (1)",
        DATA,
        "data-insert",
        "t",
    ),
    (
        "CREATE TABLE t (id INT)",
        "CREATE OR REPLACE TABLE t (id INT)",
        BREAKING,
        "replace-table",
        "t",
    ),
    (
        "CREATE TABLE t (id INT); DROP TABLE t",
        "CREATE TABLE IF NOT EXISTS t (id INT); INSERT INTO t VALUES (1)",
        ADDITIVE,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("history", "sql", "klass", "code", "table"),
    WITH_HISTORY,
    ids=[f"{h[:30]} | {s[:50]}" for h, s, *_ in WITH_HISTORY],
)
def test_statement_after_history(history, sql, klass, code, table):
    lint = after(history + ";", sql + ";")
    assert lint.klass == klass
    if code is None:
        assert lint.findings == ()
    else:
        assert [(f.code, f.klass, f.table) for f in lint.findings] == [(code, klass, table)]
        assert all(f.hint for f in lint.findings)


# statements that are additive because the table is new in the context
ON_NEW_TABLE = [
    "INSERT INTO coupons VALUES ('A')",
    "REPLACE INTO coupons VALUES ('A')",
    "UPDATE coupons SET code = 'B'",
    "DELETE FROM coupons",
    "LOAD DATA INFILE '/x' INTO TABLE coupons",
    "TRUNCATE coupons",
    "DROP TABLE coupons",
    "RENAME TABLE coupons TO vouchers",
    "ALTER TABLE coupons RENAME TO vouchers",
    "ALTER TABLE coupons DROP COLUMN code",
    "ALTER TABLE coupons ADD COLUMN n INT NOT NULL",
    "ALTER TABLE coupons ADD COLUMN id BIGINT NOT NULL AUTO_INCREMENT",
    "ALTER TABLE coupons ADD UNIQUE (code), ADD PRIMARY KEY (code)",
    "ALTER TABLE coupons ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id)",
    "ALTER TABLE coupons RENAME COLUMN code TO ref",
    "ALTER TABLE coupons MODIFY code VARCHAR(5)",
    "ALTER TABLE coupons ENGINE=InnoDB",
    "CREATE UNIQUE INDEX u ON coupons (code)",
    "DROP INDEX i ON coupons",
]


@pytest.mark.parametrize("sql", ON_NEW_TABLE)
def test_anything_on_a_table_created_in_context_is_additive(sql):
    created_here = lint_script(script(f"CREATE TABLE coupons (code VARCHAR(20));\n{sql};"))
    assert created_here[:2] == (ADDITIVE, ())
    assert lint_script(script(sql + ";"), {"coupons"})[:2] == (ADDITIVE, ())
    existing = lint_script(script(sql + ";"))
    assert existing[0] != ADDITIVE and existing[1]


def test_insert_into_a_table_created_earlier_in_the_migration_vs_an_existing_one():
    text = (
        "CREATE TABLE coupons (code VARCHAR(20));\n"
        "INSERT INTO coupons VALUES ('A');\n"
        "INSERT INTO customers (name) VALUES ('b');\n"
    )
    klass, findings, created = lint_script(script(text))
    assert klass == DATA and created == {"coupons"}
    assert [(f.code, f.table, f.line) for f in findings] == [("data-insert", "customers", 3)]
    # an insert before the CREATE is into whatever table had that name
    klass, findings, _ = lint_script(
        script("INSERT INTO coupons VALUES (1);\nCREATE TABLE coupons (c INT);")
    )
    assert klass == DATA and findings[0].table == "coupons"


def test_create_table_if_not_exists_creates_the_table_in_a_lone_script():
    text = "CREATE TABLE IF NOT EXISTS c (id INT);\nINSERT INTO c VALUES (1);"
    assert lint_script(script(text)) == (ADDITIVE, (), frozenset({"c"}))


def test_multi_table_writes_count_only_the_tables_written():
    new = "CREATE TABLE n (id INT, x INT);\n"
    cases = [
        ("UPDATE n JOIN orders o ON o.id = n.id SET n.x = o.total;", []),
        ("UPDATE n, orders SET orders.total = n.x;", [("data-update", "orders")]),
        (
            "UPDATE n AS a JOIN orders AS b ON a.id = b.id SET a.x = 1, b.total = 2;",
            [("data-update", "orders")],
        ),
        ("UPDATE n, orders SET x = 1;", [("data-update", "orders")]),  # unqualified: both
        ("DELETE n FROM n JOIN orders o ON o.id = n.id;", []),
        ("DELETE o FROM n JOIN orders o ON o.id = n.id;", [("data-delete", "orders")]),
        ("DELETE FROM n USING n JOIN orders ON orders.id = n.id;", []),
        ("INSERT INTO n SELECT id, total FROM orders;", []),
    ]
    for sql, expected in cases:
        _, findings, _ = lint_script(script(new + sql))
        assert [(f.code, f.table) for f in findings] == expected, sql


def test_temporary_tables_are_scratch_space():
    text = (
        "CREATE TEMPORARY TABLE tmp (id INT);\nINSERT INTO tmp SELECT id FROM orders;\n"
        "UPDATE tmp SET id = id + 1;\nDROP TEMPORARY TABLE tmp;"
    )
    assert lint_script(script(text)) == (ADDITIVE, (), frozenset())


def test_the_classic_table_swap_is_breaking_for_the_old_table_only():
    text = (
        "CREATE TABLE orders_new LIKE orders;\n"
        "INSERT INTO orders_new SELECT * FROM orders;\n"
        "RENAME TABLE orders TO orders_old, orders_new TO orders;\n"
    )
    klass, findings, created = lint_script(script(text))
    assert klass == BREAKING
    assert [(f.code, f.table, f.line) for f in findings] == [("rename-table", "orders", 3)]
    assert created == {"orders"}


def test_view_and_routine_dropped_and_created_again_is_a_replace():
    text = (
        "DROP VIEW IF EXISTS totals;\nCREATE VIEW totals AS SELECT 1;\n"
        "DROP PROCEDURE IF EXISTS p;\nDELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; END //\n"
        "DELIMITER ;\nDROP TRIGGER IF EXISTS trg;\n"
        "CREATE DEFINER=`app`@`%` TRIGGER trg BEFORE INSERT ON o FOR EACH ROW SET NEW.x = 1;\n"
        "DROP FUNCTION f;\n"
    )
    klass, findings, _ = lint_script(script(text))
    assert [(f.code, f.line) for f in findings] == [("drop-routine", 9)]


@pytest.mark.parametrize(
    ("text", "klass"),
    [
        # a plain CREATE fails on an existing object: what it made is new to the old code
        ("CREATE VIEW v AS SELECT 1;\nDROP VIEW v;", ADDITIVE),
        ("CREATE SEQUENCE s;\nDROP SEQUENCE s;", ADDITIVE),
        ("CREATE FUNCTION f() RETURNS INT RETURN 1;\nDROP FUNCTION IF EXISTS f;", ADDITIVE),
        # OR REPLACE / IF NOT EXISTS may have met an object the old code uses
        ("CREATE OR REPLACE VIEW v AS SELECT 1;\nDROP VIEW v;", BREAKING),
        ("CREATE VIEW IF NOT EXISTS v AS SELECT 1;\nDROP VIEW v;", BREAKING),
        # another kind with the same name
        ("CREATE PROCEDURE p() SELECT 1;\nDROP FUNCTION p;", BREAKING),
    ],
)
def test_objects_created_then_dropped_in_context(text, klass):
    assert lint_script(script(text))[0] == klass


def test_new_nullable_columns_take_unique_and_foreign_keys_additively():
    expand = (
        "ALTER TABLE orders ADD COLUMN coupon_id INT NULL;\n"
        "ALTER TABLE orders ADD CONSTRAINT fk_coupon FOREIGN KEY (coupon_id) REFERENCES c (id);\n"
        "CREATE UNIQUE INDEX u_coupon ON orders (coupon_id);\n"
        "ALTER TABLE orders ADD CONSTRAINT chk CHECK (coupon_id > 0 OR coupon_id IS NULL);\n"
        "ALTER TABLE orders RENAME COLUMN coupon_id TO voucher_id, DROP COLUMN voucher_id;\n"
    )
    assert lint_script(script(expand))[:2] == (ADDITIVE, ())
    # a DEFAULT fills existing rows and the old code's inserts: no longer safe
    defaulted = (
        "ALTER TABLE orders ADD COLUMN coupon_id INT NULL DEFAULT 1;\n"
        "ALTER TABLE orders ADD FOREIGN KEY (coupon_id) REFERENCES c (id);\n"
    )
    assert [f.code for f in lint_script(script(defaulted))[1]] == ["add-foreign-key"]
    mixed = "ALTER TABLE orders ADD COLUMN a INT NULL, ADD UNIQUE (a, customer_id);"
    assert [f.code for f in lint_script(script(mixed))[1]] == ["add-unique"]
    # making the new column NOT NULL without a default breaks the old code's inserts
    tighten = "ALTER TABLE orders ADD COLUMN a INT NULL;\nALTER TABLE orders MODIFY a INT NOT NULL;"
    assert [(f.code, f.line) for f in lint_script(script(tighten))[1]] == [
        ("add-column-not-null", 2)
    ]


# multi-spec ALTER TABLE: one finding per non-additive spec, the class is the worst
MULTI_SPEC = [
    ("ALTER TABLE t ADD COLUMN a INT NULL, ADD INDEX (a), COMMENT 'x'", ADDITIVE, []),
    (
        "ALTER TABLE t ADD COLUMN a INT NULL, DROP COLUMN b, ADD INDEX (c)",
        BREAKING,
        ["drop-column"],
    ),
    ("ALTER TABLE t ADD INDEX (a), DROP INDEX b, ALGORITHM=INPLACE", UNKNOWN, ["drop-index"]),
    ("ALTER TABLE t DROP INDEX b, DROP COLUMN c", BREAKING, ["drop-index", "drop-column"]),
    (
        "ALTER TABLE t ADD COLUMN a INT NULL, DROP COLUMN b, RENAME COLUMN c TO d, ADD INDEX (a)",
        BREAKING,
        ["drop-column", "rename-column"],
    ),
    (
        "ALTER TABLE t ENGINE=InnoDB, ADD COLUMN n INT NOT NULL",
        BREAKING,
        ["table-engine", "add-column-not-null"],
    ),
    (
        "ALTER TABLE t WAIT 2 ADD COLUMN a INT NULL,\n  MODIFY b BIGINT,\n  ADD UNIQUE KEY (a)",
        UNKNOWN,
        ["modify-column-unknown"],
    ),
    ("ALTER TABLE t ADD (a INT NULL, INDEX (a))", ADDITIVE, []),
    (
        "ALTER TABLE t ADD (a INT NULL, b INT NOT NULL, UNIQUE (c))",
        BREAKING,
        ["add-column-not-null", "add-unique"],
    ),
    (
        "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a), ADD CONSTRAINT fk FOREIGN KEY (b) "
        "REFERENCES p (id)",
        BREAKING,
        ["add-unique", "add-foreign-key"],
    ),
]


@pytest.mark.parametrize(("sql", "klass", "codes"), MULTI_SPEC, ids=[m[0][:50] for m in MULTI_SPEC])
def test_multi_spec_alter_takes_the_worst_part(sql, klass, codes):
    got, findings, _ = lint_script(script(sql + ";"))
    assert got == klass
    assert [f.code for f in findings] == codes
    assert all(f.table == "t" and f.line == 1 for f in findings)
    expected = max([f.klass for f in findings], key=SEVERITY.__getitem__, default=ADDITIVE)
    assert got == expected


def test_findings_carry_the_line_where_the_statement_starts():
    text = (
        "-- V7: contract\n"
        "CREATE TABLE a (id INT);\n"
        "\n"
        "/* a block\n   comment */\n"
        "ALTER TABLE b\n"
        "  DROP COLUMN c;\n"
        "UPDATE b SET x = 1; DELETE FROM b;\n"
        "DELIMITER $$\n"
        "CREATE PROCEDURE p() BEGIN DELETE FROM b; END $$\n"
        "DELIMITER ;\n"
        "  TRUNCATE b;\n"
    )
    _, findings, _ = lint_script(script(text))
    assert [(f.code, f.line) for f in findings] == [
        ("drop-column", 6),
        ("data-update", 8),
        ("data-delete", 8),
        ("truncate", 12),
    ]


def test_prepared_statements_from_literals_are_classified_at_execute():
    text = (
        "PREPARE s FROM 'ALTER TABLE t ADD COLUMN q INT NULL';\nEXECUTE s;\n"
        'PREPARE d FROM "ALTER TABLE t DROP COLUMN legacy";\nDEALLOCATE PREPARE s;\nEXECUTE d;\n'
        "SET @sql = 'DROP TABLE t';\nPREPARE x FROM @sql;\nEXECUTE x;\n"
    )
    _, findings, _ = lint_script(script(text))
    assert [(f.code, f.line) for f in findings] == [("drop-column", 5), ("dynamic-sql", 8)]


def test_allow_comment_with_reason_accepts_but_keeps_the_class():
    text = (
        "-- dbroll:allow drop-column nobody has read it since 2.3\n"
        "ALTER TABLE t DROP COLUMN legacy;\n"
        "ALTER TABLE u DROP COLUMN old;\n"
        "DROP TABLE old;\n"
        "UPDATE t SET a = 1;  # dbroll:allow data-update  backfill, idempotent\n"
    )
    lint = lint_migration(migration("5", text))
    assert lint.klass == BREAKING
    assert [(f.code, f.allowed, f.reason) for f in lint.findings] == [
        ("drop-column", True, "nobody has read it since 2.3"),
        ("drop-column", True, "nobody has read it since 2.3"),
        ("drop-table", False, None),
        ("data-update", True, "backfill, idempotent"),
    ]
    assert [f.code for f in lint.blocking] == ["drop-table"]
    allowed_all = lint_migration(
        migration("6", "# dbroll:allow drop-table the archive job owns it\nDROP TABLE old;")
    )
    assert allowed_all.klass == BREAKING and allowed_all.blocking == ()


@pytest.mark.parametrize(
    "comment",
    ["-- dbroll:allow drop-table", "# dbroll:allow drop-table   ", "-- dbroll:allow"],
)
def test_allow_comment_without_reason_is_itself_a_finding(comment):
    lint = lint_migration(migration("6", f"DROP TABLE old;\n{comment}\n"))
    assert lint.klass == BREAKING
    assert [(f.code, f.klass, f.line, f.allowed) for f in lint.findings] == [
        ("drop-table", BREAKING, 1, False),
        ("allow-without-reason", BREAKING, 2, False),
    ]
    assert lint.findings[1].hint == HINTS["allow-without-reason"]
    assert {f.code for f in lint.blocking} == {"allow-without-reason", "drop-table"}


def test_allow_text_inside_a_string_or_for_another_code_accepts_nothing():
    text = (
        "INSERT INTO notes VALUES ('-- dbroll:allow drop-table because');\n"
        "-- dbroll:allow drop-column wrong code\n"
        "DROP TABLE old;\n"
    )
    lint = lint_migration(migration("7", text))
    assert [f.code for f in lint.blocking] == ["drop-table"]
    assert not any(f.allowed for f in lint.findings if f.code != "drop-column")


def test_blocking_is_breaking_and_unknown_only():
    text = "UPDATE t SET a = 1;\nCALL p();\nALTER TABLE t DROP COLUMN c;\n"
    lint = lint_migration(migration("3", text))
    assert lint.klass == BREAKING
    assert [f.code for f in lint.blocking] == ["call", "drop-column"]
    assert lint_migration(migration("4", "UPDATE t SET a = 1;")).blocking == ()
    empty = lint_migration(migration("5", "-- nothing\n"))
    assert (empty.klass, empty.findings, empty.created_tables) == (ADDITIVE, (), frozenset())


def test_lint_set_without_since_judges_each_migration_alone():
    lints = lint_set(
        mset(
            "CREATE TABLE a (id INT);",
            "CREATE TABLE b (id INT); INSERT INTO b VALUES (1);",
            "INSERT INTO b VALUES (2);",
            "ALTER TABLE a RENAME COLUMN id TO ident;",
        )
    )
    assert [str(x.version) for x in lints] == ["1", "2", "3", "4"]
    assert [x.klass for x in lints] == [ADDITIVE, ADDITIVE, DATA, BREAKING]
    assert [x.created_tables for x in lints] == [{"a"}, {"b"}, set(), set()]
    assert lints[2].findings[0].table == "b"


def test_lint_set_with_since_accumulates_created_tables_over_the_release():
    bodies = [
        "CREATE TABLE a (id INT);",
        "CREATE TABLE b (id INT);",
        "INSERT INTO b VALUES (1); ALTER TABLE b DROP COLUMN id;",
        "INSERT INTO a VALUES (1);",
        "RENAME TABLE b TO c; CREATE TABLE d (id INT);",
        "ALTER TABLE c ADD COLUMN n INT NOT NULL; UPDATE d SET id = 2;",
    ]
    release = lint_set(mset(*bodies), Version.parse("1"))
    assert [str(x.version) for x in release] == ["2", "3", "4", "5", "6"]
    assert [x.klass for x in release] == [ADDITIVE, ADDITIVE, DATA, ADDITIVE, ADDITIVE]
    assert release[2].findings[0].table == "a"  # a was created before the release
    assert [sorted(x.created_tables) for x in release] == [["b"], [], [], ["c", "d"], []]
    assert [str(x.version) for x in lint_set(mset(*bodies), Version.parse("6"))] == []
    assert len(lint_set(mset(*bodies), Version.parse("0"))) == 6


def test_lint_set_since_between_versions_and_with_dotted_versions():
    ms = MigrationSet(
        "m",
        "flyway",
        [
            migration("1.9", "CREATE TABLE a (id INT);"),
            migration("1.10", "INSERT INTO a VALUES (1);"),
            migration("2", "DROP TABLE a;"),
        ],
    )
    lints = lint_set(ms, Version.parse("1.9"))
    assert [(str(x.version), x.klass) for x in lints] == [("1.10", DATA), ("2", BREAKING)]
    assert [x.klass for x in lint_set(ms, Version.parse("1.5"))] == [ADDITIVE, ADDITIVE, ADDITIVE]


def test_lint_migration_takes_tables_created_earlier_in_the_context():
    m = migration("8", "INSERT INTO coupons VALUES (1);\nALTER TABLE coupons DROP COLUMN x;")
    assert lint_migration(m, {"coupons"}).klass == ADDITIVE
    assert lint_migration(m, {"Coupons"}).klass == ADDITIVE
    assert lint_migration(m, frozenset({"coupons"})).findings == ()
    assert lint_migration(m).klass == BREAKING
    assert lint_migration(m).version == Version.parse("8")


def test_every_non_additive_finding_has_a_hint_and_a_message():
    text = ";\n".join(sql for sql, _, code, _ in STATEMENTS if code) + ";\n-- dbroll:allow\n"
    _, findings, _ = lint_script(script(text))
    assert len(findings) > 60
    for f in findings:
        assert f.klass != ADDITIVE
        assert f.hint and f.hint == HINTS[f.code], f.code
        assert f.message and "\n" not in f.message
        assert f.code == f.code.lower() and " " not in f.code


def test_unparsable_script_is_unknown():
    klass, findings, _ = lint_script(script("CREATE TABLE a (id INT);\nSELECT 'unterminated;\n"))
    assert klass == UNKNOWN
    assert [(f.code, f.line) for f in findings] == [("unparsable", 2)]
    assert findings[0].hint == HINTS["unparsable"]


def test_finding_round_trips_through_a_dict_and_json():
    f = Finding("drop-column", BREAKING, "V1__x.sql", 3, "drops c", "in steps", "t", True, "ok")
    d = f.to_dict()
    assert d["class"] == BREAKING and d["code"] == "drop-column"
    assert Finding.from_dict(d) == f
    assert Finding.from_dict(json.loads(json.dumps(d))) == f
    bare = Finding("call", UNKNOWN, "V2__y.sql", 1, "calls p", None)
    assert Finding.from_dict(bare.to_dict()) == bare
    for real in lint_script(script("DROP TABLE x;\nCALL p();"))[1]:
        assert Finding.from_dict(json.loads(json.dumps(real.to_dict()))) == real
