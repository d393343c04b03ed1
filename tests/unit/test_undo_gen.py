"""Generated undo scripts: exact inverses statement by statement, and why not (pure)."""

from __future__ import annotations

import hashlib
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.migrations.model import Migration, MigrationSet, Script, Version
from pipeline.migrations.sqlsplit import split_statements
from pipeline.undo_gen import (
    GENERATED_UNDO_DIR,
    GeneratedUndo,
    generate_for_set,
    generate_undo,
    generated_undo_file,
    header_line,
    migrations_missing_undo,
    undo_file_name,
)


def undo(text: str, **kw) -> GeneratedUndo:
    return generate_undo(textwrap.dedent(text).lstrip("\n"), "V9__x.sql", **kw)


def statements(gen: GeneratedUndo) -> list[str]:
    assert gen.exact, gen.reasons
    assert gen.sql is not None
    return [" ".join(s.text.split()) for s in split_statements(gen.sql)]


# ---------------------------------------------------------------- exact inverses

EXACT = [
    ("CREATE TABLE t (id INT PRIMARY KEY)", ["DROP TABLE t"]),
    ("CREATE TABLE IF NOT EXISTS t (id INT)", ["DROP TABLE t"]),
    ("CREATE TABLE `order` (id INT)", ["DROP TABLE `order`"]),
    ("CREATE TABLE shop.t (id INT)", ["DROP TABLE shop.t"]),
    ("CREATE TABLE `shop`.`my t` (id INT)", ["DROP TABLE `shop`.`my t`"]),
    ("CREATE TABLE t2 LIKE t", ["DROP TABLE t2"]),
    ("CREATE TABLE t2 AS SELECT * FROM t", ["DROP TABLE t2"]),
    ("ALTER TABLE t ADD COLUMN c INT", ["ALTER TABLE t DROP COLUMN c"]),
    ("ALTER TABLE t ADD c INT NULL FIRST", ["ALTER TABLE t DROP COLUMN c"]),
    ("ALTER TABLE t ADD COLUMN c INT AFTER b", ["ALTER TABLE t DROP COLUMN c"]),
    ("ALTER TABLE t ADD COLUMN `select` INT", ["ALTER TABLE t DROP COLUMN `select`"]),
    (
        "ALTER TABLE t ADD COLUMN a INT, ADD COLUMN b VARCHAR(10) DEFAULT 'x,y'",
        ["ALTER TABLE t DROP COLUMN b, DROP COLUMN a"],
    ),
    ("ALTER TABLE t ADD COLUMN (a INT, b INT)", ["ALTER TABLE t DROP COLUMN b, DROP COLUMN a"]),
    (
        "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0 CHECK (c >= 0) COMMENT 'x'",
        ["ALTER TABLE t DROP COLUMN c"],
    ),
    ("ALTER TABLE t ADD COLUMN c INT UNIQUE", ["ALTER TABLE t DROP COLUMN c"]),
    ("ALTER TABLE t ADD INDEX ix (a)", ["ALTER TABLE t DROP INDEX ix"]),
    ("ALTER TABLE t ADD KEY ix (a, b)", ["ALTER TABLE t DROP INDEX ix"]),
    ("ALTER TABLE t ADD INDEX ix USING BTREE (a)", ["ALTER TABLE t DROP INDEX ix"]),
    ("ALTER TABLE t ADD UNIQUE ux (a)", ["ALTER TABLE t DROP INDEX ux"]),
    ("ALTER TABLE t ADD UNIQUE KEY ux (a)", ["ALTER TABLE t DROP INDEX ux"]),
    ("ALTER TABLE t ADD UNIQUE INDEX `ux` (a)", ["ALTER TABLE t DROP INDEX `ux`"]),
    ("ALTER TABLE t ADD CONSTRAINT cu UNIQUE (a)", ["ALTER TABLE t DROP INDEX cu"]),
    ("ALTER TABLE t ADD CONSTRAINT cu UNIQUE KEY ixn (a)", ["ALTER TABLE t DROP INDEX ixn"]),
    ("ALTER TABLE t ADD FULLTEXT ft (body)", ["ALTER TABLE t DROP INDEX ft"]),
    ("ALTER TABLE t ADD FULLTEXT INDEX ft (body)", ["ALTER TABLE t DROP INDEX ft"]),
    ("ALTER TABLE t ADD SPATIAL INDEX sp (g)", ["ALTER TABLE t DROP INDEX sp"]),
    ("ALTER TABLE t ADD INDEX IF NOT EXISTS ix (a)", ["ALTER TABLE t DROP INDEX ix"]),
    ("ALTER TABLE t ADD INDEX (email)", ["ALTER TABLE t DROP INDEX `email`"]),
    ("ALTER TABLE t ADD UNIQUE (`Email`(10), b)", ["ALTER TABLE t DROP INDEX `Email`"]),
    (
        "ALTER TABLE t ADD CONSTRAINT fk_p FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE",
        ["ALTER TABLE t DROP FOREIGN KEY fk_p, DROP INDEX IF EXISTS fk_p"],
    ),
    (
        "ALTER TABLE t ADD CONSTRAINT `fk p` FOREIGN KEY ix (pid) REFERENCES p (id)",
        ["ALTER TABLE t DROP FOREIGN KEY `fk p`, DROP INDEX IF EXISTS `fk p`"],
    ),
    ("ALTER TABLE t ADD CONSTRAINT ck CHECK (a > 0)", ["ALTER TABLE t DROP CONSTRAINT ck"]),
    (
        "ALTER TABLE t ADD COLUMN c INT, ADD INDEX ic (c), ALGORITHM=INPLACE, LOCK=NONE",
        ["ALTER TABLE t DROP INDEX ic, DROP COLUMN c"],
    ),
    ("ALTER TABLE t WAIT 5 ADD COLUMN c INT", ["ALTER TABLE t DROP COLUMN c"]),
    ("ALTER ONLINE IGNORE TABLE t NOWAIT ADD COLUMN c INT", ["ALTER TABLE t DROP COLUMN c"]),
    ("ALTER TABLE IF EXISTS t ADD COLUMN c INT", ["ALTER TABLE t DROP COLUMN c"]),
    ("ALTER TABLE t FORCE", ["DO 0"]),
    (
        "ALTER TABLE t ADD (c INT, INDEX ic (c))",
        ["ALTER TABLE t DROP INDEX ic, DROP COLUMN c"],
    ),
    ("ALTER TABLE t RENAME COLUMN a TO b", ["ALTER TABLE t RENAME COLUMN b TO a"]),
    ("ALTER TABLE t RENAME INDEX ia TO ib", ["ALTER TABLE t RENAME INDEX ib TO ia"]),
    ("ALTER TABLE t RENAME KEY ia TO ib", ["ALTER TABLE t RENAME INDEX ib TO ia"]),
    ("ALTER TABLE t RENAME TO u", ["ALTER TABLE u RENAME TO t"]),
    ("ALTER TABLE t RENAME AS u", ["ALTER TABLE u RENAME TO t"]),
    ("ALTER TABLE t RENAME u", ["ALTER TABLE u RENAME TO t"]),
    (
        "ALTER TABLE t ADD COLUMN c INT, RENAME TO u",
        ["ALTER TABLE u RENAME TO t, DROP COLUMN c"],
    ),
    ("RENAME TABLE a TO b", ["RENAME TABLE b TO a"]),
    ("RENAME TABLE a TO b, c TO d", ["RENAME TABLE d TO c, b TO a"]),
    ("RENAME TABLE a TO tmp, b TO a, tmp TO b", ["RENAME TABLE b TO tmp, a TO b, tmp TO a"]),
    ("RENAME TABLE `s`.`a` TO `s`.`b`", ["RENAME TABLE `s`.`b` TO `s`.`a`"]),
    ("RENAME TABLE a WAIT 3 TO b", ["RENAME TABLE b TO a"]),
    ("CREATE INDEX ix ON t (a)", ["DROP INDEX ix ON t"]),
    ("CREATE UNIQUE INDEX ux ON shop.t (a, b)", ["DROP INDEX ux ON shop.t"]),
    ("CREATE FULLTEXT INDEX ft ON t (body)", ["DROP INDEX ft ON t"]),
    ("CREATE INDEX IF NOT EXISTS ix ON t (a)", ["DROP INDEX ix ON t"]),
    ("CREATE VIEW v AS SELECT 1", ["DROP VIEW v"]),
    ("CREATE ALGORITHM=MERGE SQL SECURITY INVOKER VIEW v AS SELECT 1", ["DROP VIEW v"]),
    ("CREATE DEFINER=`root`@`%` VIEW `v` AS SELECT 1", ["DROP VIEW `v`"]),
    ("CREATE VIEW IF NOT EXISTS v AS SELECT 1", ["DROP VIEW v"]),
    ("CREATE PROCEDURE p() SELECT 1", ["DROP PROCEDURE p"]),
    ("CREATE FUNCTION f(x INT) RETURNS INT DETERMINISTIC RETURN x + 1", ["DROP FUNCTION f"]),
    ("CREATE AGGREGATE FUNCTION IF NOT EXISTS f() RETURNS INT RETURN 1", ["DROP FUNCTION f"]),
    (
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
        ["DROP TRIGGER tr"],
    ),
    (
        "CREATE EVENT ev ON SCHEDULE EVERY 1 DAY DO DELETE FROM t WHERE a < 0",
        ["DROP EVENT ev"],
    ),
    ("CREATE SEQUENCE s START WITH 10", ["DROP SEQUENCE s"]),
    ("CREATE PACKAGE BODY pk AS BEGIN END", ["DROP PACKAGE BODY pk"]),
    ("/*!50001 CREATE VIEW v AS SELECT 1 */", ["DROP VIEW v"]),
    # no schema effect: nothing to undo
    ("SET NAMES utf8mb4", ["DO 0"]),
    ("SET foreign_key_checks = 0", ["DO 0"]),
    ("SELECT 1", ["DO 0"]),
    ("DO SLEEP(0)", ["DO 0"]),
    ("START TRANSACTION; COMMIT", ["DO 0"]),
    ("ANALYZE TABLE t", ["DO 0"]),
    ("OPTIMIZE TABLE t", ["DO 0"]),
    ("CREATE TEMPORARY TABLE tmp (a INT); INSERT INTO tmp VALUES (1); DROP TABLE tmp", ["DO 0"]),
    ("-- only a comment\n/* and another */", ["DO 0"]),
]


