"""Several `dbroll migrate` processes on one database, and a runner lock held elsewhere.

* 8 real processes started at once on a fresh database (`--lock-timeout 60`): each exits 0
  (it applied, or found nothing to do) or 4 (busy); every version is applied by exactly
  one of them; the history has one successful `migrate` row per version and nothing
  failed or running; the schema equals a clean run's.
* `GET_LOCK('dbroll:<db>', 0)` held by another connection: `migrate --lock-timeout 1`
  exits 4, names the holder's connection id, and changes nothing.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pymysql
import pytest

from pipeline.db.connect import connect
from tests.conftest import db_user, dbroll, query, run_cli, schema_objects, wait_until_running
from tests.integration.test_crash_resume import (
    MIGRATIONS,
    VERSIONS,
    check_clean_history,
    effects,
    history_rows,
    start_migrate,
    write_migrations,
)

RUNNERS = 8


@pytest.fixture(scope="module")
def clean_schema(mariadb, tmp_path_factory) -> dict:
    """The schema a single, undisturbed run produces."""
    migrations = write_migrations(tmp_path_factory.mktemp("clean") / "migrations")
    spec = mariadb.create_database()
    try:
        proc = run_cli("migrate", "--dsn", spec.to_dsn(), "--migrations", str(migrations))
        assert proc.returncode == 0, proc.stderr
        return schema_objects(spec)
    finally:
        mariadb.drop_database(spec)


@pytest.mark.timeout(240)
def test_eight_runners_started_at_once(db, tmp_path, clean_schema):
    migrations = write_migrations(tmp_path / "migrations")
    procs = [
        start_migrate(db.to_dsn(), migrations, "--lock-timeout", "60", "--json")
        for _ in range(RUNNERS)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=200)
        outputs.append((p.returncode, out.decode(), err.decode()))

    codes = [c for c, _, _ in outputs]
    for code, out, err in outputs:
        assert code in (0, 4), f"a runner exited {code}\nstdout: {out}\nstderr: {err}"
    assert 0 in codes, codes

    # who applied what, from the runners' own reports: every version exactly once
    applied_by = {v: 0 for v in VERSIONS}
    for code, out, _err in outputs:
        if code != 0:
            continue
        for step in json.loads(out)["steps"]:
            assert step["kind"] == "migrate", step
            assert step["status"] == "applied", step
            applied_by[step["version"]] += 1
    assert applied_by == {v: 1 for v in VERSIONS}, applied_by

    rows = history_rows(db)
    assert [r for r in rows if r["status"] in ("failed", "running")] == []
    assert {r["kind"] for r in rows} == {"migrate"}, rows
    assert len(rows) == len(VERSIONS), [(r["id"], r["version"], r["status"]) for r in rows]
    check_clean_history(db, migrations)
    assert schema_objects(db) == clean_schema
    assert all(all(e) for e in effects(db).values())
    # nobody holds the runner lock any more
    assert (
        run_cli(
            "migrate", "--dsn", db.to_dsn(), "--migrations", str(migrations), "--lock-timeout", "0"
        ).returncode
        == 0
    )


def _tables(spec) -> set[str]:
    conn = connect(spec)
    try:
        cur = conn.cursor()
        cur.execute("SHOW TABLES")
        return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("before", ["fresh", "two_applied"])
def test_lock_held_by_another_connection(db, tmp_path, before):
    migrations = write_migrations(tmp_path / "migrations")
    dsn = db.to_dsn()
    if before == "two_applied":
        proc = run_cli("migrate", "--dsn", dsn, "--migrations", str(migrations), "--target", "2")
        assert proc.returncode == 0, proc.stderr
    tables_before = _tables(db)
    history_before = history_rows(db)
    schema_before = schema_objects(db)

    holder = connect(db)
    try:
        cur = holder.cursor()
        cur.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()", (f"dbroll:{db.database}",))
        got, holder_id = cur.fetchone()
        assert got == 1

        t0 = time.monotonic()
        proc = run_cli(
            "migrate", "--dsn", dsn, "--migrations", str(migrations), "--lock-timeout", "1"
        )
        waited = time.monotonic() - t0
        assert proc.returncode == 4, (proc.returncode, proc.stdout, proc.stderr)
        assert re.search(rf"\bconnection {holder_id}\b", proc.stderr), proc.stderr
        assert "busy" in proc.stderr, proc.stderr
        # what the holder does: nothing (a runner whose host vanished looks like this)
        assert re.search(r"its session idle for \d+ s; no work session", proc.stderr)
        print(f"migrate gave up after {waited:.2f}s")

        # untouched: no history row, no table beyond dbroll's own, same schema
        assert history_rows(db) == history_before
        assert _tables(db) - tables_before <= {"dbroll_history", "dbroll_lock"}
        assert schema_objects(db) == schema_before
        # the holder still has its lock (dbroll did not take or break it)
        cur.execute("SELECT IS_USED_LOCK(%s)", (f"dbroll:{db.database}",))
        assert cur.fetchone()[0] == holder_id
    finally:
        holder.close()

    # once the holder is gone, the same command goes through
    proc = run_cli("migrate", "--dsn", dsn, "--migrations", str(migrations), "--lock-timeout", "10")
    assert proc.returncode == 0, proc.stderr
    check_clean_history(db, migrations, MIGRATIONS)


def test_status_tells_a_migration_at_work_from_a_stopped_one(db, tmp_path):
    """While a runner works, its migration's row says `running`: `status` names who runs it
    (RUNNING, no repair advice), not BLOCKED as for a runner that stopped."""
    from tests.conftest import args, write_files

    mdir = write_files(
        tmp_path / "m",
        {
            "V1__a.sql": "CREATE TABLE a (id INT);",
            "V2__slow.sql": "CREATE TABLE s1 (id INT);\nDO SLEEP(2);\nCREATE TABLE s2 (id INT);",
        },
    )
    proc = start_migrate(db.to_dsn(), mdir)
    try:
        wait_until_running(db, proc, "DO SLEEP%")
        live = dbroll("status", *args(db, mdir))
        as_json = dbroll("status", "--json", *args(db, mdir)).json
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert live.exit_code == 0, live.stderr
    assert "RUNNING:   version 2 migrate, 1/3 statements done, by connection" in live.stdout
    assert "BLOCKED" not in live.stdout and "repair" not in live.stdout
    assert as_json["blocked"]["status"] == "running"
    assert as_json["blocked"]["in_progress"].startswith("connection ")
    # who holds the locks, and what the work session runs
    assert re.search(r"lock: +runner lock held by connection \d+ \(.*host ", live.stdout)
    assert "running `DO SLEEP(2)`" in live.stdout, live.stdout
    assert [h["role"] for h in as_json["locks"]] == ["runner", "work"]
    assert proc.returncode == 0, err
    done = dbroll("status", "--json", *args(db, mdir)).json
    assert done["blocked"] is None and done["applied"] == ["1", "2"]
    assert done["locks"] == []
    assert "lock:      free" in dbroll("status", *args(db, mdir)).stdout


@pytest.mark.timeout(120)
def test_busy_says_what_the_holders_work_session_runs(db, tmp_path):
    # a runner at work: its lock's session idle, its work session running a statement
    migrations = write_migrations(tmp_path / "migrations")
    holder, work = connect(db), connect(db)
    try:
        holder.cursor().execute("DO GET_LOCK(%s, 0)", (f"dbroll:{db.database}",))
        cur = work.cursor()
        cur.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()", (f"dbroll-work:{db.database}",))
        got, work_id = cur.fetchone()
        assert got == 1
        sleeper = threading.Thread(target=cur.execute, args=("DO SLEEP(20)",))
        sleeper.start()
        wait_until_running(db, None, "DO SLEEP%")
        proc = run_cli(
            "migrate", "--dsn", db.to_dsn(), "--migrations", str(migrations), "--lock-timeout", "1"
        )
        assert proc.returncode == 4, proc.stderr
        assert re.search(
            rf"its work session \(connection {work_id}\) running `DO SLEEP\(20\)` for \d+ s",
            proc.stderr,
        ), proc.stderr
        holder.cursor().execute("KILL QUERY %s", (work_id,))
        sleeper.join()
    finally:
        holder.close()
        work.close()


def _hold_like_a_gone_runner(db, migrations, runner_arn=None):
    """Two sessions holding the runner lock (with its lock-table row, naming the task
    `runner_arn` ran in) and the work lock, idle, as a runner whose host vanished leaves
    them: (runner conn, work conn, their ids)."""
    assert run_cli("migrate", "--dsn", db.to_dsn(), "--migrations", str(migrations)).returncode == 0
    runner, work = connect(db), connect(db)
    cur = runner.cursor()
    cur.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()", (f"dbroll:{db.database}",))
    runner_id = cur.fetchone()[1]
    cur.execute(
        "REPLACE INTO dbroll_lock (name, connection_id, host, pid, run_id, acquired_at, "
        "runner_arn) VALUES (%s, %s, 'gone-host', 7, 'run-1', NOW(6), %s)",
        (f"dbroll:{db.database}", runner_id, runner_arn),
    )
    wcur = work.cursor()
    wcur.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()", (f"dbroll-work:{db.database}",))
    return runner, work, runner_id, wcur.fetchone()[1]


def _sleep_on(conn, seconds: int) -> tuple[threading.Thread, list]:
    """`DO SLEEP(seconds)` on `conn`, sent from a thread started here: (the thread, the
    MySQLErrors it ended with, filled in when it ends)."""
    errors: list = []

    def sleep():
        try:
            conn.cursor().execute(f"DO SLEEP({seconds})")
        except pymysql.MySQLError as e:
            errors.append(e)

    thread = threading.Thread(target=sleep)
    thread.start()
    return thread, errors


def _alive(conn) -> bool:
    try:
        conn.ping(reconnect=False)
        return True
    except pymysql.MySQLError:
        return False


@pytest.mark.timeout(120)
def test_unlock_ends_the_sessions_of_a_gone_runner(db, tmp_path):
    migrations = write_migrations(tmp_path / "migrations")
    runner, work, runner_id, work_id = _hold_like_a_gone_runner(db, migrations)
    try:
        proc = run_cli(
            "migrate", "--dsn", db.to_dsn(), "--migrations", str(migrations), "--lock-timeout", "1"
        )
        assert proc.returncode == 4 and "dbroll unlock" in proc.stderr, proc.stderr

        r = dbroll("unlock", "--dry-run", "--dsn", db.to_dsn())
        assert r.exit_code == 0, r.stderr
        assert re.search(
            rf"runner lock held by connection {runner_id} \(client [^,]+, host gone-host pid 7, "
            r"run run-1, for \d+ s\): idle for \d+ s",
            r.stdout,
        ), r.stdout
        assert f"work session's lock held by connection {work_id}" in r.stdout, r.stdout
        assert f"would end connection(s) {runner_id}, {work_id}" in r.stdout, r.stdout
        assert _alive(runner) and _alive(work)

        r = dbroll("unlock", "--json", "--dsn", db.to_dsn())
        assert r.exit_code == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["ended"] == [runner_id, work_id], out
        assert [h["role"] for h in out["holders"]] == ["runner", "work"], out
        assert "the lock is free" in out["message"], out
        assert not _alive(runner) and not _alive(work)
    finally:
        runner.close()
        work.close()
    proc = run_cli("migrate", "--dsn", db.to_dsn(), "--migrations", str(migrations))
    assert proc.returncode == 0, proc.stderr
    r = dbroll("unlock", "--dsn", db.to_dsn())
    assert r.exit_code == 0 and "nothing to end" in r.stdout, r.stdout


@pytest.mark.timeout(120)
def test_unlock_leaves_a_runner_at_work_unless_forced(db, tmp_path):
    migrations = write_migrations(tmp_path / "migrations")
    runner, work, runner_id, work_id = _hold_like_a_gone_runner(db, migrations)
    sleeper, errors = _sleep_on(work, 30)
    try:
        wait_until_running(db, None, "DO SLEEP%")
        r = dbroll("unlock", "--dsn", db.to_dsn())
        assert r.exit_code == 3, r.stderr
        assert f"connection {work_id} is running a statement" in r.stderr, r.stderr
        assert "`DO SLEEP(30)`" in r.stderr and "--force" in r.stderr, r.stderr
        assert _alive(runner)
        r = dbroll("unlock", "--force", "--dsn", db.to_dsn())
        assert r.exit_code == 0, r.stderr
        assert f"ended connection(s) {runner_id}, {work_id}" in r.stdout, r.stdout
        sleeper.join(timeout=30)
        assert errors, "the work session's statement was not stopped"
    finally:
        runner.close()
        work.close()


@pytest.mark.timeout(120)
def test_unlock_by_a_user_who_may_not_end_the_sessions_says_so(mariadb, db, tmp_path):
    migrations = write_migrations(tmp_path / "migrations")
    runner, work, runner_id, _ = _hold_like_a_gone_runner(db, migrations)
    try:
        with db_user(mariadb, db, "pw-unlock") as app:  # ALL on the schema, no admin rights
            r = dbroll("unlock", "--dsn", app.to_dsn())
        assert r.exit_code == 1, r.stderr
        assert f"cannot end connection {runner_id}" in r.stderr, r.stderr
        assert "CONNECTION ADMIN" in r.stderr and "pw-unlock" not in r.stderr, r.stderr
        assert _alive(runner) and _alive(work)
    finally:
        runner.close()
        work.close()


@pytest.mark.timeout(120)
def test_unlock_leaves_a_runner_whose_task_runs_and_ends_one_whose_task_stopped(
    db, tmp_path, aws, runner_task
):
    migrations = write_migrations(tmp_path / "migrations")
    runner, work, runner_id, work_id = _hold_like_a_gone_runner(db, migrations, runner_task)
    try:
        busy = run_cli(
            "migrate", "--dsn", db.to_dsn(), "--migrations", str(migrations), "--lock-timeout", "1"
        )
        assert busy.returncode == 4 and f"in {runner_task}" in busy.stderr, busy.stderr
        # idle sessions, but the task they belong to still runs (backing data up, say)
        r = dbroll("unlock", "--dsn", db.to_dsn())
        assert r.exit_code == 3, r.stderr
        assert f"in {runner_task}" in r.stderr, r.stderr
        assert f"ECS task {runner_task} is RUNNING" in r.stderr, r.stderr
        assert "nothing was ended" in r.stderr and "--force" in r.stderr, r.stderr
        assert _alive(runner) and _alive(work)

        aws.client("ecs").stop_task(
            cluster="runners", task=runner_task, reason="Host EC2 instance terminated"
        )
        r = dbroll("unlock", "--dry-run", "--dsn", db.to_dsn())
        assert r.exit_code == 0, r.stderr
        assert f"  ECS task {runner_task} is STOPPED" in r.stdout, r.stdout
        assert "(Host EC2 instance terminated)" in r.stdout, r.stdout
        assert _alive(runner) and _alive(work)

        r = dbroll("unlock", "--json", "--dsn", db.to_dsn())
        assert r.exit_code == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["ended"] == [runner_id, work_id], out
        status = out["holders"][0]["runner_status"]
        assert (status["arn"], status["alive"], status["status"]) == (
            runner_task,
            False,
            "STOPPED",
        ), status
        assert not _alive(runner) and not _alive(work)
    finally:
        runner.close()
        work.close()


@pytest.mark.timeout(120)
def test_a_runner_in_an_ecs_task_names_it_with_the_lock(
    db, tmp_path, aws, runner_task, monkeypatch
):
    from pipeline.aws.where import ECS_METADATA_ENV
    from tests.conftest import args, ecs_task_metadata, write_files

    mdir = write_files(tmp_path / "m", {"V1__wait.sql": "CREATE TABLE a (id INT);\nDO SLEEP(30);"})
    with ecs_task_metadata(runner_task) as uri:
        monkeypatch.setenv(ECS_METADATA_ENV, uri)  # the runner's environment, as in a task
        proc = start_migrate(db.to_dsn(), mdir)
        try:
            wait_until_running(db, proc, "DO SLEEP%")
            st = dbroll("status", "--json", *args(db, mdir)).json
            assert st["locks"][0]["role"] == "runner", st["locks"]
            assert st["locks"][0]["runner_arn"] == runner_task, st["locks"]
            assert f"in {runner_task}" in dbroll("status", *args(db, mdir)).stdout

            aws.client("ecs").stop_task(cluster="runners", task=runner_task, reason="stopped")
            # gone, by ECS's word, but its statement still runs in the server
            r = dbroll("unlock", "--dsn", db.to_dsn())
            assert r.exit_code == 3, r.stderr
            assert f"ECS task {runner_task} is STOPPED" in r.stderr, r.stderr
            assert "still running a statement" in r.stderr, r.stderr
            assert "wait for it to end" in r.stderr, r.stderr
            assert proc.poll() is None
            r = dbroll("unlock", "--force", "--dsn", db.to_dsn())
            assert r.exit_code == 0 and "ended connection(s)" in r.stdout, (r.stdout, r.stderr)
            proc.communicate(timeout=60)
            assert proc.returncode != 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


OLD_LOCK_DDL = """
CREATE TABLE dbroll_lock (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  connection_id BIGINT UNSIGNED NOT NULL,
  host VARCHAR(255) NOT NULL,
  pid INT NOT NULL,
  run_id VARCHAR(255) NULL,
  acquired_at DATETIME(6) NOT NULL
) ENGINE=InnoDB
"""
BUILD = "arn:aws:codebuild:eu-west-1:123456789012:build/shop-dbroll:0b5c1f7e"


def _lock_columns(db) -> list[str]:
    return [c for (c, *_) in query(db, "SHOW COLUMNS FROM dbroll_lock")]


@pytest.mark.timeout(120)
def test_a_lock_table_an_older_dbroll_made_is_read_then_given_the_runner_column(db, tmp_path):
    from tests.conftest import write_files

    query(db, OLD_LOCK_DDL)
    holder = connect(db)
    try:  # an older runner holds the lock: its row reads as before
        cur = holder.cursor()
        cur.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()", (f"dbroll:{db.database}",))
        cur.execute(
            "INSERT INTO dbroll_lock VALUES (%s, %s, 'old-host', 9, 'run-9', NOW(6))",
            (f"dbroll:{db.database}", cur.fetchone()[1]),
        )
        r = dbroll("unlock", "--dry-run", "--dsn", db.to_dsn())
        assert r.exit_code == 0, r.stderr
        assert "host old-host pid 9, run run-9" in r.stdout, r.stdout
    finally:
        holder.close()
    mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);"})
    proc = run_cli(
        "migrate",
        "--dsn",
        db.to_dsn(),
        "--migrations",
        str(mdir),
        env={"CODEBUILD_BUILD_ARN": BUILD},
    )
    assert proc.returncode == 0, proc.stderr
    assert _lock_columns(db)[-1] == "runner_arn"
    assert query(db, "SELECT runner_arn FROM dbroll_lock") == [(BUILD,)]


@pytest.mark.timeout(120)
def test_a_user_who_may_not_alter_an_older_lock_table_still_migrates(mariadb, db, tmp_path):
    from tests.conftest import write_files

    query(db, OLD_LOCK_DDL)
    mdir = write_files(tmp_path / "m", {"V1__a.sql": "CREATE TABLE a (id INT);"})
    grants = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP"  # no ALTER
    with db_user(mariadb, db, "pw-noalter", grants) as app:
        proc = run_cli(
            "migrate",
            "--dsn",
            app.to_dsn(),
            "--migrations",
            str(mdir),
            env={"CODEBUILD_BUILD_ARN": BUILD},
        )
    assert proc.returncode == 0, proc.stderr
    assert "cannot add column runner_arn to dbroll_lock" in proc.stderr, proc.stderr
    assert "pw-noalter" not in proc.stderr
    assert "runner_arn" not in _lock_columns(db)
    assert query(db, "SELECT pid > 0 FROM dbroll_lock") == [(1,)]
    assert query(db, "SELECT COUNT(*) FROM a") == [(0,)]


@pytest.mark.timeout(120)
def test_a_runner_takes_over_the_lock_of_one_whose_task_stopped_only_when_asked(
    db, tmp_path, aws, runner_task
):
    migrations = write_migrations(tmp_path / "migrations")
    runner, work, runner_id, work_id = _hold_like_a_gone_runner(db, migrations, runner_task)
    (migrations / "V99__after.sql").write_text("CREATE TABLE after_takeover (id INT);\n")
    take_over = ("--take-over-gone-runner", "--lock-timeout", "1", "--json")
    migrate = ("migrate", "--dsn", db.to_dsn(), "--migrations", str(migrations))
    try:
        # its task still runs: the usual wait, then busy
        proc = run_cli(*migrate, *take_over)
        assert proc.returncode == 4, proc.stderr
        assert f"not taking over the runner lock: ECS task {runner_task} is RUNNING" in (
            proc.stderr
        ), proc.stderr
        assert _alive(runner) and _alive(work)

        aws.client("ecs").stop_task(cluster="runners", task=runner_task, reason="host lost")
        # gone, but not asked to take over: busy as before
        proc = run_cli(*migrate, "--lock-timeout", "1")
        assert proc.returncode == 4, proc.stderr
        assert _alive(runner) and _alive(work)

        proc = run_cli(*migrate, *take_over)
        assert proc.returncode == 0, proc.stderr
        assert f"taking over the runner lock: ECS task {runner_task} is STOPPED" in (proc.stderr), (
            proc.stderr
        )
        assert [s["version"] for s in json.loads(proc.stdout)["steps"]] == ["99"], proc.stdout
        assert not _alive(runner) and not _alive(work)
    finally:
        runner.close()
        work.close()


@pytest.mark.timeout(120)
def test_a_gone_runners_statement_still_running_is_not_taken_over(db, tmp_path, aws, runner_task):
    migrations = write_migrations(tmp_path / "migrations")
    runner, work, runner_id, work_id = _hold_like_a_gone_runner(db, migrations, runner_task)
    aws.client("ecs").stop_task(cluster="runners", task=runner_task, reason="host lost")
    sleeper, errors = _sleep_on(work, 4)
    try:
        wait_until_running(db, None, "DO SLEEP%")
        proc = run_cli(
            "migrate",
            "--dsn",
            db.to_dsn(),
            "--migrations",
            str(migrations),
            "--take-over-gone-runner",
            "--lock-timeout",
            "1",
        )
        assert proc.returncode == 4, proc.stderr
        assert "not taking over the runner lock yet" in proc.stderr, proc.stderr
        assert f"connection {work_id} still runs a statement" in proc.stderr, proc.stderr
        sleeper.join(timeout=30)
        assert errors == [], "the gone runner's statement was stopped"
        assert _alive(runner) and _alive(work)
    finally:
        runner.close()
        work.close()
