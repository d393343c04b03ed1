"""Apply, undo and resume migrations on MariaDB: one runner per database, exact progress.

MariaDB commits every DDL statement on its own, so a migration is never atomic. The
runner therefore writes a ``running`` history row first, executes statement by statement
and records ``statements_done`` as it goes, so a crash leaves an exact record of where it
stopped. Migrations made only of DML (and not marked ``transaction:false``) run in one
transaction together with their history update instead.

Two connections are used: the *control* connection holds the named lock; the *work*
connection runs migration statements, and is replaced after a migration that changed
session state (SET, USE, PREPARE, temporary tables), so nothing leaks into the next
migration and the lock is never dropped by a reset. Consecutive DDL-only migrations go in
one multi-statement packet with all their history writes (see `_run_batch`); the work
connection holds a second lock so that the next runner waits for a killed runner's packet
to end before reading history. Other migrations take one round trip per statement, their
history writes in the same packet as the statement they guard; once a migration may have
changed its session those go on the control connection instead (see `_run_per_statement`).
Client work that need not hold up the server (a finished migration's log line, splitting
the next script) is done while the server runs the statement just sent (see `_spare_time`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pymysql
import structlog

from pipeline.db import history as H
from pipeline.db.connect import (
    ConnectionSpec,
    connect,
    connection_facts,
    read_result,
    send_query,
)
from pipeline.db.history import EventContext, History
from pipeline.db.state import State, analyze
from pipeline.errors import (
    BlockedError,
    BusyError,
    ChecksumDriftError,
    ConfigError,
    ConnectionLostError,
    DatabaseError,
    DbrollError,
    HistoryGapError,
    LockWaitError,
    MigrationFailedError,
)
from pipeline.log import redact
from pipeline.migrations.model import ZERO, MigrationSet, Script, Version
from pipeline.migrations.sqlsplit import SplitError, Statement, split_statements

if TYPE_CHECKING:  # the runner executes plans but does not depend on the planner
    from pipeline.plan import Plan, PlanStep

log = structlog.get_logger(__name__)

ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
RETRYABLE = {ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK}
# Errors that mean "the effect of this statement is already there". Only consulted for the
# first statement resumed after a crash or a lost connection: MariaDB (10.6+) makes each DDL
# statement atomic, but a runner killed (or cut off) after the statement committed and before
# it recorded the fact leaves statements_done one behind.
ALREADY_IN_EFFECT = {
    1007,
    1008,  # database exists / does not exist
    1050,
    1051,  # table exists / unknown table
    1054,  # unknown column (renamed or dropped already)
    1060,
    1061,  # duplicate column / key name
    1091,  # can't drop: does not exist
    1146,  # table does not exist (renamed or dropped already)
    1304,
    1305,  # routine exists / does not exist
    1359,
    1360,  # trigger exists / does not exist
    1537,
    1539,  # event exists / does not exist
    1826,  # duplicate foreign key
}
# Client errors for a connection lost while the server had our statements: server gone away,
# lost during a query, lost reading the server's answer. The server may finish what it was
# running (a middlebox dropped the flow; the session lives on) or not (a failover), writing
# history as it goes: the outcome is the server's record, not the client's guess.
CONNECTION_LOST = {2006, 2013, 2055}
_DML = {"insert", "update", "delete", "replace", "select", "with", "set", "do", "values", "table"}
_SESSION = {"set", "use", "prepare", "lock", "unlock", "deallocate", "execute"}
# statements after which the work connection may be inside a transaction or hold locks (CALL:
# a routine may do anything)
_TXN = {
    "start",
    "begin",
    "commit",
    "rollback",
    "savepoint",
    "release",
    "xa",
    "call",
    "handler",
    "flush",
}

# `migrate --resume-interrupted` stops resuming a migration on its own once runners were
# stopped this many times in a row at the same statement: it likely outlives the time a
# container gets to start (its health check's grace period), and each start would run its
# longest statement again only to be stopped again.
AUTO_RESUME_STOPS = 3


def auto_resumable(row: H.HistoryRow) -> bool:
    """A blocked event `migrate --resume-interrupted` may finish: a migration or repeatable
    left running without a recorded error (stopped, crashed, or its connection lost). Not a
    failed one (its statement would fail again), not an undo (migrate would apply it
    again)."""
    return row.status == H.RUNNING and row.kind in ("migrate", "repeatable")


# A batch (Runner._run_batch) stops at this many migration statements or bytes of SQL,
# counting HISTORY_BYTES (more than any history write takes) per write: its packets stay
# under 1 MiB, the smallest max_allowed_packet any MariaDB or MySQL release defaults to
BATCH_STATEMENTS = 500
BATCH_BYTES = 1 << 20
HISTORY_BYTES = 1024
_WORD = re.compile(r"\s*(?:/\*!\d*\s*)?([A-Za-z]+)(?:\s+([A-Za-z]+))?")


@functools.lru_cache(maxsize=8192)  # asked 3-4 times per statement as it runs
def _first_words(text: str) -> tuple[str, str]:
    m = _WORD.match(text)
    if not m:
        return "", ""
    return m.group(1).lower(), (m.group(2) or "").lower()


def is_dml(stmt: Statement) -> bool:
    word, second = _first_words(stmt.text)
    if word == "set" and second in ("global", "persist", "password", "default", "role"):
        return False
    return word in _DML


def changes_session(stmt: Statement) -> bool:
    word, second = _first_words(stmt.text)
    return word in _SESSION or (word == "create" and second == "temporary")


def keeps_session_clean(stmt: Statement) -> bool:
    """False for a statement after which the work connection may carry session state or an
    open transaction (SET, USE, LOCK, temporary tables, START TRANSACTION...): history writes
    are then no longer sent on it, where they could be rolled back or see another schema."""
    word, _ = _first_words(stmt.text)
    return word not in _TXN and not changes_session(stmt)


@dataclass(frozen=True)
class RunnerOptions:
    lock_timeout: float = 60.0  # how long to wait for another runner
    lock_wait_timeout: int = 5  # per DDL attempt, seconds (0: never queue)
    lock_retries: int = 10  # attempts after the first
    retry_base_delay: float = 0.2
    retry_max_delay: float = 5.0
    strict_future: bool = False
    out_of_order: bool = False
    # migrate first finishes a migration a stopped runner left running (see AUTO_RESUME_STOPS)
    resume_interrupted: bool = False
    context: EventContext = field(default_factory=EventContext)
    # --take-over-gone-runner: whether the ECS task or CodeBuild build a lock row names
    # still runs (pipeline.aws.where.runner_status, bound to AWS clients); see _take_over
    take_over: Callable[[str], Any] | None = None


@dataclass(frozen=True)
class Step:
    kind: str  # migrate | undo | repeatable
    version: Version | None
    description: str
    script: Script
    transaction_allowed: bool = True

    @property
    def label(self) -> str:
        return str(self.version) if self.version is not None else self.script.path


@dataclass
class StepResult:
    step: Step
    status: str  # applied | undone | skipped | failed | lost (connection) | would-run
    statements: int
    statements_done: int
    mode: str  # transaction | per-statement
    duration_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.step.kind,
            "version": str(self.step.version) if self.step.version is not None else None,
            "script": self.step.script.path,
            "description": self.step.description,
            "status": self.status,
            "statements": self.statements,
            "statements_done": self.statements_done,
            "mode": self.mode,
            "duration_ms": self.duration_ms,
        }


@dataclass
class RunResult:
    action: str
    dry_run: bool = False
    steps: list[StepResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    message: str = ""
    duration_ms: int = 0
    state: State | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # data at risk, backup, snapshot

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "action": self.action,
            "dry_run": self.dry_run,
            "steps": [s.to_dict() for s in self.steps],
            "warnings": self.warnings,
            "message": self.message,
            "duration_ms": self.duration_ms,
        }


class ControlCursor:
    """The control connection's cursor. Writes that may wait (a migration's success mark)
    are deferred and sent in the same round trip as the next control statement (the next
    migration's running row): one round trip per migration saved, and nothing reordered.
    A crash in between leaves the same record as a crash right after the last statement."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cur = conn.cursor()
        self.pending: list[str] = []

    def _sql(self, sql: str, args: Any) -> str:
        return self.cur.mogrify(sql, args) if args is not None else sql

    def execute(self, sql: str, args: Any = None) -> int:
        query = self._sql(sql, args)
        if self.pending:
            query = ";\n".join([*self.pending, query])
            self.pending = []
        n = self.cur.execute(query)
        while self.cur.nextset():  # the last result (the caller's statement) stays current
            pass
        return n

    def defer(self, sql: str, args: Any = None) -> None:
        self.pending.append(self._sql(sql, args))

    def take(self) -> list[str]:
        """The deferred writes, removed: the caller sends them (on the work connection)."""
        out, self.pending = self.pending, []
        return out

    def flush(self) -> None:
        if self.pending:
            query = ";\n".join(self.pending)
            self.pending = []
            self.cur.execute(query)
            while self.cur.nextset():
                pass

    def fetchone(self) -> Any:
        return self.cur.fetchone()

    def fetchall(self) -> Any:
        return self.cur.fetchall()

    @property
    def lastrowid(self) -> int:
        return self.cur.lastrowid


class _Deferred:
    """A cursor-like view whose execute() defers to the next round trip."""

    def __init__(self, ctl: ControlCursor) -> None:
        self.execute = ctl.defer


class _Collect:
    """A cursor-like view whose execute() appends the SQL text to `into` (sent later)."""

    lastrowid = None

    def __init__(self, ctl: ControlCursor, into: list[str]) -> None:
        self._ctl, self._into = ctl, into

    def execute(self, sql: str, args: Any = None) -> None:
        self._into.append(self._ctl._sql(sql, args))


def split_script(script: Script) -> list[Statement]:
    try:
        return split_statements(script.text)
    except SplitError as e:
        raise ConfigError(f"{script.path}: line {e.line}: {e}") from None


def lock_name(database: str, prefix: str = "dbroll") -> str:
    name = f"{prefix}:{database}"
    if len(name) > 64:
        name = f"{prefix}:" + hashlib.sha256(database.encode()).hexdigest()[:40]
    return name


def session_doing(holder: Mapping[str, Any]) -> str:
    """What a lock holder's session does (one Runner._holder): `running
    `ALTER ...` for 35 s`, `idle for 40 s`, `killed for 2 s`, or not in the processlist."""
    if holder["statement"]:
        text = holder["statement"]
        text = text if len(text) <= 60 else text[:59] + "…"
        return f"running `{text}` for {holder['seconds']} s"
    if holder["command"] is None:
        return "not in the processlist (gone, or another user's session: PROCESS shows it)"
    if holder["command"] == "Sleep":
        return f"idle for {holder['seconds']} s"
    return f"{holder['command'].lower()} for {holder['seconds']} s"


def holder_line(h: Mapping[str, Any]) -> str:
    """`runner lock held by connection 42 (client ..., host h pid 1, run r, in
    arn:aws:ecs:...:task/c/id, for 90 s): idle for 85 s` for one Runner._holder."""
    facts = [f"client {h['client']}"] if h["client"] else []
    if h["host"]:
        facts.append(f"host {h['host']} pid {h['pid']}")
    if h["run_id"]:
        facts.append(f"run {h['run_id']}")
    if h["runner_arn"]:
        facts.append(f"in {h['runner_arn']}")
    if h["held_s"] is not None:
        facts.append(f"for {h['held_s']} s")
    what = "runner lock" if h["role"] == "runner" else "work session's lock"
    return f"{what} held by connection {h['connection']} ({', '.join(facts)}): {session_doing(h)}"


def holder_text(h: Mapping[str, Any]) -> str:
    """`connection 42, host h pid 1, run r, in arn:...:task/c/id, holding it for 90 s` (from
    the lock table), or `connection 9, client 10.0.0.5:51234, connected state for 35 s`: a
    lock holder (one Runner._holder) as busy errors and status's RUNNING line name it."""
    parts = [f"connection {h['connection']}"]
    if h["held_s"] is not None:
        parts.append(f"host {h['host']} pid {h['pid']}")
        if h["run_id"]:
            parts.append(f"run {h['run_id']}")
        if h["runner_arn"]:
            parts.append(f"in {h['runner_arn']}")
        parts.append(f"holding it for {h['held_s']} s")
    elif h["command"] is not None:
        parts.append(f"client {h['client']}, connected state for {h['seconds']} s")
    return ", ".join(parts)


def _activity(roles: Mapping[str, Mapping[str, Any]]) -> str:
    """What the sessions of the runner holding the lock do now (`roles`: its holders by
    role): `; its session idle for 40 s; its work session (connection 9) running `ALTER
    ...` for 35 s`. A runner at work has a statement running, or was idle a moment ago; one
    whose host vanished leaves both idle for as long as it has been gone."""
    parts = []
    if "runner" in roles:
        parts.append(f"its session {session_doing(roles['runner'])}")
    w = roles.get("work")
    parts.append(
        f"its work session (connection {w['connection']}) {session_doing(w)}"
        if w
        else "no work session"
    )
    return "".join(f"; {p}" for p in parts)


def work_lock_name(database: str) -> str:
    """Held by the work connection while it exists. A runner killed mid-packet leaves its
    work session running the rest of that packet on the server, and the runner lock (on the
    control connection) free: the next runner waits for this one before reading history."""
    return lock_name(database, "dbroll-work")


def _mysql_code(e: BaseException) -> int | None:
    if isinstance(e, pymysql.MySQLError) and e.args and isinstance(e.args[0], int):
        return e.args[0]
    return None


def _mysql_text(e: BaseException) -> str:
    code = _mysql_code(e)
    msg = e.args[1] if isinstance(e, pymysql.MySQLError) and len(e.args) > 1 else str(e)
    return redact(f"({code}) {msg}" if code is not None else str(msg))


def _history_refused(
    step: Step, e: BaseException, where: str = "before", then: str = "its statement did not run"
) -> DatabaseError:
    """The error for a history write the server refused `where` (before, after...) `step`."""
    if _mysql_code(e) in CONNECTION_LOST:
        return DatabaseError(
            f"lost the connection to the server while writing {H.TABLE} {where} {step.kind} "
            f"{step.label} ({step.script.path}): {_mysql_text(e)}; whether the server went "
            "on with it is unknown, and nothing was written over its record",
            hint=_lost_hint(step),
        )
    return DatabaseError(
        f"could not write {H.TABLE} {where} {step.kind} {step.label} ({step.script.path}): "
        f"{_mysql_text(e)}; {then}",
        hint="check that the user may INSERT and UPDATE that table, then run the command again",
    )


def _failed_status(e: MigrationFailedError) -> str:
    """A step's status when it raised `e`: `lost` when the connection went (the outcome is
    the server's record), else `failed`."""
    return "lost" if isinstance(e, ConnectionLostError) else "failed"


def _lost_hint(step: Step) -> str:
    then = (
        "`dbroll resume`, then the undo again"
        if step.kind == "undo"
        else "`dbroll migrate --resume-interrupted` (or `dbroll resume`, then `dbroll migrate`)"
    )
    return (
        f"run {then}: it waits for the lost session to end on the server, then goes on from "
        "what the server recorded, counting a statement whose effect is already there as "
        "done. `dbroll status` shows that record"
    )


class Runner:
    """Runs a migration set against one database. Adapters come in: a spec and `connect`."""

    def __init__(
        self,
        spec: ConnectionSpec,
        migrations: MigrationSet | None,
        options: RunnerOptions | None = None,
        *,
        connector: Callable[..., Any] = connect,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec = spec
        self.mset = migrations or MigrationSet("<none>", "empty", ())
        self.opts = options or RunnerOptions()
        self._connect = connector
        self._sleep = sleep
        self._control: Any = None
        self._work: Any = None
        self._qualified = f"`{spec.database.replace('`', '``')}`.`{H.TABLE}`"
        self._scripts: dict[str, list[Statement]] = {}
        # work that waits for the next statement to be on its way (see _spare_time)
        self._later: list[Callable[[], None]] = []
        self._warm: Script | None = None
        self._late: Exception | None = None  # an error of that work: raised by _session
        self._locked = False  # the session holds the runner lock (its work connection too)
        self.connection: dict[str, Any] | None = None  # status(): connection_facts
        self.in_progress: str | None = None  # status(): who runs the `running` migration
        self.holders: list[dict[str, Any]] = []  # status(): _holders()

    # ---------------------------------------------------------------- connections, lock

    @contextmanager
    def _session(self, *, lock: bool) -> Iterator[None]:
        """The control connection (and the runner lock, with `lock`) for one command. A
        server error that nothing more specific handled, on any of its queries, leaves as a
        DatabaseError naming the database: never as a traceback."""
        try:
            with self._open_session(lock=lock):
                yield
        except pymysql.MySQLError as e:
            raise self._unhandled(e) from None

    def _unhandled(self, e: pymysql.MySQLError) -> DatabaseError:
        where = self.spec.describe()
        if _mysql_code(e) in CONNECTION_LOST:
            return DatabaseError(
                f"lost the connection to {where}: {_mysql_text(e)}; what the server did after "
                "dbroll's last record is unknown, and nothing was written over that record",
                hint="`dbroll status` shows the record once the server is reachable; a "
                "migration it shows `running` continues with `dbroll migrate "
                "--resume-interrupted` or `dbroll resume` (a statement whose effect is already "
                "there counts as done)",
            )
        return DatabaseError(
            f"{where} refused a query dbroll needs: {_mysql_text(e)}",
            hint="check that the DSN points at the writable primary (not a replica) and that "
            f"the user may create, read and write {H.TABLE} and {H.LOCK_TABLE} in the schema "
            "and run the migrations' statements (GRANT ALL ON <schema>.* is the simple way)",
        )

    @contextmanager
    def _open_session(self, *, lock: bool) -> Iterator[None]:
        self._control = self._connect(self.spec, multi_statements=True)
        self._ctl = ControlCursor(self._control)
        self._late = None
        try:
            self._locked = lock
            if lock:
                if not self._acquire_lock():
                    self._await_stopped_runner()
                H.ensure_tables(self._ctl)
                self._write_lock_row()
            try:
                yield
            except BaseException:
                # the success marks of migrations that did finish still go in (a later
                # script that cannot be split, Ctrl-C); the error stays the news
                with contextlib.suppress(Exception):
                    self._ctl.flush()
                raise
            self._ctl.flush()
            # a log line that could not be written, once every history write is in
            late, self._late = self._late, None
            if late is not None:
                raise late
        finally:
            for conn in (self._work, self._control):
                if conn is not None:
                    with contextlib.suppress(Exception):  # closing a dead connection
                        conn.close()
            self._work = self._control = None

    def _write_lock_row(self) -> None:
        """The lock table's row for the runner lock just taken: who holds it (host, pid,
        run, the ECS task or CodeBuild build), for busy errors, status and unlock. A lock
        table an older dbroll made gets the runner_arn column first; where the user may not
        add it, the row goes without it (a warning: the row is information, not the lock)."""
        cur, ctx = self._ctl, self.opts.context
        who = (lock_name(self.spec.database), ctx.host or "", os.getpid(), ctx.run_id)
        sql = (
            f"REPLACE INTO `{H.LOCK_TABLE}` (name, connection_id, host, pid, run_id, "
            "acquired_at{}) VALUES (%s, CONNECTION_ID(), %s, %s, %s, NOW(6){})"
        )
        try:
            cur.execute(sql.format(", runner_arn", ", %s"), (*who, ctx.runner_arn))
            return
        except pymysql.MySQLError as e:
            if _mysql_code(e) != 1054:  # not the unknown column of an older lock table
                raise
        try:
            cur.execute(H.LOCK_ADD_RUNNER_ARN)
        except pymysql.MySQLError as e:
            log.warning(
                f"cannot add column runner_arn to {H.LOCK_TABLE} (made by an older dbroll): "
                f"{_mysql_text(e)}; the lock row goes without the task or build this runner "
                "runs in, which `dbroll unlock` asks AWS about",
                database=self.spec.database,
            )
            cur.execute(sql.format("", ""), who)
            return
        cur.execute(sql.format(", runner_arn", ", %s"), (*who, ctx.runner_arn))

    def _acquire_lock(self) -> bool:
        """Take the runner lock (waiting up to --lock-timeout). True when it was free and no
        stopped runner's work session was left either (asked in the same round trip)."""
        name = lock_name(self.spec.database)
        cur = self._ctl
        cur.execute(
            "SELECT GET_LOCK(%s, 0), IS_FREE_LOCK(%s)", (name, work_lock_name(self.spec.database))
        )
        got, work_free = cur.fetchone()
        if got == 1:
            return work_free == 1
        if self.opts.take_over is not None and self._take_over():
            cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
            if cur.fetchone()[0] == 1:
                return False  # the gone runner's work session: asked again
        holder = self._describe_lock_holder(name)
        log.info(
            "waiting for the runner lock",
            database=self.spec.database,
            holder=holder,
            timeout_s=self.opts.lock_timeout,
        )
        cur.execute("SELECT GET_LOCK(%s, %s)", (name, float(self.opts.lock_timeout)))
        got = cur.fetchone()[0]
        if got == 1:
            return False  # the work lock is asked again: the runner held it a moment ago
        roles = {h["role"]: h for h in self._holders()}
        holder = holder_text(roles["runner"]) if "runner" in roles else holder
        raise BusyError(
            f"database {self.spec.describe()} is busy: {holder or 'another dbroll runner'} "
            f"still holds lock {name!r} after {self.opts.lock_timeout:g} s" + _activity(roles),
            hint="wait for it to finish or raise --lock-timeout; if that runner is gone (its "
            "host or task lost: sessions idle for long, no statement running), `dbroll "
            "unlock` ends its sessions and so releases the lock",
        )

    def _take_over(self) -> bool:
        """--take-over-gone-runner: end the sessions of the runner holding the lock when AWS
        says the ECS task or CodeBuild build its lock row names is gone (STOPPED, ended, or
        no longer known to ECS) and none of them runs a statement: what `dbroll unlock`
        does, with AWS's word instead of a person's. Anything less certain (no task
        recorded, AWS cannot answer, a statement still running) leaves the lock to the
        usual wait. True when it ended them."""
        holders = self._holders()
        runner = next((h for h in holders if h["role"] == "runner"), None)
        if runner is None or not runner["runner_arn"]:
            return False
        status = self.opts.take_over(runner["runner_arn"])
        who = holder_text(runner)
        if status.alive is not False:
            log.info(
                f"not taking over the runner lock: {status.text}",
                database=self.spec.database,
                holder=who,
            )
            return False
        if busy := [h for h in holders if h["statement"]]:
            log.warning(
                f"not taking over the runner lock yet: {status.text}, but connection "
                f"{busy[0]['connection']} still runs a statement it sent ({session_doing(busy[0])})",
                database=self.spec.database,
                holder=who,
            )
            return False
        log.warning(
            f"taking over the runner lock: {status.text}; ending its idle sessions",
            database=self.spec.database,
            holder=who,
            connections=[h["connection"] for h in holders],
        )
        self._end_sessions(holders)
        return True

    def _guarded(
        self, guard: Any, steps: list[Step], history: History, result: Any, **kw: Any
    ) -> None:
        """Run the data guard on the undo `steps`, then check the runner lock is still this
        session's: the guard's backup or RDS snapshot may take minutes off the database,
        and `dbroll unlock` may have ended the session meanwhile, the lock with it. Then
        nothing runs: a DatabaseError says why."""
        guard(steps, history, result, **kw)
        if not self._locked:
            return
        name = lock_name(self.spec.database)
        try:
            self._ctl.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (name,))
            held = self._ctl.fetchone()[0] == 1
        except pymysql.MySQLError:
            held = False
        if not held:
            raise DatabaseError(
                f"this runner's session on {self.spec.describe()} was ended, and lock "
                f"{name!r} with it, while it worked off the database (a backup, a snapshot): "
                "nothing of the undo was run",
                hint="someone ran `dbroll unlock` (or KILL) on it, or the connection dropped: "
                "run the command again (what was backed up stays in S3)",
            )

    def _await_stopped_runner(self) -> None:
        """Wait until no work session of an earlier runner is left on the server: killed
        while its packet of statements ran, that session goes on to the end of the packet
        (writing history as it goes), so history is read only once it is done."""
        name = work_lock_name(self.spec.database)
        cur = self._ctl
        cur.execute("SELECT IS_FREE_LOCK(%s)", (name,))
        if cur.fetchone()[0] == 1:
            return
        holder = self._describe_lock_holder(name) or "a connection"
        log.warning(
            "waiting for statements a stopped runner left running on the server",
            database=self.spec.database,
            holder=holder,
            timeout_s=self.opts.lock_timeout,
        )
        cur.execute(
            "SELECT GET_LOCK(%s, %s), RELEASE_LOCK(%s)",
            (name, float(self.opts.lock_timeout), name),
        )
        if cur.fetchone()[0] == 1:
            return
        raise BusyError(
            f"database {self.spec.describe()} is busy: {holder} (the work session of a stopped "
            f"dbroll runner) is still running its statements after {self.opts.lock_timeout:g} s",
            hint="wait for it to finish (`dbroll unlock --dry-run` shows its statement) or "
            "raise --lock-timeout; end it (`dbroll unlock --force`) only if you know what its "
            "statement does",
        )

    def _describe_lock_holder(self, name: str) -> str:
        cur = self._ctl
        cur.execute("SELECT IS_USED_LOCK(%s)", (name,))
        conn_id = cur.fetchone()[0]
        return "" if conn_id is None else holder_text(self._holder("", name, int(conn_id)))

    def _work_cursor(self) -> Any:
        if self._work is None:
            # multi-statement packets carry history writes with a statement (_run_per_statement)
            self._work = self._connect(self.spec, multi_statements=True)
            cur = self._work.cursor()
            sql = "SET SESSION lock_wait_timeout = %s, innodb_lock_wait_timeout = %s"
            args: tuple = (
                int(self.opts.lock_wait_timeout),
                max(1, int(self.opts.lock_wait_timeout)),
            )
            name = work_lock_name(self.spec.database)
            if self._locked:
                # in the same round trip; the previous work session of this run may still be
                # closing on the server
                sql += "; SELECT GET_LOCK(%s, %s)"
                args += (name, float(self.opts.lock_timeout))
            cur.execute(sql, args)
            if self._locked:
                cur.nextset()
                if cur.fetchone()[0] != 1:
                    raise BusyError(
                        f"database {self.spec.describe()}: lock {name!r} is still held by "
                        f"{self._describe_lock_holder(name) or 'another connection'} after "
                        f"{self.opts.lock_timeout:g} s",
                        hint="a dbroll work session that should have ended is still on the "
                        "server: wait for it, or KILL it once its statement is done",
                    )
        return self._work.cursor()

    def _reset_work(self) -> None:
        if self._work is not None:
            self._work.close()
            self._work = None

    def _read_history(self) -> History:
        return H.read_history(self._ctl)

    def _statements(self, script: Script) -> list[Statement]:
        stmts = self._scripts.get(script.sha256)
        if stmts is None:
            stmts = self._scripts[script.sha256] = split_script(script)
        return stmts

    # ---------------------------------------------------------------- checks

    def _check_folder(self, state: State) -> None:
        """A folder without a migration beside a database with some applied: the wrong
        --migrations (a subfolder, a typo in the image's path), not a database ahead."""
        if self.mset.migrations or not state.applied:
            return
        raise ConfigError(
            f"{self.mset.root} holds no migration files, but the database has "
            f"{len(state.applied)} applied version(s), the newest {state.current}: is it the "
            "right --migrations folder?",
            hint="point --migrations at the folder that holds the V<version>__*.sql (or "
            "<version>_*.up.sql, dbmate's <timestamp>_*.sql) files themselves: subfolders are "
            "not read; nothing was changed",
        )

    def _check(self, state: State, *, allow_blocked: bool = False) -> list[str]:
        """Raise for anything that needs a decision; return warnings."""
        self._check_folder(state)
        b = state.blocked
        if b is not None and not allow_blocked:
            total = f" of {b.statements_total}" if b.statements_total is not None else ""
            raise BlockedError(
                f"{b.subject} ({b.kind}) is {b.status} at statement {b.statements_done + 1}{total}"
                + (f": {b.error}" if b.error else " (the runner stopped without recording why)"),
                hint=f"fix the cause, then `dbroll resume` (continues at statement "
                f"{b.statements_done + 1}), or complete or undo it by hand and run "
                "`dbroll repair --as applied|reverted`"
                + (
                    "; containers that migrate at start can do the resume themselves: "
                    "`dbroll migrate --resume-interrupted`"
                    if auto_resumable(b)
                    else ""
                ),
            )
        if state.drift:
            lines = "; ".join(
                f"{d.path} (version {d.version}: applied {d.applied_checksum[:12]}, "
                f"file {d.file_checksum[:12]})"
                for d in state.drift
            )
            raise ChecksumDriftError(
                f"applied migration files changed since they ran: {lines}",
                hint="restore the files as they were applied (never edit an applied migration; "
                "add a new one), or accept the change with `dbroll repair --checksums`",
            )
        if state.gaps:
            raise HistoryGapError(
                "the database has applied versions that no local file has: "
                + ", ".join(str(v) for v in state.gaps),
                hint="they were applied from another branch or by hand: bring their files into "
                f"{self.mset.root}, or undo them from the image that has them",
            )
        warnings = []
        if state.future:
            msg = (
                "the database is ahead of these migrations: applied versions "
                + ", ".join(str(v) for v in state.future)
                + f" are newer than every local version ({self.mset.latest})"
            )
            if self.opts.strict_future:
                raise BlockedError(
                    msg, hint="deploy the image that has them, or drop --strict-future"
                )
            warnings.append(msg + "; skipped")
        return warnings

    # ---------------------------------------------------------------- commands

    def status(self) -> State:
        """Where the database stands; `self.connection` then says how it was reached,
        `self.holders` who holds the locks (see _holders), and `self.in_progress`, when
        a migration shows `running`, who is running it now (the holder of the runner lock or
        of a work session's lock), else None."""
        with self._session(lock=False):
            self.connection = connection_facts(self._control, self.spec)
            state = analyze(self.mset, self._read_history())
            self.holders = self._holders()
            running = state.blocked is not None and state.blocked.status == H.RUNNING
            # the runner lock's holder first, else a work session's
            self.in_progress = holder_text(self.holders[0]) if running and self.holders else None
            return state

    def history(self) -> History:
        with self._session(lock=False):
            return self._read_history()

    # ---------------------------------------------------------------- unlock

    def _holders(self) -> list[dict[str, Any]]:
        """Who holds this database's runner lock and work lock, and what each session does
        now (reads only): one _holder per lock held, the runner lock's first."""
        names = (
            ("runner", lock_name(self.spec.database)),
            ("work", work_lock_name(self.spec.database)),
        )
        cur = self._ctl
        cur.execute("SELECT IS_USED_LOCK(%s), IS_USED_LOCK(%s)", tuple(n for _, n in names))
        ids = cur.fetchone()
        return [
            self._holder(role, name, int(conn_id))
            for (role, name), conn_id in zip(names, ids, strict=True)
            if conn_id is not None
        ]

    def _holder(self, role: str, name: str, conn_id: int) -> dict[str, Any]:
        """The session `conn_id` holding lock `name`: role (runner | work), lock,
        connection, client (the processlist's host:port), host, pid, run_id, held_s and
        runner_arn (from the lock table, which has a row for the runner lock only), command
        (Sleep, Query, Killed...), seconds in that state, statement (the one running, its
        first 200 characters, else None)."""
        cur = self._ctl
        keys = ("host", "pid", "run_id", "held_s", "runner_arn")
        who: dict[str, Any] = dict.fromkeys(keys)
        row = None
        for arn in ("runner_arn", "NULL"):  # NULL: a lock table an older dbroll made
            try:
                cur.execute(
                    f"SELECT host, pid, run_id, TIMESTAMPDIFF(SECOND, acquired_at, NOW(6)), "
                    f"{arn} FROM `{H.LOCK_TABLE}` WHERE name = %s AND connection_id = %s",
                    (name, conn_id),
                )
                row = cur.fetchone()
                break
            except pymysql.MySQLError as e:
                if _mysql_code(e) != 1054:  # no lock table yet
                    break
        if row:
            who = dict(zip(keys, row, strict=True))
        cur.execute(
            "SELECT HOST, COMMAND, TIME, INFO FROM information_schema.PROCESSLIST WHERE ID = %s",
            (conn_id,),
        )
        client, command, secs, info = cur.fetchone() or (None, None, None, None)
        running = command not in (None, "Sleep") and bool(info)
        return {
            "role": role,
            "lock": name,
            "connection": conn_id,
            "client": client,
            **who,
            "command": command,
            "seconds": secs,
            "statement": " ".join(str(info).split())[:200] if running else None,
        }

    def unlock(
        self,
        *,
        force: bool = False,
        dry_run: bool = False,
        confirm: Callable[[list[dict[str, Any]]], bool] = lambda holders: True,
        check_runner: Callable[[str], Any] | None = None,
    ) -> dict[str, Any]:
        """End the sessions holding this database's locks (a runner whose host vanished
        keeps them until the server notices). A session running a statement (its runner is
        likely at work) is refused unless `force`; `confirm(holders)` may decline.

        check_runner(arn): whether the ECS task or CodeBuild build the lock row names still
        runs (pipeline.aws.where.runner_status: .alive True/False/None, .text, .to_dict()),
        kept on the runner lock's holder as `runner_status`. A runner that still runs is
        refused unless `force`, idle sessions or not (it may be backing data up).

        Returns {database, holders, ended, message}. One session throughout."""
        with self._session(lock=False):
            return self._unlock(force, dry_run, confirm, check_runner)

    def _unlock(
        self,
        force: bool,
        dry_run: bool,
        confirm: Callable[[list[dict[str, Any]]], bool],
        check_runner: Callable[[str], Any] | None,
    ) -> dict[str, Any]:
        holders = self._holders()
        where = self.spec.describe()
        out: dict[str, Any] = {"database": where, "holders": holders, "ended": []}
        busy = [h for h in holders if h["statement"]]
        if not holders:
            out["message"] = f"no dbroll runner holds a lock on {where}: nothing to end"
            return out
        status = None
        for h in holders:
            if h["runner_arn"] and check_runner is not None:
                status = check_runner(h["runner_arn"])
                h["runner_status"] = status.to_dict()
        alive = None if status is None else status.alive
        shown = "; ".join(holder_line(h) for h in holders)
        if alive and not force:
            raise BlockedError(
                shown + f": {status.text}, so its runner is likely at work; nothing was ended",
                hint="wait for it (`dbroll status`), or stop that task or build and run "
                "unlock again; --force ends its sessions anyway (a runner backing data up "
                "then stops before its first undo statement)",
            )
        if busy and not force and alive is False:
            raise BlockedError(
                shown + f": {status.text}, but connection {busy[0]['connection']} is still running "
                "a statement it sent; nothing was ended",
                hint="the statement runs on in the server without its runner: wait for it to "
                "end and run unlock again, or --force ends it now (MariaDB rolls the "
                "statement back; `dbroll resume` goes on from the record)",
            )
        if busy and not force:
            raise BlockedError(
                shown + f": connection {busy[0]['connection']} is running a statement, so its "
                "runner is likely at work; nothing was ended",
                hint="wait for it (`dbroll status`); if you know that runner is gone, --force "
                "ends it anyway (MariaDB rolls the statement back; `dbroll resume` goes on "
                "from the record)",
            )
        if dry_run:
            out["message"] = "would end connection(s) " + ", ".join(
                str(h["connection"]) for h in holders
            )
            return out
        if not confirm(holders):
            raise DbrollError("unlock cancelled; nothing was ended")
        out["ended"] = ended = self._end_sessions(holders)
        left = [str(h["connection"]) for h in self._holders()]
        out["message"] = (
            "ended connection(s) " + ", ".join(map(str, ended))
            if ended
            else "the lock was released before unlock ended anything"
        ) + (
            f"; connection(s) {', '.join(left)} still hold a lock (a killed statement still "
            "rolling back, or a new runner): `dbroll unlock --dry-run` shows them"
            if left
            else "; the lock is free"
        )
        return out

    def _end_sessions(self, holders: list[dict[str, Any]], *, wait_s: float = 10) -> list[int]:
        """End (KILL CONNECTION) the sessions `holders` (from _holders) names, each only if
        it still holds the same lock, then wait up to `wait_s` for the locks to be free (a
        session killed mid-statement first rolls that statement back). Returns the
        connections ended."""
        ended: list[int] = []
        cur = self._ctl
        for h in holders:
            cur.execute("SELECT IS_USED_LOCK(%s)", (h["lock"],))
            if cur.fetchone()[0] != h["connection"]:
                continue  # released, or taken by another session since it was shown
            try:
                cur.execute("KILL CONNECTION %s", (h["connection"],))
            except pymysql.MySQLError as e:
                if _mysql_code(e) == 1094:  # unknown thread: gone in between
                    continue
                raise DatabaseError(
                    f"cannot end connection {h['connection']} on {self.spec.describe()}: "
                    f"{_mysql_text(e)}"
                    + (f"; ended before it: {', '.join(map(str, ended))}" if ended else ""),
                    hint=f"user {self.spec.user!r} may end only its own connections: "
                    "run `dbroll unlock` as the user that runner connected as, or as one "
                    "with CONNECTION ADMIN (SUPER on older servers)",
                ) from None
            ended.append(h["connection"])
        deadline = time.monotonic() + wait_s
        for h in holders:
            while True:
                cur.execute("SELECT IS_USED_LOCK(%s)", (h["lock"],))
                if cur.fetchone()[0] != h["connection"] or time.monotonic() > deadline:
                    break
                self._sleep(0.1)
        return ended

    def migrate(self, target: Version | None = None, *, dry_run: bool = False) -> RunResult:
        started = time.monotonic()
        with self._session(lock=not dry_run):
            history = self._read_history()
            state = analyze(self.mset, history)
            result = RunResult("migrate", dry_run=dry_run, state=state)
            interrupted = self._interrupted(state, history, target)
            result.warnings += self._check(state, allow_blocked=interrupted is not None)
            for w in result.warnings:
                log.warning(w)
            if state.out_of_order and not self.opts.out_of_order:
                first = state.out_of_order[0]
                raise BlockedError(
                    f"version {first.version} ({first.up.path}) is pending but newer version "
                    f"{state.current} is already applied",
                    hint="apply it anyway with --out-of-order, or renumber it after "
                    f"{state.current}",
                )
            steps = [
                Step("migrate", m.version, m.description, m.up, m.transaction)
                for m in state.pending
                if target is None or m.version <= target
            ]
            if target is None:
                steps += [
                    Step("repeatable", None, r.description, r.script) for r in state.repeatables_due
                ]
            if interrupted is not None:
                steps = self._resume_first(result, interrupted, steps)
            self._run_steps(result, steps)
        result.duration_ms = int((time.monotonic() - started) * 1000)
        applied = sum(1 for s in result.steps if s.status == "applied")
        result.message = (
            f"would apply {len(result.steps)} migration(s)"  # each step, the resumed one too
            if dry_run
            else f"applied {applied} migration(s)"
            if applied
            else "nothing to apply: the database is up to date"
        )
        if resumed := result.extra.get("resumed"):
            result.message = (
                f"{'would resume' if dry_run else 'resumed'} {interrupted.subject} at statement "
                f"{resumed['at_statement']}; {result.message}"
            )
        return result

    def _resume_first(
        self, result: RunResult, interrupted: H.HistoryRow, steps: list[Step]
    ) -> list[Step]:
        """Run the event `interrupted` from where it stopped, as `dbroll resume` does (or show
        it, in a dry run); the rest of `steps`, to run after it."""
        step, start, uncertain = self._resume_point(interrupted)
        steps = [s for s in steps if s.script.path != step.script.path]
        older = [
            s for s in steps if None not in (s.version, step.version) and s.version < step.version
        ]
        if older and not self.opts.out_of_order:
            # as `dbroll resume` then `dbroll migrate` would be: out of order
            raise BlockedError(
                f"version {older[0].version} ({older[0].script.path}) is pending but older "
                f"than {interrupted.subject}, which a stopped runner left half done",
                hint=f"finish both with --out-of-order, or renumber it after {step.version}",
            )
        result.extra["resumed"] = {
            "version": interrupted.version,
            "script": step.script.path,
            "kind": interrupted.kind,
            "at_statement": start + 1,
            "stopped_run": interrupted.id,
        }
        log.warning(
            ("would resume" if result.dry_run else "resuming")
            + " a migration a stopped runner left running",
            subject=interrupted.subject,
            at_statement=start + 1,
            started_at=str(interrupted.started_at),
            host=interrupted.host,
            run_id=interrupted.run_id,
        )
        self._run_steps(result, [step], start_at=start, uncertain_first=uncertain)
        return steps

    def _interrupted(
        self, state: State, history: History, target: Version | None
    ) -> H.HistoryRow | None:
        """The blocked row `migrate --resume-interrupted` finishes before it applies the rest:
        a migration (or repeatable) a runner was stopped in without recording an error
        (SIGTERM, Ctrl-C, kill -9, a crash, a lost connection), as `dbroll resume` would
        continue it (see auto_resumable); not past --target, nor one stopped AUTO_RESUME_STOPS times
        in a row at the same statement. None when there is nothing to resume this way."""
        b = state.blocked
        if (
            not self.opts.resume_interrupted
            or b is None
            or not auto_resumable(b)
            or (target is not None and (b.version is None or Version.parse(b.version) > target))
        ):
            return None
        stops = history.stops_in_a_row(b)
        if stops >= AUTO_RESUME_STOPS:
            raise BlockedError(
                f"{b.subject} ({b.kind}) was stopped {stops} times in a row at statement "
                f"{b.statements_done + 1} without getting further: --resume-interrupted "
                "does not start it again",
                hint="it likely takes longer than a container may take to start (its health "
                "check's grace period): run `dbroll resume` where nothing stops it (a shell, "
                "a one-off task), or give the container longer to start",
            )
        return b

    def undo(self, target: Version, *, dry_run: bool = False, guard: Any = None) -> RunResult:
        """Undo every applied version newer than `target`, newest first. `guard(undo_steps,
        history, result)` (see apply_plan) runs under the lock before the first undo, in a
        dry run too."""
        started = time.monotonic()
        with self._session(lock=not dry_run):
            history = self._read_history()
            state = analyze(self.mset, history)
            result = RunResult("undo", dry_run=dry_run, state=state)
            self._check(state)
            to_undo = [v for v in reversed(state.applied) if v > target]
            unknown = [v for v in to_undo if self.mset.get(v) is None]
            if unknown:
                raise BlockedError(
                    "cannot undo versions that no local file has: " + ", ".join(map(str, unknown)),
                    hint="run the undo from the image (or rollback bundle) that contains them",
                )
            missing = [self.mset.get(v) for v in to_undo if self.mset.get(v).undo is None]
            if missing:
                raise BlockedError(
                    "no undo script for "
                    + ", ".join(f"version {m.version} ({m.up.path})" for m in missing),
                    hint="write the undo scripts (U<version>__<desc>.sql, .down.sql or a "
                    "-- migrate:down section), or roll forward instead",
                )
            steps = []
            for v in to_undo:
                m = self.mset.get(v)
                steps.append(Step("undo", v, m.description, m.undo, m.transaction))
            if guard is not None and steps:
                self._guarded(guard, steps, history, result)
            self._run_steps(result, steps)
        result.duration_ms = int((time.monotonic() - started) * 1000)
        result.message = (
            f"would undo {len(steps)} migration(s) down to {target}"
            if dry_run
            else f"undid {len(steps)} migration(s); now at {target if target != ZERO else 'nothing'}"
            if steps
            else f"nothing to undo: no applied version is newer than {target}"
        )
        return result

    def resume(
        self, *, from_statement: int | None = None, dry_run: bool = False, guard: Any = None
    ) -> RunResult:
        """Finish the failed or interrupted event from where it stopped. An undo's rest goes
        through `guard(undo_steps, history, result)` (see apply_plan) first: the data its
        statements destroy now, written since the undo started, is measured and kept."""
        started = time.monotonic()
        with self._session(lock=not dry_run):
            history = self._read_history()
            state = analyze(self.mset, history)
            result = RunResult("resume", dry_run=dry_run, state=state)
            b = state.blocked
            if b is None:
                result.message = "nothing to resume: no migration is failed or running"
                return result
            self._check(state, allow_blocked=True)
            step, start, uncertain = self._resume_point(b, from_statement)
            if guard is not None and step.kind == "undo":
                stmts = self._statements(step.script)
                from_line = stmts[start].line if start < len(stmts) else None
                if from_line is not None:
                    self._guarded(guard, [step], history, result, from_line=from_line)
            log.info(
                "resuming",
                subject=b.subject,
                kind=b.kind,
                previous_status=b.status,
                at_statement=start + 1,
                statements=len(self._statements(step.script)),
            )
            self._run_steps(result, [step], start_at=start, uncertain_first=uncertain)
            after = analyze(self.mset, self._read_history()) if not dry_run else state
        result.duration_ms = int((time.monotonic() - started) * 1000)
        if b.kind == "undo":
            # an undo stopped on its way down: what is left of it, not what migrate would do
            now = after.current
            result.message = f"resumed {b.subject} (undo); now at {now or 'nothing'}" + (
                "; if the undo was to go further down, run `dbroll undo --target VERSION` again"
                if now is not None
                else ""
            )
            return result
        result.message = f"resumed {b.subject} ({b.kind})" + (
            f"; {len(after.pending)} migration(s) still pending: run `dbroll migrate`"
            if after.pending
            else ""
        )
        return result

    def repair(self, *, mark: str | None = None, checksums: bool = False) -> RunResult:
        """Resolve a blocked row by hand (`mark` applied|reverted) and/or accept drifted checksums."""
        with self._session(lock=True):
            state = analyze(self.mset, self._read_history())
            result = RunResult("repair", state=state)
            cur = self._ctl
            ctx = self.opts.context
            done = []
            b = state.blocked
            if b is not None:
                if mark not in ("applied", "reverted"):
                    raise ConfigError(
                        f"{b.subject} ({b.kind}) is {b.status}: say what state you left it in",
                        hint="--as applied (you completed it by hand) or --as reverted (you "
                        "undid its partial changes by hand)",
                    )
                applied_after = None
                checksum = None
                if b.version:
                    applied_after = mark == "applied"
                    local = self.mset.get(Version.parse(b.version))
                    checksum = local.up.sha256 if (applied_after and local) else None
                    H.insert_event(
                        cur,
                        ctx,
                        kind="repair",
                        version=Version.parse(b.version),
                        description=f"repair of {b.kind} #{b.id}: marked {mark}",
                        script=b.script,
                        checksum=checksum,
                        status=H.SUCCESS,
                        applied=applied_after,
                    )
                else:
                    kind = "repeatable" if mark == "applied" else "repair"
                    H.insert_event(
                        cur,
                        ctx,
                        kind=kind,
                        version=None,
                        description=f"repair of {b.kind} #{b.id}: marked {mark}",
                        script=b.script,
                        checksum=b.checksum if mark == "applied" else None,
                        status=H.SUCCESS,
                    )
                done.append(f"{b.subject} marked {mark}")
            elif mark is not None:
                raise ConfigError(
                    "nothing is failed or running, so there is nothing to mark",
                    hint="`dbroll status` shows the state",
                )
            if checksums:
                for d in state.drift:
                    m = self.mset.get(d.version)
                    H.insert_event(
                        cur,
                        ctx,
                        kind="repair",
                        version=d.version,
                        description=f"checksum accepted: {m.description}",
                        script=d.path,
                        checksum=d.file_checksum,
                        status=H.SUCCESS,
                        applied=True,
                    )
                    done.append(
                        f"version {d.version} checksum {d.applied_checksum[:12]} -> "
                        f"{d.file_checksum[:12]}"
                    )
            result.message = "; ".join(done) if done else "nothing to repair"
            for item in done:
                log.info("repaired", what=item)
        return result

    def baseline(self, version: Version) -> RunResult:
        with self._session(lock=True):
            history = self._read_history()
            if history.applied:
                raise BlockedError(
                    f"{self.spec.database} already has applied versions (current "
                    f"{history.current}); baseline only adopts a database dbroll has not managed",
                )
            if self.mset.get(version) is None:
                raise ConfigError(
                    f"baseline version {version} has no migration in {self.mset.root}",
                    hint="choose one of: " + ", ".join(str(v) for v in self.mset.versions[-10:]),
                )
            cur = self._ctl
            result = RunResult("baseline")
            for m in self.mset.migrations:
                if m.version > version:
                    break
                H.insert_event(
                    cur,
                    self.opts.context,
                    kind="baseline",
                    version=m.version,
                    description=m.description,
                    script=m.up.path,
                    checksum=m.up.sha256,
                    status=H.SUCCESS,
                    applied=True,
                )
                result.steps.append(
                    StepResult(
                        Step("baseline", m.version, m.description, m.up), "baselined", 0, 0, "none"
                    )
                )
            result.message = (
                f"baselined {len(result.steps)} version(s) up to {version}; nothing was run"
            )
        return result

    def apply_plan(
        self,
        plan: Plan,
        files: Mapping[str, bytes],
        *,
        bundle_sha256: str,
        dry_run: bool = False,
        guard: Any = None,
    ) -> RunResult:
        """Run a rollback bundle's plan: refuse a stale plan, continue a partly run one.

        `guard(undo_steps, history, result)` runs under the lock, after the staleness check
        and before the first statement: it may refuse (data at risk without a backup) or
        back the data up."""
        started = time.monotonic()
        if plan.blocked:
            raise BlockedError(
                "the bundle's plan is blocked: " + "; ".join(b.message for b in plan.blockers),
                hint="resolve the blockers and plan again",
            )
        steps = [self._plan_step(s, files) for s in plan.steps]
        versioned = [
            (st, ps)
            for st, ps in zip(steps, plan.steps, strict=True)
            if ps.action in ("undo", "migrate")
        ]
        ctx = replace(
            self.opts.context,
            bundle=bundle_sha256,
            image=plan.source.digest
            if plan.direction == "rollback"
            else plan.target.digest or self.opts.context.image,
        )
        self.opts = replace(self.opts, context=ctx)
        result = RunResult("apply-bundle", dry_run=dry_run)
        with self._session(lock=not dry_run):
            history = self._read_history()
            live = {str(v): row.checksum for v, row in history.applied.items()}
            b = history.blocked
            resume_row = None
            if b is not None:
                match = next(
                    (
                        st
                        for st, ps in versioned
                        if b.version == ps.version
                        and b.kind == ps.action
                        and b.checksum == st.script.sha256
                    ),
                    None,
                )
                if match is None:
                    raise BlockedError(
                        f"{b.subject} ({b.kind}) is {b.status}, and this bundle does not "
                        "contain that step",
                        hint="`dbroll status` shows it; resume it with the image that ran it, "
                        "or `dbroll repair --as applied|reverted`",
                    )
                resume_row = b
                # the blocked step has not taken effect yet: count it as still to do
            done = self._steps_done(plan, live, history, resume_row)
            if plan.strategy == "code-only":
                if any(
                    r.kind == "code_rollback" and r.bundle == bundle_sha256 for r in history.rows
                ):
                    result.message = "already done: this code-only rollback is recorded"
                    return result
                if not dry_run:
                    H.insert_event(
                        self._ctl,
                        ctx,
                        kind="code_rollback",
                        version=None,
                        description=(
                            f"code-only rollback to {plan.target.label}; kept applied: "
                            + ", ".join(r.version for r in plan.reverted)
                        )[:255],
                        script=None,
                        checksum=None,
                        status=H.SUCCESS,
                    )
                result.message = (
                    f"code-only rollback recorded: {len(plan.reverted)} additive "
                    "migration(s) stay applied; no schema change"
                )
                return result
            todo = [st for st, _ in versioned[done:]]
            ran = history.repeatables
            todo += [
                st
                for st, ps in zip(steps, plan.steps, strict=True)
                if ps.action == "repeatable" and ran.get(st.script.path) != st.script.sha256
            ]
            if not todo:
                result.message = "already in the target state: nothing to do"
                return result
            if guard is not None:
                self._guarded(guard, [st for st in todo if st.kind == "undo"], history, result)
            if done:
                log.info(
                    "continuing a partly applied bundle",
                    steps_done=done,
                    steps_left=len(versioned) - done,
                )
            for i, step in enumerate(todo):
                first = i == 0 and resume_row is not None
                start = resume_row.statements_done if first else 0
                stmts = self._statements(step.script)
                txn = self._transactional(step, stmts)
                self._run_steps(
                    result,
                    [step],
                    start_at=0 if txn else start,
                    uncertain_first=first and resume_row.status == H.RUNNING and not txn,
                )
        result.duration_ms = int((time.monotonic() - started) * 1000)
        n = sum(1 for s in result.steps if s.status in ("undone", "applied", "would-run"))
        result.message = (
            f"would run {n} step(s)"
            if dry_run
            else f"{plan.direction} to {plan.target.label}: ran {n} step(s)"
        )
        return result

    def _plan_step(self, ps: PlanStep, files: Mapping[str, bytes]) -> Step:
        data = files.get(ps.path)
        if data is None:
            raise BlockedError(f"the bundle lacks {ps.path}")
        script = Script(path=ps.source, sha256=ps.sha256, text=data.decode("utf-8-sig"))
        version = Version.parse(ps.version) if ps.version else None
        return Step(ps.action, version, ps.description, script, ps.transaction)

    def _steps_done(
        self,
        plan: Plan,
        live: dict[str, str | None],
        history: History,
        resume_row: H.HistoryRow | None,
    ) -> int:
        """How many of the plan's versioned steps the live history already shows; or stale."""
        expected = dict(plan.expected_applied)
        versioned = [s for s in plan.steps if s.action in ("undo", "migrate")]
        live_set = {str(Version.parse(v)) for v in live}
        state = {str(Version.parse(v)) for v in expected}
        for k in range(len(versioned) + 1):
            if state == live_set:
                if plan.from_history:
                    for v, checksum in expected.items():
                        if v in live and checksum and live[v] and live[v] != checksum:
                            raise BlockedError(
                                f"stale plan: version {v} was re-applied with checksum "
                                f"{live[v][:12]} after planning (plan: {checksum[:12]})",
                                hint="plan again against the live database",
                            )
                return k
            if k == len(versioned):
                break
            step = versioned[k]
            v = str(Version.parse(step.version))
            if step.action == "undo":
                state.discard(v)
            else:
                state.add(v)
        exp = ", ".join(sorted(expected)) or "(none)"
        now = ", ".join(sorted(live)) or "(none)"
        raise BlockedError(
            f"stale plan: the database's applied versions ({now}) are not what the plan "
            f"expects ({exp}) nor a partial run of it; nothing was changed",
            hint="someone deployed or migrated after the plan was made: plan again",
        )

    def validate(self) -> State:
        """Analyze without failing on the first problem: the caller reports all of it."""
        state = self.status()
        self._check_folder(state)
        for m in self.mset.migrations:
            self._statements(m.up)
            if m.undo is not None:
                self._statements(m.undo)
        return state

    # ---------------------------------------------------------------- execution

    def _resume_point(
        self, b: H.HistoryRow, from_statement: int | None = None
    ) -> tuple[Step, int, bool]:
        """Where a blocked row's event continues: its step, the 0-based statement to start at,
        and whether that first statement may already be in effect (a runner stopped after
        it committed and before it was recorded)."""
        step = self._step_for_row(b, where_given=from_statement is not None)
        stmts = self._statements(step.script)
        start = b.statements_done if from_statement is None else from_statement - 1
        if not 0 <= start <= len(stmts):
            raise ConfigError(
                f"--from-statement {from_statement} is outside 1..{len(stmts) + 1} "
                f"for {step.script.path} ({len(stmts)} statements; {len(stmts) + 1} runs none "
                "of them and records it done)"
            )
        txn = self._transactional(step, stmts)
        if txn and from_statement not in (None, 1):
            raise ConfigError(
                f"--from-statement {from_statement}: {step.script.path} runs in one "
                "transaction (its statements change data only), so a stopped run left nothing "
                "behind and it runs again from statement 1",
                hint="fix the statement that failed, then `dbroll resume` without "
                "--from-statement; or `dbroll repair --as applied|reverted` if you finished "
                "or undid it by hand",
            )
        if txn:
            start = 0  # a failed or killed transaction left nothing behind
        return step, start, b.status == H.RUNNING and not txn and from_statement is None

    def _step_for_row(self, row: H.HistoryRow, *, where_given: bool = False) -> Step:
        """The step a blocked row's event continues with. A script changed since it stopped
        is taken only where the numbers of its statements cannot mislead: nothing of it ran
        (it failed at its first statement), or the operator says where to go on
        (`where_given`: --from-statement)."""
        if row.kind in ("migrate", "undo") and row.version:
            m = self.mset.get(Version.parse(row.version))
            script = None if m is None else (m.up if row.kind == "migrate" else m.undo)
            if script is None:
                raise BlockedError(
                    f"cannot resume {row.subject} ({row.kind}): no local script for it in "
                    f"{self.mset.root}",
                    hint="run resume from the image that has it, or `dbroll repair --as ...`",
                )
            step = Step(row.kind, m.version, m.description, script, m.transaction)
        elif row.kind == "repeatable":
            r = next((r for r in self.mset.repeatables if r.script.path == row.script), None)
            if r is None:
                raise BlockedError(
                    f"cannot resume repeatable {row.script}: the file is gone",
                    hint="`dbroll repair --as reverted` to clear it",
                )
            step = Step("repeatable", None, r.description, r.script)
        else:
            raise BlockedError(
                f"cannot resume a {row.kind} event (#{row.id})",
                hint="`dbroll repair --as applied|reverted`",
            )
        nothing_ran = row.status == H.FAILED and row.statements_done == 0
        if row.checksum and row.checksum != step.script.sha256 and not where_given:
            if nothing_ran:
                log.info("the script changed since it failed at its first statement: taken")
                return step
            at = row.statements_done + 1
            raise BlockedError(
                f"{step.script.path} changed since {row.subject} stopped at statement {at} "
                f"({row.statements_done} done): statement numbers may no longer match",
                hint=f"if you fixed the statement that failed, `dbroll resume --from-statement "
                f"N` goes on at statement N of the file as it is now (N={at} when the "
                "statements before it are unchanged); else restore the file as it was, or "
                "finish by hand and run `dbroll repair --as applied|reverted`",
            )
        return step

    def _transactional(self, step: Step, stmts: list[Statement]) -> bool:
        return step.transaction_allowed and bool(stmts) and all(is_dml(s) for s in stmts)

    def _run_steps(
        self,
        result: RunResult,
        steps: list[Step],
        *,
        start_at: int = 0,
        uncertain_first: bool = False,
    ) -> None:
        say = log.bind()  # one logger for the run, not one built per line by the lazy proxy
        try:
            self._run_steps_logged(say, result, steps, start_at, uncertain_first)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (errors.Terminated)
            self._interrupt_work()
            raise
        except DbrollError as e:
            e.partial = result  # what ran before it: --json shows it with the error
            raise
        finally:
            self._warm = None
            self._spare_time()  # the last step's line; before any error leaves

    def _run_steps_logged(
        self, say: Any, result: RunResult, steps: list[Step], start_at: int, uncertain_first: bool
    ) -> None:
        i = 0
        while i < len(steps):
            if not result.dry_run and start_at == 0 and not uncertain_first:
                group = self._batch(steps, i)
                if group:
                    self._warm = (
                        steps[i + len(group)].script if i + len(group) < len(steps) else None
                    )
                    self._run_batch(say, result, group)
                    i += len(group)
                    continue
            step = steps[i]
            i += 1
            self._warm = steps[i].script if i < len(steps) else None
            stmts = self._statements(step.script)
            mode = "transaction" if self._transactional(step, stmts) else "per-statement"
            if result.dry_run:
                result.steps.append(StepResult(step, "would-run", len(stmts), 0, mode))
                say.info(
                    f"would {step.kind}",
                    version=step.label,
                    description=step.description,
                    statements=len(stmts),
                    mode=mode,
                )
                continue
            t0 = time.monotonic()
            res = StepResult(step, "running", len(stmts), start_at, mode)
            result.steps.append(res)
            try:
                if mode == "transaction":
                    self._run_transaction(step, stmts)
                else:
                    self._run_per_statement(step, stmts, start_at, uncertain_first)
            except MigrationFailedError as e:
                res.status = _failed_status(e)
                res.statements_done = e.statement - 1
                res.duration_ms = int((time.monotonic() - t0) * 1000)
                raise
            self._step_done(say, res, t0)
            if any(changes_session(s) for s in stmts):
                self._reset_work()
            start_at, uncertain_first = 0, False

    def _step_done(self, say: Any, res: StepResult, t0: float) -> None:
        step = res.step
        res.status = "undone" if step.kind == "undo" else "applied"
        res.statements_done = res.statements
        res.duration_ms = int((time.monotonic() - t0) * 1000)
        # written while the server runs the next statement (or when the run ends)
        self._later.append(
            functools.partial(
                say.info,
                step.kind,
                version=step.label,
                description=step.description,
                statements=res.statements,
                mode=res.mode,
                ms=res.duration_ms,
            )
        )

    def _batch(self, steps: list[Step], i: int) -> list[tuple[Step, list[Statement]]]:
        """The steps from `i` on that can share packets (see _run_batch): each made only of
        statements that are not DML and leave the work session as dbroll opened it, up to
        BATCH_STATEMENTS statements and BATCH_BYTES of SQL in all (at least one step)."""
        group: list[tuple[Step, list[Statement]]] = []
        count = size = 0
        for step in itertools.islice(steps, i, None):  # called for every step: no copies
            try:
                stmts = self._statements(step.script)
            except ConfigError:
                break  # raised when that step runs, after the ones before it
            if not stmts or not all(not is_dml(s) and keeps_session_clean(s) for s in stmts):
                break
            count += len(stmts)
            # with its history writes: a running row, a mark per statement, a success mark
            size += sum(len(s.text) + HISTORY_BYTES for s in stmts) + 2 * HISTORY_BYTES
            if count > BATCH_STATEMENTS or size > BATCH_BYTES:
                break  # a step too big for a packet of its own runs statement by statement
            group.append((step, stmts))
        return group

    def _run_batch(
        self, say: Any, result: RunResult, group: list[tuple[Step, list[Statement]]]
    ) -> None:
        """Run consecutive DDL-only steps with their history writes in as few packets as the
        statements allow: one, unless a statement waits on a lock and is retried.

        A packet holds, in order, each step's running row (its id kept in ROW_VAR), its
        statements with a statements_done mark after each, and its success mark: the same
        records at the same points as one round trip per statement would write, since the
        server runs a multi-statement packet in order and stops at the first error. The
        client reads each result as the server gets to it (logging each step as it ends),
        so its own work overlaps the server's instead of adding to it. A runner killed
        mid-packet leaves its work session to finish the packet; the work lock makes the
        next runner wait for it (_await_stopped_runner)."""
        g, j = 0, 0  # where the next packet starts: statement j of step g
        row_id: int | None = None  # step g's running row, once written
        attempt = 0  # of the statement at (g, j): lock-wait retries so far
        res: StepResult | None = None
        t0 = time.monotonic()
        while g < len(group):
            texts, ops = self._batch_packet(group, g, j, row_id)
            cur = self._work_cursor()
            k = 0
            try:
                send_query(cur, ";\n".join(texts))
                self._spare_time()
                read_result(cur)
                while True:
                    kind, gi, ji = ops[k]
                    if kind == "running":
                        row_id = cur.lastrowid
                        step, stmts = group[gi]
                        res = StepResult(step, "running", len(stmts), 0, "per-statement")
                        result.steps.append(res)
                    elif kind == "stmt":
                        attempt = 0
                    elif kind == "done":
                        assert res is not None
                        self._step_done(say, res, t0)
                        self._spare_time()
                        t0 = time.monotonic()
                        g, j, row_id, res = gi + 1, 0, None, None
                    k += 1
                    if k == len(ops):
                        break
                    cur.nextset()
            except pymysql.MySQLError as e:
                kind, gi, ji = ops[k]
                step, stmts = group[gi]
                if kind == "done":
                    raise _history_refused(
                        step, e, "after", "its statements ran, the next step's did not"
                    ) from None
                if kind != "stmt":
                    where = f"before statement {ji + 1} of" if ji >= 0 else "before"
                    raise _history_refused(step, e, where) from None
                assert row_id is not None and res is not None
                g, j = gi, ji
                retry = self._wait_to_retry(e, step, ji, attempt)
                if retry is not None:
                    attempt = retry
                    continue
                err = self._statement_failed(row_id, step, stmts, ji, attempt, e)
                res.status = _failed_status(err)
                res.statements_done = ji
                res.duration_ms = int((time.monotonic() - t0) * 1000)
                raise err from None

    def _wait_to_retry(
        self, e: pymysql.MySQLError, step: Step, index: int, attempt: int
    ) -> int | None:
        """After statement `index` (0-based) failed on its attempt number `attempt` (0 for
        the first): when the error is a lock wait and retries are left, sleep the backoff
        and return the next attempt's number; otherwise None."""
        if _mysql_code(e) not in RETRYABLE or attempt >= self.opts.lock_retries:
            return None
        delay = self._backoff(attempt)
        log.warning(
            "statement waits on a lock held by another session; retrying",
            version=step.label,
            statement=index + 1,
            attempt=attempt + 1,
            of=self.opts.lock_retries,
            delay_s=delay,
        )
        self._sleep(delay)
        return attempt + 1

    def _statement_failed(
        self,
        row_id: int,
        step: Step,
        stmts: list[Statement],
        index: int,
        attempt: int,
        e: pymysql.MySQLError,
    ) -> MigrationFailedError:
        """The error for statement `index` (0-based) failing for good, recorded in history."""
        if _mysql_code(e) in RETRYABLE:
            return self._fail(
                row_id,
                step,
                stmts,
                index,
                index,
                e,
                cls=LockWaitError,
                extra=f" after {attempt + 1} attempts of {self.opts.lock_wait_timeout} s; "
                + self._describe_blockers(),
            )
        return self._fail(row_id, step, stmts, index, index, e)

    def _interrupt_work(self) -> None:
        """Ctrl-C or SIGTERM while the server runs our statements: it would go on to the end
        of the packet without us (and finish a long ALTER nobody waits for), so end the work
        session on the server: the statement it is running stops (MariaDB rolls an
        interrupted DDL statement back, and a transaction left open), and the rest of the
        packet never runs. The record stays exact: the statement interrupted is not counted,
        and `dbroll resume` starts there (a statement that had finished before the KILL is
        recognised as in effect).

        KILL CONNECTION, not KILL QUERY: MariaDB clears a KILL QUERY when it starts on a
        packet (dispatch_command's reset_kill_query), so one that reaches the session while
        it still reads the packet we just sent is forgotten and the whole packet runs. The
        run ends here anyway; the session is not needed again."""
        work = self._work
        if work is None:
            return
        # the error in flight stays the news
        with contextlib.suppress(Exception):
            log.warning("interrupted: stopping the statements sent to the server")
            kill = "KILL CONNECTION %s"
            try:
                self._ctl.execute(kill, (work.thread_id(),))
            except Exception:  # noqa: BLE001 - the signal came mid-write on the control link
                with contextlib.closing(self._connect(self.spec)) as conn:
                    conn.cursor().execute(kill, (work.thread_id(),))

    def _batch_packet(
        self, group: list[tuple[Step, list[Statement]]], g: int, j: int, row_id: int | None
    ) -> tuple[list[str], list[tuple[str, int, int]]]:
        """The statements of a packet that runs `group` from statement j of step g on (whose
        running row is `row_id` when already written), and what each one is: (write |
        running | stmt | done, step, statement)."""
        texts: list[str] = []
        ops: list[tuple[str, int, int]] = []

        def add(kind: str, gi: int, ji: int, sql: str) -> None:
            texts.append(sql)
            ops.append((kind, gi, ji))

        def write(kind: str, gi: int, ji: int, fn: Callable[..., Any], *a: Any, **kw: Any) -> None:
            fn(_Collect(self._ctl, texts), *a, **kw)  # appends its SQL to texts
            ops.append((kind, gi, ji))

        for sql in self._ctl.take():  # the success mark of a step run before the group
            add("write", g, -1, sql)
        for gi in range(g, len(group)):
            step, stmts = group[gi]
            first = j if gi == g else 0
            ref: int | str = H.ROW_VAR
            if gi == g and row_id is not None:
                ref = row_id
            else:
                write("running", gi, -1, self._insert_running, step, len(stmts), 0)
                add("write", gi, -1, H.REMEMBER_ROW)
            for ji in range(first, len(stmts)):
                if ji > first:  # (a retried statement's mark went in before it)
                    write("write", gi, ji, H.mark_progress, ref, ji)
                # a statement may end in a comment: its delimiter goes on a line of its own
                add("stmt", gi, ji, stmts[ji].text + "\n")
            write(
                "done",
                gi,
                len(stmts),
                H.finish_event,
                ref,
                status=H.SUCCESS,
                statements_done=len(stmts),
                applied=self._applied_after(step),
            )
        return texts, ops

    def _insert_running(self, cur: Any, step: Step, total: int, done: int) -> int:
        return H.insert_event(
            cur,
            self.opts.context,
            kind=step.kind,
            version=step.version,
            description=step.description,
            script=step.script.path,
            checksum=step.script.sha256,
            statements_done=done,
            statements_total=total,
        )

    def _applied_after(self, step: Step) -> bool | None:
        return {"migrate": True, "undo": False}.get(step.kind)

    def _fail(
        self,
        row_id: int,
        step: Step,
        stmts: list[Statement],
        index: int,
        done: int,
        err: BaseException,
        *,
        cls: type[MigrationFailedError] = MigrationFailedError,
        extra: str = "",
    ) -> MigrationFailedError:
        if _mysql_code(err) in CONNECTION_LOST:
            return self._lost(step, stmts, index, err)
        stmt = stmts[index]
        text = (
            f"statement {index + 1} of {len(stmts)} (line {stmt.line}: {stmt.first_line}) "
            f"failed: {_mysql_text(err)}{extra}"
        )
        try:
            H.finish_event(
                self._ctl, row_id, status=H.FAILED, statements_done=done, error=text[:4000]
            )
        except pymysql.MySQLError as e2:
            log.error("could not record the failure in history", error=_mysql_text(e2))
        what = f"{step.kind} {step.label} ({step.script.path})"
        return cls(
            f"{what}: {text}",
            version=str(step.version) if step.version is not None else None,
            statement=index + 1,
            hint=f"nothing after statement {done} ran. Fix the cause, then `dbroll resume` "
            f"(continues at statement {done + 1}"
            + (
                f"; once you edited the file, `dbroll resume --from-statement {done + 1}`"
                if done
                else ""
            )
            + "); `dbroll status` shows the blocked row",
        )

    def _lost(
        self, step: Step, stmts: list[Statement], index: int, err: BaseException
    ) -> ConnectionLostError:
        """The error for the work connection lost while the server had statement `index`
        (0-based). Nothing is recorded: the server may still finish that statement, and the
        rest of a packet, writing history as it goes, and a `failed` mark written now would
        hide what it did. The event stays running, as after a crash; the next runner waits
        for the lost session's work lock, then reads the server's record."""
        stmt = stmts[index]
        if self._transactional(step, stmts):
            fate = "whether its transaction committed is unknown"
        else:
            fate = f"whether the server finished statement {index + 1} is unknown"
        return ConnectionLostError(
            f"{step.kind} {step.label} ({step.script.path}): lost the connection to the server "
            f"during statement {index + 1} of {len(stmts)} (line {stmt.line}: "
            f"{stmt.first_line}): {_mysql_text(err)}; {fate}. History keeps what the server "
            "recorded: nothing was marked failed",
            version=str(step.version) if step.version is not None else None,
            statement=index + 1,
            hint=_lost_hint(step),
        )

    def _spare_time(self) -> None:
        """Client work that need not hold up the server, done while it runs a statement:
        the log lines of the steps finished so far (in order, before anything about the
        statement in flight is logged) and splitting the next step's script. Its error (a
        log line that cannot be written) is kept and raised once the run's history writes
        are all in: a statement on its way always has its result read and recorded."""
        later, self._later = self._later, []
        warm, self._warm = self._warm, None
        try:
            for fn in later:
                fn()
            if warm is not None:
                with contextlib.suppress(ConfigError):  # raised when that step runs
                    self._statements(warm)
        except Exception as e:  # noqa: BLE001 - raised by _session
            self._late = self._late or e

    def _query(self, cur: Any, text: str) -> None:
        """cur.execute(text), with the spare-time work done between sending and reading."""
        send_query(cur, text)
        self._spare_time()
        read_result(cur)

    def _execute(self, cur: Any, text: str) -> None:
        self._query(cur, text)
        while True:
            cur.fetchall()
            if not cur.nextset():
                break

    def _backoff(self, attempt: int) -> float:
        return min(self.opts.retry_max_delay, self.opts.retry_base_delay * (2**attempt))

    def _run_transaction(self, step: Step, stmts: list[Statement]) -> None:
        row_id = self._insert_running(self._ctl, step, len(stmts), 0)
        for attempt in range(self.opts.lock_retries + 1):
            cur = self._work_cursor()
            index = 0
            try:
                self._work.begin()
                for index, stmt in enumerate(stmts):  # noqa: B007 - index names the failure
                    self._execute(cur, stmt.text)
                H.finish_event(
                    cur,
                    row_id,
                    status=H.SUCCESS,
                    statements_done=len(stmts),
                    applied=self._applied_after(step),
                    qualified=self._qualified,
                )
                self._work.commit()
                return
            except pymysql.MySQLError as e:
                try:
                    self._work.rollback()
                except pymysql.MySQLError:
                    self._reset_work()
                if _mysql_code(e) in RETRYABLE and attempt < self.opts.lock_retries:
                    delay = self._backoff(attempt)
                    log.warning(
                        "lock wait in transaction; retrying",
                        version=step.label,
                        attempt=attempt + 1,
                        delay_s=delay,
                        error=_mysql_text(e),
                    )
                    self._sleep(delay)
                    continue
                extra = " (the transaction was rolled back: nothing changed)"
                if _mysql_code(e) in RETRYABLE:
                    extra += f" after {attempt + 1} attempts; " + self._describe_blockers()
                raise self._fail(
                    row_id,
                    step,
                    stmts,
                    index,
                    0,
                    e,
                    cls=LockWaitError if _mysql_code(e) in RETRYABLE else MigrationFailedError,
                    extra=extra,
                ) from None

    def _run_per_statement(
        self, step: Step, stmts: list[Statement], start_at: int, uncertain_first: bool
    ) -> None:
        # History writes ride in the same round trip as the next statement the work connection
        # runs (one packet: the previous step's success mark, this step's running row, then each
        # statements_done mark), committed in that order before the statement starts: the same
        # records, at the same points, as separate writes, one round trip per statement saved.
        # They are sent on the control connection instead before DML (which commits its own
        # progress) and once a statement may have left session state on the work connection.
        n = len(stmts)
        prefix = self._ctl.take()
        row_id = self._insert_running(_Collect(self._ctl, prefix), step, n, start_at)
        clean = True
        for index in range(start_at, n):
            stmt = stmts[index]
            dml = is_dml(stmt)
            if prefix and (dml or not clean):
                row_id = self._send_history(prefix, row_id)
                prefix = []
            attempt = 0
            while True:
                cur = self._work_cursor()
                try:
                    if dml:
                        # the statement and its progress commit together: exact even on kill -9
                        self._work.begin()
                        self._execute(cur, stmt.text)
                        cur.execute(
                            f"UPDATE {self._qualified} SET statements_done = %s WHERE id = %s",
                            (index + 1, row_id),
                        )
                        self._work.commit()
                    elif prefix:
                        sent, prefix = prefix, []
                        row_id, err = self._execute_after(cur, sent, row_id, step, stmt.text)
                        if err is not None:
                            raise err
                    else:
                        self._execute(cur, stmt.text)
                    break
                except pymysql.MySQLError as e:
                    code = _mysql_code(e)
                    if dml:
                        try:
                            self._work.rollback()
                        except pymysql.MySQLError:
                            self._reset_work()
                    if uncertain_first and index == start_at and code in ALREADY_IN_EFFECT:
                        log.warning(
                            "statement already in effect: the previous runner was stopped (or lost "
                            "its connection) after it committed and before it was recorded; "
                            "counting it as done",
                            version=step.label,
                            statement=index + 1,
                            line=stmt.line,
                            mariadb=_mysql_text(e),
                        )
                        break
                    retry = self._wait_to_retry(e, step, index, attempt)
                    if retry is not None:
                        attempt = retry
                        continue
                    raise self._statement_failed(row_id, step, stmts, index, attempt, e) from None
            if not keeps_session_clean(stmt):
                clean = False
            if index + 1 < n and not dml:
                H.mark_progress(_Collect(self._ctl, prefix), row_id, index + 1)
        if prefix:  # nothing left to run (resumed after the last statement)
            row_id = self._send_history(prefix, row_id)
        # sent with the next history write (usually the next migration's running row)
        H.finish_event(
            _Deferred(self._ctl),
            row_id,
            status=H.SUCCESS,
            statements_done=n,
            applied=self._applied_after(step),
        )

    def _send_history(self, writes: list[str], row_id: int | None) -> int:
        """Send collected history writes on the control connection; the id of the running row
        (the last write when `row_id` is None)."""
        self._ctl.execute(";\n".join(writes))
        return self._ctl.lastrowid if row_id is None else row_id

    def _execute_after(
        self, cur: Any, writes: list[str], row_id: int | None, step: Step, text: str
    ) -> tuple[int, pymysql.MySQLError | None]:
        """Run history `writes`, then the statement `text`, in one round trip on the work
        connection. Returns the running row's id (the last write's when `row_id` is None) and
        the statement's error, if any. The server stops at the first error: a failed write
        leaves the statement not run and is raised as a DatabaseError."""
        try:
            self._query(cur, ";\n".join([*writes, text]))
            for _ in writes[1:]:
                cur.nextset()
        except pymysql.MySQLError as e:
            raise _history_refused(step, e) from None
        if row_id is None:
            row_id = cur.lastrowid
        try:
            cur.nextset()  # the statement's result
            while cur.nextset():  # further results of a statement that returns several
                pass
        except pymysql.MySQLError as e:
            return row_id, e
        return row_id, None

    def _describe_blockers(self) -> str:
        """Name the sessions that hold what the statement waits for.

        Exact when the metadata_lock_info plugin is installed (holders of metadata locks in
        this schema); otherwise the open InnoDB transactions, those whose session is in this
        schema first (the usual metadata-lock blockers).
        """
        own = {self._control.thread_id(), self._work.thread_id() if self._work else None}
        cur = self._ctl
        exact: set[int] = set()
        try:
            cur.execute(
                "SELECT DISTINCT THREAD_ID FROM information_schema.METADATA_LOCK_INFO "
                "WHERE TABLE_SCHEMA = %s",
                (self.spec.database,),
            )
            exact = {r[0] for r in cur.fetchall()} - own
        except pymysql.MySQLError:
            pass  # plugin not installed: fall back to open transactions
        try:
            cur.execute(
                "SELECT p.ID, p.USER, p.HOST, p.DB, p.COMMAND, p.TIME, "
                "LEFT(COALESCE(t.trx_query, p.INFO, ''), 200), t.trx_started "
                "FROM information_schema.PROCESSLIST p "
                "LEFT JOIN information_schema.INNODB_TRX t ON p.ID = t.trx_mysql_thread_id "
                "WHERE t.trx_id IS NOT NULL OR p.ID IN ("
                + (",".join(str(int(x)) for x in exact) or "NULL")
                + ") "
                "ORDER BY (p.DB <=> %s) DESC, t.trx_started",
                (self.spec.database,),
            )
            rows = [r for r in cur.fetchall() if r[0] not in own]
        except pymysql.MySQLError as e:
            return f"could not read the blocking sessions: {_mysql_text(e)}"
        if exact:
            rows = [r for r in rows if r[0] in exact]
        if not rows:
            return (
                "no open transaction found now: the blocker may have finished, or holds "
                "LOCK TABLES (look for it in SHOW PROCESSLIST)"
            )
        parts = []
        for id_, user, host, db, command, secs, query, trx_started in rows[:5]:
            q = f", last query: {query!r}" if query else ""
            since = f"transaction open since {trx_started}" if trx_started else "holds a lock"
            parts.append(
                f"connection {id_} ({user}@{host}, db {db}, {command} for {secs} s, {since}{q})"
            )
        more = f" (and {len(rows) - 5} more open transactions)" if len(rows) > 5 else ""
        return (
            "blocked by "
            + "; ".join(parts)
            + more
            + ". End that transaction (or KILL the connection) and resume"
        )