@pytest.mark.parametrize(("forward", "expected"), EXACT)
def test_exact_inverse(forward, expected):
    gen = undo(forward)
    assert statements(gen) == expected
    assert gen.reasons == []


def test_the_header_names_the_script_and_asks_for_review():
    gen = generate_undo("CREATE TABLE t (id INT);", "V3__t.sql")
    assert gen.sql.splitlines()[0] == "-- generated by dbroll from V3__t.sql: review before use"
    assert gen.sql.splitlines()[0] == header_line("V3__t.sql")
    assert "-- undoes line 1: CREATE TABLE t (id INT)" in gen.sql
    assert gen.sql.endswith(";\n")


def test_statements_are_undone_newest_first():
    gen = undo(
        """
        CREATE TABLE a (id INT PRIMARY KEY);
        CREATE TABLE b (id INT PRIMARY KEY, a_id INT,
          CONSTRAINT fk_a FOREIGN KEY (a_id) REFERENCES a (id));
        ALTER TABLE customers ADD COLUMN phone VARCHAR(20);
        CREATE VIEW vb AS SELECT id FROM b;
        """
    )
    assert statements(gen) == [
        "DROP VIEW vb",
        "ALTER TABLE customers DROP COLUMN phone",
        "DROP TABLE b",
        "DROP TABLE a",
    ]
    assert gen.statements == 4


