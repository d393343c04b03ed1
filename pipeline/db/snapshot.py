"""Schema snapshots of one MariaDB database, and the undo rehearsal built on them.

:func:`take_snapshot` reads ``information_schema`` (and ``SHOW CREATE SEQUENCE``) into a
normalized, JSON-serialisable dict: what the schema *is*, never how it got there. Left
out on purpose: AUTO_INCREMENT counters, row counts and statistics, DEFINER clauses,
creation times, session SQL modes, and the schema's own name (```schema`.t`` becomes
``t``), so two databases built from the same DDL compare equal whatever they are called.
Every mapping is sorted by name; columns and partitions keep their ordinal order.
:mod:`pipeline.snapshot_diff` compares two snapshots.

:func:`rehearse` applies each migration of a set on a scratch database, undoes it and
applies it again, comparing snapshots at each step (what ``dbroll verify`` runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pymysql.cursors

from pipeline.db.connect import ConnectionSpec, connect
from pipeline.errors import DatabaseError, DbrollError
from pipeline.snapshot_diff import FORMAT, Difference, diff

__all__ = [
    "DEFAULT_EXCLUDE",
    "FORMAT",
    "Rehearsal",
    "VersionCheck",
    "drop_all_objects",
    "list_objects",
    "rehearse",
    "take_snapshot",
]

DEFAULT_EXCLUDE = ("dbroll_history", "dbroll_lock")


# ---------------------------------------------------------------------------- snapshot


def _rows(conn: Any, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
    # SELECT * and dict rows: information_schema grows columns between MariaDB versions
    # (STATISTICS.IGNORED in 10.6, CHECK_CONSTRAINTS.LEVEL in 10.5.10), read what is there
    cur = conn.cursor(pymysql.cursors.DictCursor)
    try:
        cur.execute(sql, args or None)
        return list(cur.fetchall())
    finally:
        cur.close()


def _text(value: Any) -> Any:
    """information_schema strings sometimes arrive as bytes (binary collations)."""
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return value


class _Unqualify:
    """Removes the ```schema`.`` qualifier of the snapshot's own schema from SQL text
    (MariaDB writes it into every view definition)."""

    def __init__(self, schema: str) -> None:
        self.prefix = "`" + schema.replace("`", "``") + "`."

    def __call__(self, text: Any) -> Any:
        text = _text(text)
        if isinstance(text, str) and self.prefix in text:
            return text.replace(self.prefix, "")
        return text


def _charset_of(collation: str | None, known: dict[str, str]) -> str | None:
    if not collation:
        return None
    return known.get(collation) or collation.split("_", 1)[0]


def _options(create_options: str | None) -> str:
    """CREATE_OPTIONS as a sorted, space-separated list (never an AUTO_INCREMENT value)."""
    tokens = [
        t for t in (create_options or "").split() if not t.lower().startswith("auto_increment=")
    ]
    return " ".join(sorted(tokens))


def take_snapshot(
    spec_or_conn: ConnectionSpec | Any,
    *,
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
) -> dict[str, Any]:
    """A normalized description of one database's schema (see the module doc).

    `spec_or_conn` is a ConnectionSpec (a connection is opened and closed here) or an open
    PyMySQL connection with a database selected (left open). Tables and views named in
    `exclude` are left out, together with their indexes, keys and triggers.
    """
    if isinstance(spec_or_conn, ConnectionSpec):
        conn = connect(spec_or_conn)
        try:
            return take_snapshot(conn, exclude=exclude)
        finally:
            conn.close()
    try:
        return _snapshot(spec_or_conn, frozenset(exclude))
    except pymysql.MySQLError as e:
        raise DatabaseError(
            f"cannot read the schema: {e.args[-1] if e.args else e}",
            hint="the user needs SELECT on the database's objects (information_schema "
            "shows only what the user may see)",
        ) from None


def _snapshot(conn: Any, exclude: frozenset[str]) -> dict[str, Any]:
    schema = _text(_rows(conn, "SELECT DATABASE() AS db")[0]["db"])
    if not schema:
        raise DatabaseError("cannot snapshot: the connection has no database selected")
    unq = _Unqualify(schema)
    args = (schema,)

    charsets = {
        _text(r["COLLATION_NAME"]): _text(r["CHARACTER_SET_NAME"])
        for r in _rows(
            conn, "SELECT COLLATION_NAME, CHARACTER_SET_NAME FROM information_schema.COLLATIONS"
        )
    }
    sch = _rows(
        conn,
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
        "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
        args,
    )
    database = {
        "charset": _text(sch[0]["DEFAULT_CHARACTER_SET_NAME"]) if sch else None,
        "collation": _text(sch[0]["DEFAULT_COLLATION_NAME"]) if sch else None,
    }

    tables: dict[str, dict[str, Any]] = {}
    views: dict[str, dict[str, Any]] = {}
    sequences: dict[str, dict[str, Any]] = {}
    for r in _rows(
        conn,
        # named columns: SELECT * would have the server gather row counts and sizes
        "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, CREATE_OPTIONS, TABLE_COMMENT "
        "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        args,
    ):
        name = _text(r["TABLE_NAME"])
        if name in exclude:
            continue
        kind = _text(r["TABLE_TYPE"])
        if kind == "VIEW":
            views[name] = {}
        elif kind == "SEQUENCE":
            sequences[name] = {}
        else:  # BASE TABLE, SYSTEM VERSIONED
            collation = _text(r.get("TABLE_COLLATION"))
            tables[name] = {
                "type": kind,
                "engine": _text(r.get("ENGINE")),
                "charset": _charset_of(collation, charsets),
                "collation": collation,
                "options": _options(_text(r.get("CREATE_OPTIONS"))),
                "comment": _text(r.get("TABLE_COMMENT")) or "",
                "columns": [],
                "indexes": {},
                "foreign_keys": {},
                "checks": {},
                "partitioning": None,
            }

    for r in _rows(
        conn,
        "SELECT * FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        args,
    ):
        table = tables.get(_text(r["TABLE_NAME"]))
        if table is None:  # a view's columns, or an excluded table
            continue
        generated = _text(r.get("IS_GENERATED")) == "ALWAYS"
        table["columns"].append(
            {
                "name": _text(r["COLUMN_NAME"]),
                "type": _text(r["COLUMN_TYPE"]),
                "nullable": _text(r["IS_NULLABLE"]) == "YES",
                # MariaDB >= 10.2.7: literals quoted ('a'), NULL for "no default",
                # 'NULL' for DEFAULT NULL, expressions as written (current_timestamp())
                "default": unq(r.get("COLUMN_DEFAULT")),
                "extra": _text(r.get("EXTRA")) or "",
                "charset": _text(r.get("CHARACTER_SET_NAME")),
                "collation": _text(r.get("COLLATION_NAME")),
                "comment": _text(r.get("COLUMN_COMMENT")) or "",
                "generated": unq(r.get("GENERATION_EXPRESSION")) if generated else None,
            }
        )

    for r in _rows(
        conn,
        "SELECT * FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
        "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        args,
    ):
        table = tables.get(_text(r["TABLE_NAME"]))
        if table is None:
            continue
        index = table["indexes"].setdefault(
            _text(r["INDEX_NAME"]),
            {
                "columns": [],
                "unique": int(r["NON_UNIQUE"]) == 0,
                "type": _text(r.get("INDEX_TYPE")),
                "comment": _text(r.get("INDEX_COMMENT")) or "",
                "ignored": _text(r.get("IGNORED")) == "YES",
            },
        )
        part = _text(r["COLUMN_NAME"]) or ""
        if r.get("SUB_PART") is not None:
            part += f"({int(r['SUB_PART'])})"
        if _text(r.get("COLLATION")) == "D":
            part += " DESC"
        index["columns"].append(part)

    fk_columns: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in _rows(
        conn,
        "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_COLUMN_NAME "
        "FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE CONSTRAINT_SCHEMA = %s AND REFERENCED_TABLE_NAME IS NOT NULL "
        "ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
        args,
    ):
        fk_columns.setdefault((_text(r["TABLE_NAME"]), _text(r["CONSTRAINT_NAME"])), []).append(r)
    for r in _rows(
        conn,
        "SELECT * FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s",
        args,
    ):
        tname, cname = _text(r["TABLE_NAME"]), _text(r["CONSTRAINT_NAME"])
        table = tables.get(tname)
        if table is None:
            continue
        cols = fk_columns.get((tname, cname), [])
        ref_schema = _text(r.get("UNIQUE_CONSTRAINT_SCHEMA"))
        table["foreign_keys"][cname] = {
            "columns": [_text(c["COLUMN_NAME"]) for c in cols],
            "ref_schema": None if ref_schema == schema else ref_schema,
            "ref_table": _text(r["REFERENCED_TABLE_NAME"]),
            "ref_columns": [_text(c["REFERENCED_COLUMN_NAME"]) for c in cols],
            "on_update": _text(r.get("UPDATE_RULE")),
            "on_delete": _text(r.get("DELETE_RULE")),
        }

    for r in _rows(
        conn,
        "SELECT * FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s",
        args,
    ):
        table = tables.get(_text(r["TABLE_NAME"]))
        if table is not None:
            table["checks"][_text(r["CONSTRAINT_NAME"])] = unq(r["CHECK_CLAUSE"])

    for r in _rows(
        conn,
        "SELECT * FROM information_schema.PARTITIONS "
        "WHERE TABLE_SCHEMA = %s AND PARTITION_NAME IS NOT NULL "
        "ORDER BY TABLE_NAME, PARTITION_ORDINAL_POSITION, SUBPARTITION_ORDINAL_POSITION",
        args,
    ):
        table = tables.get(_text(r["TABLE_NAME"]))
        if table is None:
            continue
        if table["partitioning"] is None:
            table["partitioning"] = {
                "method": _text(r.get("PARTITION_METHOD")),
                "expression": unq(r.get("PARTITION_EXPRESSION")),
                "subpartition_method": _text(r.get("SUBPARTITION_METHOD")),
                "subpartition_expression": unq(r.get("SUBPARTITION_EXPRESSION")),
                "partitions": [],
            }
        label = _text(r["PARTITION_NAME"])
        if r.get("SUBPARTITION_NAME"):
            label += "." + _text(r["SUBPARTITION_NAME"])
        description = _text(r.get("PARTITION_DESCRIPTION"))
        if description is not None:
            label += f": {description}"
        if _text(r.get("PARTITION_COMMENT")):
            label += f" comment {_text(r['PARTITION_COMMENT'])!r}"
        table["partitioning"]["partitions"].append(label)

    for r in _rows(conn, "SELECT * FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s", args):
        name = _text(r["TABLE_NAME"])
        if name in views:
            views[name] = {
                "definition": unq(r["VIEW_DEFINITION"]),
                "check_option": _text(r.get("CHECK_OPTION")),
                "security": _text(r.get("SECURITY_TYPE")),
                "algorithm": _text(r.get("ALGORITHM")),
            }

    for name in sorted(sequences):
        cur = conn.cursor()
        try:
            cur.execute(f"SHOW CREATE SEQUENCE `{name.replace('`', '``')}`")
            sequences[name] = {"definition": unq(cur.fetchone()[1])}
        finally:
            cur.close()

    params: dict[tuple[str, str], list[str]] = {}
    for r in _rows(
        conn,
        "SELECT * FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = %s "
        "AND ORDINAL_POSITION > 0 ORDER BY SPECIFIC_NAME, ROUTINE_TYPE, ORDINAL_POSITION",
        args,
    ):
        mode = _text(r.get("PARAMETER_MODE"))
        text = f"{_text(r['PARAMETER_NAME'])} {_text(r['DTD_IDENTIFIER'])}"
        key = (_text(r["ROUTINE_TYPE"]), _text(r["SPECIFIC_NAME"]))
        params.setdefault(key, []).append(f"{mode} {text}" if mode else text)
    procedures: dict[str, dict[str, Any]] = {}
    functions: dict[str, dict[str, Any]] = {}
    for r in _rows(
        conn, "SELECT * FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s", args
    ):
        kind, name = _text(r["ROUTINE_TYPE"]), _text(r["ROUTINE_NAME"])
        routine = {
            "parameters": params.get((kind, _text(r["SPECIFIC_NAME"])), []),
            "body": unq(r["ROUTINE_DEFINITION"]),
            "deterministic": _text(r.get("IS_DETERMINISTIC")) == "YES",
            "data_access": _text(r.get("SQL_DATA_ACCESS")),
            "security": _text(r.get("SECURITY_TYPE")),
            "comment": _text(r.get("ROUTINE_COMMENT")) or "",
        }
        if kind == "FUNCTION":
            routine["returns"] = _text(r.get("DTD_IDENTIFIER"))
            functions[name] = routine
        else:
            procedures[name] = routine

    triggers: dict[str, dict[str, Any]] = {}
    for r in _rows(
        conn, "SELECT * FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", args
    ):
        table_name = _text(r["EVENT_OBJECT_TABLE"])
        if table_name in exclude:
            continue
        triggers[_text(r["TRIGGER_NAME"])] = {
            "table": table_name,
            "timing": _text(r["ACTION_TIMING"]),
            "event": _text(r["EVENT_MANIPULATION"]),
            "order": int(r.get("ACTION_ORDER") or 0),
            "body": unq(r["ACTION_STATEMENT"]),
        }

    events: dict[str, dict[str, Any]] = {}
    for r in _rows(conn, "SELECT * FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", args):
        interval = r.get("INTERVAL_VALUE")
        events[_text(r["EVENT_NAME"])] = {
            # STARTS / EXECUTE_AT are timestamps of when it was created: left out
            "type": _text(r.get("EVENT_TYPE")),
            "interval": (
                f"{_text(interval)} {_text(r.get('INTERVAL_FIELD'))}"
                if interval is not None
                else None
            ),
            "body": unq(r["EVENT_DEFINITION"]),
            "status": _text(r.get("STATUS")),
            "on_completion": _text(r.get("ON_COMPLETION")),
            "comment": _text(r.get("EVENT_COMMENT")) or "",
        }

    for table in tables.values():
        for key in ("indexes", "foreign_keys", "checks"):
            table[key] = dict(sorted(table[key].items()))

    def ordered(d: dict[str, Any]) -> dict[str, Any]:
        return dict(sorted(d.items()))

    return {
        "format": FORMAT,
        "database": database,
        "tables": ordered(tables),
        "views": ordered(views),
        "sequences": ordered(sequences),
        "procedures": ordered(procedures),
        "functions": ordered(functions),
        "triggers": ordered(triggers),
        "events": ordered(events),
    }


# ---------------------------------------------------------------------------- objects


def list_objects(conn: Any) -> list[str]:
    """Every object in the connection's database, as "table t", "view v", "sequence s",
    "procedure p", "function f", "event e" (sorted; triggers belong to their tables)."""
    args = (_text(_rows(conn, "SELECT DATABASE() AS db")[0]["db"]),)
    kinds = {"VIEW": "view", "SEQUENCE": "sequence"}
    found = [
        f"{kinds.get(_text(r['TABLE_TYPE']), 'table')} {_text(r['TABLE_NAME'])}"
        for r in _rows(
            conn,
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            args,
        )
    ]
    found += [
        f"{_text(r['ROUTINE_TYPE']).lower()} {_text(r['ROUTINE_NAME'])}"
        for r in _rows(
            conn,
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = %s",
            args,
        )
    ]
    found += [
        f"event {_text(r['EVENT_NAME'])}"
        for r in _rows(
            conn, "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", args
        )
    ]
    return sorted(found)


_DROP = {
    "view": "DROP VIEW IF EXISTS",
    "table": "DROP TABLE IF EXISTS",
    "sequence": "DROP SEQUENCE IF EXISTS",
    "procedure": "DROP PROCEDURE IF EXISTS",
    "function": "DROP FUNCTION IF EXISTS",
    "event": "DROP EVENT IF EXISTS",
}


def drop_all_objects(conn: Any) -> list[str]:
    """Drop every object of the connection's database; returns what it dropped.

    Only for a scratch database that was empty before dbroll used it (verify's cleanup)."""
    objects = list_objects(conn)
    cur = conn.cursor()
    try:
        cur.execute("SET SESSION foreign_key_checks = 0")
        # views first: a table dropped under a view leaves the view invalid, not gone
        for obj in sorted(objects, key=lambda o: (not o.startswith("view "), o)):
            kind, name = obj.split(" ", 1)
            cur.execute(f"{_DROP[kind]} `{name.replace('`', '``')}`")
    finally:
        try:
            cur.execute("SET SESSION foreign_key_checks = 1")
        finally:
            cur.close()
    return objects


# ---------------------------------------------------------------------------- rehearsal


@dataclass
class VersionCheck:
    """One migration's rehearsal: forward, undo (restores the schema?), forward again."""

    version: str
    description: str
    forward: str = "not run"  # ok | failed | not run
    undo: str = "not run"  # restores | differs | failed | no undo | not run
    reapply: str = "not run"  # ok | differs | failed | - (no undo) | not run
    seconds: float = 0.0
    error: str | None = None
    differences: list[Difference] = field(default_factory=list)
    after: dict[str, Any] | None = field(default=None, repr=False)  # snapshot after forward

    @property
    def ok(self) -> bool:
        return (
            self.forward == "ok"
            and self.undo in ("restores", "no undo")
            and self.reapply in ("ok", "-")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "description": self.description,
            "forward": self.forward,
            "undo": self.undo,
            "reapply": self.reapply,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "differences": [d.to_dict() for d in self.differences],
        }


@dataclass
class Rehearsal:
    """What rehearse() found: one check per pending migration, in version order."""

    database: str
    checks: list[VersionCheck] = field(default_factory=list)
    failure: str | None = None  # why it stopped, naming the version at fault
    failed_version: str | None = None
    missing_undo: list[str] = field(default_factory=list)
    allow_missing_undo: bool = False
    cleanup: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None and (self.allow_missing_undo or not self.missing_undo)

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "ok": self.ok,
            "migrations": [c.to_dict() for c in self.checks],
            "failure": self.failure,
            "failed_version": self.failed_version,
            "missing_undo": self.missing_undo,
            "cleanup": self.cleanup,
            "warnings": self.warnings,
        }


