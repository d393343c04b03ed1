"""`dbroll migrate --resume-interrupted`: a container that migrates at start finishes the
migration a stopped task left half done, instead of exiting 3 like every task after it.

The stops are real: a `dbroll` process is sent SIGTERM (how ECS stops a task) while the
server runs its statement, on a real MariaDB.
"""

from __future__ import annotations

import signal

import pytest

from pipeline.db.runner import AUTO_RESUME_STOPS
from tests.conftest import (
    SLOW,
    args,
    dbroll,
    history_rows,
    slow_create,
    slow_files,
    start_and_signal,
    user_tables,
    write_files,
)

RESUMING = "resuming a migration a stopped runner left running"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_migration_stopped_by_sigterm_is_finished_by_the_next_start(db, tmp_path, how):
    mdir = write_files(tmp_path / "m", slow_files())
    start_and_signal(db, mdir, signal.SIGTERM)
    stopped = history_rows(db)
    k = int(stopped[-1][0])
    assert stopped[-1] == (str(k), "migrate", "running", 0, 1), stopped

    # without it, the next start is blocked, and is told about it
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 3, r.stderr
    assert "--resume-interrupted" in r.stderr, r.stderr

    r = dbroll("migrate", *args(db, mdir, "--resume-interrupted", "--dry-run", "--json"))
    assert r.exit_code == 0, r.stderr
    assert r.json["resumed"]["version"] == str(k), r.json
    assert r.json["resumed"]["at_statement"] == 1, r.json
    assert [s["version"] for s in r.json["steps"]] == [str(v) for v in range(k, SLOW + 1)]
    assert history_rows(db) == stopped  # a dry run changes nothing

    more, env = (
        (("--resume-interrupted",), None)
        if how == "flag"
        else ((), {"DBROLL_RESUME_INTERRUPTED": "1"})
    )
    r = dbroll("migrate", *args(db, mdir, *more), env=env)
    assert r.exit_code == 0, r.stderr
    assert RESUMING in r.stderr, r.stderr
    assert f"resumed version {k} at statement 1; applied {SLOW - k + 1} migration(s)" in r.stdout
    assert user_tables(db) == {f"slow_{v}" for v in range(1, SLOW + 1)}
    # the stopped run's row stays as it was (append-only); the resume wrote its own
    assert history_rows(db) == [
        *stopped,
        *[(str(v), "migrate", "success", 1, 1) for v in range(k, SLOW + 1)],
    ]


def test_a_migration_that_failed_on_an_error_is_not_resumed(db, tmp_path):
    # its statement would only fail again: that needs a fix, not a retry at every start
    mdir = write_files(
        tmp_path / "m",
        {
            "V1__one.sql": "CREATE TABLE one (id INT PRIMARY KEY);",
            "V2__two.sql": "CREATE TABLE two (id INT PRIMARY KEY);\n"
            "ALTER TABLE nowhere ADD COLUMN c INT;",
        },
    )
    r = dbroll("migrate", *args(db, mdir))
    assert r.exit_code == 1, r.stderr
    before = history_rows(db)
    r = dbroll("migrate", *args(db, mdir, "--resume-interrupted"))
    assert r.exit_code == 3, r.stderr
    assert "version 2 (migrate) is failed at statement 2" in r.stderr, r.stderr
    assert "--resume-interrupted" not in r.stderr, r.stderr
    assert history_rows(db) == before
    assert user_tables(db) == {"one", "two"}


