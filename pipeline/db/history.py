"""The append-only history table ``dbroll_history``: DDL, reads, and the state derived from it.

One row per event (migrate, undo, repeatable, baseline, repair, code_rollback). The row of
the event in progress is updated as it runs (``statements_done``, then ``status``); once
its event has ended a row is never changed or deleted: a later event appends its own row.

``applied`` on a row is the state of ``version`` after that event (1 applied, 0 not,
NULL no change), so the applied set is derived by reading the latest successful row of
each version. This module imports no database driver: callers pass a DB-API cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from pipeline.errors import BlockedError
from pipeline.migrations.model import Version

TABLE = "dbroll_history"
LOCK_TABLE = "dbroll_lock"

KINDS = ("migrate", "undo", "repeatable", "baseline", "repair", "code_rollback")
RUNNING, SUCCESS, FAILED = "running", "success", "failed"

DDL = f"""
CREATE TABLE IF NOT EXISTS `{TABLE}` (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  version VARCHAR(64) NULL,
  description VARCHAR(255) NOT NULL DEFAULT '',
  kind VARCHAR(16) NOT NULL,
  script VARCHAR(512) NULL,
  checksum CHAR(64) NULL,
  status VARCHAR(16) NOT NULL,
  applied TINYINT NULL COMMENT 'state of version after this event: 1 applied, 0 reverted',
  statements_done INT NOT NULL DEFAULT 0,
  statements_total INT NULL,
  error TEXT NULL,
  started_at DATETIME(6) NOT NULL,
  finished_at DATETIME(6) NULL,
  duration_ms INT NULL,
  installed_by VARCHAR(128) NOT NULL DEFAULT '',
  image VARCHAR(255) NULL,
  run_id VARCHAR(255) NULL,
  host VARCHAR(255) NULL,
  bundle CHAR(64) NULL COMMENT 'sha256 of the rollback bundle that ran this event',
  KEY version_idx (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='dbroll: append-only migration history'
"""

RUNNER_ARN_COLUMN = (
    "runner_arn VARCHAR(1024) NULL COMMENT 'the ECS task or CodeBuild build the runner ran in'"
)
LOCK_DDL = f"""
CREATE TABLE IF NOT EXISTS `{LOCK_TABLE}` (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  connection_id BIGINT UNSIGNED NOT NULL,
  host VARCHAR(255) NOT NULL,
  pid INT NOT NULL,
  run_id VARCHAR(255) NULL,
  acquired_at DATETIME(6) NOT NULL,
  {RUNNER_ARN_COLUMN}
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='dbroll: who holds the runner lock (informational)'
"""
# a lock table an older dbroll made lacks it: the runner adds it when its lock row is refused
LOCK_ADD_RUNNER_ARN = (
    f"SET STATEMENT lock_wait_timeout = 5 FOR "
    f"ALTER TABLE `{LOCK_TABLE}` ADD COLUMN IF NOT EXISTS {RUNNER_ARN_COLUMN}"
)

COLUMNS = (
    "id",
    "version",
    "description",
    "kind",
    "script",
    "checksum",
    "status",
    "applied",
    "statements_done",
    "statements_total",
    "error",
    "started_at",
    "finished_at",
    "duration_ms",
    "installed_by",
    "image",
    "run_id",
    "host",
    "bundle",
)

_SELECT = ", ".join(f"CAST({c} AS CHAR)" if c.endswith("_at") else c for c in COLUMNS)
_APPLIED = COLUMNS.index("applied")
_DATETIMES = (COLUMNS.index("started_at"), COLUMNS.index("finished_at"))


@dataclass(frozen=True)
class HistoryRow:
    id: int
    version: str | None
    description: str
    kind: str
    script: str | None
    checksum: str | None
    status: str
    applied: bool | None
    statements_done: int
    statements_total: int | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    installed_by: str
    image: str | None
    run_id: str | None
    host: str | None
    bundle: str | None = None

    @classmethod
    def from_tuple(cls, values: tuple[Any, ...]) -> HistoryRow:
        """A row from the values of COLUMNS, in order. The two DATETIME(6) columns may come
        as text (read_history selects them so: the server's text is ISO 8601, and
        datetime.fromisoformat reads it several times faster than the driver's parser)."""
        if len(values) != len(COLUMNS):
            raise ValueError(f"a history row has {len(COLUMNS)} values, got {len(values)}")
        v = list(values)
        v[_APPLIED] = None if v[_APPLIED] is None else bool(v[_APPLIED])
        for i in _DATETIMES:
            if isinstance(v[i], str):
                v[i] = datetime.fromisoformat(v[i])
        return cls(*v)

    @property
    def parsed_version(self) -> Version | None:
        return Version.parse(self.version) if self.version else None

    @property
    def subject(self) -> str:
        """What the row is about, for messages: a version or a repeatable's script."""
        if self.version:
            return f"version {self.version}"
        return f"repeatable {self.script}" if self.script else f"{self.kind} event"

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for name in COLUMNS:
            v = getattr(self, name)
            out[name] = v.isoformat() if isinstance(v, datetime) else v
        return out


@dataclass(frozen=True)
class History:
    """The history rows in id order, and what they imply."""

    rows: tuple[HistoryRow, ...] = ()

    @cached_property
    def applied(self) -> dict[Version, HistoryRow]:
        """Applied versions -> the successful row that applied them (for its checksum)."""
        state: dict[Version, HistoryRow | None] = {}
        for row in self.rows:
            if row.status == SUCCESS and row.applied is not None and row.version:
                state[Version.parse(row.version)] = row if row.applied else None
        return {v: r for v, r in sorted(state.items()) if r is not None}

    @property
    def applied_versions(self) -> list[Version]:
        return list(self.applied)

    @property
    def current(self) -> Version | None:
        return max(self.applied) if self.applied else None

    @cached_property
    def blocked(self) -> HistoryRow | None:
        """The oldest event left running or failed that no later event for its subject resolved."""
        latest: dict[tuple[str, str], HistoryRow] = {}
        for row in self.rows:
            if row.kind != "code_rollback":
                latest[_subject_key(row)] = row
        open_rows = [r for r in latest.values() if r.status in (RUNNING, FAILED)]
        return min(open_rows, key=lambda r: r.id) if open_rows else None

    def stops_in_a_row(self, row: HistoryRow) -> int:
        """How many times in a row a runner stopped at the statement where `row` stopped,
        without a recorded error (killed, interrupted, crashed): `row`'s subject's
        latest rows of its kind, left running with `row`'s statements_done. A resume that got
        further, or an event that ended, starts the count again."""
        key, count = _subject_key(row), 0
        for r in reversed(self.rows):
            if r.kind == "code_rollback" or _subject_key(r) != key:
                continue
            if (
                r.status != RUNNING
                or r.kind != row.kind
                or r.statements_done != row.statements_done
            ):
                break
            count += 1
        return count

    @cached_property
    def repeatables(self) -> dict[str, str]:
        """Repeatable script path -> checksum of its latest successful run."""
        out: dict[str, str] = {}
        for row in self.rows:
            if row.kind == "repeatable" and row.status == SUCCESS and row.script and row.checksum:
                out[row.script] = row.checksum
        return out


def _subject_key(row: HistoryRow) -> tuple[str, str]:
    """What a row is about, as `blocked` groups rows: its version, or a repeatable's script."""
    return ("v", str(Version.parse(row.version))) if row.version else ("s", row.script or "")


def table_exists(cur: Any, table: str = TABLE) -> bool:
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s",
        (table,),
    )
    return cur.fetchone()[0] > 0


def ensure_tables(cur: Any) -> None:
    cur.execute(DDL)
    cur.execute(LOCK_DDL)


def read_history(cur: Any) -> History:
    """All rows in id order; an absent table is an empty history (nothing is created)."""
    if not table_exists(cur):
        return History()
    cur.execute(f"SELECT {_SELECT} FROM `{TABLE}` ORDER BY id")
    rows = tuple(HistoryRow.from_tuple(r) for r in cur.fetchall())
    for row in rows:
        v = row.version
        if v and not (v.isascii() and v.isdigit()):  # digits only: the common case, valid
            try:
                Version.parse(v)
            except ValueError:
                raise BlockedError(
                    f"{TABLE} row {row.id} ({row.kind}, {row.script or 'no script'}) has "
                    f"version {v!r}, which is not a version: dbroll never writes such a row",
                    hint=f"correct its version (digits separated by '.' or '_') or delete row "
                    f"{row.id} by hand, knowing what it records; nothing was changed",
                ) from None
    return History(rows)


@dataclass(frozen=True)
class EventContext:
    """Who and what runs: written on every row."""

    installed_by: str = ""
    image: str | None = None
    run_id: str | None = None
    host: str | None = None
    bundle: str | None = None
    # the ECS task or CodeBuild build this process runs in: written with the runner lock's
    # row only (`dbroll unlock` asks AWS whether it still runs), not on history rows
    runner_arn: str | None = None


def insert_event(
    cur: Any,
    ctx: EventContext,
    *,
    kind: str,
    version: Version | None,
    description: str,
    script: str | None,
    checksum: str | None,
    status: str = RUNNING,
    applied: bool | None = None,
    statements_done: int = 0,
    statements_total: int | None = None,
    error: str | None = None,
) -> int:
    """Append a row; returns its id. Ended events get finished_at and duration 0 at once."""
    ended = status != RUNNING
    cur.execute(
        f"INSERT INTO `{TABLE}` (version, description, kind, script, checksum, status, applied, "
        "statements_done, statements_total, error, started_at, finished_at, duration_ms, "
        "installed_by, image, run_id, host, bundle) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NOW(6), "
        + ("NOW(6), 0" if ended else "NULL, NULL")
        + ", %s, %s, %s, %s, %s)",
        (
            str(version) if version is not None else None,
            description[:255],
            kind,
            script,
            checksum,
            status,
            None if applied is None else int(applied),
            statements_done,
            statements_total,
            error,
            ctx.installed_by[:128],
            ctx.image,
            ctx.run_id,
            ctx.host,
            ctx.bundle,
        ),
    )
    return cur.lastrowid


# The running row's id as a session variable: a packet that writes the row and then runs
# the migration's statements refers to it before the client has read the id (the runner's
# batches). Set right after the INSERT; the migration statements in between are DDL.
ROW_VAR = "@dbroll_row"
REMEMBER_ROW = f"SET {ROW_VAR} = LAST_INSERT_ID()"


def _row_id(row_id: int | str) -> tuple[str, tuple]:
    """The SQL and the arguments that name the row: its id, or ROW_VAR."""
    if isinstance(row_id, str):
        if row_id != ROW_VAR:
            raise ValueError(f"a history row is named by its id or {ROW_VAR}, not {row_id!r}")
        return ROW_VAR, ()
    return "%s", (row_id,)


def mark_progress(cur: Any, row_id: int | str, statements_done: int) -> None:
    where, arg = _row_id(row_id)
    cur.execute(
        f"UPDATE `{TABLE}` SET statements_done = %s WHERE id = {where} AND status = 'running'",
        (statements_done, *arg),
    )


def finish_event(
    cur: Any,
    row_id: int | str,
    *,
    status: str,
    statements_done: int,
    applied: bool | None = None,
    error: str | None = None,
    qualified: str | None = None,
) -> None:
    """End a running event. `qualified` is `schema`.`table` when the cursor's default db may differ."""
    table = qualified or f"`{TABLE}`"
    where, arg = _row_id(row_id)
    cur.execute(
        f"UPDATE {table} SET status = %s, statements_done = %s, applied = %s, error = %s, "
        "finished_at = NOW(6), "
        "duration_ms = TIMESTAMPDIFF(MICROSECOND, started_at, NOW(6)) DIV 1000 "
        f"WHERE id = {where} AND status = 'running'",
        (status, statements_done, None if applied is None else int(applied), error, *arg),
    )