def rehearse(
    spec: ConnectionSpec,
    mset: Any,
    *,
    options: Any = None,
    allow_missing_undo: bool = False,
    progress: Callable[[VersionCheck], None] | None = None,
) -> Rehearsal:
    """Apply, undo and re-apply each pending migration of `mset` on `spec`, one at a time.

    For each version: snapshot S0, forward -> S1, undo -> must equal S0, forward again ->
    must equal S1. Stops at the first version that fails (its undo does not restore S0,
    a script fails, or the re-apply differs from S1); a migration without an undo script
    is recorded as "no undo" and the rehearsal goes on. The migrations run through the
    Runner (history, lock, statement splitting), one version per call.

    The database is left as it was found: one that was empty gets every object dropped
    (dbroll's own tables included); otherwise the rehearsed versions are undone.
    """
    from pipeline.db.runner import Runner, RunnerOptions
    from pipeline.migrations.model import ZERO

    result = Rehearsal(spec.describe(), allow_missing_undo=allow_missing_undo)
    conn = connect(spec)
    try:
        objects = list_objects(conn)
        before = take_snapshot(conn)
    finally:
        conn.close()
    runner = Runner(spec, mset, options or RunnerOptions())
    start = ZERO
    try:
        state = runner.status()
        start = state.current if state.current is not None else ZERO
        pending = list(state.pending)
        previous, s0 = start, before
        for m in pending:
            check = VersionCheck(str(m.version), m.description)
            result.checks.append(check)
            started = time.monotonic()
            try:
                _check_one(runner, m, previous, s0, check)
            finally:
                check.seconds = time.monotonic() - started
                if progress is not None:
                    progress(check)
            if check.undo == "no undo":
                result.missing_undo.append(check.version)
            if not check.ok:
                result.failed_version = check.version
                result.failure = _failure_text(check)
                break
            previous, s0 = m.version, check.after
        for m in pending[len(result.checks) :]:
            result.checks.append(VersionCheck(str(m.version), m.description))
    finally:
        result.cleanup = _restore(
            runner, spec, before, start, not objects, "table dbroll_history" in objects, result
        )
    return result


