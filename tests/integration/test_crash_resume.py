"""kill -9 of a real `dbroll migrate` process at a random moment, then status / resume.

Every trial starts `python -m pipeline migrate` on a fresh database, SIGKILLs it after a
random delay, and then checks what dbroll recorded against what the server really has:

* blocked or not, the schema is "a prefix of the migration set": every version before the
  blocked one is fully in effect, every later one not at all, and the blocked one has a
  prefix of its statements in effect;
* the blocked row's statements_done is the number of statements in effect, or one less
  (a DDL statement commits before dbroll can record it: the documented window);
* `migrate` refuses (exit 3) while blocked, `resume` finishes (exit 0), `migrate` then
  applies the rest (exit 0);
* the end state equals a clean run: same schema, one successful `migrate` row per version,
  every version applied, and no history row that had ended was changed afterwards.

Delays are uniform in [0.05 s, 0.9 x clean-run time], drawn from random.Random(seed + trial).
Reproduce a trial with DBROLL_CRASH_SEED=<seed> and the same trial index; the seed, trial
and delay are printed (shown on failure). The distribution of the statements_done window
over the trials of a module run is written to the terminal at the end of the module.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.db.connect import ConnectionSpec, connect
from tests.conftest import REPO, dbroll, query, run_cli, schema_objects, write_files

SEED = int(os.environ.get("DBROLL_CRASH_SEED", "20240611"))
DEFAULT_TRIALS = 20
SLOW_TRIALS = 100

# ------------------------------------------------------------------ the migration set
#
# Each statement comes with a probe that says whether its effect is on the server:
# ("table", name) | ("column", table, column) | ("index", table, index) | ("row", table, id)


@dataclass(frozen=True)
class Stmt:
    sql: str
    probe: tuple


@dataclass(frozen=True)
class Mig:
    version: str
    description: str
    statements: tuple[Stmt, ...]

    @property
    def filename(self) -> str:
        return f"V{self.version}__{self.description}.sql"

    @property
    def text(self) -> str:
        return "".join(f"{s.sql};\n" for s in self.statements)


# Partitions only make each CREATE TABLE slow enough (~10 ms instead of ~0.5 ms) for the
# run to last long enough to be killed mid-way; they change nothing else.
PARTITIONS = 16


def _create(table: str) -> Stmt:
    return Stmt(
        f"CREATE TABLE {table} (id INT NOT NULL PRIMARY KEY, name VARCHAR(32) NOT NULL, "
        f"created DATETIME NULL, KEY {table}_name_idx (name)) ENGINE=InnoDB "
        f"PARTITION BY KEY (id) PARTITIONS {PARTITIONS}",
        ("table", table),
    )


def _ddl_migration(v: int, n: int = 8) -> Mig:
    return Mig(str(v), f"ddl_{v}", tuple(_create(f"m{v}_s{i}") for i in range(1, n + 1)))


def _insert(table: str, row_id: int) -> Stmt:
    return Stmt(
        f"INSERT INTO {table} (id, name) VALUES ({row_id}, 'row {row_id}')", ("row", table, row_id)
    )


def _bulk_insert(table: str, lo: int, hi: int) -> Stmt:
    """Many rows in one statement (~0.1 s): a kill may land inside it."""
    return Stmt(
        f"INSERT INTO {table} (id, name) SELECT seq, CONCAT('bulk ', seq) FROM seq_{lo}_to_{hi}",
        ("rows", table, lo, hi),
    )


def build_migrations() -> tuple[Mig, ...]:
    """6 DDL-only migrations of 8 CREATE TABLEs, one DML-only and one mixed migration."""
    dml_only = Mig(
        "4",
        "dml_only",
        (
            *(_insert(f"m{1 + i % 3}_s{1 + i // 3}", 100 + i) for i in range(4)),
            _bulk_insert("m1_s1", 1000, 20999),
            *(_insert(f"m{1 + i % 3}_s{1 + i // 3}", 100 + i) for i in range(4, 8)),
        ),
    )
    mixed = Mig(
        "5",
        "mixed",
        (
            _create("m5_s1"),
            _bulk_insert("m5_s1", 1000, 10999),
            _create("m5_s2"),
            _insert("m5_s2", 1),
            Stmt("ALTER TABLE m5_s1 ADD COLUMN extra INT NULL", ("column", "m5_s1", "extra")),
            _insert("m5_s1", 2),
            Stmt(
                "CREATE INDEX m5_s2_created_idx ON m5_s2 (created)",
                ("index", "m5_s2", "m5_s2_created_idx"),
            ),
            _create("m5_s3"),
            _insert("m5_s3", 1),
        ),
    )
    return (
        _ddl_migration(1),
        _ddl_migration(2),
        _ddl_migration(3),
        dml_only,
        mixed,
        _ddl_migration(6),
        _ddl_migration(7),
        _ddl_migration(8),
    )


MIGRATIONS = build_migrations()
VERSIONS = [m.version for m in MIGRATIONS]
BY_VERSION = {m.version: m for m in MIGRATIONS}


def write_migrations(root: Path, migrations: tuple[Mig, ...] = MIGRATIONS) -> Path:
    return write_files(root, {m.filename: m.text for m in migrations})


# ------------------------------------------------------------------ helpers


def effects(
    spec: ConnectionSpec, migrations: tuple[Mig, ...] = MIGRATIONS
) -> dict[str, list[bool]]:
    """For every migration, which of its statements are in effect on the server."""
    conn = connect(spec)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (spec.database,),
        )
        tables = {r[0] for r in cur.fetchall()}
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s",
            (spec.database,),
        )
        columns = {(r[0], r[1]) for r in cur.fetchall()}
        cur.execute(
            "SELECT DISTINCT TABLE_NAME, INDEX_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s",
            (spec.database,),
        )
        indexes = {(r[0], r[1]) for r in cur.fetchall()}

        def present(probe: tuple) -> bool:
            kind = probe[0]
            if kind == "table":
                return probe[1] in tables
            if kind == "column":
                return (probe[1], probe[2]) in columns
            if kind == "index":
                return (probe[1], probe[2]) in indexes
            if kind == "row":
                if probe[1] not in tables:
                    return False
                cur.execute(f"SELECT COUNT(*) FROM `{probe[1]}` WHERE id = %s", (probe[2],))
                return cur.fetchone()[0] == 1
            if kind == "rows":
                if probe[1] not in tables:
                    return False
                _, table, lo, hi = probe
                cur.execute(f"SELECT COUNT(*) FROM `{table}` WHERE id BETWEEN %s AND %s", (lo, hi))
                n = cur.fetchone()[0]
                assert n in (0, hi - lo + 1), f"{table}: {n} of {hi - lo + 1} rows of one INSERT"
                return n > 0
            raise AssertionError(probe)

        return {m.version: [present(s.probe) for s in m.statements] for m in migrations}
    finally:
        conn.close()


def history_rows(spec: ConnectionSpec) -> list[dict]:
    exists = query(
        spec,
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
        "DATABASE() AND TABLE_NAME = 'dbroll_history'",
    )[0][0]
    if not exists:
        return []
    conn = connect(spec)
    try:
        cur = conn.cursor()
        cur.execute("SELECT * FROM dbroll_history ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()


def ended_rows(spec: ConnectionSpec) -> dict[int, dict]:
    return {r["id"]: r for r in history_rows(spec) if r["status"] in ("success", "failed")}


def wait_for_disconnect(admin: ConnectionSpec, database: str, timeout: float = 20.0) -> None:
    """Wait until no session uses `database` and nobody holds its runner lock.

    After SIGKILL the server finishes the statement the dead client sent, then notices the
    closed socket; nothing may be read before that, or a statement could commit later.
    """
    conn = connect(admin, database=False)
    try:
        cur = conn.cursor()
        deadline = time.monotonic() + timeout
        while True:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                "WHERE DB = %s AND ID <> CONNECTION_ID()",
                (database,),
            )
            sessions = cur.fetchone()[0]
            cur.execute("SELECT IS_USED_LOCK(%s)", (f"dbroll:{database}",))
            holder = cur.fetchone()[0]
            if sessions == 0 and holder is None:
                return
            assert time.monotonic() < deadline, (
                f"the killed runner's sessions on {database} did not go away "
                f"({sessions} session(s), lock holder {holder})"
            )
            time.sleep(0.01)
    finally:
        conn.close()


def cli(*args: str, expect: int | None = None) -> subprocess.CompletedProcess:
    proc = run_cli(*args)
    if expect is not None:
        assert proc.returncode == expect, (
            f"dbroll {' '.join(a for a in args if not a.startswith('mysql://'))}: exit "
            f"{proc.returncode}, expected {expect}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def status_json(dsn: str, migrations: Path) -> dict:
    """`dbroll status --json`, in-process (read-only; saves a process start per call)."""
    res = dbroll("status", "--dsn", dsn, "--migrations", str(migrations), "--json")
    assert res.exit_code == 0, (res.exit_code, res.stdout, res.stderr)
    return res.json


def start_migrate(dsn: str, migrations: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, DBROLL_LOG_FORMAT="json")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "migrate",
            "--dsn",
            dsn,
            "--migrations",
            str(migrations),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )


def check_clean_history(
    spec: ConnectionSpec, migrations: Path, mset: tuple[Mig, ...] = MIGRATIONS
) -> None:
    """One successful migrate row per version, applied=1; every version applied."""
    rows = history_rows(spec)
    for m in mset:
        ok = [
            r
            for r in rows
            if r["kind"] == "migrate" and r["status"] == "success" and r["version"] == m.version
        ]
        assert len(ok) == 1, f"version {m.version}: {len(ok)} successful migrate rows: {ok}"
        assert ok[0]["applied"] == 1, ok[0]
        assert ok[0]["statements_done"] == ok[0]["statements_total"] == len(m.statements), ok[0]
    st = status_json(spec.to_dsn(), migrations)
    assert st["blocked"] is None, st
    assert st["applied"] == [m.version for m in mset], st
    assert st["pending"] == [], st
    assert st["current_version"] == mset[-1].version, st


# ------------------------------------------------------------------ fixtures


@dataclass
class Reference:
    migrations: Path
    schema: dict
    clean_s: float


STATS: Counter = Counter()


@pytest.fixture(scope="module")
def reference(mariadb, tmp_path_factory) -> Reference:
    """The migration folder, a clean run's schema, and how long a clean run takes."""
    migrations = write_migrations(tmp_path_factory.mktemp("crash") / "migrations")
    spec = mariadb.create_database()
    try:
        t0 = time.monotonic()
        proc = start_migrate(spec.to_dsn(), migrations)
        _out, err = proc.communicate(timeout=120)
        clean_s = time.monotonic() - t0
        assert proc.returncode == 0, err.decode()
        schema = schema_objects(spec)
        check_clean_history(spec, migrations)
        assert all(all(v) for v in effects(spec).values())
    finally:
        mariadb.drop_database(spec)
    tables = {s.probe[1] for m in MIGRATIONS for s in m.statements if s.probe[0] == "table"}
    assert set(schema) == {f"table {t}" for t in tables}
    return Reference(migrations, schema, clean_s)


