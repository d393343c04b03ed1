"""`make bench`: dbroll against the raw mariadb client, dbmate, Liquibase and yoyo.

Every figure comes from one run, on one throwaway MariaDB that this script starts itself
(datadir on disk under bench/.work, plus a second server on /dev/shm for one comparison),
tool by tool interleaved within each repetition, with the starting tool rotated, so that
drift hits every tool alike. Medians are reported with ratios to the raw `mariadb` client.
Results go to stdout, bench/RESULTS.md, and every sample to bench/.work/results.json.
`python bench/harness.py --render` writes RESULTS.md again from that results.json, measuring
nothing (after a change to how the figures are presented).

Environment:
  BENCH_RUNS    repetitions per scenario (default 5; 3 with BENCH_QUICK=1)
  BENCH_QUICK=1 N=100 only, 3 runs, short lock scenario: for checking the harness
  BENCH_TOOLS   comma list of peers to keep (dbroll,dbmate,liquibase,yoyo); the raw client,
                the raw client + history rows and dbroll's SQL via the client always run
  BENCH_SCENARIOS  NxK list (N migrations of K statements), default 100x1,1000x1,100x10
  BENCH_SLOW_S  a peer whose first repetition (apply + undo) takes longer than this many
                seconds is measured in min(BENCH_RUNS, 3) repetitions only (default 20)
  BENCH_MDL_HOLD seconds the long transaction holds the table (default 5; 3 when quick)
  BENCH_WORK    scratch dir (default bench/.work); BENCH_OUT report path (bench/RESULTS.md)
  BENCH_PROFILE NxK sampled by py-spy for "where dbroll's time goes" (default 1000x1;
                100x1 when quick); BENCH_PYSPY the py-spy binary (run.sh installs one)
`python bench/harness.py --profile` (`make profile`) runs that section alone.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pymysql
import wallprofile

REPO = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("BENCH_WORK", REPO / "bench" / ".work")).resolve()
OUT = Path(os.environ.get("BENCH_OUT", REPO / "bench" / "RESULTS.md"))
QUICK = os.environ.get("BENCH_QUICK") == "1"
RUNS = int(os.environ.get("BENCH_RUNS", "3" if QUICK else "5"))
SLOW_S = float(os.environ.get("BENCH_SLOW_S", "20"))
MDL_HOLD = float(os.environ.get("BENCH_MDL_HOLD", "3" if QUICK else "5"))
MDL_REPS = 1 if QUICK else 3
PLAN_MAX_REPS = 25 if QUICK else 101  # plan timing: runs per size, at most
# run.sh installs the checkout into bench/.work/venv-dbroll (BENCH_INSTALLED_DBROLL) and, with
# BENCH_BASELINE=<git rev>, that revision beside it (BENCH_INSTALLED_BASELINE): before/after
# figures from the same run
DBROLL = (
    os.environ.get("BENCH_DBROLL")
    or os.environ.get("BENCH_INSTALLED_DBROLL")
    or str(REPO / ".venv" / "bin" / "dbroll")
)
BASELINE = os.environ.get("BENCH_INSTALLED_BASELINE")
BASELINE_REV = os.environ.get("BENCH_BASELINE", "")
YOYO = WORK / "venv-yoyo" / "bin" / "yoyo"
DBMATE = WORK / "node_modules" / "@dbmate" / "linux-x64" / "bin" / "dbmate"
LIQUIBASE = WORK / "node_modules" / "liquibase" / "dist" / "liquibase" / "liquibase"
ENV = dict(os.environ, DBROLL_LOG_FORMAT="json")
# stderr of the timed commands goes to a file here (memory when possible): kept only to
# explain a failure; stdout goes to /dev/null for every tool alike
ERRDIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def log(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------ the server
# The same approach as pipeline.devdb (mariadb-install-db, then mariadbd tuned for
# throwaway use on 127.0.0.1), but with the datadir where we say: devdb prefers /dev/shm,
# and the main setting here is a datadir on disk.

_SEARCH = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
_SERVERS: list[Server] = []


def _which(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for d in _SEARCH:
            p = Path(d, name)
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    raise SystemExit(f"bench: none of {names} found: apt-get install mariadb-server mariadb-client")


def fs_type(path: Path) -> str:
    """The filesystem type of the mount holding path (from /proc/mounts)."""
    real, best, kind = str(path.resolve()), "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mnt = parts[1].replace("\\040", " ")
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


class Server:
    def __init__(self, parent: Path) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="bench-mariadb-", dir=parent))
        self.datadir = self.root / "data"
        self.fs = fs_type(self.root)
        self.on_shm = self.fs == "tmpfs" or str(self.root).startswith("/dev/shm")
        self.proc: subprocess.Popen | None = None
        _SERVERS.append(self)
        install = _which("mariadb-install-db", "mysql_install_db")
        p = subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            capture_output=True,
            text=True,
        )
        if p.returncode:
            raise SystemExit(f"bench: mariadb-install-db failed: {p.stderr[-500:]}")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        log_path = self.root / "err.log"
        self.proc = subprocess.Popen(
            [
                _which("mariadbd", "mysqld"),
                "--no-defaults",
                "--user=root",
                f"--datadir={self.datadir}",
                f"--socket={self.root}/s.sock",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.root}/pid",
                f"--log-error={log_path}",
                f"--tmpdir={self.root}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--max-connections=300",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.admin().close()
                break
            except pymysql.MySQLError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-800:] if log_path.exists() else ""
                self.stop()
                raise SystemExit(f"bench: mariadbd did not start: {tail}")
            time.sleep(0.05)
        self.version = self.query("SELECT VERSION()")[0][0]

    def admin(self, database: str | None = None, **kw) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", database=database, **kw
        )

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        c = self.admin(autocommit=True)
        try:
            cur = c.cursor()
            cur.execute(sql, args)
            return list(cur.fetchall())
        finally:
            c.close()

    def fresh(self, name: str) -> str:
        self.query(f"DROP DATABASE IF EXISTS `{name}`")
        self.query(f"CREATE DATABASE `{name}`")
        return name

    def url(self, name: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{name}"

    def bench_tables(self, name: str) -> int:
        return self.query(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name REGEXP '^t[0-9]+(_[0-9]+)?$'",
            (name,),
        )[0][0]

    def expect_tables(self, name: str, phase: str, total: int) -> None:
        """After `phase` (apply or undo) of `total` generated tables: all of them, or none."""
        want = total if phase == "apply" else 0
        if (got := self.bench_tables(name)) != want:
            raise ToolError(f"{phase} left {got} of {total} tables")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # this server's own PID only
            self.proc.wait(timeout=30)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
        if self in _SERVERS:
            _SERVERS.remove(self)


def _stop_all() -> None:
    for s in list(_SERVERS):
        s.stop()


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# ------------------------------------------------------------------ running commands


class ToolError(RuntimeError):
    pass


def run(cmd: list[str], *, stdin: Path | None = None, check: bool = True) -> int:
    """Run cmd with stdout to /dev/null; on failure raise with the tail of its stderr."""
    with (
        open(stdin or os.devnull, "rb") as fin,
        tempfile.TemporaryFile(dir=ERRDIR, prefix="bench-err-") as ferr,
    ):
        rc = subprocess.call(cmd, stdin=fin, stdout=subprocess.DEVNULL, stderr=ferr, env=ENV)
        if rc and check:
            ferr.seek(0)
            tail = ferr.read().decode(errors="replace").strip()[-400:]
            raise ToolError(f"{Path(cmd[0]).name} {' '.join(cmd[1:2])} exited {rc}: {tail}")
    return rc


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed_cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the processes fn ran and waited for): the tool's own
    client-side work, which runs while the server waits (the server's CPU is not in it)."""
    c = _children_cpu()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t, _children_cpu() - c


# ------------------------------------------------------------------ the tools


def statements(i: int, k: int) -> tuple[list[str], list[str]]:
    """Migration i: k small tables with an index; its undo drops them in reverse order."""
    names = [f"t{i}"] if k == 1 else [f"t{i}_{j}" for j in range(k)]
    up = [f"CREATE TABLE {t} (id INT PRIMARY KEY, v INT, KEY v_idx (v))" for t in names]
    return up, [f"DROP TABLE {t}" for t in reversed(names)]


def sql(stmts: list[str]) -> str:
    return "".join(f"{s};\n" for s in stmts)