def test_unnamed_index_is_dropped_by_mariadbs_default_name_and_says_so():
    gen = undo("ALTER TABLE t ADD INDEX (email, id);")
    assert statements(gen) == ["ALTER TABLE t DROP INDEX `email`"]
    assert gen.notes == [
        "line 1: ADD INDEX without a name: MariaDB names it after its first column (`email`, "
        "or `email_2` if that name was taken); the undo drops `email`"
    ]
    assert "-- note: line 1: ADD INDEX without a name" in gen.sql


def test_named_foreign_key_notes_the_implicit_index():
    gen = undo("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id);")
    assert any("drops the index fk that MariaDB adds" in n for n in gen.notes)


def test_if_not_exists_notes_the_assumption_or_knows_better_with_context():
    gen = undo("CREATE TABLE IF NOT EXISTS t (id INT);")
    assert statements(gen) == ["DROP TABLE t"]
    assert "assuming it did not exist before" in gen.notes[0]
    known = undo("CREATE TABLE IF NOT EXISTS t (id INT);", created_before={"t"})
    assert statements(known) == ["DO 0"]
    assert "exists already, nothing to undo" in known.notes[0]
    view = undo("CREATE VIEW IF NOT EXISTS v AS SELECT 1;", created_before={"v"})
    assert statements(view) == ["DO 0"]