@pytest.mark.timeout(120)
def test_an_undo_stopped_halfway_is_not_finished_or_reapplied_by_migrate(db, tmp_path):
    # migrate would apply the version again right after: an undo is for `dbroll resume`
    files = {f"V{v}__t{v}.sql": f"CREATE TABLE t{v} (id INT PRIMARY KEY);" for v in (1, 2, 3)}
    files.update({f"U{v}__t{v}.sql": f"DROP TABLE t{v};" for v in (1, 3)})
    files["U2__t2.sql"] = (
        slow_create("undo_copy", 2_000_000) + "DROP TABLE undo_copy;\nDROP TABLE t2;"
    )
    mdir = write_files(tmp_path / "m", files)
    assert dbroll("migrate", *args(db, mdir)).exit_code == 0
    start_and_signal(
        db, mdir, signal.SIGTERM, "CREATE TABLE undo_copy %", ("undo", "--target", "0")
    )
    before = history_rows(db)
    assert before[-1] == ("2", "undo", "running", 0, 3), before
    r = dbroll("migrate", *args(db, mdir, "--resume-interrupted"))
    assert r.exit_code == 3, r.stderr
    assert "version 2 (undo) is running at statement 1" in r.stderr, r.stderr
    assert history_rows(db) == before
    assert user_tables(db) == {"t1", "t2"}
    # resume finishes the undo of 2, and says where the database is, not "run migrate"
    r = dbroll("resume", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert "resumed version 2 (undo); now at 1; if the undo was to go further down" in r.stdout
    assert "dbroll migrate" not in r.stdout
    assert user_tables(db) == {"t1"}


@pytest.mark.timeout(180)
def test_a_migration_stopped_again_and_again_at_one_statement_is_left_to_an_operator(db, tmp_path):
    # a statement that outlives the time a container gets to start would be started again
    # at every start, and stopped again: after AUTO_RESUME_STOPS stops it is left alone
    mdir = write_files(
        tmp_path / "m",
        {"V1__big.sql": slow_create("big", 2_000_000)},
    )
    start_and_signal(db, mdir, signal.SIGTERM, "CREATE TABLE big %")
    for _ in range(AUTO_RESUME_STOPS - 1):
        err = start_and_signal(
            db, mdir, signal.SIGTERM, "CREATE TABLE big %", ("migrate", "--resume-interrupted")
        )
        assert RESUMING in err, err
    assert history_rows(db) == [("1", "migrate", "running", 0, 1)] * AUTO_RESUME_STOPS
    r = dbroll("migrate", *args(db, mdir, "--resume-interrupted"))
    assert r.exit_code == 3, r.stderr
    assert f"stopped {AUTO_RESUME_STOPS} times in a row at statement 1" in r.stderr, r.stderr
    assert "dbroll resume" in r.stderr, r.stderr
    assert user_tables(db) == set()
    # the help states the same limit
    help_text = " ".join(dbroll("migrate", "--help").stdout.split())
    assert f"{AUTO_RESUME_STOPS} times in a row" in help_text
    # an operator's resume is not limited
    r = dbroll("resume", *args(db, mdir))
    assert r.exit_code == 0, r.stderr
    assert user_tables(db) == {"big"}


@pytest.mark.timeout(120)
def test_an_older_pending_version_waits_for_out_of_order_as_after_a_resume(db, tmp_path):
    # `dbroll resume` then `dbroll migrate` would refuse a pending version older than the
    # resumed one without --out-of-order; resuming on its own does not skip that question
    mdir = write_files(tmp_path / "m", slow_files())
    start_and_signal(db, mdir, signal.SIGTERM)
    stopped = history_rows(db)
    k = int(stopped[-1][0])
    write_files(mdir, {"V1.5__late.sql": "CREATE TABLE late (id INT PRIMARY KEY);"})
    r = dbroll("migrate", *args(db, mdir, "--resume-interrupted"))
    assert r.exit_code == 3, r.stderr
    assert f"version 1.5 (V1.5__late.sql) is pending but older than version {k}" in r.stderr
    assert "--out-of-order" in r.stderr, r.stderr
    assert history_rows(db) == stopped
    r = dbroll("migrate", *args(db, mdir, "--resume-interrupted", "--out-of-order"))
    assert r.exit_code == 0, r.stderr
    assert user_tables(db) == {"late", *(f"slow_{v}" for v in range(1, SLOW + 1))}
    assert [row[0] for row in history_rows(db)[len(stopped) :]] == [
        str(k),
        "1.5",
        *(str(v) for v in range(k + 1, SLOW + 1)),
    ]