class Tool:
    name = ""
    key = ""

    def available(self) -> str | None:
        return None

    def version(self) -> str:
        return ""

    def prepare(self, root: Path, n: int, k: int) -> None:
        self.n = n

    def setup(self, srv: Server) -> None:
        """Untimed work on the server once prepared (before the scenario's runs)."""

    def apply(self, srv: Server, db: str) -> None: ...

    def undo(self, srv: Server, db: str) -> None: ...

    def check(self, srv: Server, db: str, phase: str) -> None:
        """Untimed check after `phase` (apply or undo), beyond the harness's table count."""


class Raw(Tool):
    name, key = "mariadb client", "raw"

    def version(self):
        return subprocess.run(
            ["mariadb", "--version"], capture_output=True, text=True
        ).stdout.strip()

    def available(self):
        return None if shutil.which("mariadb") else "no mariadb client on PATH"

    def prepare(self, root, n, k):
        super().prepare(root, n, k)
        d = root / "raw"
        d.mkdir(parents=True)
        self.up, self.down = d / "up.sql", d / "down.sql"
        self.up.write_text("".join(sql(statements(i, k)[0]) for i in range(1, n + 1)))
        self.down.write_text("".join(sql(statements(i, k)[1]) for i in range(n, 0, -1)))

    def _client(self, srv, db, f):
        run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{srv.port}", "-uroot", db], stdin=f)

    def apply(self, srv, db):
        self._client(srv, db, self.up)

    def undo(self, srv, db):
        self._client(srv, db, self.down)


class RawLedger(Raw):
    """The floor for any tool that keeps a crash-safe record: the raw client, plus a
    history row written before each migration's DDL and marked done after it (the two
    writes dbroll makes per migration), sent as dbroll sends them: the migrations with
    their writes in packets of up to BATCH_STATEMENTS statements (running row, the
    statements, success mark, for each migration in turn), so they add no round trip."""

    name, key = "mariadb client + history rows", "ledger"

    LEDGER = (
        "CREATE TABLE IF NOT EXISTS ledger (id INT AUTO_INCREMENT PRIMARY KEY, "
        "version VARCHAR(50), kind VARCHAR(10), status VARCHAR(10), "
        "started_at DATETIME(6), finished_at DATETIME(6))"
    )
    DONE = "UPDATE ledger SET status = 'success', finished_at = NOW(6) WHERE id = LAST_INSERT_ID()"

    def prepare(self, root, n, k):
        # migration statements per packet: dbroll's own cap, so the floor batches as it does
        from pipeline.db.runner import BATCH_STATEMENTS

        Tool.prepare(self, root, n, k)
        d = root / "ledger"
        d.mkdir(parents=True)
        self.up, self.down = d / "up.sql", d / "down.sql"

        def packets(kind: str, order: range, side: int) -> list[str]:
            out, packet, count = [self.LEDGER], [], 0
            for i in order:
                stmts = statements(i, k)[side]
                if packet and count + len(stmts) > BATCH_STATEMENTS:
                    out.append(";\n".join(packet))
                    packet, count = [], 0
                running = (
                    f"INSERT INTO ledger (version, kind, status, started_at) "
                    f"VALUES ('{i}', '{kind}', 'running', NOW(6))"
                )
                packet += [running, *stmts, self.DONE]
                count += len(stmts)
            return out + [";\n".join(packet)]

        self.up.write_text(packets_script(packets("migrate", range(1, n + 1), 0)))
        self.down.write_text(packets_script(packets("undo", range(n, 0, -1), 1)))

    def check(self, srv: Server, db: str, phase: str) -> None:
        """Every ledger row the stream opened was marked done: n after apply, 2n after undo."""
        want = {"success": self.n if phase == "apply" else 2 * self.n}
        got = dict(srv.query(f"SELECT status, COUNT(*) FROM `{db}`.ledger GROUP BY status"))
        if got != want:
            raise ToolError(f"{phase} left ledger rows {got}, expected {want}")


def write_dbroll_dir(d: Path, n: int, k: int) -> None:
    d.mkdir(parents=True)
    for i in range(1, n + 1):
        up, down = statements(i, k)
        (d / f"V{i}__t{i}.sql").write_text(sql(up))
        (d / f"U{i}__t{i}.sql").write_text(sql(down))


def general_log_packets(text: str) -> list[str]:
    """The queries of a MariaDB general log (log_output=FILE), one per packet the server
    received (a multi-statement packet stays whole), in order, less those of the session
    that switched the log off. Each entry is `[date time] <thread> <Command>\t<argument>`;
    a query's further lines follow it unprefixed."""
    entry = re.compile(r"(?:\d{6} +\d{1,2}:\d\d:\d\d)?\t+ *(\d+) (\w+)\t(.*)")
    entries: list[list] = []  # [thread, command, text]
    for line in text.split("\n")[3:]:  # three lines of header
        if m := entry.fullmatch(line):
            entries.append(list(m.groups()))
        elif entries:
            entries[-1][2] += "\n" + line
    admin = {t for t, c, a in entries if c == "Query" and "general_log" in a}
    queries = [a.strip() for t, c, a in entries if c == "Query" and t not in admin]
    return [q for q in queries if q]


PACKET_END = "$$"


def packets_script(packets: list[str]) -> str:
    """A script for the mariadb client that sends each of `packets` as one query (the client
    enables multi-statements, so a packet of several statements runs whole, as it was sent):
    the delimiter is PACKET_END instead of `;`."""
    for p in packets:
        if PACKET_END in p:
            raise ToolError(f"a packet contains the delimiter {PACKET_END!r}: {p[:200]}")
    return f"DELIMITER {PACKET_END}\n" + "".join(f"{p}\n{PACKET_END}\n" for p in packets)


class Dbroll(Tool):
    name, key = "dbroll", "dbroll"
    binary = DBROLL

    def available(self):
        return None if Path(self.binary).exists() else f"{self.binary} missing (make deps)"

    def version(self):
        return subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True
        ).stdout.strip()

    def prepare(self, root, n, k):
        super().prepare(root, n, k)
        self.dir = root / self.key
        write_dbroll_dir(self.dir, n, k)

    def argv(self, srv: Server, db: str, phase: str) -> list[str]:
        verb = ["migrate"] if phase == "apply" else ["undo", "--target", "0"]
        return [self.binary, *verb, "--dsn", srv.url(db), "--migrations", str(self.dir)]

    def apply(self, srv, db):
        run(self.argv(srv, db, "apply"))

    def undo(self, srv, db):
        run(self.argv(srv, db, "undo"))


class DbrollSql(Raw):
    """dbroll's own statements, sent by the raw client: what its SQL (setup, history rows,
    progress marks, the migrations) costs the server when no Python process drives it.
    Captured from the server's general log during an untimed `dbroll migrate` and
    `dbroll undo --target 0` on a fresh database, so the history row ids match a replay on
    another fresh database; each packet dbroll sent is sent again as one query, so the
    replay makes the same round trips. dbroll's time less this is the cost of its own
    process."""

    name, key = "dbroll's SQL via the mariadb client", "dbroll-sql"
    binary = DBROLL

    def available(self):
        return Raw.available(self) or Dbroll.available(self)

    def prepare(self, root, n, k):
        Tool.prepare(self, root, n, k)
        d = root / self.key
        self.src = d / "migrations"
        write_dbroll_dir(self.src, n, k)
        self.up, self.down = d / "up.sql", d / "down.sql"

    def setup(self, srv: Server) -> None:
        db = srv.fresh("b_capture")
        try:
            for verb, out in ((["migrate"], self.up), (["undo", "--target", "0"], self.down)):
                log_file = srv.root / f"general-{verb[0]}.log"
                srv.query(f"SET GLOBAL general_log_file = '{log_file}'")
                srv.query("SET GLOBAL log_output = 'FILE', general_log = 1")
                try:
                    run([self.binary, *verb, "--dsn", srv.url(db), "--migrations", str(self.src)])
                finally:
                    srv.query("SET GLOBAL general_log = 0")
                out.write_text(
                    packets_script(general_log_packets(log_file.read_text(errors="replace")))
                )
                log_file.unlink()
        finally:
            srv.query(f"DROP DATABASE IF EXISTS `{db}`")

    def check(self, srv: Server, db: str, phase: str) -> None:
        """The replay closed every history row it opened (its ids matched the capture's):
        one success row per migration after apply, two after undo."""
        want = {"success": self.n if phase == "apply" else 2 * self.n}
        got = dict(srv.query(f"SELECT status, COUNT(*) FROM `{db}`.dbroll_history GROUP BY status"))
        if got != want:
            raise ToolError(f"{phase} left history rows {got}, expected {want}")


class DbrollBaseline(Dbroll):
    """An earlier revision of dbroll (BENCH_BASELINE), timed in the same runs."""

    name, key = f"dbroll @ {BASELINE_REV[:12]} (before)", "dbroll-before"
    binary = BASELINE or ""

    def available(self):
        return None if BASELINE and Path(BASELINE).exists() else "no BENCH_BASELINE given"