def test_delimiter_blocks_and_compound_bodies():
    gen = undo(
        """
        DELIMITER //
        CREATE PROCEDURE p(IN x INT)
        BEGIN
          IF x > 0 THEN
            UPDATE t SET a = x; -- a DML statement inside the body is not undone
          END IF;
        END //
        CREATE FUNCTION `f`() RETURNS INT
        BEGIN
          DECLARE n INT; SELECT COUNT(*) INTO n FROM t; RETURN n;
        END//
        DELIMITER ;
        CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW
        BEGIN
          INSERT INTO audit VALUES (NEW.id);
        END;
        CREATE DEFINER = CURRENT_USER EVENT e ON SCHEDULE EVERY 1 HOUR DO BEGIN DELETE FROM t; END;
        """
    )
    assert statements(gen) == [
        "DROP EVENT e",
        "DROP TRIGGER tr",
        "DROP FUNCTION `f`",
        "DROP PROCEDURE p",
    ]


@pytest.mark.parametrize(
    "off",
    [
        "SET foreign_key_checks = 0;",
        "SET SESSION FOREIGN_KEY_CHECKS=OFF;",
        "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;",
        "SET @@session.foreign_key_checks = 0;",
    ],
)
def test_foreign_key_checks_off_in_the_forward_script_are_off_in_the_undo(off):
    gen = undo(
        f"""
        {off}
        CREATE TABLE child (id INT, p INT, CONSTRAINT fk FOREIGN KEY (p) REFERENCES parent (id));
        CREATE TABLE parent (id INT PRIMARY KEY);
        """
    )
    assert statements(gen) == [
        "SET foreign_key_checks = 0",
        "DROP TABLE parent",
        "DROP TABLE child",
        "SET foreign_key_checks = 1",
    ]


def test_set_role_and_session_variables_need_nothing():
    assert statements(undo("SET ROLE app; SET SESSION sql_mode = ''; SET @x = 1;")) == ["DO 0"]


def test_comments_and_quotes_do_not_confuse_it():
    gen = undo(
        """
        -- DROP TABLE x; in a comment
        /* DROP TABLE y; */
        # ALTER TABLE z DROP COLUMN q;
        CREATE TABLE t (note VARCHAR(20) DEFAULT 'DROP TABLE t; --', `a``b` INT);
        ALTER TABLE t ADD COLUMN `c;d` INT COMMENT "it's; fine";
        """
    )
    assert statements(gen) == ["DROP TABLE t"]  # the column is dropped with its table


def test_whatever_is_done_to_a_table_created_in_the_script_goes_with_it():
    gen = undo(
        """
        CREATE TABLE t (id INT PRIMARY KEY, a INT);
        INSERT INTO t VALUES (1, 1), (2, 2);
        UPDATE t SET a = a + 1 WHERE id = 1;
        DELETE FROM t WHERE id = 2;
        ALTER TABLE t MODIFY a BIGINT NOT NULL, DROP COLUMN a, ADD COLUMN b INT;
        ALTER TABLE t ALTER COLUMN b SET DEFAULT 3, ENGINE = InnoDB, COMMENT 'x';
        CREATE INDEX ib ON t (b);
        DROP INDEX ib ON t;
        CREATE TRIGGER tt BEFORE INSERT ON t FOR EACH ROW SET NEW.b = 1;
        TRUNCATE TABLE t;
        REPLACE INTO t VALUES (3, 3);
        LOAD DATA INFILE '/tmp/x' INTO TABLE t;
        """
    )
    assert statements(gen) == ["DROP TABLE t"]


def test_a_table_created_then_dropped_in_the_script_needs_nothing():
    gen = undo(
        """
        CREATE TABLE work (id INT);
        INSERT INTO work SELECT id FROM customers;
        CREATE VIEW w AS SELECT 1;
        DROP VIEW w;
        DROP TABLE work;
        CREATE TABLE kept (id INT);
        """
    )
    assert statements(gen) == ["DROP TABLE kept"]


def test_a_column_added_then_changed_in_the_script_is_dropped_under_its_last_name():
    gen = undo(
        """
        ALTER TABLE t ADD COLUMN c INT;
        ALTER TABLE t MODIFY c BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE t ALTER COLUMN c SET DEFAULT 1;
        ALTER TABLE t CHANGE c d BIGINT;
        ALTER TABLE t ADD COLUMN e INT, ADD INDEX ie (e);
        ALTER TABLE t DROP INDEX ie, DROP COLUMN e;
        """
    )
    assert statements(gen) == [
        "ALTER TABLE t RENAME COLUMN d TO c",
        "ALTER TABLE t DROP COLUMN c",
    ]


