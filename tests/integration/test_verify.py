"""`dbroll verify`: every migration applied, undone and re-applied on a real scratch MariaDB."""

from __future__ import annotations

import pytest

from pipeline.db.connect import connect
from pipeline.db.snapshot import list_objects, rehearse, take_snapshot
from pipeline.migrations.formats import load_migration_set
from tests.conftest import dbroll, query, write_files

GOOD = {
    "V1__customers.sql": """
        CREATE TABLE customers (
          id INT AUTO_INCREMENT PRIMARY KEY,
          email VARCHAR(120) NOT NULL,
          active TINYINT NOT NULL DEFAULT 1
        );
        """,
    "U1__customers.sql": "DROP TABLE customers;\n",
    "V2__phone.sql": "ALTER TABLE customers ADD COLUMN phone VARCHAR(20) NULL AFTER email;\n",
    "U2__phone.sql": "ALTER TABLE customers DROP COLUMN phone;\n",
    "V3__email_index.sql": "CREATE INDEX idx_email ON customers (email);\n",
    "U3__email_index.sql": "DROP INDEX idx_email ON customers;\n",
    "V4__active_view.sql": """
        CREATE VIEW active_customers AS
          SELECT id, email FROM customers WHERE active = 1;
        """,
    "U4__active_view.sql": "DROP VIEW active_customers;\n",
    "V5__email_trigger.sql": """
        CREATE TRIGGER customers_lower_email BEFORE INSERT ON customers
        FOR EACH ROW SET NEW.email = LOWER(NEW.email);
        """,
    "U5__email_trigger.sql": "DROP TRIGGER customers_lower_email;\n",
}


def folder(tmp_path, files, name="migrations"):
    return str(write_files(tmp_path / name, files))


def objects(spec) -> list[str]:
    conn = connect(spec)
    try:
        return list_objects(conn)
    finally:
        conn.close()


def test_verify_passes_a_good_folder_and_leaves_the_database_empty(db, tmp_path):
    r = dbroll("verify", "--migrations", folder(tmp_path, GOOD), "--dsn", db.to_dsn())
    assert r.exit_code == 0, r.stdout + r.stderr
    header = r.stdout.splitlines()[0].split()
    assert header[:3] == ["version", "description", "forward"]
    for v in ("1", "2", "3", "4", "5"):
        assert f"verify {v} (" in r.stderr  # progress, one line per migration
    rows = [line.split() for line in r.stdout.splitlines()[2:7]]
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]
    assert all(row[-4:-1] == ["ok", "yes", "ok"] for row in rows), r.stdout
    assert "verified 5 migration(s): 5 undo(s) restore the schema" in r.stdout
    assert "the database is empty again" in r.stdout
    assert objects(db) == []


def test_verify_fails_naming_the_version_whose_undo_forgets_an_index(db, tmp_path):
    files = {**GOOD, "U3__email_index.sql": "-- forgot the index\nDO 0;\n"}
    r = dbroll("verify", "--migrations", folder(tmp_path, files), "--dsn", db.to_dsn())
    assert r.exit_code == 1
    assert "version 3 (email index): its undo does not restore the schema" in r.stderr
    assert "\n  + index idx_email on customers (email)\n" in r.stdout
    assert (
        "version 3 (email index): after its undo the schema differs from before it was applied:"
        in r.stdout
    )
    table = {line.split()[0]: line for line in r.stdout.splitlines()[2:7]}
    assert " NO " in table["3"]
    assert "not run" in table["4"] and "not run" in table["5"]
    assert objects(db) == []


def test_verify_refuses_a_database_that_has_tables(db, tmp_path):
    query(db, "CREATE TABLE precious (id INT PRIMARY KEY)")
    query(db, "INSERT INTO precious VALUES (1)")
    r = dbroll("verify", "--migrations", folder(tmp_path, GOOD), "--dsn", db.to_dsn())
    assert r.exit_code == 3
    assert "is not empty (table precious)" in r.stderr
    assert "--i-know-this-is-scratch" in r.stderr
    assert objects(db) == ["table precious"]  # nothing created, not even dbroll's history
    assert query(db, "SELECT id FROM precious") == [(1,)]


def test_verify_on_a_scratch_database_with_tables_puts_it_back(db, tmp_path):
    query(db, "CREATE TABLE leftover (id INT PRIMARY KEY)")
    before = take_snapshot(db, exclude=())
    r = dbroll(
        "verify",
        "--migrations",
        folder(tmp_path, GOOD),
        "--dsn",
        db.to_dsn(),
        "--i-know-this-is-scratch",
    )
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "the schema is as before" in r.stdout
    assert take_snapshot(db, exclude=()) == before  # no dbroll tables left behind either


def test_verify_on_a_migrated_scratch_database_rehearses_the_pending_ones(db, tmp_path):
    mdir = folder(tmp_path, GOOD)
    assert (
        dbroll("migrate", "--migrations", mdir, "--dsn", db.to_dsn(), "--target", "2").exit_code
        == 0
    )
    before = take_snapshot(db)
    r = dbroll("verify", "--migrations", mdir, "--dsn", db.to_dsn(), "--i-know-this-is-scratch")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()[2:5]] == ["3", "4", "5"]
    assert "the schema is as before (version 2)" in r.stdout
    assert take_snapshot(db) == before
    status = dbroll("status", "--migrations", mdir, "--dsn", db.to_dsn(), "--json")
    assert status.json["current_version"] == "2"