class Dbmate(Tool):
    name, key = "dbmate", "dbmate"

    def available(self):
        return None if DBMATE.exists() else "npm package dbmate not installed"

    def version(self):
        return subprocess.run([DBMATE, "--version"], capture_output=True, text=True).stdout.strip()

    def prepare(self, root, n, k):
        super().prepare(root, n, k)
        self.dir = root / "dbmate"
        self.dir.mkdir(parents=True)
        for i in range(1, n + 1):
            up, down = statements(i, k)
            (self.dir / f"{i:014d}_t{i}.sql").write_text(
                f"-- migrate:up\n{sql(up)}\n-- migrate:down\n{sql(down)}"
            )

    def _cmd(self, srv, db, verb, check=True):
        return run(
            [str(DBMATE), "--no-dump-schema", "-u", srv.url(db), "-d", str(self.dir), verb],
            check=check,
        )

    def apply(self, srv, db):
        self._cmd(srv, db, "up")

    def undo(self, srv, db):
        # dbmate has no rollback-all: one `rollback` process per migration, until it fails
        for _ in range(self.n):
            if self._cmd(srv, db, "rollback", check=False):
                break


class Yoyo(Tool):
    name, key = "yoyo", "yoyo"

    def available(self):
        return None if YOYO.exists() else "yoyo-migrations not installed in bench/.work/venv-yoyo"

    def version(self):
        py = YOYO.parent / "python"
        return (
            "yoyo-migrations "
            + subprocess.run(
                [py, "-c", "import importlib.metadata as m; print(m.version('yoyo-migrations'))"],
                capture_output=True,
                text=True,
            ).stdout.strip()
        )

    def prepare(self, root, n, k):
        super().prepare(root, n, k)
        self.dir = root / "yoyo"
        self.dir.mkdir(parents=True)
        for i in range(1, n + 1):
            up, down = statements(i, k)
            (self.dir / f"{i:05d}_t{i}.sql").write_text(sql(up))
            (self.dir / f"{i:05d}_t{i}.rollback.sql").write_text(sql(down))

    def _cmd(self, srv, db, *verb):
        run([str(YOYO), *verb, "--batch", "--no-config-file", "-d", srv.url(db), str(self.dir)])

    def apply(self, srv, db):
        self._cmd(srv, db, "apply")

    def undo(self, srv, db):
        self._cmd(srv, db, "rollback", "--all")


class Liquibase(Tool):
    name, key = "liquibase", "liquibase"

    def available(self):
        if not LIQUIBASE.exists():
            return "npm package liquibase@4.28.1 not installed"
        if not shutil.which("java"):
            return "no java on PATH"
        return None

    def version(self):
        pkg = json.loads((WORK / "node_modules" / "liquibase" / "package.json").read_text())
        core = "?"
        jar = LIQUIBASE.parent / "internal" / "lib" / "liquibase-core.jar"
        with contextlib.suppress(OSError, KeyError, zipfile.BadZipFile):
            mf = zipfile.ZipFile(jar).read("META-INF/MANIFEST.MF").decode()
            core = next(
                (
                    x.split(":", 1)[1].strip()
                    for x in mf.splitlines()
                    if x.startswith("Liquibase-Version:")
                ),
                "?",
            )
        j = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
        java = j.split('"')[1] if '"' in j else "?"
        return f"npm liquibase {pkg['version']} (Liquibase core {core}, java {java})"

    def prepare(self, root, n, k):
        super().prepare(root, n, k)
        self.dir = root / "liquibase"
        self.dir.mkdir(parents=True)
        # formatted SQL: one changeset per migration, its undo as `--rollback` lines
        lines = ["-- liquibase formatted sql", ""]
        for i in range(1, n + 1):
            up, down = statements(i, k)
            lines.append(f"-- changeset bench:{i}")
            lines += [f"{s};" for s in up]
            lines += [f"-- rollback {s};" for s in down]
            lines.append("")
        (self.dir / "changelog.sql").write_text("\n".join(lines))

    def _cmd(self, srv, db, *args):
        run(
            [
                "sh",
                str(LIQUIBASE),
                f"--url=jdbc:mariadb://127.0.0.1:{srv.port}/{db}",
                "--username=root",
                "--password=",
                f"--search-path={self.dir}",
                "--changelog-file=changelog.sql",
                "--show-banner=false",
                "--log-level=SEVERE",
                *args,
            ]
        )

    def apply(self, srv, db):
        self._cmd(srv, db, "update")

    def undo(self, srv, db):
        self._cmd(srv, db, "rollback-count", f"--count={self.n}")


ALL_TOOLS: list[Tool] = [
    Raw(),
    RawLedger(),
    DbrollSql(),
    Dbroll(),
    Dbmate(),
    Liquibase(),
    Yoyo(),
]
if BASELINE:
    ALL_TOOLS.insert(4, DbrollBaseline())


# ------------------------------------------------------------------ apply all / undo all


# per tool and run: wall seconds and client CPU seconds of apply-all and undo-all
MEASURES = ("apply", "undo", "apply_cpu", "undo_cpu")


def bench_scenario(srv: Server, n: int, k: int, tools: list[Tool], label: str = "") -> dict:
    """{tool: {apply, undo (medians), runs, apply_s, undo_s (samples), error}}."""
    root = WORK / "gen" / f"{n}x{k}{label}"
    shutil.rmtree(root, ignore_errors=True)
    res: dict[str, dict] = {}
    active: list[Tool] = []
    for t in tools:
        res[t.name] = {**{f"{m}_s": [] for m in MEASURES}, "error": None, "capped": False}
        try:
            t.prepare(root, n, k)
            t.setup(srv)
            active.append(t)
        except Exception as e:  # noqa: BLE001 - reported, the run goes on
            res[t.name]["error"] = f"prepare: {e}"
            log(f"    {t.name} not measured: prepare failed: {e}")
    for r in range(RUNS):
        order = active[r % len(active) :] + active[: r % len(active)] if active else []
        done = []
        for t in order:
            rt = res[t.name]
            if rt["error"] or (rt["capped"] and len(rt["apply_s"]) >= min(RUNS, 3)):
                continue
            db = srv.fresh(f"b_{t.key}")
            try:
                a, a_cpu = timed_cpu(lambda t=t, db=db: t.apply(srv, db))
                srv.expect_tables(db, "apply", n * k)
                t.check(srv, db, "apply")
                if t.key == "dbroll":  # the fixed part: start, read N files and N history rows
                    rt.setdefault("noop_s", []).append(timed(lambda t=t, db=db: t.apply(srv, db)))
                u, u_cpu = timed_cpu(lambda t=t, db=db: t.undo(srv, db))
                srv.expect_tables(db, "undo", n * k)
                t.check(srv, db, "undo")
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                rt["error"] = str(e)[:300]
                log(f"    {t.name} failed: {rt['error']}")
                continue
            finally:
                srv.query(f"DROP DATABASE IF EXISTS `{db}`")
            for m, x in zip(MEASURES, (a, u, a_cpu, u_cpu), strict=True):
                rt[f"{m}_s"].append(x)
            done.append(f"{t.name} {a:.2f}/{u:.2f}")
            if r == 0 and t.key not in ("raw", "dbroll") and a + u > SLOW_S and RUNS > 3:
                rt["capped"] = True
        log(f"  {n}x{k}{label} run {r + 1}/{RUNS} (apply/undo s): " + ", ".join(done))
    for rt in res.values():
        if rt.get("noop_s"):
            rt["noop"] = statistics.median(rt["noop_s"])
        rt["runs"] = len(rt["apply_s"])
        for m in MEASURES:
            rt[m] = statistics.median(rt[f"{m}_s"]) if rt[f"{m}_s"] else None
    return res


# ------------------------------------------------------------------ metadata-lock pile-up


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of xs, in ms."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))] * 1000