def test_renamed_tables_are_undone_in_order():
    gen = undo(
        """
        CREATE TABLE t_new (id INT);
        RENAME TABLE t TO t_old, t_new TO t;
        ALTER TABLE t_old ADD COLUMN archived INT;
        """
    )
    assert statements(gen) == [
        "ALTER TABLE t_old DROP COLUMN archived",
        "RENAME TABLE t TO t_new, t_old TO t",
        "DROP TABLE t_new",
    ]


def test_alter_rename_in_the_middle_of_specs():
    gen = undo("ALTER TABLE t ADD COLUMN a INT, RENAME TO u, ADD INDEX ia (a);")
    assert statements(gen) == ["ALTER TABLE u DROP INDEX ia, RENAME TO t, DROP COLUMN a"]
    assert gen.known_after == frozenset({"u"})


def test_known_after_follows_creates_drops_and_renames():
    gen = undo(
        """
        CREATE TABLE a (id INT);
        CREATE VIEW v AS SELECT 1;
        RENAME TABLE a TO b;
        """,
        created_before={"old"},
    )
    assert gen.known_after == frozenset({"old", "b", "v"})


# ---------------------------------------------------------------- no exact inverse

BLOCKED = [
    ("DROP TABLE t", "line 1: DROP TABLE t has no exact inverse (the table and its rows are gone)"),
    ("DROP TABLE IF EXISTS a, b", "DROP TABLE b has no exact inverse"),
    ("DROP VIEW v", "line 1: DROP VIEW v has no exact inverse (the view's definition is gone)"),
    ("DROP PROCEDURE IF EXISTS p", "DROP PROCEDURE p has no exact inverse"),
    ("DROP FUNCTION f", "DROP FUNCTION f has no exact inverse"),
    ("DROP TRIGGER tr", "DROP TRIGGER tr has no exact inverse"),
    ("DROP EVENT e", "DROP EVENT e has no exact inverse"),
    ("DROP INDEX ix ON t", "DROP INDEX ix has no exact inverse (the index definition is gone)"),
    ("DROP DATABASE d", "DROP DATABASE has no exact inverse"),
    (
        "ALTER TABLE customers DROP COLUMN phone",
        "line 1: DROP COLUMN phone has no exact inverse (the values of customers.phone are gone)",
    ),
    ("ALTER TABLE t DROP phone", "DROP COLUMN phone has no exact inverse"),
    ("ALTER TABLE t DROP INDEX ix", "DROP INDEX ix has no exact inverse"),
    ("ALTER TABLE t DROP KEY ix", "DROP INDEX ix has no exact inverse"),
    ("ALTER TABLE t DROP PRIMARY KEY", "DROP PRIMARY KEY has no exact inverse"),
    ("ALTER TABLE t DROP FOREIGN KEY fk", "DROP FOREIGN KEY fk has no exact inverse"),
    ("ALTER TABLE t DROP CONSTRAINT ck", "DROP CONSTRAINT ck has no exact inverse"),
    ("ALTER TABLE t DROP CHECK ck", "DROP CONSTRAINT ck has no exact inverse"),
    ("ALTER TABLE t DROP PARTITION p0", "DROP PARTITION has no exact inverse (its rows are gone)"),
    (
        "ALTER TABLE t MODIFY c BIGINT",
        "line 1: MODIFY COLUMN c has no exact inverse (the old definition is not known",
    ),
    ("ALTER TABLE t MODIFY COLUMN c BIGINT NOT NULL", "MODIFY COLUMN c has no exact inverse"),
    ("ALTER TABLE t CHANGE a b INT", "CHANGE COLUMN a has no exact inverse"),
    ("ALTER TABLE t CHANGE COLUMN a a BIGINT", "CHANGE COLUMN a has no exact inverse"),
    (
        "ALTER TABLE t ALTER COLUMN c SET DEFAULT 1",
        "ALTER COLUMN c SET DEFAULT has no exact inverse (the old value is not known)",
    ),
    ("ALTER TABLE t ALTER c DROP DEFAULT", "ALTER COLUMN c DROP DEFAULT has no exact inverse"),
    ("ALTER TABLE t ENGINE = Aria", "table option ENGINE has no exact inverse"),
    ("ALTER TABLE t COMMENT 'x'", "table option COMMENT has no exact inverse"),
    ("ALTER TABLE t AUTO_INCREMENT = 100", "table option AUTO_INCREMENT has no exact inverse"),
    ("ALTER TABLE t DEFAULT CHARSET utf8mb4", "table option DEFAULT CHARSET has no exact inverse"),
    ("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", "CONVERT TO CHARACTER SET has no exact"),
    ("ALTER TABLE t ADD PRIMARY KEY (id)", "ADD PRIMARY KEY has no exact inverse (its columns"),
    ("ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY (id)", "ADD PRIMARY KEY has no exact inverse"),
    ("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES p (id)", "ADD FOREIGN KEY without a constraint"),
    ("ALTER TABLE t ADD CONSTRAINT FOREIGN KEY (a) REFERENCES p (id)", "ADD FOREIGN KEY without"),
    ("ALTER TABLE t ADD CHECK (a > 0)", "ADD CHECK without a constraint name"),
    ("ALTER TABLE t ADD CONSTRAINT CHECK (a > 0)", "ADD CHECK without a constraint name"),
    ("ALTER TABLE t ADD INDEX ((a + b))", "ADD INDEX without a name has no exact inverse"),
    ("ALTER TABLE t ADD COLUMN p INT REFERENCES parent (id)", "the inline foreign key gets"),
    ("ALTER TABLE t ADD PARTITION (PARTITION p9 VALUES LESS THAN (9))", "ADD PARTITION has no"),
    ("ALTER TABLE t PARTITION BY HASH (id) PARTITIONS 4", "PARTITION BY has no exact inverse"),
    ("ALTER TABLE t ALTER INDEX ix IGNORED", "ALTER INDEX ix has no exact inverse"),
    ("ALTER TABLE t REMOVE PARTITIONING", "REMOVE PARTITIONING has no exact inverse"),
    ("ALTER TABLE t ADD SYSTEM VERSIONING", "is not understood"),
    ("ALTER TABLE t DISCARD TABLESPACE", "ALTER TABLE ... DISCARD TABLESPACE is not understood"),
    (
        "CREATE OR REPLACE VIEW v AS SELECT 1",
        "line 1: CREATE OR REPLACE VIEW has no exact inverse (the old definition is unknown",
    ),
    ("CREATE OR REPLACE TABLE t (id INT)", "CREATE OR REPLACE TABLE has no exact inverse"),
    ("CREATE OR REPLACE PROCEDURE p() SELECT 1", "CREATE OR REPLACE PROCEDURE has no exact"),
    ("CREATE OR REPLACE INDEX ix ON t (a)", "CREATE OR REPLACE INDEX has no exact inverse"),
    ("CREATE DATABASE d", "CREATE DATABASE has no exact inverse (dbroll does not generate"),
    ("CREATE USER u", "CREATE USER has no exact inverse"),
    (
        "INSERT INTO t VALUES (1)",
        "line 1: INSERT into t has no exact inverse (the rows it wrote cannot be told apart",
    ),
    ("INSERT IGNORE INTO t SELECT * FROM u", "INSERT into t has no exact inverse"),
    ("REPLACE INTO t VALUES (1)", "REPLACE into t has no exact inverse"),
    ("UPDATE t SET a = 1", "line 1: UPDATE t has no exact inverse (the old values are gone)"),
    ("UPDATE t JOIN u ON t.id = u.id SET t.a = u.a", "UPDATE t has no exact inverse"),
    ("DELETE FROM t WHERE id = 1", "line 1: DELETE has no exact inverse (the deleted rows"),
    ("LOAD DATA INFILE 'x' INTO TABLE t", "LOAD DATA into t has no exact inverse"),
    ("WITH x AS (SELECT 1) UPDATE t SET a = 1", "UPDATE t has no exact inverse"),
    ("SET STATEMENT max_statement_time=60 FOR DELETE FROM t", "DELETE has no exact inverse"),
    ("TRUNCATE TABLE t", "line 1: TRUNCATE t has no exact inverse (its rows are gone)"),
    ("TRUNCATE t", "TRUNCATE t has no exact inverse"),
    ("CALL fix_data()", "CALL has no exact inverse (what the procedure changes is not visible)"),
    ("EXECUTE IMMEDIATE 'DROP TABLE t'", "EXECUTE has no exact inverse (dynamic SQL"),
    ("GRANT SELECT ON t TO u", "GRANT has no exact inverse"),
    ("USE other", "USE has no exact inverse"),
    ("SET GLOBAL max_connections = 10", "SET GLOBAL has no exact inverse"),
    ("SET @@global.x = 1", "SET GLOBAL has no exact inverse"),
    ("ALTER VIEW v AS SELECT 2", "ALTER VIEW has no exact inverse (the old definition"),
    ("ALTER EVENT e DISABLE", "ALTER EVENT has no exact inverse"),
    ("BEGIN NOT ATOMIC SELECT 1; END", "BEGIN NOT ATOMIC block has no exact inverse"),
    ("KILL 12", "line 1: KILL statement is not understood: no inverse can be generated"),
    ("FROBNICATE t", "FROBNICATE statement is not understood"),
    ("RENAME USER a TO b", "RENAME USER has no exact inverse"),
]


