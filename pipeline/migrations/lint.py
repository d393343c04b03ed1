"""Expand/contract lint: classify every statement, then every migration.

A rollback can be *code-only* (the old code keeps running on the new schema, nothing is
undone, nothing is lost) only when every migration it reverts is ``additive``. Classes,
by severity: ``additive`` < ``data`` < ``unknown`` < ``breaking``; a migration's class is
its most severe statement's. ``unknown`` means "cannot tell": decisions treat it as
breaking.

| statement | class | code |
|---|---|---|
| CREATE TABLE [IF NOT EXISTS] / LIKE / AS SELECT, CREATE TEMPORARY TABLE | additive | |
| CREATE OR REPLACE TABLE of a table not created in context (drops it when it exists) | unknown | replace-table |
| CREATE [FULLTEXT / SPATIAL] INDEX, CREATE [OR REPLACE] VIEW / PROCEDURE / FUNCTION / TRIGGER / EVENT, CREATE DATABASE / SEQUENCE | additive | |
| CREATE UNIQUE INDEX on an existing table | breaking | add-unique |
| CREATE USER / ROLE / SERVER, GRANT, REVOKE, SET PASSWORD / ROLE / DEFAULT ROLE | unknown | grant |
| ALTER TABLE ADD COLUMN nullable or with a DEFAULT | additive | |
| ALTER TABLE ADD COLUMN NOT NULL without DEFAULT (AUTO_INCREMENT / generated included) | breaking | add-column-not-null |
| ALTER TABLE ADD COLUMN ... PRIMARY KEY / UNIQUE / REFERENCES (inline) | breaking | add-primary-key, add-unique, add-foreign-key |
| ALTER TABLE ADD INDEX / KEY / FULLTEXT / SPATIAL, ALTER COLUMN SET DEFAULT, ALTER INDEX NOT IGNORED, COMMENT, FORCE | additive | |
| ALTER TABLE options ALGORITHM= / LOCK= / WAIT n / NOWAIT / AUTO_INCREMENT= / ROW_FORMAT= ... | ignored (qualify other specs) | |
| ALTER TABLE ADD UNIQUE / PRIMARY KEY / FOREIGN KEY / CONSTRAINT ... CHECK | breaking | add-unique, add-primary-key, add-foreign-key, add-check |
| ALTER TABLE DROP [COLUMN] c | breaking | drop-column |
| ALTER TABLE DROP INDEX / KEY, DROP PRIMARY KEY, DROP FOREIGN KEY, DROP CONSTRAINT / CHECK | breaking | drop-index, drop-primary-key, drop-foreign-key, drop-constraint |
| ALTER TABLE ALTER COLUMN DROP DEFAULT | breaking | drop-default |
| ALTER TABLE ALTER INDEX IGNORED / INVISIBLE | unknown | ignore-index |
| ALTER TABLE DROP PARTITION / TRUNCATE PARTITION | breaking | drop-partition, truncate |
| ALTER TABLE RENAME [TO / AS], RENAME TABLE | breaking | rename-table |
| ALTER TABLE RENAME COLUMN, CHANGE old new (names differ) | breaking | rename-column |
| ALTER TABLE RENAME INDEX / KEY | breaking | rename-index |
| MODIFY / CHANGE c c provably widening (old definition seen earlier in context): VARCHAR(n)->VARCHAR(m>=n), CHAR->VARCHAR, TEXT family up, int family up (unsigned->signed only strictly wider), DECIMAL with no fewer integer or fraction digits, ENUM / SET with values appended, NOT NULL->NULL; DEFAULT and CHARACTER SET / COLLATE unchanged | additive | |
| MODIFY / CHANGE otherwise (narrower, retyped, or old definition unknown) | breaking | modify-column |
| ALTER TABLE ENGINE= / CONVERT TO CHARACTER SET / [DEFAULT] CHARSET / COLLATE | unknown | table-options |
| ALTER TABLE ADD PARTITION / PERIOD / SYSTEM VERSIONING, any other ALTER TABLE spec, ALTER of anything else | unknown | table-options, unknown-alter |
| DROP TABLE / SEQUENCE, DROP VIEW, DROP PROCEDURE / FUNCTION / TRIGGER / EVENT, DROP INDEX, DROP DATABASE | breaking | drop-table, drop-view, drop-routine, drop-index, drop-database |
| DROP TEMPORARY TABLE | additive | |
| TRUNCATE [TABLE] | breaking | truncate |
| INSERT / REPLACE into a table created in context | additive | |
| INSERT / REPLACE, UPDATE, DELETE, LOAD DATA on other tables | data | data-insert, data-update, data-delete, data-load |
| CALL | unknown | call |
| PREPARE / EXECUTE (dynamic SQL) | unknown | dynamic-sql |
| BEGIN NOT ATOMIC ... END | unknown | compound-statement |
| SET GLOBAL / SET @@global.x | unknown | set-global |
| anything else that is not recognised | unknown | unknown-statement |
| a script the splitter cannot split (unterminated quote or comment) | unknown | unparsable |
| session SET, SELECT, SHOW, DO, USE, transaction control, ANALYZE / OPTIMIZE / CHECK, LOCK / UNLOCK TABLES | additive (no schema effect) | |
| ``-- dbroll:allow <code>`` without a reason | breaking (never allowed) | allow-without-reason |

Anything done to a table created earlier in the same lint context is additive (the old
code never knew that table).

Parser choice: sqlglot's MySQL dialect was considered. MariaDB's ALTER TABLE grammar
(``WAIT n`` / ``NOWAIT``, ``ADD COLUMN IF NOT EXISTS``, ``ALGORITHM=INSTANT`` between
specs, ``/*! */`` versioned comments, compound trigger bodies) is where the decisions are
made, and a parser that falls back to an opaque "command" node there decides nothing. A
small tokenizer over the statements the splitter produced, with one rule per ALTER spec,
is exact for the forms above, fast, and needs no dependency.

A finding can be accepted on purpose with a line ``-- dbroll:allow <code> <reason>`` in
the script: the finding stays (and keeps the migration's class), but no longer blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.migrations.model import Migration, MigrationSet, Script, Version
from pipeline.migrations.sqlsplit import SplitError, split_statements

ADDITIVE, DATA, UNKNOWN, BREAKING = "additive", "data", "unknown", "breaking"
SEVERITY = {ADDITIVE: 0, DATA: 1, UNKNOWN: 2, BREAKING: 3}

HINTS = {
    "add-column-not-null": "add it nullable or with a DEFAULT, backfill, then add NOT NULL "
    "in a later release",
    "add-unique": "clean duplicates first and add the unique index in a release after the "
    "code stops writing them; it cannot be rolled back by code alone",
    "add-primary-key": "add the key in its own release once the code writes unique values",
    "add-foreign-key": "add the constraint in a later release, after the data is clean and "
    "the code writes valid references",
    "add-check": "add the check in a later release, once every writer respects it",
    "drop-column": "contract in steps: stop reading and writing it, release, then drop it in "
    "a later release",
    "drop-table": "contract in steps: stop using the table, release, then drop it later",
    "drop-view": "keep the view until no released code reads it, then drop it",
    "drop-routine": "keep the routine until no released code calls it, then drop it",
    "drop-index": "drop the index in a release after the code stops relying on it",
    "drop-foreign-key": "drop the foreign key in a release after the code stops relying on it",
    "drop-partition": "archive the rows, then drop the partition in its own release",
    "replace-table": "use CREATE TABLE IF NOT EXISTS, or drop the old table in a later release",
    "compound-statement": "write the statements out, so they can be classified and undone",
    "set-global": "set server variables in the parameter group, not in a migration",
    "ignore-index": "drop or ignore the index in a release after the code stops relying on it",
    "drop-primary-key": "replace the key in steps: add the new one, switch, drop later",
    "drop-constraint": "drop constraints in their own release so code-only rollback stays possible",
    "drop-default": "keep the default until no released code inserts without the column",
    "drop-database": "never drop a database in a migration that may be rolled back",
    "rename-column": "rename column: add the new column, write both, backfill, switch reads, "
    "drop the old one in a later release",
    "rename-table": "rename table: create the new table (or a view with the new name), write "
    "both, switch reads, drop the old one later",
    "rename-index": "add an index with the new name, drop the old one in a later release",
    "modify-column": "change a type in steps: add a new column of the new type, write both, "
    "backfill, switch, drop the old one later (widening is safe)",
    "table-options": "rebuild or convert a table in its own release, with a rehearsal",
    "truncate": "delete data in its own release, after a backup",
    "data-insert": "seed reference data in the migration that creates the table, or make "
    "the insert idempotent and accept it",
    "data-update": "backfill in batches from the app or a job; keep migrations schema-only",
    "data-delete": "delete in batches after a backup; keep migrations schema-only",
    "data-load": "load data outside schema migrations",
    "call": "inline the statements, so they can be classified and undone",
    "dynamic-sql": "write the statement out, so it can be classified and undone",
    "grant": "manage privileges outside schema migrations",
    "unknown-alter": "split the change into statements dbroll can classify",
    "unknown-statement": "split the change into statements dbroll can classify",
    "allow-without-reason": "write why: -- dbroll:allow <code> <reason>",
    "unparsable": "fix the quoting or comment the splitter reports",
}


@dataclass(frozen=True)
class Finding:
    code: str
    klass: str
    path: str
    line: int
    message: str
    hint: str | None
    table: str | None = None
    allowed: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "class": self.klass,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "hint": self.hint,
            "table": self.table,
            "allowed": self.allowed,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            code=d["code"],
            klass=d["class"],
            path=d["path"],
            line=int(d["line"]),
            message=d["message"],
            hint=d.get("hint"),
            table=d.get("table"),
            allowed=bool(d.get("allowed", False)),
            reason=d.get("reason"),
        )


@dataclass(frozen=True)
class MigrationLint:
    version: Version
    klass: str
    findings: tuple[Finding, ...]
    created_tables: frozenset[str]

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.klass in (BREAKING, UNKNOWN) and not f.allowed)


# ---------------------------------------------------------------- tokens

_COMMENTS = re.compile(
    r"(?P<exec>/\*M?!\d*)|(?P<block>/\*.*?\*/)|(?P<line>(?:--(?=\s|$)|#)[^\n]*)"
    r"|(?P<str>'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\")|(?P<bt>`(?:[^`]|``)*`)",
    re.S,
)
_IDENT = r"(?:`(?:[^`]|``)*`|[A-Za-z_$][\w$]*)"
_TOKEN = re.compile(
    rf"{_IDENT}(?:\.{_IDENT})*|@@?[\w$.]+|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\""
    r"|\d+(?:\.\d+)?|[(),=;*.]|\S",
    re.S,
)
_ALLOW = re.compile(r"^\s*(?:--|#)\s*dbroll:allow\s+(\S+)[ \t]*(.*?)\s*$", re.M)


def _clean(text: str) -> str:
    """Comments out, string contents emptied, executable comments unwrapped."""
    out = []
    pos = 0
    in_exec = 0
    for m in _COMMENTS.finditer(text):
        out.append(text[pos : m.start()])
        if m.group("exec"):
            in_exec += 1
            out.append(" ")
        elif m.group("block") or m.group("line"):
            out.append(" ")
        elif m.group("str"):
            out.append(m.group("str"))
        else:
            out.append(m.group("bt"))
        pos = m.end()
    out.append(text[pos:])
    cleaned = "".join(out)
    if in_exec:
        cleaned = cleaned.replace("*/", " ")
    return cleaned


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(_clean(text))


def _name(tok: str) -> str:
    """Unquoted, unqualified, lower-case object name."""
    parts = [
        p.strip("`").replace("``", "`") for p in re.split(r"\.(?=(?:[^`]*`[^`]*`)*[^`]*$)", tok)
    ]
    return parts[-1].lower()


def _split_top(tokens: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    depth = 0
    for t in tokens:
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if t == "," and depth == 0:
            parts.append([])
        else:
            parts[-1].append(t)
    return [p for p in parts if p]


def _up(tokens: list[str]) -> list[str]:
    return [t.upper() for t in tokens]


# ---------------------------------------------------------------- column types

_INT_RANK = {
    "TINYINT": 1,
    "BOOL": 1,
    "BOOLEAN": 1,
    "SMALLINT": 2,
    "MEDIUMINT": 3,
    "INT": 4,
    "INTEGER": 4,
    "BIGINT": 5,
}
_TEXT_RANK = {"TINYTEXT": 1, "TEXT": 2, "MEDIUMTEXT": 3, "LONGTEXT": 4}


@dataclass(frozen=True)
class _Col:
    base: str
    args: tuple[str, ...]  # numbers of VARCHAR(n) / DECIMAL(p,s), values of ENUM / SET
    unsigned: bool
    nullable: bool
    default: tuple[str, ...] | None  # tokens of the DEFAULT expression, None without one
    charset: tuple[str, ...]  # CHARACTER SET / COLLATE words, upper-case


def _parse_col(spec: list[str]) -> _Col | None:
    """`type [(n[,m])] [UNSIGNED] ... [NOT NULL] [DEFAULT x]` -> _Col (spec starts at the type)."""
    if not spec or not re.fullmatch(r"[A-Za-z_]\w*", spec[0]):
        return None
    up = _up(spec)
    args: list[str] = []
    if len(spec) > 1 and spec[1] == "(":
        i = 2
        while i < len(spec) and spec[i] != ")":
            if spec[i] != ",":
                args.append(spec[i])
            i += 1
    nullable = True
    default: tuple[str, ...] | None = None
    charset: list[str] = []
    for i, t in enumerate(up):
        if t == "NOT" and up[i + 1 : i + 2] == ["NULL"] or t == "PRIMARY":
            nullable = False
        elif t == "DEFAULT" and default is None:
            j, depth = i + 1, 0
            while j < len(up):
                depth += (up[j] == "(") - (up[j] == ")")
                j += 1
                if depth <= 0:
                    break
            default = tuple(spec[i + 1 : j])
        elif t in ("CHARSET", "COLLATE") or (t == "CHARACTER" and up[i + 1 : i + 2] == ["SET"]):
            k = i + (2 if t == "CHARACTER" else 1)
            k += up[k : k + 1] == ["="]
            charset += [t, *up[k : k + 1]]
    return _Col(up[0], tuple(args), "UNSIGNED" in up, nullable, default, tuple(charset))


def _ints(args: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(int(a) for a in args if a.isdigit())


def _widening(old: _Col, new: _Col) -> bool:
    """True when every value and every write the old column accepts, the new one accepts."""
    if old.nullable and not new.nullable:
        return False
    if old.default is not None and new.default != old.default:
        return False  # the old code may insert without the column and expect that default
    if new.charset != old.charset:
        return False  # MODIFY without CHARACTER SET resets it to the table's default
    if old.base in _INT_RANK and new.base in _INT_RANK:
        if old.unsigned == new.unsigned:
            return _INT_RANK[new.base] >= _INT_RANK[old.base]
        # unsigned -> signed is safe only into a strictly wider type
        return old.unsigned and _INT_RANK[new.base] > _INT_RANK[old.base]
    if old.base in _TEXT_RANK and new.base in _TEXT_RANK:
        return _TEXT_RANK[new.base] >= _TEXT_RANK[old.base]
    if (
        old.base in ("VARCHAR", "CHAR", "VARBINARY", "BINARY")
        and new.base in ("VARCHAR", "VARBINARY")
        and (old.base in ("VARCHAR", "CHAR")) == (new.base == "VARCHAR")
    ):
        o, n = _ints(old.args), _ints(new.args)
        return bool(o and n and n[0] >= o[0])
    if old.base in ("DECIMAL", "NUMERIC") and new.base == old.base:
        op, os_ = (_ints(old.args) + (10, 0))[:2]
        np_, ns = (_ints(new.args) + (10, 0))[:2]
        return ns >= os_ and np_ - ns >= op - os_
    if old.base in ("ENUM", "SET") and new.base == old.base:
        return new.args[: len(old.args)] == old.args  # values appended at the end
    return old.base == new.base and old.args == new.args and old.unsigned == new.unsigned


# ---------------------------------------------------------------- statements


@dataclass
class _Context:
    created: set[str]
    columns: dict[str, dict[str, _Col]]


_CONSTRAINT_WORDS = {
    "PRIMARY",
    "KEY",
    "INDEX",
    "UNIQUE",
    "CONSTRAINT",
    "FOREIGN",
    "FULLTEXT",
    "SPATIAL",
    "CHECK",
    "PERIOD",
    "SYSTEM",
}
_ROUTINES = {
    "PROCEDURE": "drop-routine",
    "FUNCTION": "drop-routine",
    "TRIGGER": "drop-routine",
    "EVENT": "drop-routine",
    "VIEW": "drop-view",
    "TABLE": "drop-table",
    "TABLES": "drop-table",
    "DATABASE": "drop-database",
    "SCHEMA": "drop-database",
    "SEQUENCE": "drop-table",
}
_CREATE_KINDS = {
    "TABLE",
    "INDEX",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "VIEW",
    "PROCEDURE",
    "FUNCTION",
    "TRIGGER",
    "EVENT",
    "DATABASE",
    "SCHEMA",
    "SEQUENCE",
    "USER",
    "ROLE",
    "SERVER",
}
_NO_EFFECT = {
    "SET",
    "SELECT",
    "SHOW",
    "USE",
    "DO",
    "START",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "ANALYZE",
    "OPTIMIZE",
    "CHECK",
    "CHECKSUM",
    "FLUSH",
    "LOCK",
    "UNLOCK",
    "DEALLOCATE",
    "DESCRIBE",
    "DESC",
    "EXPLAIN",
    "HELP",
    "VALUES",
    "WITH",
    "XA",
    "SIGNAL",
    "RESIGNAL",
    "DECLARE",
    "KILL",
}


def _skip(up: list[str], i: int, *words: str) -> int:
    while i < len(up) and up[i] in words:
        i += 1
    return i


def _table_after(tokens: list[str], up: list[str], i: int) -> tuple[str | None, int]:
    i = _skip(up, i, "IF", "NOT", "EXISTS", "ONLINE", "IGNORE")
    if i < len(tokens):
        return _name(tokens[i]), i + 1
    return None, i


def _columns_of_create(tokens: list[str], start: int) -> dict[str, _Col]:
    """Column definitions inside the first top-level parentheses after `start`."""
    try:
        open_at = tokens.index("(", start)
    except ValueError:
        return {}
    depth, end = 0, len(tokens)
    for j in range(open_at, len(tokens)):
        if tokens[j] == "(":
            depth += 1
        elif tokens[j] == ")":
            depth -= 1
            if depth == 0:
                end = j
                break
    cols: dict[str, _Col] = {}
    for item in _split_top(tokens[open_at + 1 : end]):
        if item[0].upper() in _CONSTRAINT_WORDS:
            continue
        col = _parse_col(item[1:])
        if col:
            cols[_name(item[0])] = col
    return cols


def _classify(tokens: list[str], ctx: _Context) -> list[tuple[str, str, str, str | None]]:
    """(class, code, message, table) for each non-additive part of one statement."""
    if not tokens:
        return []
    up = _up(tokens)
    head = up[0]
    out: list[tuple[str, str, str, str | None]] = []
    if head == "CREATE":
        # skip OR REPLACE, DEFINER = user, ALGORITHM = ..., SQL SECURITY ...: the first
        # object keyword says what is created
        i = next((k for k, t in enumerate(up[1:14], 1) if t in _CREATE_KINDS), len(up))
        kind = up[i] if i < len(up) else ""
        if kind == "TABLE":
            table, j = _table_after(tokens, up, i + 1)
            if not table or "TEMPORARY" in up[:i]:
                return []
            if "REPLACE" in up[1:i] and table not in ctx.created:
                out.append(
                    (
                        UNKNOWN,
                        "replace-table",
                        f"CREATE OR REPLACE TABLE {table} drops the table first when it exists: "
                        "its rows would be lost",
                        table,
                    )
                )
            ctx.created.add(table)
            like = j + (up[j : j + 1] == ["("])
            if up[like : like + 1] == ["LIKE"] and like + 1 < len(tokens):
                ctx.columns[table] = dict(ctx.columns.get(_name(tokens[like + 1]), {}))
            else:
                ctx.columns[table] = _columns_of_create(tokens, j)
            return out
        if kind in ("UNIQUE", "FULLTEXT", "SPATIAL", "INDEX"):
            unique = kind == "UNIQUE"
            try:
                on = up.index("ON", i)
                table = _name(tokens[on + 1])
            except (ValueError, IndexError):
                table = None
            if unique and table not in ctx.created:
                out.append(
                    (
                        BREAKING,
                        "add-unique",
                        f"adds a unique index on existing table "
                        f"{table}: existing or concurrent rows may violate it",
                        table,
                    )
                )
            return out
        if kind in (
            "VIEW",
            "PROCEDURE",
            "FUNCTION",
            "TRIGGER",
            "EVENT",
            "DATABASE",
            "SCHEMA",
            "SEQUENCE",
        ):
            return []
        if kind in ("USER", "ROLE", "SERVER"):
            return [(UNKNOWN, "grant", f"creates a {kind.lower()}", None)]
        return [(UNKNOWN, "unknown-statement", f"CREATE {kind} is not classified", None)]
    if head == "DROP":
        i = _skip(up, 1, "TEMPORARY", "ONLINE", "OFFLINE")
        kind = up[i] if i < len(up) else ""
        if "TEMPORARY" in up[1:i]:
            return []
        if kind == "INDEX":
            name, j = _table_after(tokens, up, i + 1)
            table = _name(tokens[up.index("ON", j) + 1]) if "ON" in up[j:] else None
            if table in ctx.created:
                return []
            return [
                (
                    BREAKING,
                    "drop-index",
                    f"drops index {name} on {table}: the old code's "
                    "queries (or its uniqueness) may rely on it",
                    table,
                )
            ]
        code = _ROUTINES.get(kind)
        if code is None:
            return [(UNKNOWN, "unknown-statement", f"DROP {kind} is not classified", None)]
        names = [
            _name(t)
            for t in tokens[i + 1 :]
            if t not in (",",)
            and t.upper() not in ("IF", "EXISTS", "CASCADE", "RESTRICT", "WAIT", "NOWAIT")
            and not t.isdigit()
        ]
        if code == "drop-table":
            for n in names:
                ctx.columns.pop(n, None)
            names = [n for n in names if n not in ctx.created]
            return [
                (BREAKING, code, f"drops table {n}: the old code reads it and its data is lost", n)
                for n in names
            ]
        what = kind.lower()
        return [
            (
                BREAKING,
                code,
                f"drops {what} {', '.join(names)}: released code may use it",
                names[0] if code == "drop-view" and names else None,
            )
        ]
    if head == "RENAME":
        start = _skip(up, 2, "IF", "EXISTS")
        pairs = _split_top(tokens[start:])
        res = []
        for p in pairs:
            old, new = _name(p[0]), _name(p[-1])
            if old in ctx.columns:
                ctx.columns[new] = ctx.columns.pop(old)
            if old in ctx.created:
                ctx.created.discard(old)
                ctx.created.add(new)
                continue
            res.append(
                (
                    BREAKING,
                    "rename-table",
                    f"renames table {old} to {new}: the old code still uses {old}",
                    old,
                )
            )
        return res
    if head == "TRUNCATE":
        table, _ = _table_after(tokens, up, 2 if len(up) > 1 and up[1] == "TABLE" else 1)
        if table in ctx.created:
            return []
        return [(BREAKING, "truncate", f"truncates {table}: its data is lost", table)]
    if head == "ALTER":
        i = _skip(up, 1, "ONLINE", "OFFLINE", "IGNORE")
        if i < len(up) and up[i] == "TABLE":
            table, j = _table_after(tokens, up, i + 1)
            return _alter_table(tokens[j:], table or "?", ctx)
        kind = up[i] if i < len(up) else ""
        return [(UNKNOWN, "unknown-alter", f"ALTER {kind} is not classified", None)]
    if head in ("INSERT", "REPLACE"):
        i = _skip(up, 1, "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO")
        table = _name(tokens[i]) if i < len(tokens) else None
        if table in ctx.created:
            return []
        return [(DATA, "data-insert", f"writes rows into existing table {table}", table)]
    if head == "UPDATE":
        i = _skip(up, 1, "LOW_PRIORITY", "IGNORE")
        table = _name(tokens[i]) if i < len(tokens) else None
        if table in ctx.created:
            return []
        return [(DATA, "data-update", f"updates rows of existing table {table}", table)]
    if head == "DELETE":
        try:
            i = _skip(up, up.index("FROM") + 1, "LOW_PRIORITY", "QUICK", "IGNORE")
            table = _name(tokens[i])
        except (ValueError, IndexError):
            table = None
        if table in ctx.created:
            return []
        return [(DATA, "data-delete", f"deletes rows of existing table {table}", table)]
    if head == "LOAD":
        table = _name(tokens[up.index("TABLE") + 1]) if "TABLE" in up else None
        if table in ctx.created:
            return []
        return [(DATA, "data-load", f"loads data into {table}", table)]
    if head == "CALL":
        return [
            (
                UNKNOWN,
                "call",
                f"calls procedure {tokens[1] if len(tokens) > 1 else '?'}: "
                "what it changes cannot be seen",
                None,
            )
        ]
    if head in ("PREPARE", "EXECUTE"):
        return [(UNKNOWN, "dynamic-sql", "runs dynamic SQL: what it changes cannot be seen", None)]
    if head in ("GRANT", "REVOKE"):
        return [(UNKNOWN, "grant", "changes privileges", None)]
    if head == "BEGIN" and up[1:3] == ["NOT", "ATOMIC"]:
        return [
            (
                UNKNOWN,
                "compound-statement",
                "runs an anonymous BEGIN NOT ATOMIC block: what it changes cannot be seen",
                None,
            )
        ]
    if head == "SET" and len(up) > 1:
        if up[1] in ("PASSWORD", "ROLE", "DEFAULT"):
            return [(UNKNOWN, "grant", f"SET {up[1]} changes privileges", None)]
        if up[1] in ("GLOBAL", "PERSIST") or any(
            t.startswith("@@GLOBAL.") for t in up[1:] if t.startswith("@@")
        ):
            return [
                (
                    UNKNOWN,
                    "set-global",
                    "sets a global server variable: it outlives the migration and every "
                    "connection of the old code sees it",
                    None,
                )
            ]
    if head in _NO_EFFECT or head == "(":
        return []
    return [(UNKNOWN, "unknown-statement", f"{tokens[0]} statements are not classified", None)]


def _alter_table(
    tokens: list[str], table: str, ctx: _Context
) -> list[tuple[str, str, str, str | None]]:
    new_table = table in ctx.created
    cols = ctx.columns.setdefault(table, {})
    out: list[tuple[str, str, str, str | None]] = []
    for spec in _split_top(tokens):
        up = _up(spec)
        # leading options that qualify the statement rather than change the table
        while up and up[0] in ("WAIT", "NOWAIT") or (up and up[0].isdigit()):
            spec, up = spec[1:], up[1:]
        if not up:
            continue
        w = up[0]
        if w in (
            "ALGORITHM",
            "LOCK",
            "FORCE",
            "COMMENT",
            "AUTO_INCREMENT",
            "ORDER",
            "DISABLE",
            "ENABLE",
            "STATS_PERSISTENT",
            "STATS_AUTO_RECALC",
            "ROW_FORMAT",
            "KEY_BLOCK_SIZE",
            "PACK_KEYS",
        ):
            continue
        found = _alter_spec(spec, up, table, cols, new_table)
        if w == "RENAME" and up[1:2] not in (["COLUMN"], ["INDEX"], ["KEY"]) and len(spec) > 1:
            renamed = _name(spec[-1])  # the table's new name: what follows applies to it
            ctx.columns[renamed] = ctx.columns.pop(table, cols)
            if new_table:
                ctx.created.discard(table)
                ctx.created.add(renamed)
        if found and not new_table:
            out.append(found)
    return out


def _alter_spec(
    spec: list[str], up: list[str], table: str, cols: dict[str, _Col], new_table: bool
) -> tuple[str, str, str, str | None] | None:
    w = up[0]
    if w == "ADD":
        i = _skip(up, 1, "COLUMN")
        i = _skip(up, i, "IF", "NOT", "EXISTS")
        kind = up[i] if i < len(up) else ""
        if kind == "CONSTRAINT":
            i += 1
            if i < len(up) and up[i] not in ("UNIQUE", "PRIMARY", "FOREIGN", "CHECK"):
                i += 1
            kind = up[i] if i < len(up) else ""
        if kind in ("INDEX", "KEY", "FULLTEXT", "SPATIAL"):
            return None
        if kind == "UNIQUE":
            return (
                BREAKING,
                "add-unique",
                f"adds a unique key to existing table {table}: "
                "existing or concurrent rows may violate it",
                table,
            )
        if kind == "PRIMARY":
            return (BREAKING, "add-primary-key", f"adds a primary key to {table}", table)
        if kind == "FOREIGN":
            return (
                BREAKING,
                "add-foreign-key",
                f"adds a foreign key to existing table {table}"
                ": the old code may write rows that violate it",
                table,
            )
        if kind == "CHECK":
            return (BREAKING, "add-check", f"adds a CHECK constraint to {table}", table)
        if kind in ("PARTITION", "PERIOD", "SYSTEM"):
            return (UNKNOWN, "table-options", f"changes the partitioning of {table}", table)
        defs = [spec[i:]] if spec[i : i + 1] != ["("] else _split_top(spec[i + 1 : -1])
        worst: tuple[str, str, str, str | None] | None = None
        for d in defs:
            if not d:
                continue
            name = _name(d[0])
            col = _parse_col(d[1:])
            if col:
                cols[name] = col
            if new_table:
                continue
            dup = _up(d)
            if "PRIMARY" in dup:
                found = (
                    BREAKING,
                    "add-primary-key",
                    f"adds column {table}.{name} as the primary key of an existing table",
                    table,
                )
            elif "UNIQUE" in dup:
                found = (
                    BREAKING,
                    "add-unique",
                    f"adds column {table}.{name} with a unique key: the old code's inserts "
                    "leave it at its default, so the second one violates it",
                    table,
                )
            elif "REFERENCES" in dup:
                found = (
                    BREAKING,
                    "add-foreign-key",
                    f"adds column {table}.{name} with a foreign key to an existing table",
                    table,
                )
            elif col is not None and not col.nullable and col.default is None:
                # AUTO_INCREMENT and generated columns fill themselves, but a NOT NULL one
                # on a table the old code writes is only accepted on a new table
                found = (
                    BREAKING,
                    "add-column-not-null",
                    f"adds NOT NULL column {table}.{name} without a DEFAULT: the old code's "
                    "inserts, which do not name it, fail",
                    table,
                )
            else:
                continue
            worst = worst or found
        return worst
    if w == "DROP":
        i = _skip(up, 1, "COLUMN")
        kind = up[i] if i < len(up) else ""
        rest = [t for t in spec[i + 1 :] if t.upper() not in ("KEY", "IF", "EXISTS")]
        what = _name(rest[0]) if rest else "?"
        if kind in ("INDEX", "KEY"):
            return (
                BREAKING,
                "drop-index",
                f"drops index {what} of {table}: the old code's queries or uniqueness may "
                "rely on it",
                table,
            )
        if kind == "PRIMARY":
            return (
                BREAKING,
                "drop-primary-key",
                f"drops the primary key of {table}: the old code may rely on its uniqueness",
                table,
            )
        if kind == "FOREIGN":
            return (
                BREAKING,
                "drop-foreign-key",
                f"drops foreign key {what} of {table}: the old code may rely on it "
                "(cascades, integrity)",
                table,
            )
        if kind in ("CONSTRAINT", "CHECK"):
            return (
                BREAKING,
                "drop-constraint",
                f"drops constraint {what} of {table}: the old code may rely on it",
                table,
            )
        if kind == "PARTITION":
            return (
                BREAKING,
                "drop-partition",
                f"drops partition {what} of {table}: its rows are lost",
                table,
            )
        i = _skip(up, i, "IF", "EXISTS")
        name = _name(spec[i]) if i < len(spec) else "?"
        cols.pop(name, None)
        return (
            BREAKING,
            "drop-column",
            f"drops column {table}.{name}: the old code reads it and its data is lost",
            table,
        )
    if w == "RENAME":
        kind = up[1] if len(up) > 1 else ""
        if kind in ("COLUMN",):
            old, new = _name(spec[2]), _name(spec[-1])
            if old in cols:
                cols[new] = cols.pop(old)
            return (
                BREAKING,
                "rename-column",
                f"renames column {table}.{old} to {new}: the old code still uses {old}",
                table,
            )
        if kind in ("INDEX", "KEY"):
            return (BREAKING, "rename-index", f"renames an index of {table}", table)
        return (
            BREAKING,
            "rename-table",
            f"renames table {table} to {_name(spec[-1])}: the old code still uses {table}",
            table,
        )
    if w in ("CHANGE", "MODIFY"):
        i = _skip(up, 1, "COLUMN")
        i = _skip(up, i, "IF", "EXISTS")
        old = _name(spec[i]) if i < len(spec) else "?"
        if w == "CHANGE":
            new = _name(spec[i + 1]) if i + 1 < len(spec) else old
            type_at = i + 2
            if new != old:
                if old in cols:
                    cols[new] = cols.pop(old)
                return (
                    BREAKING,
                    "rename-column",
                    f"renames column {table}.{old} to {new} "
                    f"(CHANGE): the old code still uses {old}",
                    table,
                )
        else:
            type_at = i + 1
        new_col = _parse_col(spec[type_at:])
        before = cols.get(old)
        if new_col is not None:
            cols[old] = new_col
        if before is not None and new_col is not None and _widening(before, new_col):
            return None
        why = (
            "narrows or retypes it"
            if before is not None
            else "its previous definition is not known here, so dbroll could not prove it widening"
        )
        return (BREAKING, "modify-column", f"changes column {table}.{old}: {why}", table)
    if w == "ALTER":
        i = _skip(up, 1, "COLUMN")
        if up[i : i + 1] == ["INDEX"] or up[i : i + 1] == ["KEY"]:
            if ("IGNORED" in up and "NOT" not in up) or "INVISIBLE" in up:
                return (
                    UNKNOWN,
                    "ignore-index",
                    f"makes an index of {table} ignored: the old code's queries may slow down",
                    table,
                )
            return None
        if "DROP" in up[i:] and "DEFAULT" in up[i:]:
            return (BREAKING, "drop-default", f"drops the default of a column of {table}", table)
        return None
    if w == "TRUNCATE":
        return (BREAKING, "truncate", f"truncates a partition of {table}: its rows are lost", table)
    if w in ("ENGINE", "CONVERT", "CHARACTER", "CHARSET", "COLLATE", "DEFAULT"):
        return (
            UNKNOWN,
            "table-options",
            f"rebuilds or converts {table} ({' '.join(spec[:4])})",
            table,
        )
    return (
        UNKNOWN,
        "unknown-alter",
        f"ALTER TABLE {table} {' '.join(spec[:3])} is not classified",
        table,
    )


# ---------------------------------------------------------------- public API


def _lint(script: Script, ctx: _Context) -> tuple[str, tuple[Finding, ...], frozenset[str]]:
    before = set(ctx.created)
    allows: dict[str, str] = {}
    findings: list[Finding] = []
    for m in _ALLOW.finditer(script.text):
        code, reason = m.group(1), m.group(2)
        line = script.text.count("\n", 0, m.start()) + 1
        if not reason:
            findings.append(
                Finding(
                    "allow-without-reason",
                    BREAKING,
                    script.path,
                    line,
                    f"dbroll:allow {code} gives no reason",
                    HINTS["allow-without-reason"],
                )
            )
        else:
            allows[code] = reason
    try:
        statements = split_statements(script.text)
    except SplitError as e:
        findings.append(
            Finding("unparsable", UNKNOWN, script.path, e.line, str(e), HINTS["unparsable"])
        )
        statements = []
    for st in statements:
        try:
            parts = _classify(_tokens(st.text), ctx)
        except (IndexError, ValueError):  # a truncated or malformed statement
            parts = [
                (
                    UNKNOWN,
                    "unknown-statement",
                    f"cannot read the statement {st.first_line!r}",
                    None,
                )
            ]
        for klass, code, message, table in parts:
            findings.append(
                Finding(
                    code,
                    klass,
                    script.path,
                    st.line,
                    message,
                    HINTS.get(code),
                    table,
                    code in allows,
                    allows.get(code),
                )
            )
    klass = max((f.klass for f in findings), key=SEVERITY.__getitem__, default=ADDITIVE)
    return klass, tuple(findings), frozenset(ctx.created - before)


def lint_script(
    script: Script, created: Iterable[str] = frozenset()
) -> tuple[str, tuple[Finding, ...], frozenset[str]]:
    """(class, findings, tables created) of one script, given tables created before it."""
    return _lint(script, _Context(set(created), {}))


def lint_migration(m: Migration, created: Iterable[str] = frozenset()) -> MigrationLint:
    klass, findings, made = lint_script(m.up, created)
    return MigrationLint(m.version, klass, findings, made)


def lint_set(
    mset: MigrationSet, since: Version | None = None, *, per_migration: bool | None = None
) -> list[MigrationLint]:
    """Lint the migrations newer than `since` (all when None), in order.

    With `since`, the selected migrations are one release: a table created by one of them
    is new for the rest (inserts into it are additive). Without it (or with
    per_migration=True), each migration is judged on its own, as a manifest records it:
    the plan re-applies "created in the reverted range" itself (plan.effective_class), and
    a class computed with every earlier migration as context would call an insert into a
    table created long ago additive when only the insert is reverted. Column definitions
    seen in earlier migrations are always remembered, so a MODIFY can be proven widening.
    """
    if per_migration is None:
        per_migration = since is None
    ctx = _Context(set(), {})
    out = []
    for m in mset.migrations:
        selected = since is None or m.version > since
        if per_migration or not selected:
            ctx.created = set()
        if not selected:
            _lint(m.up, ctx)  # learn its columns; its tables are not new in the release
            ctx.created = set()
            continue
        klass, findings, made = _lint(m.up, ctx)
        out.append(MigrationLint(m.version, klass, findings, made))
    return out