def mdl_once(srv: Server, start: Callable[[str], subprocess.Popen] | None, hold: float) -> dict:
    """One case: holder keeps `t` open, a migration (if any) ALTERs it, a reader polls it."""
    db = srv.fresh("mdl")
    c = srv.admin(db, autocommit=True)
    c.cursor().execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    c.cursor().execute("INSERT INTO t SELECT seq, seq FROM seq_1_to_1000")
    c.close()
    holder = srv.admin(db)  # autocommit off: its transaction holds the table's metadata lock
    hc = holder.cursor()
    hc.execute("START TRANSACTION")
    hc.execute("SELECT * FROM t")
    hc.fetchall()

    samples: list[tuple[float, float | None]] = []  # (started at, latency or None on error)
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        conn = srv.admin(db, autocommit=True, read_timeout=60)
        cur = conn.cursor()
        deadline = time.perf_counter() + hold + 75
        for _ in range(int((hold + 75) / 0.01)):  # bounded in count and in time
            if stop.is_set() or time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            try:
                cur.execute("SELECT COUNT(*) FROM t WHERE v > 0")
                cur.fetchall()
                samples.append((t0, time.perf_counter() - t0))
            except pymysql.MySQLError as e:
                samples.append((t0, None))
                errors.append(str(e)[:200])
                conn.close()
                conn = srv.admin(db, autocommit=True, read_timeout=60)
                cur = conn.cursor()
            time.sleep(0.01)
        conn.close()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    time.sleep(0.5)
    t_start = time.perf_counter()
    proc = start(db) if start else None
    ended: list[float] = []
    if proc is not None:
        threading.Thread(
            target=lambda: (proc.wait(), ended.append(time.perf_counter())), daemon=True
        ).start()
    time.sleep(hold)
    t_release = time.perf_counter()
    holder.commit()  # the long transaction ends
    holder.close()
    outcome, rc = "-", None
    if proc is not None:
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # the migration we started
            proc.wait()
            rc = "killed"
        time.sleep(0.05)
        took = (ended[0] if ended else time.perf_counter()) - t_start
        cols = srv.query(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 't' AND column_name = 'w'",
            (db,),
        )[0][0]
        state = "applied" if cols else "not applied"
        waited = "before" if took < hold else "after"
        outcome = f"exit {rc}, {state}, {took:.1f} s ({waited} release)"
    time.sleep(0.3)
    stop.set()
    th.join(timeout=90)
    window = [lat for t0, lat in samples if t_start <= t0 < t_release]
    werr = sum(1 for t0, lat in samples if t_start <= t0 < t_release and lat is None)
    return {
        "window_lat": [x for x in window if x is not None],
        "errors": werr,
        "all_errors": len(errors),
        "error_text": errors[:3],
        "max_all_ms": max((lat for _, lat in samples if lat is not None), default=0) * 1000,
        "outcome": outcome,
        "rc": rc,
    }


def mdl_scenario(srv: Server) -> list[dict]:
    d = WORK / "gen" / "mdl"
    shutil.rmtree(d, ignore_errors=True)
    (d / "dbroll").mkdir(parents=True)
    (d / "dbroll" / "V1__alter_t.sql").write_text("ALTER TABLE t ADD COLUMN w INT NULL;\n")
    (d / "dbmate").mkdir()
    (d / "dbmate" / "00000000000001_alter_t.sql").write_text(
        "-- migrate:up\nALTER TABLE t ADD COLUMN w INT NULL;\n\n-- migrate:down\n"
        "ALTER TABLE t DROP COLUMN w;\n"
    )

    def popen(cmd: list[str]) -> subprocess.Popen:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)

    def dbroll(extra: list[str]) -> Callable[[str], subprocess.Popen]:
        return lambda db: popen(
            [DBROLL, "migrate", "--dsn", srv.url(db), "--migrations", str(d / "dbroll"), *extra]
        )

    cases: list[tuple[str, Callable[[str], subprocess.Popen] | None]] = [
        ("idle (holder open, no migration)", None),
        (
            "dbroll --lock-wait-timeout 0 --lock-retries 20",
            dbroll(["--lock-wait-timeout", "0", "--lock-retries", "20"]),
        ),
        (
            "dbroll --lock-wait-timeout 1 --lock-retries 20",
            dbroll(["--lock-wait-timeout", "1", "--lock-retries", "20"]),
        ),
        (
            "dbroll --lock-wait-timeout 1 --lock-retries 1 (gives up before the holder ends)",
            dbroll(["--lock-wait-timeout", "1", "--lock-retries", "1"]),
        ),
    ]
    if DBMATE.exists():
        cases.append(
            (
                "dbmate up (waits on the lock)",
                lambda db: popen(
                    [
                        str(DBMATE),
                        "--no-dump-schema",
                        "-u",
                        srv.url(db),
                        "-d",
                        str(d / "dbmate"),
                        "up",
                    ]
                ),
            )
        )
    pooled: dict[str, dict] = {
        label: {"lat": [], "errors": 0, "outcomes": [], "max_all_ms": 0.0, "error_text": []}
        for label, _ in cases
    }
    for r in range(MDL_REPS):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        for label, fn in order:
            one = mdl_once(srv, fn, MDL_HOLD)
            p = pooled[label]
            p["lat"] += one["window_lat"]
            p["errors"] += one["errors"]
            p["outcomes"].append(one["outcome"])
            p["max_all_ms"] = max(p["max_all_ms"], one["max_all_ms"])
            p["error_text"] += one["error_text"]
            log(
                f"  lock wait run {r + 1}/{MDL_REPS}: {label}: {len(one['window_lat'])} reads, "
                f"p99 {pct(one['window_lat'], 0.99):.1f} ms, {one['errors']} errors; "
                f"{one['outcome']}"
            )
    return [
        {
            "case": label,
            "queries": len(p["lat"]) + p["errors"],
            "errors": p["errors"],
            "p50_ms": pct(p["lat"], 0.5),
            "p99_ms": pct(p["lat"], 0.99),
            "max_ms": max(p["lat"], default=0) * 1000,
            "outcomes": p["outcomes"],
            "error_text": p["error_text"][:3],
        }
        for label, p in pooled.items()
    ]


# ------------------------------------------------------------------ plan timing, start-up


def plan_timing() -> dict:
    try:
        from pipeline.manifest import (
            Manifest,
            ManifestMigration,
            ScriptRef,
            manifest_from_bytes,
        )
        from pipeline.migrations.model import Version
        from pipeline.perf import gc_paused
        from pipeline.plan import make_plan, render_text
    except Exception as e:  # noqa: BLE001 - reported
        return {"error": f"cannot import the planner: {type(e).__name__}: {e}"}
    rows = []
    sizes = [1000, 10_000] if QUICK else [1000, 10_000, 100_000]
    for n in sizes:
        entries = tuple(
            ManifestMigration(
                Version.parse(str(i)),
                f"create table t{i}",
                ScriptRef(f"sql/up/{i}__t{i}.sql", f"V{i}__t{i}.sql", f"{i:064x}"),
                ScriptRef(f"sql/undo/{i}__t{i}.sql", f"U{i}__t{i}.sql", f"{i + n:064x}"),
                True,
                "additive",
                created_tables=(f"t{i}",),
            )
            for i in range(1, n + 1)
        )
        # manifest.json bytes as the build writes them; the CLI parses them, then plans
        blobs = {k: Manifest(str(k), "flyway", entries[:k]).canonical_bytes() for k in (0, n)}
        row: dict = {"n": n}
        loads = []
        reps = 5
        for direction, (frm, to, strategy) in {
            "upgrade": (0, n, "auto"),  # empty -> n: n apply steps
            "rollback": (n, 0, "undo"),  # n -> empty: n undo steps
        }.items():
            times, steps = [], 0
            while len(times) < reps:
                gc.collect()  # the previous plan's garbage is not this one's cost
                t0 = time.perf_counter()
                deployed = manifest_from_bytes(blobs[frm], {}, source="bench", verify=False)
                target = manifest_from_bytes(blobs[to], {}, source="bench", verify=False)
                t1 = time.perf_counter()
                plan = make_plan(deployed, target, None, strategy=strategy)
                text = render_text(plan)
                times.append(time.perf_counter() - t1)
                loads.append(t1 - t0)
                steps = len(plan.steps)
                del plan, text, deployed, target
                if len(times) == 1:
                    # at least 5 samples and about 1 s of them: at 1k a plan takes ~10 ms,
                    # and 5 samples of that are at the mercy of one scheduler hiccup
                    reps = max(reps, min(PLAN_MAX_REPS, math.ceil(1.0 / max(times[0], 1e-3))))
            row[direction] = statistics.median(times)
            row[f"{direction}_steps"] = steps
        row["load"] = statistics.median(loads)
        row["reps"] = reps
        # for scale: what a linear loop in C (the JSON parser over the same bytes, cyclic GC
        # paused as parse and plan pause it) shows between these sizes on this machine
        js = []
        for _ in range(reps):
            gc.collect()
            with gc_paused():
                js.append(timed(lambda b=blobs[n]: json.loads(b)))
        row["json"] = statistics.median(js)
        # the canonical JSON + sha256 the build computes for a manifest made in memory
        sha = []
        for _ in range(5):
            m = Manifest(str(n), "flyway", entries)
            sha.append(timed(lambda m=m: m.sha256))
        row["sha256"] = statistics.median(sha)
        row["worst"] = max(row["upgrade"], row["rollback"])
        row["us_per_migration"] = row["worst"] / n * 1e6
        rows.append(row)
        log(
            f"  plan {n}: upgrade {row['upgrade']:.3f} s ({row['upgrade_steps']} steps), "
            f"rollback {row['rollback']:.3f} s ({row['rollback_steps']} steps); "
            f"parse of both manifest.json {row['load']:.3f} s; "
            f"build-time sha256 of one manifest {row['sha256']:.3f} s; "
            f"json.loads {row['json']:.3f} s; {reps} runs"
        )
    a, b = rows[0], rows[-1]

    def exponent(key: str) -> float:
        return math.log(b[key] / a[key]) / math.log(b["n"] / a["n"])

    return {"rows": rows, "slope": exponent("worst"), "json_slope": exponent("json")}