@pytest.mark.parametrize(("forward", "reason"), BLOCKED)
def test_no_exact_inverse(forward, reason):
    gen = undo(forward)
    assert not gen.exact
    assert gen.sql is None
    assert any(reason in r for r in gen.reasons), gen.reasons


def test_each_statement_without_an_inverse_is_named_by_its_line():
    gen = undo(
        """
        CREATE TABLE a (id INT);
        ALTER TABLE customers DROP COLUMN phone;

        UPDATE customers SET name = TRIM(name);
        ALTER TABLE customers ADD COLUMN x INT, MODIFY name VARCHAR(10);
        """
    )
    assert not gen.exact
    assert [r.split(":")[0] for r in gen.reasons] == ["line 2", "line 4", "line 5"]
    assert "MODIFY COLUMN name" in gen.reasons[2]


def test_an_unsplittable_script_is_not_exact():
    gen = undo("CREATE TABLE t (a VARCHAR(3) DEFAULT 'x);\n")
    assert not gen.exact
    assert gen.reasons[0].startswith("line 1: the script cannot be split into statements")


def test_drop_of_a_renamed_new_table_is_not_handled():
    gen = undo("CREATE TABLE a (id INT); RENAME TABLE a TO b; DROP TABLE b;")
    assert not gen.exact
    assert "created and then renamed by this same script" in gen.reasons[0]