def test_a_migration_without_undo_fails_unless_allowed(db, tmp_path):
    files = {k: v for k, v in GOOD.items() if k != "U2__phone.sql"}
    mdir = folder(tmp_path, files)
    r = dbroll("verify", "--migrations", mdir, "--dsn", db.to_dsn())
    assert r.exit_code == 1
    assert "no undo script for version(s) 2" in r.stderr
    row2 = next(line for line in r.stdout.splitlines() if line.startswith("2 "))
    assert "no undo" in row2
    assert objects(db) == []

    r = dbroll("verify", "--migrations", mdir, "--dsn", db.to_dsn(), "--allow-missing-undo")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "4 undo(s) restore the schema; 1 without undo" in r.stdout
    assert objects(db) == []


def test_a_failing_script_is_named_and_cleaned_up(db, tmp_path):
    files = {**GOOD, "U4__active_view.sql": "DROP VIEW no_such_view;\n"}
    r = dbroll("verify", "--migrations", folder(tmp_path, files), "--dsn", db.to_dsn())
    assert r.exit_code == 1
    assert "version 4 (active view): the undo script failed" in r.stderr
    assert "no_such_view" in r.stderr
    assert objects(db) == []


def test_verify_json(db, tmp_path):
    files = {**GOOD, "U2__phone.sql": "ALTER TABLE customers MODIFY phone VARCHAR(30) NULL;\n"}
    r = dbroll("verify", "--migrations", folder(tmp_path, files), "--dsn", db.to_dsn(), "--json")
    assert r.exit_code == 1
    data = r.json
    assert data["ok"] is False
    assert data["failed_version"] == "2"
    assert [m["undo"] for m in data["migrations"]] == [
        "restores",
        "differs",
        "not run",
        "not run",
        "not run",
    ]
    texts = [d["text"] for d in data["migrations"][1]["differences"]]
    assert texts == ["table customers: + column phone varchar(30) NULL DEFAULT NULL"]
    assert objects(db) == []


def test_rehearse_library_api(db, tmp_path):
    mset = load_migration_set(folder(tmp_path, GOOD))
    seen = []
    result = rehearse(db, mset, progress=lambda c: seen.append((c.version, c.ok)))
    assert result.ok
    assert seen == [(v, True) for v in ("1", "2", "3", "4", "5")]
    assert [c.reapply for c in result.checks] == ["ok"] * 5
    assert result.to_dict()["migrations"][0]["version"] == "1"
    assert objects(db) == []


def test_an_empty_folder_has_nothing_to_verify(db, tmp_path):
    (tmp_path / "empty").mkdir()
    r = dbroll("verify", "--migrations", str(tmp_path / "empty"), "--dsn", db.to_dsn())
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "nothing to verify" in r.stdout
    assert objects(db) == []


@pytest.mark.parametrize("args", [[], ["--dsn", "mysql://root@127.0.0.1/x", "--docker"]])
def test_exactly_one_of_dsn_and_docker(tmp_path, args):
    r = dbroll("verify", "--migrations", folder(tmp_path, GOOD), *args)
    assert r.exit_code == 2
    assert "exactly one of --dsn" in r.stderr


def test_verify_does_not_read_the_dsn_from_the_environment(db, tmp_path):
    r = dbroll("verify", "--migrations", folder(tmp_path, GOOD), env={"DBROLL_DSN": db.to_dsn()})
    assert r.exit_code == 2


def test_docker_without_an_engine_is_a_clear_error(tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    r = dbroll("verify", "--migrations", folder(tmp_path, GOOD), "--docker", env=env)
    assert r.exit_code == 2
    assert "--docker: no Docker engine answers" in r.stderr
    assert "--dsn" in r.stderr  # says what to do instead


OTHER_FORMATS = {
    "dbmate": {
        "20240101000000_customers.sql": """
            -- migrate:up
            CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(120) NOT NULL);
            CREATE INDEX idx_email ON customers (email);
            -- migrate:down
            DROP TABLE customers;
            """,
        "20240102000000_touch.sql": """
            -- migrate:up
            CREATE TRIGGER customers_bi BEFORE INSERT ON customers
            FOR EACH ROW BEGIN
              SET NEW.email = LOWER(NEW.email);
            END;
            -- migrate:down
            DROP TRIGGER customers_bi;
            """,
    },
    "golang-migrate": {
        "1_customers.up.sql": "CREATE TABLE customers (id INT PRIMARY KEY);\n",
        "1_customers.down.sql": "DROP TABLE customers;\n",
        "2_name.up.sql": "ALTER TABLE customers ADD name VARCHAR(50) NOT NULL DEFAULT '';\n",
        "2_name.down.sql": "ALTER TABLE customers DROP COLUMN name;\n",
    },
}


@pytest.mark.parametrize("fmt", sorted(OTHER_FORMATS))
def test_verify_reads_every_migration_format(db, tmp_path, fmt):
    r = dbroll("verify", "--migrations", folder(tmp_path, OTHER_FORMATS[fmt]), "--dsn", db.to_dsn())
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "verified 2 migration(s): 2 undo(s) restore the schema" in r.stdout
    assert objects(db) == []