def plan_cli_timing() -> dict:
    """`dbroll plan --out` end to end, as an operator or the rollback pipeline runs it: process
    start, both manifest directories read with every script's sha256 checked, the plan, the
    risk lint of the scripts to run, the text on stdout and the bundle written. Local
    manifests (no S3), no database; rolling back from N migrations to the first one."""
    rows = []
    for n in [1000] if QUICK else [1000, 10_000]:
        root = WORK / "gen" / f"plan-cli-{n}"
        shutil.rmtree(root, ignore_errors=True)
        sides = {"deployed": n, "target": 1}
        for side, count in sides.items():
            write_dbroll_dir(root / f"{side}-migrations", count, 1)
            run(
                [DBROLL, "manifest", "build", "--migrations", str(root / f"{side}-migrations")]
                + ["--out", str(root / side)]
            )
        bundle = root / "bundle.tgz"
        cmd = [DBROLL, "plan", "--from", str(root / "deployed"), "--to", str(root / "target")]
        cmd += ["--strategy", "undo", "--out", str(bundle)]
        times = [timed(lambda cmd=cmd: run(cmd)) for _ in range(5)]
        rows.append({"n": n, "s": statistics.median(times), "bundle_bytes": bundle.stat().st_size})
        log(f"  dbroll plan --out, {n} -> 1 migrations: {rows[-1]['s']:.2f} s")
        shutil.rmtree(root, ignore_errors=True)
    return {"rows": rows}


# The libraries the mission prescribes for dbroll's runtime (boto3 is imported lazily): no
# tool built on them starts faster than a Python that imports these three and does nothing.
STACK = ("click", "pymysql", "structlog")


def startup(srv: Server) -> dict:
    # the interpreter of dbroll's own install (a user's image), not the harness's dev venv
    sibling = Path(DBROLL).parent / "python"
    py = str(sibling) if sibling.exists() else sys.executable

    # -I: with `-c`, Python puts the working directory first on sys.path, so from the
    # checkout `import pipeline.cli` would load the source tree (and, under
    # PYTHONDONTWRITEBYTECODE, compile it each time) instead of the install dbroll runs
    def python_c(code: str) -> list[float]:
        return [timed(lambda: run([py, "-I", "-c", code])) for _ in range(10)]

    floor = python_c("pass")
    stack = python_c("import " + ", ".join(STACK))
    imp = python_c("import pipeline.cli")
    help_t = [timed(lambda: run([DBROLL, "--help"])) for _ in range(10)]
    db = srv.fresh("startup")
    # the raw client's own share of every run: start, connect, nothing to do
    client = [timed(lambda: Raw()._client(srv, db, Path(os.devnull))) for _ in range(10)]
    d = WORK / "gen" / "100x1" / "dbroll"
    if not d.is_dir():
        Dbroll().prepare(WORK / "gen" / "startup", 100, 1)
        d = WORK / "gen" / "startup" / "dbroll"
    run([DBROLL, "migrate", "--dsn", srv.url(db), "--migrations", str(d)])
    status = [
        timed(lambda: run([DBROLL, "status", "--dsn", srv.url(db), "--migrations", str(d)]))
        for _ in range(5)
    ]
    return {
        "python": py,
        "python_s": statistics.median(floor),
        "stack_s": statistics.median(stack),
        "client_s": statistics.median(client),
        "import_s": statistics.median(imp),
        "help_s": statistics.median(help_t),
        "status_s": statistics.median(status),
    }


# ------------------------------------------------------------------ where dbroll's time goes

# py-spy, installed by run.sh into bench/.work/venv-tools (not into dbroll's venv, which
# stays what a user's image holds)
PYSPY = (
    os.environ.get("BENCH_PYSPY")
    or os.environ.get("BENCH_INSTALLED_PYSPY")
    or str(WORK / "venv-tools" / "bin" / "py-spy")
)
PROFILE_RATE = 1000  # samples per second
PROFILE_REPS = 1 if QUICK else 3
PROFILE = tuple(
    int(x) for x in os.environ.get("BENCH_PROFILE", "100x1" if QUICK else "1000x1").split("x")
)


def profile_scenario(srv: Server, n: int, k: int) -> dict:
    """py-spy's wall-clock samples of `dbroll migrate` and `dbroll undo --target 0` (n
    migrations of k statements, fresh database, datadir on disk), classed by
    wallprofile.KINDS and summed over PROFILE_REPS runs, with the raw client's apply and
    undo timed in the same runs (alternating which goes first). Non-blocking sampling: the
    process is never paused, so its time is not inflated; a sample may catch a stack
    mid-change, which moves it between neighbouring classes, not out of the total."""
    if not Path(PYSPY).exists():
        raise ToolError(
            "py-spy missing: bench/run.sh installs it into bench/.work/venv-tools "
            "(or set BENCH_PYSPY)"
        )
    root = WORK / "gen" / f"profile-{n}x{k}"
    shutil.rmtree(root, ignore_errors=True)
    dbroll, raw = Dbroll(), Raw()
    for t in (dbroll, raw):
        t.prepare(root, n, k)
    phases = ("apply", "undo")
    tallies = {ph: Counter() for ph in phases}  # (class, innermost frame) -> samples
    walls: dict[str, list[float]] = {
        f"{who}_{ph}": [] for who in ("dbroll", "raw") for ph in phases
    }

    def profiled(db: str) -> None:
        for ph in phases:
            out = WORK / f"profile-{ph}.txt"  # the last run's stacks: open in speedscope.app
            argv = dbroll.argv(srv, db, ph)
            cmd = [PYSPY, "record", "--idle", "--nonblocking", "--nolineno"]
            cmd += ["--rate", str(PROFILE_RATE), "--format", "raw", "--output", str(out)]
            walls[f"dbroll_{ph}"].append(timed(lambda cmd=cmd, argv=argv: run([*cmd, "--", *argv])))
            srv.expect_tables(db, ph, n * k)
            tallies[ph].update(wallprofile.tally(out.read_text().splitlines()))

    def unprofiled(db: str) -> None:
        for ph in phases:
            walls[f"raw_{ph}"].append(timed(lambda ph=ph: getattr(raw, ph)(srv, db)))

    pair = [(profiled, "b_profile"), (unprofiled, "b_raw")]
    for r in range(PROFILE_REPS):
        for fn, name in pair if r % 2 == 0 else pair[::-1]:
            db = srv.fresh(name)
            try:
                fn(db)
            finally:
                srv.query(f"DROP DATABASE IF EXISTS `{db}`")
    version = subprocess.run([PYSPY, "--version"], capture_output=True, text=True).stdout
    return {
        "n": n,
        "k": k,
        "reps": PROFILE_REPS,
        "rate": PROFILE_RATE,
        "pyspy": version.strip(),
        "stacks": str(WORK.relative_to(REPO) if WORK.is_relative_to(REPO) else WORK),
        "samples": {ph: dict(wallprofile.breakdown(tallies[ph])) for ph in phases},
        "top": {
            ph: {
                kind: wallprofile.top_frames(tallies[ph], kind, 3)
                for kind in ("between", "load", "other")
            }
            for ph in phases
        },
        **{key: statistics.median(v) for key, v in walls.items()},
    }