def test_a_column_renamed_after_being_added_then_dropped_is_refused_not_guessed():
    gen = undo("ALTER TABLE t ADD c INT; ALTER TABLE t RENAME COLUMN c TO d; ALTER TABLE t DROP d;")
    assert not gen.exact
    assert "DROP COLUMN d" in gen.reasons[0]


def test_to_dict():
    d = undo("CREATE TABLE t (id INT);").to_dict()
    assert d["exact"] is True and d["reasons"] == [] and d["sql"].startswith("-- generated")
    assert d["path"] == "V9__x.sql" and d["statements"] == 1


# ---------------------------------------------------------------- folders


def _script(path: str, text: str) -> Script:
    return Script(path, hashlib.sha256(text.encode()).hexdigest(), text)


def _mset(fmt: str, *migs: tuple[str, str, str | None]) -> MigrationSet:
    out = []
    for v, up, down in migs:
        name = {
            "flyway": f"V{v}__m{v}.sql",
            "golang-migrate": f"{v}_m{v}.up.sql",
            "dbmate": f"{v}_m{v}.sql",
        }[fmt]
        undo_name = {"flyway": f"U{v}__m{v}.sql", "golang-migrate": f"{v}_m{v}.down.sql"}.get(
            fmt, name
        )
        out.append(
            Migration(
                Version.parse(v),
                f"m{v}",
                _script(name, up),
                _script(undo_name, down) if down else None,
            )
        )
    return MigrationSet("m", fmt, out)


def test_generate_for_set_uses_what_earlier_migrations_created():
    mset = _mset(
        "flyway",
        ("1", "CREATE TABLE t (id INT);", "DROP TABLE t;"),
        ("2", "CREATE TABLE IF NOT EXISTS t (id INT);\nCREATE TABLE u (id INT);", None),
        ("3", "ALTER TABLE u ADD COLUMN c INT;", "ALTER TABLE u DROP COLUMN c;"),
        ("4", "ALTER TABLE u DROP COLUMN c;", None),
    )
    assert [m.version for m in migrations_missing_undo(mset)] == [
        Version.parse("2"),
        Version.parse("4"),
    ]
    results = generate_for_set(mset)
    assert [str(m.version) for m, _ in results] == ["2", "4"]
    two, four = results[0][1], results[1][1]
    assert statements(two) == ["DROP TABLE u"]  # t existed: its IF NOT EXISTS is a no-op
    assert not four.exact
    named = generate_for_set(mset, [Version.parse("3")])
    assert [str(m.version) for m, _ in named] == ["3"]
    with pytest.raises(KeyError):
        generate_for_set(mset, [Version.parse("9")])