@pytest.fixture(scope="module", autouse=True)
def window_report(request):
    STATS.clear()
    yield
    if not STATS["trials"]:
        return
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"\ncrash trials: {STATS['trials']}; not blocked (killed before the first running "
        f"row or between migrations): {STATS['not_blocked']}; blocked: {STATS['blocked']} "
        f"(in the DML-only transaction: {STATS['blocked_dml']}; in a per-statement "
        f"migration: statements_done == in effect: {STATS['done_exact']}, == in effect - 1: "
        f"{STATS['done_minus_one']}; killed with all of the blocked migration's statements "
        f"in effect: {STATS['all_in_effect']})"
    )
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is None or capman is None:
        print(line)
        return
    with capman.global_and_fixture_disabled():  # shown even without -s / -rA
        tr.write_line(line)


# ------------------------------------------------------------------ the trial


def crash_trial(mariadb, ref: Reference, trial: int, seed: int) -> None:
    rng = random.Random(seed + trial)
    high = max(0.06, 0.9 * ref.clean_s)
    delay = rng.uniform(0.05, high)
    print(
        f"crash trial {trial}: DBROLL_CRASH_SEED={seed} delay={delay:.3f}s "
        f"(clean run {ref.clean_s:.3f}s)"
    )
    spec = mariadb.create_database()
    try:
        dsn = spec.to_dsn()
        proc = start_migrate(dsn, ref.migrations)
        time.sleep(delay)
        proc.kill()
        out, err = proc.communicate(timeout=30)
        wait_for_disconnect(mariadb.admin, spec.database)
        print(f"  runner exit {proc.returncode}; stderr tail: {err.decode()[-600:]}")

        eff = effects(spec)
        st = status_json(dsn, ref.migrations)
        print(f"  status: applied={st['applied']} blocked={st['blocked']}")
        print("  in effect: " + ", ".join(f"V{v}:{sum(e)}/{len(e)}" for v, e in eff.items()))
        STATS["trials"] += 1

        if proc.returncode == 0:
            # the kill came after the run finished (the clean run was slower this time)
            assert st["blocked"] is None and st["applied"] == VERSIONS, st
        else:
            assert proc.returncode == -9, (proc.returncode, err.decode()[-2000:])

        applied = st["applied"]
        assert applied == VERSIONS[: len(applied)], f"applied is not a prefix: {applied}"
        b = st["blocked"]
        if b is None:
            STATS["not_blocked"] += 1
            for v in VERSIONS:
                want = v in applied
                assert all(x == want for x in eff[v]), (
                    f"V{v} (applied={want}) has statements in effect {eff[v]}"
                )
        else:
            STATS["blocked"] += 1
            assert b["kind"] == "migrate" and b["status"] == "running", b
            bv = b["version"]
            assert bv in VERSIONS, b
            idx = VERSIONS.index(bv)
            assert applied == VERSIONS[:idx], (applied, bv)
            for v in VERSIONS[:idx]:
                assert all(eff[v]), f"V{v} is applied but not fully in effect: {eff[v]}"
            for v in VERSIONS[idx + 1 :]:
                assert not any(eff[v]), f"V{v} is after blocked V{bv} yet in effect: {eff[v]}"
            partial = eff[bv]
            n_in = sum(partial)
            assert partial == [True] * n_in + [False] * (len(partial) - n_in), (
                f"V{bv}: the statements in effect are not a prefix: {partial}"
            )
            assert b["statements_total"] == len(BY_VERSION[bv].statements), b
            done = b["statements_done"]
            assert done in (n_in, n_in - 1), (
                f"V{bv}: statements_done={done} but {n_in} statement(s) in effect"
            )
            if bv == "4":
                STATS["blocked_dml"] += 1  # one transaction: always 0 done, 0 in effect
            else:
                STATS["done_exact" if done == n_in else "done_minus_one"] += 1
            if n_in == len(partial):
                STATS["all_in_effect"] += 1
            if done == n_in - 1:
                # the uncounted statement is DDL: DML commits together with its progress
                assert not BY_VERSION[bv].statements[done].sql.startswith("INSERT"), (
                    f"V{bv}: statement {done + 1} (DML) is in effect but not counted"
                )

            before = ended_rows(spec)
            n_rows = len(history_rows(spec))
            refused = dbroll("migrate", "--dsn", dsn, "--migrations", str(ref.migrations))
            assert refused.exit_code == 3, (refused.exit_code, refused.stdout, refused.stderr)
            assert f"version {bv}" in refused.stderr, refused.stderr
            assert len(history_rows(spec)) == n_rows, "a refused migrate wrote history"
            assert effects(spec) == eff, "a refused migrate changed the schema"
            cli("resume", "--dsn", dsn, "--migrations", str(ref.migrations), expect=0)
            after_resume = status_json(dsn, ref.migrations)
            assert after_resume["blocked"] is None, after_resume
            assert after_resume["applied"] == VERSIONS[: idx + 1], after_resume
            after = ended_rows(spec)
            for row_id, row in before.items():
                assert after.get(row_id) == row, f"ended history row {row_id} changed"
        before = ended_rows(spec)
        cli("migrate", "--dsn", dsn, "--migrations", str(ref.migrations), expect=0)
        after = ended_rows(spec)
        for row_id, row in before.items():
            assert after.get(row_id) == row, f"ended history row {row_id} changed by migrate"

        assert schema_objects(spec) == ref.schema
        assert all(all(e) for e in effects(spec).values())
        check_clean_history(spec, ref.migrations)
        rows = history_rows(spec)
        assert not [r for r in rows if r["status"] == "failed"], rows
        # at most the killed run's row is left `running` (superseded by resume's own row)
        stale = [r for r in rows if r["status"] == "running"]
        assert len(stale) == (0 if b is None else 1), stale
    finally:
        mariadb.drop_database(spec)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("trial", range(DEFAULT_TRIALS))
def test_kill_9_then_resume(mariadb, reference, trial):
    crash_trial(mariadb, reference, trial, SEED)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("trial", range(SLOW_TRIALS))
def test_kill_9_then_resume_many(mariadb, reference, trial):
    crash_trial(mariadb, reference, 1000 + trial, SEED)
