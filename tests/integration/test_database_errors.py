"""A server error that no adapter turns into something more specific still reaches the user
as an error that names the database and says what to check: never a traceback, never the
password."""

from __future__ import annotations

from tests.conftest import db_user, query, run_cli, write_files

PASSWORD = "n0t-in-any-0utput"


def test_a_user_who_may_only_read_gets_a_clear_error_and_nothing_changes(mariadb, db, tmp_path):
    """The app's own read-only (or DML-only) user is a common wrong DSN: dbroll cannot even
    create its history table with it."""
    mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);\n"})
    with db_user(mariadb, db, PASSWORD, "SELECT") as reader:
        r = run_cli("migrate", "--dsn", reader.to_dsn(), "--migrations", str(mdir))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert f"{reader.user}@{db.host}:{db.port}/{db.database} refused a query" in r.stderr
    assert "CREATE command denied" in r.stderr and "GRANT ALL ON" in r.stderr
    assert PASSWORD not in r.stderr + r.stdout
    assert query(db, "SHOW TABLES") == []