def test_undo_file_names_per_format():
    fly = _mset("flyway", ("1.2", "CREATE TABLE t (id INT);", None)).migrations[0]
    assert undo_file_name("flyway", fly) == "U1.2__m1.2.sql"
    go = _mset("golang-migrate", ("0003", "CREATE TABLE t (id INT);", None)).migrations[0]
    assert undo_file_name("golang-migrate", go) == "0003_m0003.down.sql"
    db = _mset("dbmate", ("20240101000000", "CREATE TABLE t (id INT);", None)).migrations[0]
    assert undo_file_name("dbmate", db) is None


def test_generated_undo_file_for_a_bundle():
    gen = generate_undo("CREATE TABLE t (id INT);", "V3__add_t.sql")
    f = generated_undo_file(Version.parse("3"), "add t", "V3__add_t.sql", gen)
    assert f.path == f"{GENERATED_UNDO_DIR}3__add_t.sql"
    assert f.source == "V3__add_t.sql (generated undo)"
    assert f.data == gen.sql.encode()
    assert f.sha256 == hashlib.sha256(f.data).hexdigest()
    with pytest.raises(ValueError):
        generated_undo_file(
            Version.parse("4"), "x", "V4__x.sql", generate_undo("DROP TABLE t", "x")
        )


def test_generate_for_manifest_reads_only_the_wanted_scripts():
    from pipeline.manifest import build_manifest
    from pipeline.undo_gen import generate_for_manifest, generated_undo_files

    mset = _mset(
        "flyway",
        ("1", "CREATE TABLE t (id INT);", "DROP TABLE t;"),
        ("2", "CREATE TABLE IF NOT EXISTS t (id INT);\nCREATE TABLE u (id INT);", None),
        ("3", "ALTER TABLE u DROP COLUMN c;", None),
    )
    manifest = build_manifest(mset)
    read: list[str] = []

    class Files(dict):
        def get(self, key, default=None):
            read.append(key)
            return super().get(key, default)

    lazy = type(manifest)(
        manifest.app_version,
        manifest.format,
        manifest.migrations,
        manifest.repeatables,
        Files(manifest.files),
    )
    two = Version.parse("2")
    gens = generate_for_manifest(lazy, [two])
    assert read == ["sql/up/2__m2.sql"]
    assert statements(gens[two]) == ["DROP TABLE u"]  # t came from version 1's created_tables
    assert gens[two].sql.startswith("-- generated by dbroll from V2__m2.sql: review before use")

    three = Version.parse("3")
    files = generated_undo_files(manifest, [two, three])
    assert files[two].path == "sql/undo-generated/2__m2.sql"
    assert files[two].source == "V2__m2.sql (generated undo)"
    assert files[two] == generated_undo_files(manifest, [two])[two]  # deterministic
    assert isinstance(files[three], GeneratedUndo) and not files[three].exact
    assert generate_for_manifest(manifest, [Version.parse("9")]) == {}


WORDS = [
    "CREATE",
    "ALTER",
    "DROP",
    "RENAME",
    "TABLE",
    "INDEX",
    "VIEW",
    "TRIGGER",
    "ADD",
    "COLUMN",
    "CONSTRAINT",
    "FOREIGN",
    "KEY",
    "UNIQUE",
    "PRIMARY",
    "CHECK",
    "IF",
    "NOT",
    "EXISTS",
    "TO",
    "AS",
    "ON",
    "t",
    "u",
    "`q`",
    "db.t",
    "(",
    ")",
    ",",
    ";",
    "=",
    "1",
    "'x'",
    "INSERT",
    "INTO",
    "UPDATE",
    "SET",
    "DELETE",
    "FROM",
    "MODIFY",
    "CHANGE",
    "REFERENCES",
    "OR",
    "REPLACE",
    "TEMPORARY",
    "BEGIN",
    "END",
    "WAIT",
    "DELIMITER",
    "//",
    "SELECT",
    "WITH",
    "PARTITION",
    "FULLTEXT",
    "USING",
    "BTREE",
    "FIRST",
    "AFTER",
    "DEFAULT",
    "NULL",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=30))
def test_never_raises_and_exact_means_a_script(words):
    gen = generate_undo(" ".join(words), "V1__x.sql")
    assert gen.exact == (gen.sql is not None)
    assert gen.exact == (not gen.reasons)