def _check_one(runner: Any, m: Any, previous: Any, s0: dict, check: VersionCheck) -> None:
    try:
        runner.migrate(m.version)
    except DbrollError as e:
        check.forward, check.error = "failed", e.message
        return
    check.forward = "ok"
    check.after = s1 = take_snapshot(runner.spec)
    if m.undo is None:
        check.undo, check.reapply = "no undo", "-"
        return
    try:
        runner.undo(previous)
    except DbrollError as e:
        check.undo, check.error = "failed", e.message
        return
    differences = diff(s0, take_snapshot(runner.spec))
    if differences:
        check.undo, check.differences = "differs", differences
        return
    check.undo = "restores"
    try:
        runner.migrate(m.version)
    except DbrollError as e:
        check.reapply, check.error = "failed", e.message
        return
    differences = diff(s1, take_snapshot(runner.spec))
    if differences:
        check.reapply, check.differences = "differs", differences
        return
    check.reapply = "ok"


def _failure_text(check: VersionCheck) -> str:
    v = f"version {check.version}" + (f" ({check.description})" if check.description else "")
    if check.forward == "failed":
        return f"{v}: the forward migration failed: {check.error}"
    if check.undo == "failed":
        return f"{v}: the undo script failed: {check.error}"
    if check.undo == "differs":
        return f"{v}: its undo does not restore the schema ({len(check.differences)} difference(s))"
    if check.reapply == "failed":
        return f"{v}: applying it again after its undo failed: {check.error}"
    return f"{v}: applying it again after its undo gives a different schema"