def render_profile(p: dict) -> list[str]:
    head = ["## Where dbroll's time goes (py-spy)", ""]
    if "error" in p:
        return head + [f"Not measured: {p['error']}", ""]
    per_run = p["reps"] * p["rate"]  # samples of one run's second
    out = head + [
        f"`dbroll migrate` and `dbroll undo --target 0` of {p['n']} migrations x {p['k']} "
        f"statement(s), datadir on disk, sampled by {p['pyspy']} at {p['rate']} Hz in "
        f"wall-clock mode (`record --idle --nonblocking`), {p['reps']} run(s) each, every "
        "sample put in the first class whose rule its stack matches (bench/wallprofile.py). "
        "Seconds are per run. The raw client, timed in the same runs, took "
        f"{p['raw_apply']:.2f} s / {p['raw_undo']:.2f} s (median); dbroll under the sampler "
        f"{p['dbroll_apply']:.2f} s / {p['dbroll_undo']:.2f} s. The last run's stacks are in "
        f"{p.get('stacks', 'bench/.work')}/profile-apply.txt and profile-undo.txt (py-spy's "
        "collapsed format: speedscope.app opens them); `make profile` records them alone.",
        "",
        "| where | apply s | share | undo s | share |",
        "|---|---|---|---|---|",
    ]
    tot = {ph: sum(p["samples"][ph].values()) or 1 for ph in ("apply", "undo")}
    for key, label in wallprofile.KINDS:
        a, u = p["samples"]["apply"].get(key, 0), p["samples"]["undo"].get(key, 0)
        out.append(
            f"| {label} | {a / per_run:.2f} | {a / tot['apply']:.0%} | {u / per_run:.2f} | "
            f"{u / tot['undo']:.0%} |"
        )
    gap = {ph: p[f"dbroll_{ph}"] - tot[ph] / per_run for ph in ("apply", "undo")}
    out += [
        f"| all samples | {tot['apply'] / per_run:.2f} | | {tot['undo'] / per_run:.2f} | |",
        f"| not sampled: py-spy starting and attaching (the interpreter's first milliseconds "
        f"go unseen), writing its output | {gap['apply']:.2f} | | {gap['undo']:.2f} | |",
        "",
    ]
    tops = []
    for ph in ("apply", "undo"):
        for kind, frames in p["top"][ph].items():
            big = [(f, c / per_run * 1000) for f, c in frames if c / per_run >= 0.002]
            if big:
                tops.append(f"- {ph}, {kind}: " + ", ".join(f"`{f}` {ms:.0f} ms" for f, ms in big))
    if tops:
        out += [
            "Innermost frames where the client's own classes spent most (2 ms or more per run):",
            "",
        ]
        out += tops + [""]
    return out