def _restore(
    runner: Any,
    spec: ConnectionSpec,
    before: dict,
    start: Any,
    was_empty: bool,
    had_history: bool,
    result: Rehearsal,
) -> str:
    """Put the database back as rehearse() found it; returns what was done."""
    if was_empty:
        conn = connect(spec)
        try:
            drop_all_objects(conn)
            left = list_objects(conn)
        finally:
            conn.close()
        if left:
            result.warnings.append("could not drop " + ", ".join(left))
            return "left objects behind: " + ", ".join(left)
        return "dropped everything it created: the database is empty again"
    if all(c.forward == "not run" for c in result.checks):
        return "nothing applied: the database is unchanged"
    try:
        runner.undo(start)
    except DbrollError as e:
        msg = f"could not undo the rehearsed migrations: {e.message}"
        result.warnings.append(msg + " (recreate the scratch database)")
        return msg
    if not had_history:
        conn = connect(spec)
        try:
            conn.cursor().execute("DROP TABLE IF EXISTS `dbroll_history`, `dbroll_lock`")
        finally:
            conn.close()
    if diff(before, take_snapshot(spec)):
        msg = "undid the rehearsed migrations, but the schema differs from before"
        result.warnings.append(msg)
        return msg
    return f"undid the rehearsed migrations: the schema is as before (version {start})"