# ------------------------------------------------------------------ report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def table(rows: dict, raw_name: str = "mariadb client") -> list[str]:
    if isinstance(rows.get("error"), str):  # the whole scenario failed
        return [f"Not measured: {rows['error']}"]
    raw = rows.get(raw_name) or {}
    out = [
        "| tool | apply s | x raw | undo all s | x raw | client CPU s (apply / undo) | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        if r["apply"] is None:
            out.append(f"| {name} | failed: {r['error']} | | | | | 0 |")
            continue
        cpu = f"{fmt(r.get('apply_cpu'))} / {fmt(r.get('undo_cpu'))}"
        ra = r["apply"] / raw["apply"] if raw.get("apply") else None
        ru = r["undo"] / raw["undo"] if raw.get("undo") else None
        note = f" (then failed: {r['error'][:80]})" if r["error"] else ""
        out.append(
            f"| {name} | {r['apply']:.2f} | {fmt(ra)} | {r['undo']:.2f} | {fmt(ru)} | {cpu} | "
            f"{r['runs']}{note} |"
        )
    return out


def machine_facts() -> dict:
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    cpu = "?"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "mem": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def soft(fn: Callable[[], object]) -> object:
    """Run one section; a failure is reported in RESULTS.md instead of ending the run."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - reported
        log(f"  section failed: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}


def main() -> None:
    started = time.time()
    WORK.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    load_before = os.getloadavg()
    wanted = {w.strip() for w in os.environ.get("BENCH_TOOLS", "").split(",") if w.strip()}
    tools, missing, versions = [], {}, {}
    for t in ALL_TOOLS:
        if (
            wanted
            and t.key not in ("raw", "ledger", "dbroll-sql", "dbroll-before")
            and t.key not in wanted
        ):
            continue
        why = t.available()
        if why:
            missing[t.name] = why
            log(f"not measured: {t.name}: {why}")
            continue
        tools.append(t)
        try:
            versions[t.name] = (t.version().strip().splitlines() or ["?"])[0]
        except Exception:  # noqa: BLE001
            versions[t.name] = "?"
    if not any(t.key == "raw" for t in tools):
        raise SystemExit("bench: the mariadb client is the floor of every ratio and is missing")

    default = "100x1" if QUICK else "100x1,1000x1,100x10"
    scenarios = [
        (int(a), int(b))
        for a, b in (x.split("x") for x in os.environ.get("BENCH_SCENARIOS", default).split(","))
    ]
    # first, in a quiet process and machine: measured after the scenarios (this process's
    # heap grown, the servers' page cache and purge behind), the growth exponent moved from
    # 1.08 to 1.20 between two runs of the same plan code, json.loads's own from 0.99 to 1.10
    log("plan + render timing")
    plans = soft(plan_timing)
    results: dict[str, dict] = {}
    disk = Server(WORK / "db")
    log(
        f"MariaDB {disk.version}, datadir {disk.datadir} ({disk.fs}), port {disk.port}; "
        f"{RUNS} runs; tools: {', '.join(t.name for t in tools)}"
    )
    try:
        for n, k in scenarios:
            log(f"scenario: {n} migrations x {k} statement(s), datadir on disk")
            results[f"{n}x{k}"] = soft(lambda n=n, k=k: bench_scenario(disk, n, k, tools))
        log(f"lock wait: holder keeps t open {MDL_HOLD:.0f} s, {MDL_REPS} run(s) per case")
        mdl = soft(lambda: mdl_scenario(disk))
        log("start-up")
        start = soft(lambda: startup(disk))
        log(f"where dbroll's time goes: py-spy, {PROFILE[0]}x{PROFILE[1]}, {PROFILE_REPS} run(s)")
        prof = soft(lambda: profile_scenario(disk, *PROFILE))
        disk_info = {"version": disk.version, "datadir": str(disk.datadir), "fs": disk.fs}
    finally:
        disk.stop()

    shm_rows, shm_info = {}, None
    shm_n = 100 if QUICK else 1000
    if os.access("/dev/shm", os.W_OK):
        shm = Server(Path("/dev/shm"))
        shm_info = {"datadir": str(shm.datadir), "fs": shm.fs}
        try:
            log(f"scenario: {shm_n} x 1 on /dev/shm (dbroll vs raw)")
            shm_rows = soft(
                lambda: bench_scenario(
                    shm,
                    shm_n,
                    1,
                    [t for t in tools if t.key in ("raw", "dbroll", "dbroll-before")],
                    label="-shm",
                )
            )
        finally:
            shm.stop()
    plan_cli = soft(plan_cli_timing)
    report = {
        "quick": QUICK,
        "runs": RUNS,
        "facts": facts,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "disk": disk_info,
        "shm": shm_info,
        "shm_n": shm_n,
        "versions": versions,
        "missing": missing,
        "scenarios": results,
        "shm_rows": shm_rows,
        "mdl": mdl,
        "startup": start,
        "profile": prof,
        "plans": plans,
        "plan_cli": plan_cli,
        "elapsed_s": time.time() - started,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(),
    }
    (WORK / "results.json").write_text(json.dumps(report, indent=2, default=str))
    text = render(report)
    log("")
    log(text)
    OUT.write_text(text)
    log(f"written: {OUT} and {WORK / 'results.json'}")


def command_line() -> str:
    env = " ".join(
        f"{k}={v}"
        for k, v in sorted(os.environ.items())
        if k.startswith("BENCH_") and not k.startswith("BENCH_INSTALLED_")
    )
    return (env + " " if env else "") + "make bench"


def on_stack(row: dict | None, raw: dict, extra: float | None) -> list[str]:
    """A client-based row's apply and undo as a tool on the mission's stack would take them
    (plus the bare stack's start-up less the client's own, `extra`), over the raw client."""
    if extra is None or not row or not row.get("apply"):
        return ["", ""]
    return [f"{(row[m] + extra) / raw[m]:.2f}x" for m in ("apply", "undo")]


def each_run(dr: dict, raw: dict, m: str, goal: float) -> str:
    """dbroll over the raw client in each repetition: the range, and in how many repetitions
    the ratio met the goal."""
    a, b = dr.get(f"{m}_s") or [], raw.get(f"{m}_s") or []
    if not a or len(a) != len(b):
        return ""
    rs = [x / y for x, y in zip(a, b, strict=True)]
    return f"{min(rs):.2f}-{max(rs):.2f}x, {sum(r <= goal for r in rs)} of {len(rs)} within"


def ratio_interval(
    a: list[float], b: list[float], level: float = 0.9, reps: int = 2000
) -> tuple[float, float] | None:
    """A paired bootstrap interval of median(a) / median(b): the repetitions (a[i] and b[i]
    measured minutes apart) resampled with replacement `reps` times. Seeded, so the same
    samples give the same interval (`--render` stays byte-identical)."""
    n = len(a)
    if n < 3 or n != len(b):
        return None
    rng = random.Random(0)
    rs = sorted(
        statistics.median(a[i] for i in pick) / statistics.median(b[i] for i in pick)
        for pick in (rng.choices(range(n), k=n) for _ in range(reps))
    )
    tail = int(reps * (1 - level) / 2)
    return rs[tail], rs[reps - 1 - tail]


def measured(dr: dict, raw: dict, m: str) -> str:
    """The ratio of the medians, which the verdict judges, with its 90% interval."""
    ratio = dr[m] / raw[m]
    iv = ratio_interval(dr.get(f"{m}_s") or [], raw.get(f"{m}_s") or [])
    return f"{ratio:.2f}x" + (f" ({iv[0]:.2f}-{iv[1]:.2f})" if iv else "")


GOAL_HEADER = "| goal | measured | | each run | floor on this stack | dbroll's SQL on this stack |"
GOAL_COLUMNS = GOAL_HEADER.count("|") - 1
PLAN_GOAL = "plan over 10k migrations < 0.3 s and linear"
HELP_GOAL = "`dbroll --help` < 0.3 s"


def goal_row(*cells: str) -> str:
    """A row of the Goals table; the columns after the given cells are left empty."""
    row = "| " + " | ".join(cells) + " |"
    return row + " |" * (GOAL_COLUMNS - len(cells))


def render(rep: dict) -> str:
    f = rep["facts"]
    la, lb = rep["load_before"], rep["load_after"]
    lines = [
        "# Benchmark results",
        "",
    ]
    if rep["quick"]:
        lines += [
            "**BENCH_QUICK=1: a check of the harness (N=100 only, few runs), "
            "not figures to quote.**",
            "",
        ]
    lines += [
        f"- command: `{rep['command']}` (bench/run.sh -> bench/harness.py); "
        f"{rep['date']}; whole run {rep['elapsed_s']:.0f} s",
        f"- machine: {f['nproc']} cores ({f['cpu']}), {f['mem']} memory, Linux {f['kernel']}, "
        f"CPython {f['python']}; load average {la[0]:.2f} at the start, {lb[0]:.2f} at the end",
        f"- MariaDB {rep['disk']['version']}, one throwaway server started by the harness "
        "(as pipeline.devdb does: no binlog, no doublewrite, "
        "innodb_flush_log_at_trx_commit=0); "
        f"datadir on disk ({rep['disk']['fs']}: {rep['disk']['datadir']}) for everything but "
        "the /dev/shm table",
        "- tools: " + "; ".join(f"{k}: {v}" for k, v in rep["versions"].items()),
        f"- medians of {rep['runs']} runs (column `runs`: fewer when a slow peer was capped "
        f"at 3, see BENCH_SLOW_S), tools interleaved and rotated within each run, a fresh "
        "database for each tool in each run; apply and undo are checked by counting the tables",
    ]
    if rep["missing"]:
        lines.append(
            "- **not measured**: " + "; ".join(f"{k} ({v})" for k, v in rep["missing"].items())
        )
    lines.append("")

    goals: list[str] = []
    body: list[str] = []
    st = rep["startup"] if "error" not in rep["startup"] else None
    # what a tool with no cost of its own per migration would add to the raw client's run:
    # the start-up of the mission's stack, less the client's own start and connect
    extra = st["stack_s"] - st["client_s"] if st and "stack_s" in st else None
    for key, rows in rep["scenarios"].items():
        n, k = key.split("x")
        body += [f"## {n} migrations x {k} statement(s) each (datadir on disk)", ""]
        body += table(rows)
        body.append("")
        if isinstance(rows.get("error"), str):
            goals.append(goal_row(f"apply/undo {key}", "scenario failed", verdict(False)))
            continue
        raw, dr = rows.get("mariadb client", {}), rows.get("dbroll")
        led = rows.get(RawLedger.name)
        own = rows.get(DbrollSql.name)
        if dr and dr["apply"] is not None and raw.get("apply"):
            floors, owns = on_stack(led, raw, extra), on_stack(own, raw, extra)
            for i, (m, goal, against) in enumerate(
                (("apply", 1.2, "raw"), ("undo", 1.3, "raw down"))
            ):
                goals.append(
                    goal_row(
                        f"{m} {key}: dbroll <= {goal}x {against}",
                        measured(dr, raw, m),
                        verdict(dr[m] / raw[m] <= goal),
                        each_run(dr, raw, m, goal),
                        floors[i],
                        owns[i],
                    )
                )
        elif dr:
            goals.append(
                goal_row(f"apply/undo {key}", f"dbroll failed: {dr['error']}", verdict(False))
            )
        if dr and dr["apply"] is not None and led and led.get("apply") and raw.get("apply"):
            body += [
                f"Of dbroll's gap to the raw client ({dr['apply'] - raw['apply']:+.2f} s apply, "
                f"{dr['undo'] - raw['undo']:+.2f} s undo), the two history writes per migration "
                f"alone, sent by the raw client in packets with the DDL as dbroll sends them, cost "
                f"{led['apply'] - raw['apply']:+.2f} s / {led['undo'] - raw['undo']:+.2f} s: "
                f"dbroll is {dr['apply'] / led['apply']:.2f}x / {dr['undo'] / led['undo']:.2f}x "
                "that floor."
                + (
                    f" dbroll's own statements (session setup, history rows, progress marks "
                    f"and the migrations), sent by the raw client, take {own['apply']:.2f} s / "
                    f"{own['undo']:.2f} s: of the gap, {own['apply'] - raw['apply']:+.2f} s / "
                    f"{own['undo'] - raw['undo']:+.2f} s is the server running dbroll's SQL and "
                    f"{dr['apply'] - own['apply']:+.2f} s / {dr['undo'] - own['undo']:+.2f} s is "
                    "dbroll's own process (start-up, reading files and history, Python "
                    "between statements)."
                    if own and own.get("apply") and own.get("undo")
                    else ""
                )
                + (
                    f" Its fixed part, a `dbroll migrate` with nothing to do on the applied "
                    f"database (process start, imports, reading the {n} files and {n} history "
                    f"rows), takes {dr['noop']:.2f} s."
                    if dr.get("noop")
                    else ""
                )
                + (
                    f" dbroll's own process used {dr['apply_cpu']:.2f} s of CPU applying and "
                    f"{dr['undo_cpu']:.2f} s undoing (the raw client {raw['apply_cpu']:.2f} s / "
                    f"{raw['undo_cpu']:.2f} s): time the server spends waiting for it."
                    if dr.get("apply_cpu") is not None and raw.get("apply_cpu") is not None
                    else ""
                ),
                "",
            ]
    if rep["shm_rows"]:
        body += [
            f"## {rep['shm_n']} migrations x 1 statement, datadir on /dev/shm ({rep['shm']['fs']})",
            "",
            "DDL costs little in memory, so fixed costs (process start, connections, history "
            "bookkeeping) show. Compare with the disk table of the same N above.",
            "",
        ]
        body += table(rep["shm_rows"])
        body.append("")
    if rep.get("profile") is not None:  # absent from results.json of runs before it was sampled
        body += render_profile(rep["profile"])

    mdl = rep["mdl"]
    if isinstance(mdl, dict):  # the section failed
        goals.append(
            goal_row("readers' p99 while a DDL waits <= 2x idle", "not measured", verdict(False))
        )
        body += ["## Readers while a migration waits on a metadata lock", ""]
        body += [f"Not measured: {mdl['error']}", ""]
        mdl = []
    idle = next((m for m in mdl if m["case"].startswith("idle")), None)
    body += (
        []
        if not mdl
        else [
            "## Readers while a migration waits on a metadata lock",
            "",
            f"A transaction holds table `t` (`START TRANSACTION; SELECT * FROM t`) for "
            f"{MDL_HOLD:.0f} s; a migration `ALTER TABLE t ADD COLUMN` starts; one reader runs "
            "`SELECT COUNT(*) FROM t` every 10 ms on its own connection. Latencies are of the reads "
            "started while the holder was open (the migration waiting), pooled over "
            f"{MDL_REPS} run(s) per case; then the holder commits.",
            "",
            "| case | reads | errors | p50 ms | p99 ms | max ms | migration (exit, result, time) |",
            "|---|---|---|---|---|---|---|",
        ]
    )
    for m in mdl:
        outs = "; ".join(dict.fromkeys(m["outcomes"])) if m["outcomes"] else "-"
        body.append(
            f"| {m['case']} | {m['queries']} | {m['errors']} | {m['p50_ms']:.1f} | "
            f"{m['p99_ms']:.1f} | {m['max_ms']:.1f} | {outs} |"
        )
    body += [""] if mdl else []
    if any(m["error_text"] for m in mdl):
        body += ["Reader errors: " + "; ".join(e for m in mdl for e in m["error_text"]), ""]
    best = next((m for m in mdl if "timeout 0" in m["case"]), None)
    if best and idle:
        ok = best["p99_ms"] <= 2 * idle["p99_ms"] and best["errors"] == 0
        goals.append(
            goal_row(
                "readers' p99 while a DDL waits <= 2x idle, 0 errors "
                "(dbroll --lock-wait-timeout 0)",
                f"{best['p99_ms']:.1f} ms vs idle {idle['p99_ms']:.1f} ms, {best['errors']} errors",
                verdict(ok),
            )
        )

    plans = rep["plans"]
    body += ["## Plan + render time (in process, no database)", ""]
    if "error" in plans:
        body += [f"Not measured: {plans['error']}", ""]
        goals.append(goal_row(PLAN_GOAL, plans["error"], verdict(False)))
    else:
        body += [
            "`make_plan(deployed, target)` + `render_text(plan)` on the two manifests as the "
            "CLI has them: parsed from manifest.json bytes (their sha256 is the stored "
            "file's). upgrade = empty -> N (N apply steps), rollback = N -> empty with "
            "strategy `undo` (N undo steps); medians of at least 5 runs and about 1 s of "
            "runs (column `runs`). Not in the plan time, shown apart: parsing both "
            "manifest.json files, the canonical JSON + sha256 that `manifest build` computes "
            "once per image, and, as a yardstick, the C JSON parser (`json.loads`, with the "
            "cyclic GC paused as parse and plan pause it) over the N-migration manifest.json.",
            "",
            "| migrations | upgrade s | rollback s | us per migration (worse) "
            "| parse both manifests s | build-time sha256 s | json.loads s | runs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in plans["rows"]:
            body.append(
                f"| {p['n']} | {p['upgrade']:.3f} | {p['rollback']:.3f} | "
                f"{p['us_per_migration']:.1f} | {p['load']:.3f} | {p['sha256']:.3f} | "
                f"{p['json']:.3f} | {p['reps']} |"
            )
        body += [
            "",
            f"Growth exponent from {plans['rows'][0]['n']} to {plans['rows'][-1]['n']}: "
            f"{plans['slope']:.2f} (time ~ N^exponent; 1.00 is linear; the goal allows <= 1.15). "
            f"For scale, `json.loads` (a linear loop in C) grows with exponent "
            f"{plans['json_slope']:.2f} over the same sizes in this run.",
            "",
        ]
        ten = next((p for p in plans["rows"] if p["n"] == 10_000), None)
        if ten:
            ok = ten["worst"] < 0.3 and plans["slope"] <= 1.15
            goals.append(
                goal_row(
                    PLAN_GOAL,
                    f"{ten['worst']:.3f} s, exponent {plans['slope']:.2f}",
                    verdict(ok),
                )
            )

    pc = rep.get("plan_cli")  # absent from results.json of runs before it was measured
    if pc is not None:
        body += ["### `dbroll plan --out`, end to end", ""]
        if "error" in pc:
            body += [f"Not measured: {pc['error']}", ""]
        else:
            body += [
                "What an operator or the rollback pipeline waits for: process start, both "
                "local manifest directories read with every script's sha256 checked, the "
                "plan, the risk lint of the undo scripts, the plan on stdout and the bundle "
                "written. Rolling back from N migrations to the first one (N - 1 undo steps); "
                "median of 5. No goal is set for it; the goal above covers plan + render.",
                "",
                "| migrations | seconds | bundle bytes |",
                "|---|---|---|",
            ]
            body += [f"| {r['n']} | {r['s']:.2f} | {r['bundle_bytes']} |" for r in pc["rows"]]
            body.append("")
    s = rep["startup"]
    if "error" in s:
        body += ["## Start-up", "", f"Not measured: {s['error']}", ""]
        goals.append(goal_row(HELP_GOAL, "not measured", verdict(False)))
        s = None
    body += (
        []
        if s is None
        else [
            "## Start-up",
            "",
            "| command | seconds (median) |",
            "|---|---|",
            f"| `python -I -c pass` (interpreter floor) | {s['python_s']:.3f} |",
            *(
                [
                    f"| `python -I -c 'import {', '.join(STACK)}'` (the mission's stack, "
                    f"nothing else) | {s['stack_s']:.3f} |",
                    f"| `mariadb` client: start, connect, run nothing | {s['client_s']:.3f} |",
                ]
                if "stack_s" in s
                else []
            ),
            f"| `python -I -c 'import pipeline.cli'` (dbroll's install) | {s['import_s']:.3f} |",
            f"| `dbroll --help` (10 runs) | {s['help_s']:.3f} |",
            f"| `dbroll status`, 100 applied, up to date (5 runs) | {s['status_s']:.3f} |",
            "",
        ]
    )
    if s is not None:
        goals.append(goal_row(HELP_GOAL, f"{s['help_s']:.3f} s", verdict(s["help_s"] < 0.3)))
    head = [
        "## Goals",
        "",
        GOAL_HEADER,
        "|" + "---|" * GOAL_COLUMNS,
        *goals,
        "",
        "measured: the ratio of the medians, which the verdict judges; in brackets, its 90% "
        "interval from a paired bootstrap of the repetitions (2000 resamples, seeded). When "
        "the interval holds the goal, this disk's noise could turn the verdict either way; "
        "when it lies wholly on one side, the verdict is firm (and a firm MISS below the "
        "floor column is one no tool on this stack could pass). each run: dbroll's time "
        "over the raw client's in the same repetition (minutes apart at most), lowest to "
        "highest, and in how many repetitions that ratio met the goal. Its spread is how much "
        "this machine's disk drifts between two tools' turns, next to the margin of the "
        "verdict.",
        "",
    ]
    if extra is not None:
        head += [
            "floor on this stack: the lowest ratio any tool built on the mission's stack "
            f"(CPython, {', '.join(STACK)}) can reach while it records each migration as dbroll "
            "does, measured in this run: the `mariadb client + history rows` time (the "
            "server's work for a crash-safe record: a row before each migration, marked done "
            f"after it) plus the start-up of a bare `python -I -c 'import {', '.join(STACK)}'` "
            f"({st['stack_s']:.3f} s) less the raw client's own start and connect "
            f"({st['client_s']:.3f} s), over the raw client. It counts no work per migration "
            "on the client side, so it is a lower bound. A goal below its floor cannot be met "
            "on this machine by such a tool. dbroll's SQL on this stack: the same with "
            "`dbroll's SQL via the mariadb client` (every statement dbroll sends, captured "
            "from the server's general log in an untimed run and sent again packet by packet) "
            "in place of the two history rows: what dbroll would take if its process cost "
            "nothing per migration. Both send the history writes as dbroll does, in packets "
            "with the migrations' statements (up to 500 statements of DDL-only migrations in "
            "one), so they add no round trip.",
            "",
        ]
    return "\n".join(lines + head + body)


def profile_only() -> None:
    """`make profile`: the py-spy section alone, on its own throwaway server; printed, and
    the stacks left in bench/.work; RESULTS.md is not touched."""
    WORK.mkdir(parents=True, exist_ok=True)
    srv = Server(WORK / "db")
    try:
        log(f"py-spy: {PROFILE[0]}x{PROFILE[1]}, {PROFILE_REPS} run(s), datadir {srv.datadir}")
        prof = profile_scenario(srv, *PROFILE)
    finally:
        srv.stop()
    log("\n".join(render_profile(prof)))


def rerender() -> None:
    """RESULTS.md again from the last run's results.json; nothing is measured."""
    src = WORK / "results.json"
    if not src.is_file():
        sys.exit(f"bench: {src} missing: run `make bench` first")
    OUT.write_text(render(json.loads(src.read_text())))
    log(f"written: {OUT} (from {src}, measured at its own date)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:
        rerender()
        sys.exit(0)
    if sys.argv[1:] == ["--profile"]:
        profile_only()
        sys.exit(0)
    if sys.argv[1:]:
        sys.exit(
            "usage: harness.py [--render | --profile]  (settings are BENCH_* variables; "
            "see the top)"
        )
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
