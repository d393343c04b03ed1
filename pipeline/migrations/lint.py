"""Expand/contract lint: classify every statement, then every migration.

A rollback can be *code-only* (the old code keeps running on the new schema, nothing is
undone, nothing is lost) only when every migration it reverts is ``additive``. Classes, by
severity: ``additive`` < ``data`` < ``unknown`` < ``breaking``. A migration's class is its
most severe finding's (``additive`` when there is none; only non-additive statements make
findings). ``unknown`` means "cannot tell": decisions treat it as breaking, but it keeps its
own label.

*Context*: the migration itself (``lint_script`` / ``lint_migration``, plus the ``created``
tables passed in), or the whole release with ``lint_set(mset, since=V)``. What the context
created is new to the old code, so anything done to it is additive: tables (``created``),
columns added to existing tables, views / routines / sequences made by a plain CREATE.
"Existing" below means not created in the context.

| statement | class | code |
|---|---|---|
| CREATE TABLE [IF NOT EXISTS] (...) / LIKE / SELECT, CREATE TEMPORARY TABLE | additive | |
| CREATE OR REPLACE TABLE of a table an earlier migration created | breaking | replace-table |
| CREATE [FULLTEXT / SPATIAL] INDEX, ADD INDEX / KEY / FULLTEXT / SPATIAL | additive | |
| CREATE UNIQUE INDEX, ADD UNIQUE [KEY], inline UNIQUE on a NOT NULL or DEFAULT column | breaking | add-unique |
| ADD PRIMARY KEY (or an inline PRIMARY KEY column) | breaking | add-primary-key |
| ADD [CONSTRAINT] FOREIGN KEY | breaking | add-foreign-key |
| ADD [CONSTRAINT] CHECK | breaking | add-check |
| UNIQUE / FOREIGN KEY / CHECK over columns added in context, nullable, no DEFAULT | additive | |
| CREATE [OR REPLACE] VIEW / PROCEDURE / FUNCTION / TRIGGER / EVENT / SEQUENCE / DATABASE | additive | |
| ALTER VIEW / PROCEDURE / FUNCTION / DATABASE | additive | |
| ADD [COLUMN] [IF NOT EXISTS] nullable, or with a DEFAULT, or generated (AS ...) | additive | |
| ADD COLUMN NOT NULL without DEFAULT; any AUTO_INCREMENT / SERIAL column | breaking | add-column-not-null |
| ALTER COLUMN SET DEFAULT; table options (COMMENT, ALGORITHM, LOCK, FORCE, AUTO_INCREMENT, ROW_FORMAT, DEFAULT CHARSET / COLLATE, ...); ADD PARTITION; ANALYZE / CHECK / OPTIMIZE / REBUILD / REPAIR PARTITION | additive | |
| ALTER COLUMN DROP DEFAULT | breaking | drop-default |
| DROP [COLUMN] [IF EXISTS] | breaking | drop-column |
| DROP PRIMARY KEY (also DROP INDEX `PRIMARY`) | breaking | drop-primary-key |
| DROP FOREIGN KEY | breaking | drop-foreign-key |
| DROP CONSTRAINT / DROP CHECK (not a known unique key) | breaking | drop-constraint |
| DROP INDEX / KEY / CONSTRAINT of an index known to be UNIQUE | breaking | drop-unique-index |
| DROP INDEX / KEY otherwise (known non-unique, or unknown) | unknown | drop-index |
| DROP PARTITION, TRUNCATE PARTITION | breaking | drop-partition |
| RENAME TABLE a TO b [, c TO d], ALTER TABLE RENAME [TO / AS] | breaking | rename-table |
| RENAME COLUMN, CHANGE [COLUMN] old new ... (another name) | breaking | rename-column |
| RENAME INDEX / KEY (old code may name it in index hints) | unknown | rename-index |
| MODIFY / CHANGE (same name), provably widening (below) | additive | |
| MODIFY / CHANGE, old definition known, not provably widening | breaking | modify-column |
| MODIFY / CHANGE, old definition unknown (no CREATE / ADD seen for it) | unknown | modify-column-unknown |
| MODIFY / CHANGE / RENAME / DROP of a column added in context | additive, unless it ends NOT NULL without DEFAULT (add-column-not-null) | |
| ENGINE= (a rebuild, maybe another engine) | unknown | table-engine |
| CONVERT TO CHARACTER SET | unknown | convert-charset |
| PARTITION BY, REMOVE PARTITIONING, REORGANIZE / COALESCE / EXCHANGE PARTITION | unknown | partitioning |
| other ALTER TABLE specs (system versioning, [IN]VISIBLE, tablespaces), ALTER EVENT / SEQUENCE / SERVER | unknown | unknown-alter |
| DROP TABLE [IF EXISTS] a, b | breaking | drop-table |
| DROP VIEW | breaking | drop-view |
| DROP PROCEDURE / FUNCTION / TRIGGER / EVENT / PACKAGE | breaking | drop-routine |
| DROP SEQUENCE | breaking | drop-sequence |
| DROP DATABASE / SCHEMA | breaking | drop-database |
| DROP of a view / routine CREATEd again later in the same script (= OR REPLACE) | additive | |
| TRUNCATE [TABLE] | breaking | truncate |
| INSERT / REPLACE / UPDATE / DELETE / LOAD on tables created in context (or temporary) | additive | |
| INSERT ... (incl. ON DUPLICATE KEY UPDATE, INSERT ... SELECT) on an existing table | data | data-insert |
| REPLACE on an existing table | data | data-replace |
| UPDATE (multi-table: the tables its SET assigns, aliases resolved) | data | data-update |
| DELETE (multi-table: its target tables) | data | data-delete |
| LOAD DATA / LOAD XML | data | data-load |
| SET session variables / NAMES / TRANSACTION / ROLE, SELECT, WITH ... SELECT, SHOW, USE, DO, EXPLAIN, transaction control, LOCK / UNLOCK TABLES, FLUSH, ANALYZE / OPTIMIZE / CHECK / REPAIR TABLE, PREPARE, DEALLOCATE, HANDLER, LOAD INDEX | additive (no schema effect) | |
| SET STATEMENT ... FOR stmt, ANALYZE stmt, WITH ... UPDATE/DELETE, EXECUTE of a PREPARE FROM 'literal', EXECUTE IMMEDIATE 'literal' | the inner statement's | |
| EXECUTE of a statement prepared from a variable, or not prepared in the script | unknown | dynamic-sql |
| SET GLOBAL / PERSIST / @@global.x = ... | unknown | set-global |
| GRANT / REVOKE, CREATE / ALTER / DROP / RENAME USER or ROLE, SET PASSWORD / DEFAULT ROLE | unknown | grant |
| CALL | unknown | call |
| BEGIN NOT ATOMIC ... END | unknown | compound-statement |
| anything else (KILL, INSTALL, replication commands, IF outside a routine, unknown words) | unknown | unknown-statement |
| a script the splitter cannot split (unterminated quote or comment) | unknown | unparsable |
| ``-- dbroll:allow <code>`` without a reason (or without a code) | breaking | allow-without-reason |

*Provably widening* MODIFY / CHANGE: the old definition is known and every old value and every
old write still fits: VARCHAR / VARBINARY / CHAR (n) -> same type (m >= n); TINYINT < SMALLINT
< MEDIUMINT < INT < BIGINT with the same signedness; up the TEXT or BLOB ladder; DECIMAL with
no fewer integer and no fewer fraction digits; DATETIME / TIMESTAMP / TIME fractional digits
up; ENUM / SET values only appended; the same type; NOT NULL -> NULL allowed, NULL -> NOT NULL
not. Every other attribute must be unchanged: DEFAULT, AUTO_INCREMENT, CHARACTER SET, COLLATE
(so a charset change is never widening), ON UPDATE, generation, visibility. Anything else
(INT -> DOUBLE, VARCHAR -> TEXT, CHAR -> VARCHAR, a dropped DEFAULT, signedness) is not proven.

*Known definitions*: columns and indexes are learned from every CREATE TABLE / ALTER TABLE /
CREATE INDEX seen before the statement: earlier in the script and, with ``lint_set``, in
every earlier migration (also those at or before ``since``, which are history). A statement
the lint cannot see into (an unknown ALTER spec, CONVERT TO, DEFAULT CHARSET, CALL, dynamic
SQL, an unknown statement) forgets what it may have changed, so nothing is proven from stale
knowledge. An unnamed index is known by its first column's name, as the server names it.

Judgement calls: CREATE TABLE IF NOT EXISTS counts as creating the table unless an earlier
migration in the same ``lint_set`` created it (then it is a no-op and creates nothing). A
plain DROP INDEX is ``unknown`` rather than ``breaking`` because only the old code's query
plans are at stake when the index is not unique; decisions treat both alike. Dropping a
CHECK or a foreign key is ``breaking``: the new code may then write rows the old code never
expects, and cascades stop. CREATE OR REPLACE VIEW and CREATE TRIGGER / EVENT are additive
as asked, though a replaced view or a trigger can change what old code sees. Old code that
relies on ``SELECT *`` column order or ``INSERT ... VALUES`` without a column list breaks on
any ADD COLUMN; expand/contract assumes explicit column lists, so that is not modelled.

*Parser choice* (measured with sqlglot 30.30.0, MySQL dialect): sqlglot parses plain MySQL
ALTER TABLE well (multi-spec ADD / DROP / ADD INDEX, CHANGE, MODIFY, RENAME COLUMN, RENAME TO,
ADD CONSTRAINT ... FOREIGN KEY, ``ALGORITHM=INSTANT,`` specs, IF [NOT] EXISTS on ADD / DROP
COLUMN, CREATE TABLE with table options) but not the MariaDB grammar around it: ``ALTER TABLE
t WAIT 5 ...`` / ``NOWAIT``, ``ALTER ONLINE | IGNORE TABLE``, ``RENAME TABLE a TO b, c TO d``,
``CONVERT TO CHARACTER SET``, ``CHANGE | MODIFY COLUMN IF EXISTS``, ``REPLACE INTO`` and
``CREATE EVENT`` fall back to an opaque ``Command``; ``ADD COLUMN (a INT, b INT NOT NULL)``,
``ADD INDEX IF NOT EXISTS``, ``ADD / DROP PARTITION``, ``LOAD DATA``, ``BEGIN NOT ATOMIC``
and any statement wrapped in ``/*!40101 ... */`` raise ParseError; CREATE TRIGGER ... BEGIN
... END comes back as a ``Block``. It also costs about 0.27 ms a statement: 2,000
three-statement migrations took 1.63 s, so 10,000 would take ~8 s against a budget of well
under a few seconds. The decisions are made exactly where it falls back, so this module uses
no parser: a tokenizer over each statement ``split_statements`` yields (comments skipped,
``/*! */`` and ``/*M! */`` unwrapped, strings and backtick names kept whole, qualified names
as one token) and one rule per statement and per top-level ALTER TABLE spec. No dependency;
10,000 small migrations lint in about a second on a shared 2-core machine.

A finding can be accepted on purpose with a line comment ``-- dbroll:allow <code> <reason>``
(or ``# dbroll:allow ...``), on its own line or after a statement, anywhere in the script:
every finding with that code in the script is marked allowed, with the reason. It keeps its
class (and the migration's class), but no longer blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from pipeline.migrations.model import Migration, MigrationSet, Script, Version
from pipeline.migrations.sqlsplit import SplitError, split_statements

__all__ = [
    "ADDITIVE",
    "BREAKING",
    "DATA",
    "HINTS",
    "SEVERITY",
    "UNKNOWN",
    "Finding",
    "MigrationLint",
    "lint_migration",
    "lint_script",
    "lint_set",
]

ADDITIVE, DATA, UNKNOWN, BREAKING = "additive", "data", "unknown", "breaking"
SEVERITY = {ADDITIVE: 0, DATA: 1, UNKNOWN: 2, BREAKING: 3}

# The expand/contract way to do what each finding's statement does.
HINTS = {
    "replace-table": "create the new table under a new name, copy and switch, drop the old "
    "one in a later release",
    "add-unique": "add the unique key in a later release, once the code writing the column "
    "guarantees it and duplicates are cleaned up",
    "add-primary-key": "add the key in its own release, once the released code writes "
    "unique, non-null values",
    "add-foreign-key": "add the constraint in a later release, once the data is clean and the "
    "released code writes valid references (or add it on a new nullable column)",
    "add-check": "add the check in a later release, once every released writer respects it",
    "add-column-not-null": "add the column nullable or with a DEFAULT, backfill, then make "
    "it NOT NULL in a later release",
    "drop-default": "keep the default until no released code inserts without the column",
    "drop-column": "contract in steps: stop reading and writing the column, release, then "
    "drop it in a later release",
    "drop-unique-index": "drop the unique index in a release after the code stops relying "
    "on it (upserts, duplicate checks)",
    "drop-index": "drop the index in a release after the code stops needing it",
    "drop-primary-key": "replace the key in steps: add the new one, switch, drop the old "
    "one in a later release",
    "drop-foreign-key": "drop the constraint in a release after the code stops relying on "
    "it (cascades, referential checks)",
    "drop-constraint": "drop the constraint in a release after the code stops relying on it",
    "drop-partition": "archive the partition's rows first and drop it in its own release",
    "rename-table": "rename table: create the new table (or a view with the new name), "
    "write both, switch reads, drop the old one in a later release",
    "rename-column": "rename column: add the new column, write both, backfill, switch "
    "reads, drop the old one in a later release",
    "rename-index": "add an index with the new name, drop the old one in a later release",
    "modify-column": "change a type in steps: add a column of the new type, write both, "
    "backfill, switch reads, drop the old one in a later release",
    "modify-column-unknown": "only widening is additive: keep the column's full old "
    "definition (VARCHAR(n) -> VARCHAR(m > n), INT -> BIGINT, NOT NULL -> NULL, same "
    "DEFAULT and charset), or change it in steps through a new column",
    "table-engine": "rebuild or change the engine in its own release, rehearsed on a copy",
    "convert-charset": "convert in steps: add columns in the new charset, backfill, switch, "
    "drop the old ones later",
    "partitioning": "repartition in its own release, rehearsed on a copy",
    "unknown-alter": "split the change into ALTER TABLE specs dbroll can classify, or "
    "accept it with a reason",
    "drop-table": "contract in steps: stop using the table, release, then drop it in a "
    "later release",
    "drop-view": "keep the view until no released code reads it, then drop it (or "
    "CREATE OR REPLACE it)",
    "drop-routine": "keep the routine until no released code uses it, then drop it (or "
    "CREATE OR REPLACE it)",
    "drop-sequence": "keep the sequence until no released code uses it, then drop it",
    "drop-database": "never drop a database in a migration that may be rolled back",
    "truncate": "delete data in its own release, after a backup, once no released code needs it",
    "data-insert": "seed rows in the migration that creates the table, or make the insert "
    "idempotent and accept it",
    "data-replace": "seed rows in the migration that creates the table, or make the write "
    "idempotent and accept it",
    "data-update": "backfill in batches from the app or a job, in a release of its own",
    "data-delete": "delete in batches after a backup, in a release of its own",
    "data-load": "load data outside schema migrations",
    "set-global": "configure the server outside schema migrations (parameter groups)",
    "grant": "manage users and privileges outside schema migrations",
    "call": "write the procedure's statements into the migration, so they can be classified",
    "dynamic-sql": "write the statement out (PREPARE from a string literal at least), so it "
    "can be classified",
    "compound-statement": "write the statements out at top level, so they can be classified",
    "unknown-statement": "split the change into statements dbroll can classify, or accept "
    "it with a reason",
    "unparsable": "fix the quoting or the comment the splitter reports",
    "allow-without-reason": "say why: -- dbroll:allow <code> <reason>",
}


@dataclass(frozen=True)
class Finding:
    """One non-additive statement (or part of a multi-spec ALTER TABLE)."""

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
    def from_dict(cls, d: Any) -> Finding:
        return cls(
            code=str(d["code"]),
            klass=str(d["class"] if "class" in d else d["klass"]),
            path=str(d["path"]),
            line=int(d["line"]),
            message=str(d["message"]),
            hint=d.get("hint"),
            table=d.get("table"),
            allowed=bool(d.get("allowed", False)),
            reason=d.get("reason"),
        )


@dataclass(frozen=True)
class MigrationLint:
    """The lint of one migration's forward script."""

    version: Version
    klass: str
    findings: tuple[Finding, ...]
    created_tables: frozenset[str]

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """Breaking and unknown findings that no allow comment accepts."""
        return tuple(f for f in self.findings if f.klass in (BREAKING, UNKNOWN) and not f.allowed)


# ---------------------------------------------------------------- tokens

_BT = r"`(?:[^`]|``)*`"
_WORD = r"(?:\d+[^\W\d]|[^\W\d]|\$)[\w$]*"
# Whitespace and plain comments match outside the group (findall yields ""); executable
# comment openers (/*! /*!50001 /*M!) and closers are tokens, dropped afterwards, so their
# content is read as SQL.
_TOKEN = re.compile(
    r"\s+|/\*(?!M?!).*?\*/|(?:--(?=\s|\Z)|\#)[^\n]*"
    r"|("
    r"/\*M?!\d*|\*/"
    r"|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\""
    r"|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?(?![\w$])|\.\d+"
    rf"|(?:{_BT}|{_WORD})(?:\.(?:{_BT}|{_WORD}|\*))*"
    r"|@@?(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.)*'|[\w$.]+)?"
    r"|\S)",
    re.S,
)
_PART = re.compile(rf"{_BT}|\"(?:[^\"]|\"\")*\"|[^.]+")


def _lex(text: str) -> list[str]:
    """The significant tokens of one statement."""
    return [t for t in _TOKEN.findall(text) if t and t[:2] not in ("/*", "*/")]


def _is_name(tok: str) -> bool:
    c = tok[:1]
    return c.isalnum() or c in '_$`"' or (c > "\x7f")


def _name(tok: str | None) -> str | None:
    """Unquoted, unqualified, lower-case object name (None when `tok` is no name)."""
    if not tok or not _is_name(tok):
        return None
    if "`" not in tok and '"' not in tok:
        return tok.rsplit(".", 1)[-1].lower()
    last = _PART.findall(tok)[-1]
    if last[:1] in '`"' and len(last) > 1:
        last = last[1:-1].replace(last[0] * 2, last[0])
    return last.lower()


def _close(toks: list[str], i: int) -> int:
    """Index of the ')' matching the '(' at i (the last index when unbalanced)."""
    depth = 0
    for j in range(i, len(toks)):
        t = toks[j]
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def _split_top(toks: list[str], start: int = 0, stop: int | None = None) -> list[list[str]]:
    """Split toks[start:stop] on commas outside parentheses (empty parts dropped)."""
    parts: list[list[str]] = [[]]
    depth = 0
    for t in toks[start:stop]:
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        if t == "," and depth == 0:
            parts.append([])
        else:
            parts[-1].append(t)
    return [p for p in parts if p]


def _skip(up: list[str], i: int, *words: str) -> int:
    while i < len(up) and up[i] in words:
        i += 1
    return i


def _skip_if_exists(up: list[str], i: int) -> int:
    """Skip IF EXISTS / IF NOT EXISTS at i."""
    if i < len(up) and up[i] == "IF":
        return _skip(up, i + 1, "NOT", "EXISTS")
    return i


def _at(up: list[str], i: int) -> str:
    return up[i] if i < len(up) else ""


def _unquote(tok: str) -> str:
    """The value of a string literal token."""
    q = tok[0]
    body = tok[1:-1].replace(q * 2, q)
    if "\\" in body:
        body = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m[1], m[1]), body)
    return body


# ---------------------------------------------------------------- column definitions

_TYPE_ALIASES = {
    "INTEGER": "INT",
    "INT4": "INT",
    "INT1": "TINYINT",
    "BOOL": "TINYINT",
    "BOOLEAN": "TINYINT",
    "INT2": "SMALLINT",
    "INT3": "MEDIUMINT",
    "MIDDLEINT": "MEDIUMINT",
    "INT8": "BIGINT",
    "DEC": "DECIMAL",
    "NUMERIC": "DECIMAL",
    "FIXED": "DECIMAL",
    "CHARACTER": "CHAR",
    "NCHAR": "CHAR",
    "NVARCHAR": "VARCHAR",
    "REAL": "DOUBLE",
}
_INT_RANK = {"TINYINT": 1, "SMALLINT": 2, "MEDIUMINT": 3, "INT": 4, "BIGINT": 5}
_LADDERS = (
    {"TINYTEXT": 1, "TEXT": 2, "MEDIUMTEXT": 3, "LONGTEXT": 4},
    {"TINYBLOB": 1, "BLOB": 2, "MEDIUMBLOB": 3, "LONGBLOB": 4},
)
_FK_ACTION_WORDS = frozenset(
    {"MATCH", "FULL", "PARTIAL", "SIMPLE", "ON", "DELETE", "UPDATE", "CASCADE", "RESTRICT"}
    | {"SET", "NULL", "NO", "ACTION", "DEFAULT"}
)
_NUMERIC_STRING = re.compile(r"'(-?\d+(?:\.\d+)?)'")


@dataclass(frozen=True)
class _Col:
    """What the lint knows of a column definition."""

    type: str
    args: tuple[str, ...]
    unsigned: bool
    nullable: bool
    default: str | None  # normalized DEFAULT expression, None for none / DEFAULT NULL
    auto: bool
    charset: str | None
    collate: str | None
    on_update: str | None
    generated: str | None
    invisible: bool
    primary: bool
    unique: bool
    extras: tuple[str, ...]  # attributes not modelled: must stay the same to be widening

    @property
    def text(self) -> str:
        args = f"({','.join(self.args)})" if self.args else ""
        sign = " UNSIGNED" if self.unsigned else ""
        null = "" if self.nullable else " NOT NULL"
        return f"{self.type}{args}{sign}{null}"

    @property
    def accepts_old_inserts(self) -> bool:
        """An INSERT that does not name the column still works."""
        return self.nullable or self.default is not None or self.auto or bool(self.generated)

    @property
    def null_only(self) -> bool:
        """Holds only NULL while only the old code writes the table."""
        return self.nullable and self.default is None and not self.auto and self.generated is None


def _expr(toks: list[str], up: list[str], i: int) -> tuple[str, int]:
    """One DEFAULT / ON UPDATE expression at i, normalized; and the index after it."""
    n = len(toks)
    if i >= n:
        return "", i
    start = i
    if toks[i] in ("-", "+") and i + 1 < n:
        i += 1
    if toks[i] == "(":
        i = _close(toks, i) + 1
    else:
        i += 1
        if i < n and toks[i] == "(":  # a function call: NOW(), uuid(), CURRENT_TIMESTAMP(6)
            i = _close(toks, i) + 1
        elif i < n and toks[i][:1] in "'\"" and _is_name(toks[i - 1]):  # _utf8mb4'x', N'x'
            i += 1
    parts = [t if t[:1] in "'\"" else u for t, u in zip(toks[start:i], up[start:i], strict=True)]
    text = " ".join(parts)
    text = _NUMERIC_STRING.sub(r"\1", text)
    text = re.sub(r"^(CURRENT_TIMESTAMP|NOW|LOCALTIME|LOCALTIMESTAMP) \( \)$", r"\1", text)
    return text, i


def _parse_col(toks: list[str], up: list[str]) -> _Col | None:
    """A column definition starting at its type (`VARCHAR(10) NOT NULL DEFAULT 'x' ...`)."""
    n = len(toks)
    if not n or not _is_name(toks[0]) or toks[0][0] in '`"':
        return None
    i = 1
    base = up[0]
    if base == "NATIONAL" and n > 1:
        base, i = up[1], 2
    if base in ("CHAR", "CHARACTER") and _at(up, i) == "VARYING":
        base, i = "VARCHAR", i + 1
    elif base == "DOUBLE" and _at(up, i) == "PRECISION":
        i += 1
    elif base == "LONG":
        if _at(up, i) == "VARBINARY":
            base, i = "MEDIUMBLOB", i + 1
        else:
            base, i = "MEDIUMTEXT", _skip(up, i, "VARCHAR")
    base = _TYPE_ALIASES.get(base, base)
    args: tuple[str, ...] = ()
    if i < n and toks[i] == "(":
        j = _close(toks, i)
        args = tuple(t for t in toks[i + 1 : j] if t != ",")
        i = j + 1
    unsigned, nullable = False, True
    default = charset = collate = on_update = generated = None
    auto = invisible = primary = unique = False
    extras: list[str] = []
    if base == "SERIAL":
        base, unsigned, nullable, auto, unique = "BIGINT", True, False, True, True
    while i < n:
        w = up[i]
        if w == "NOT" and _at(up, i + 1) == "NULL":
            nullable, i = False, i + 2
        elif w == "NULL":
            nullable, i = True, i + 1
        elif w == "DEFAULT":
            default, i = _expr(toks, up, i + 1)
        elif w == "AUTO_INCREMENT":
            auto, i = True, i + 1
        elif w in ("UNSIGNED", "ZEROFILL"):
            unsigned, i = True, i + 1
        elif w == "SIGNED":
            i += 1
        elif w in ("CHARACTER", "CHARSET"):
            i = _skip(up, i + 1, "SET")
            charset, i = (toks[i].strip("`'\"").lower() if i < n else None), i + 1
        elif w == "COLLATE":
            collate, i = (toks[i + 1].strip("`'\"").lower() if i + 1 < n else None), i + 2
        elif w in ("BINARY", "ASCII", "UNICODE", "BYTE"):
            extras.append(w)
            i += 1
        elif w == "ON" and _at(up, i + 1) == "UPDATE":
            on_update, i = _expr(toks, up, i + 2)
        elif w == "GENERATED":
            i = _skip(up, i + 1, "ALWAYS")
        elif w == "AS" and _at(toks, i + 1) == "(":
            j = _close(toks, i + 1)
            generated, i = " ".join(up[i + 1 : j + 1]), j + 1
        elif w in ("VIRTUAL", "PERSISTENT", "STORED", "FIRST"):
            i += 1
        elif w == "AFTER":
            i += 2
        elif w == "PRIMARY" or (w == "KEY" and not unique):
            primary, nullable, i = True, False, _skip(up, i + 1, "KEY")
        elif w == "UNIQUE":
            unique, i = True, _skip(up, i + 1, "KEY")
        elif w == "COMMENT":
            i += 2
        elif w == "REFERENCES":
            i += 2
            if _at(toks, i) == "(":
                i = _close(toks, i) + 1
            while i < n and up[i] in _FK_ACTION_WORDS:
                i += 1
        elif w == "CHECK" and _at(toks, i + 1) == "(":
            i = _close(toks, i + 1) + 1
        elif w == "CONSTRAINT":
            i += 1 if _at(up, i + 1) == "CHECK" else 2
        elif w == "INVISIBLE":
            invisible, i = True, i + 1
        elif w == "SERIAL" and _at(up, i + 1) == "DEFAULT":
            nullable, auto, unique, i = False, True, True, i + 3
        elif w in ("WITH", "WITHOUT") and _at(up, i + 1) == "SYSTEM":
            extras.append(w)
            i += 3
        elif w in ("COLUMN_FORMAT", "STORAGE") or (w == "COMPRESSED" and _at(up, i + 1) == "="):
            extras.extend(up[i : i + 2])
            i += 2
        else:
            extras.append(w)
            i += 1
    if default == "NULL":
        default = None
    return _Col(
        base,
        args,
        unsigned,
        nullable,
        default,
        auto,
        charset,
        collate,
        on_update,
        generated,
        invisible,
        primary,
        unique,
        tuple(extras),
    )


def _num(args: tuple[str, ...], k: int, default: int) -> int | None:
    if len(args) <= k:
        return default
    return int(args[k]) if args[k].isdigit() else None


def _widens(old: _Col, new: _Col) -> bool:
    """Is `new` provably a widening of `old` (every old value fits, every old write works)?"""
    if old.nullable and not new.nullable:
        return False
    same = (
        old.default == new.default
        and old.auto == new.auto
        and old.charset == new.charset
        and old.collate == new.collate
        and old.on_update == new.on_update
        and old.generated == new.generated
        and old.invisible == new.invisible
        and old.extras == new.extras
    )
    if not same:
        return False
    o, n = old.type, new.type
    if o in _INT_RANK and n in _INT_RANK:
        return old.unsigned == new.unsigned and _INT_RANK[n] >= _INT_RANK[o]
    if old.unsigned != new.unsigned:
        return False
    if o == n and o in ("VARCHAR", "VARBINARY", "CHAR"):
        a, b = _num(old.args, 0, 1), _num(new.args, 0, 1)
        return a is not None and b is not None and b >= a
    for ladder in _LADDERS:
        if o in ladder and n in ladder:
            return ladder[n] >= ladder[o]
    if o == n == "DECIMAL":
        op, os_ = _num(old.args, 0, 10), _num(old.args, 1, 0)
        np_, ns = _num(new.args, 0, 10), _num(new.args, 1, 0)
        if None in (op, os_, np_, ns):
            return False
        return ns >= os_ and np_ - ns >= op - os_  # type: ignore[operator]
    if o == n and o in ("DATETIME", "TIMESTAMP", "TIME"):
        a, b = _num(old.args, 0, 0), _num(new.args, 0, 0)
        return a is not None and b is not None and b >= a
    if o == n and o in ("ENUM", "SET"):
        return new.args[: len(old.args)] == old.args
    return o == n and old.args == new.args


# ---------------------------------------------------------------- linting state

_Hit = tuple[str, str, str, "str | None"]  # (class, code, message, table)


class _State:
    """What is known while linting: history (kept across migrations) and the context."""

    def __init__(self, created: Iterable[str] = ()) -> None:
        # history: every table, column and index seen created so far
        self.known: set[str] = set()
        self.columns: dict[str, dict[str, _Col]] = {}
        self.indexes: dict[str, dict[str, bool]] = {}  # table -> index name -> unique
        # context: what the old code never knew
        self.created: set[str] = set()
        self.added: dict[str, dict[str, bool]] = {}  # existing table -> added column -> null-only
        self.objects: set[tuple[str, str]] = set()  # (VIEW|PROCEDURE|..., name) created
        self.new_context(created)

    def new_context(self, created: Iterable[str] = ()) -> None:
        self.created = {n.lower() for n in created}
        self.known |= self.created
        self.added = {}
        self.objects = set()

    def forget(self, table: str | None = None) -> None:
        """Forget column and index definitions (of one table, or of all)."""
        if table is None:
            self.columns.clear()
            self.indexes.clear()
        else:
            self.columns.pop(table, None)
            self.indexes.pop(table, None)

    def drop_table(self, table: str) -> None:
        self.known.discard(table)
        self.created.discard(table)
        self.added.pop(table, None)
        self.forget(table)

    def rename_table(self, old: str, new: str) -> None:
        for d in (self.columns, self.indexes, self.added):
            if old in d:
                d[new] = d.pop(old)  # type: ignore[index]
        if old in self.known:
            self.known.discard(old)
            self.known.add(new)
        if old in self.created:
            self.created.discard(old)
            self.created.add(new)


_CREATE_KINDS = frozenset(
    {"TABLE", "INDEX", "VIEW", "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "DATABASE"}
    | {"SCHEMA", "SEQUENCE", "USER", "ROLE", "SERVER", "PACKAGE", "TABLESPACE", "LOGFILE"}
)
_ROUTINE_KINDS = frozenset({"PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "PACKAGE"})
_NO_EFFECT = frozenset(
    {"SELECT", "SHOW", "USE", "DO", "START", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT"}
    | {"RELEASE", "OPTIMIZE", "CHECK", "CHECKSUM", "REPAIR", "FLUSH", "LOCK", "UNLOCK"}
    | {"DEALLOCATE", "DESCRIBE", "DESC", "EXPLAIN", "HELP", "VALUES", "TABLE", "XA"}
    | {"SIGNAL", "RESIGNAL", "DECLARE", "GET", "HANDLER", "CACHE", "("}
)
_TABLE_OPTIONS = frozenset(
    {"ALGORITHM", "LOCK", "FORCE", "COMMENT", "AUTO_INCREMENT", "ROW_FORMAT", "KEY_BLOCK_SIZE"}
    | {"PACK_KEYS", "STATS_PERSISTENT", "STATS_AUTO_RECALC", "STATS_SAMPLE_PAGES", "CHECKSUM"}
    | {"DELAY_KEY_WRITE", "PAGE_CHECKSUM", "TRANSACTIONAL", "MAX_ROWS", "MIN_ROWS"}
    | {"AVG_ROW_LENGTH", "ORDER", "DISABLE", "ENABLE", "ENCRYPTED", "ENCRYPTION_KEY_ID"}
    | {"PAGE_COMPRESSED", "PAGE_COMPRESSION_LEVEL", "IETF_QUOTES", "SEQUENCE", "DEFAULT"}
    | {"CHARACTER", "CHARSET", "COLLATE", "ENGINE", "TYPE", "DATA", "INDEX", "CONNECTION"}
    | {"INSERT_METHOD", "UNION", "PASSWORD", "STATS_AUTO_RECALC", "VALIDATION", "WITH"}
    | {"WITHOUT"}
)
_PARTITION_MAINTENANCE = frozenset({"ANALYZE", "CHECK", "OPTIMIZE", "REBUILD", "REPAIR"})
_PARTITION_TABLE_WORDS = _PARTITION_MAINTENANCE | {"TRUNCATE"}
_PARTITIONING = frozenset({"PARTITION", "REMOVE", "REORGANIZE", "COALESCE", "EXCHANGE"})
_NOT_ALIAS = frozenset(
    {"JOIN", "ON", "USING", "WHERE", "SET", "LEFT", "RIGHT", "INNER", "CROSS", "NATURAL"}
    | {"STRAIGHT_JOIN", "FROM", "ORDER", "LIMIT", "PARTITION", "USE", "IGNORE", "FORCE"}
    | {"OUTER", "FULL", "RETURNING"}
)
_CONSTRAINT_WORDS = frozenset(
    {"INDEX", "KEY", "UNIQUE", "PRIMARY", "FOREIGN", "CONSTRAINT", "FULLTEXT", "SPATIAL"}
    | {"CHECK"}
)
_ADD_NOT_COLUMN = _CONSTRAINT_WORDS | {"PARTITION", "PERIOD", "SYSTEM"}
_CHECK_WORDS = frozenset(
    {"AND", "OR", "NOT", "NULL", "IS", "IN", "BETWEEN", "LIKE", "TRUE", "FALSE", "XOR"}
)


@dataclass(frozen=True)
class _Index:
    name: str | None
    columns: tuple[str, ...]
    end: int


def _index_parts(toks: list[str], up: list[str], i: int) -> _Index:
    """`[INDEX|KEY] [IF NOT EXISTS] [name] [USING x] (col[(n)] [ASC|DESC], ...)` at i."""
    i = _skip(up, i, "INDEX", "KEY")
    i = _skip_if_exists(up, i)
    name = None
    if i < len(toks) and toks[i] != "(" and up[i] != "USING":
        name, i = _name(toks[i]), i + 1
    if _at(up, i) == "USING":
        i += 2
    cols: list[str] = []
    end = i
    if _at(toks, i) == "(":
        end = _close(toks, i)
        for part in _split_top(toks, i + 1, end):
            col = _name(part[0])
            if col is None:  # an expression part: ((a + b))
                cols = []
                break
            cols.append(col)
        end += 1
    return _Index(name, tuple(cols), end)


def _table_refs(toks: list[str], up: list[str], i: int, stop: int) -> dict[str, str]:
    """Alias (or name) -> table for the table references in toks[i:stop]."""
    refs: dict[str, str] = {}
    expect = True
    depth = 0
    j = i
    while j < stop:
        t, u = toks[j], up[j]
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0:
            if u in ("JOIN", "STRAIGHT_JOIN", ","):
                expect = True
            elif u in ("ON", "USING"):
                expect = False
            elif expect and _is_name(t) and u not in ("INNER", "LEFT", "RIGHT", "CROSS"):
                table = _name(t)
                if table:
                    refs[table] = table
                    k = j + 1
                    if _at(up, k) == "AS":
                        k += 1
                    alias = _name(toks[k]) if k < stop else None
                    if alias and up[k] not in _NOT_ALIAS:
                        refs[alias] = table
                        j = k
                expect = False
        j += 1
    return refs


def _top_index(up: list[str], words: Iterable[str], start: int = 0) -> int:
    """Index of the first of `words` at parenthesis depth 0 from start (len(up) if none)."""
    wanted = set(words)
    depth = 0
    for j in range(start, len(up)):
        u = up[j]
        if u == "(":
            depth += 1
        elif u == ")":
            depth -= 1
        elif depth == 0 and u in wanted:
            return j
    return len(up)


# ---------------------------------------------------------------- the linter


class _Linter:
    """Classifies the statements of one script against a _State."""

    def __init__(self, state: _State, statements: list[list[str]]) -> None:
        self.s = state
        self.statements = statements
        self.temporary: set[str] = set()
        self.prepared: dict[str, list[str] | None] = {}
        self.index = 0

    def _new(self, table: str | None) -> bool:
        """Created in context (or temporary): the old code never knew it."""
        return table is not None and (table in self.s.created or table in self.temporary)

    def classify(self, toks: list[str], depth: int = 0) -> list[_Hit]:
        if not toks:
            return []
        up = [t.upper() for t in toks]
        head = up[0]
        handler = _HANDLERS.get(head)
        if handler is not None:
            return handler(self, toks, up, depth)
        if head in _NO_EFFECT:
            return []
        self.s.forget()
        return [(UNKNOWN, "unknown-statement", f"{toks[0]} statements are not classified", None)]

    # ------------------------------------------------------------ CREATE

    def create(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        i, n = 1, len(up)
        or_replace = temporary = False
        unique = False
        while i < min(n, 24) and up[i] not in _CREATE_KINDS:
            if up[i] == "REPLACE":
                or_replace = True
            elif up[i] == "TEMPORARY":
                temporary = True
            elif up[i] == "UNIQUE":
                unique = True
            i += 1
        kind = _at(up, i)
        if kind == "TABLE":
            return self.create_table(toks, up, i + 1, or_replace, temporary)
        if kind == "INDEX":
            k = _skip_if_exists(up, i + 1)
            on = _top_index(up, ("ON",), k)
            table = _name(_at(toks, on + 1))
            idx = _index_parts(toks, up, on + 2)
            name = _name(_at(toks, k)) if k < on else None
            if table and name:
                self.s.indexes.setdefault(table, {})[name] = unique
            if unique and not self._new(table) and not self._null_only(table, idx.columns):
                cols = ", ".join(idx.columns) or "?"
                return [
                    (
                        BREAKING,
                        "add-unique",
                        f"creates unique index {name} on existing table {table} ({cols}): "
                        "rows the old code writes (or already wrote) may violate it",
                        table,
                    )
                ]
            return []
        if kind in ("USER", "ROLE"):
            return [(UNKNOWN, "grant", f"creates a {kind.lower()}: privileges change", None)]
        if kind in ("SERVER", "TABLESPACE", "LOGFILE") or not kind:
            return [(UNKNOWN, "unknown-statement", f"CREATE {kind} is not classified", None)]
        if kind in _ROUTINE_KINDS or kind in ("VIEW", "SEQUENCE"):
            # a plain CREATE fails when the object exists: it is new to the old code
            k = _skip_if_exists(up, i + 1)
            name = _name(_at(toks, k))
            if name and not or_replace and k == i + 1:
                self.s.objects.add((kind, name))
        return []  # VIEW, routines, SEQUENCE, DATABASE / SCHEMA: new objects

    def create_table(
        self, toks: list[str], up: list[str], i: int, or_replace: bool, temporary: bool
    ) -> list[_Hit]:
        if_not_exists = _at(up, i) == "IF"
        i = _skip_if_exists(up, i)
        table = _name(_at(toks, i))
        if table is None:
            return [(UNKNOWN, "unknown-statement", "CREATE TABLE without a table name", None)]
        i += 1
        if temporary:
            self.temporary.add(table)
            return []
        existed = table in self.s.known and table not in self.s.created
        if if_not_exists and existed:
            return []  # a no-op: the table is there already
        hits: list[_Hit] = []
        if or_replace and existed:
            hits.append(
                (
                    BREAKING,
                    "replace-table",
                    f"replaces existing table {table}: its rows are lost and the old code reads it",
                    table,
                )
            )
        self.s.drop_table(table)
        self.s.known.add(table)
        self.s.created.add(table)
        if _at(up, i) == "LIKE" or (_at(toks, i) == "(" and _at(up, i + 1) == "LIKE"):
            src = _name(_at(toks, i + 1 if up[i] == "LIKE" else i + 2))
            if src in self.s.columns:
                self.s.columns[table] = dict(self.s.columns[src])
            if src in self.s.indexes:
                self.s.indexes[table] = dict(self.s.indexes[src])
        elif _at(toks, i) == "(" and _at(up, i + 1) != "SELECT":
            end = _close(toks, i)
            if _top_index(up, ("SELECT",), end) == len(up):  # CREATE ... SELECT: unknown cols
                self._learn_table(table, toks, up, i, end)
        return hits

    def _learn_table(self, table: str, toks: list[str], up: list[str], i: int, end: int) -> None:
        cols: dict[str, _Col] = {}
        indexes: dict[str, bool] = {}
        for part in _split_top(toks, i + 1, end):
            pup = [t.upper() for t in part]
            w = pup[0]
            k = 0
            if w == "CONSTRAINT":
                k = 1 if _at(pup, 1) in ("PRIMARY", "UNIQUE", "FOREIGN", "CHECK") else 2
                w = _at(pup, k)
            if w == "PRIMARY":
                indexes["primary"] = True
                for c in _index_parts(part, pup, _skip(pup, k + 1, "KEY")).columns:
                    if c in cols:
                        cols[c] = _replace_col(cols[c], nullable=False)
            elif w in ("UNIQUE", "INDEX", "KEY", "FULLTEXT", "SPATIAL", "FOREIGN"):
                idx = _index_parts(part, pup, _skip(pup, k + 1, "KEY", "INDEX"))
                name = idx.name or (_name(part[1]) if k == 2 else None)
                name = name or (idx.columns[0] if idx.columns else None)
                if name:
                    indexes[name] = w == "UNIQUE"
            elif w in ("CHECK", "PERIOD"):
                continue
            else:
                col_name = _name(part[0])
                col = _parse_col(part[1:], pup[1:])
                if col_name and col:
                    cols[col_name] = col
                    if col.primary:
                        indexes["primary"] = True
                    elif col.unique:
                        indexes.setdefault(col_name, True)
        self.s.columns[table] = cols
        self.s.indexes[table] = indexes

    def _null_only(self, table: str | None, columns: Iterable[str]) -> bool:
        """Every column was added in context, nullable, without DEFAULT."""
        added = self.s.added.get(table or "", {})
        cols = list(columns)
        return bool(cols) and all(added.get(c, False) for c in cols)

    # ------------------------------------------------------------ DROP / RENAME / TRUNCATE

    def drop(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        i = _skip(up, 1, "TEMPORARY", "ONLINE", "OFFLINE")
        temporary = "TEMPORARY" in up[1:i]
        kind = _at(up, i)
        if kind == "INDEX":
            k = _skip_if_exists(up, i + 1)
            name = _name(_at(toks, k))
            table = _name(_at(toks, k + 2)) if _at(up, k + 1) == "ON" else None
            return self._drop_index(table, name)
        if kind == "PREPARE":
            return []
        if kind in ("USER", "ROLE"):
            return [(UNKNOWN, "grant", f"drops a {kind.lower()}: privileges change", None)]
        if kind not in ("TABLE", "TABLES", "VIEW", "SEQUENCE", "DATABASE", "SCHEMA") and (
            kind not in _ROUTINE_KINDS
        ):
            return [(UNKNOWN, "unknown-statement", f"DROP {kind} is not classified", None)]
        k = _skip_if_exists(up, i + 1)
        if kind == "PACKAGE":
            k = _skip(up, k, "BODY")
        stop = _top_index(up, ("WAIT", "NOWAIT", "RESTRICT", "CASCADE"), k)
        names = [nm for part in _split_top(toks, k, stop) if (nm := _name(part[0]))]
        if kind in ("DATABASE", "SCHEMA"):
            self.s.forget()
            return [
                (
                    BREAKING,
                    "drop-database",
                    f"drops database {', '.join(names)}: every table in it and its data are lost",
                    None,
                )
            ]
        hits: list[_Hit] = []
        if kind in ("TABLE", "TABLES"):
            for table in names:
                if temporary or table in self.temporary:
                    self.temporary.discard(table)
                    continue
                new = self._new(table)
                self.s.drop_table(table)
                if not new:
                    hits.append(
                        (
                            BREAKING,
                            "drop-table",
                            f"drops table {table}: the old code uses it and its rows are lost",
                            table,
                        )
                    )
            return hits
        what = "view" if kind == "VIEW" else kind.lower()
        code = {"VIEW": "drop-view", "SEQUENCE": "drop-sequence"}.get(kind, "drop-routine")
        for name in names:
            if (kind, name) in self.s.objects:
                self.s.objects.discard((kind, name))
                continue
            if kind != "SEQUENCE" and self._recreated(kind, name):
                continue
            hits.append(
                (
                    BREAKING,
                    code,
                    f"drops {what} {name}: released code may still use it",
                    name if kind in ("VIEW", "SEQUENCE") else None,
                )
            )
        return hits

    def _recreated(self, kind: str, name: str) -> bool:
        """A later statement of the script creates the same view / routine again."""
        for toks in self.statements[self.index + 1 :]:
            if not toks or toks[0].upper() != "CREATE":
                continue
            up = [t.upper() for t in toks[:24]]
            i = next((k for k, u in enumerate(up) if u in _CREATE_KINDS), len(up))
            if _at(up, i) != kind:
                continue
            k = _skip_if_exists(up, i + 1)
            if _name(_at(toks, k)) == name:
                return True
        return False

    def _drop_index(self, table: str | None, name: str | None) -> list[_Hit]:
        known = self.s.indexes.get(table or "", {})
        unique = known.pop(name or "", None) if name else None
        if self._new(table):
            return []
        if name == "primary":
            return [
                (
                    BREAKING,
                    "drop-primary-key",
                    f"drops the primary key of {table}: the old code relies on its uniqueness",
                    table,
                )
            ]
        if unique:
            return [
                (
                    BREAKING,
                    "drop-unique-index",
                    f"drops unique index {name} of {table}: the old code may rely on its "
                    "uniqueness (upserts, duplicate checks)",
                    table,
                )
            ]
        why = "a non-unique index" if unique is False else "unique or not, it cannot tell"
        return [
            (
                UNKNOWN,
                "drop-index",
                f"drops index {name} of {table} ({why}): the old code's queries may need it",
                table,
            )
        ]

    def rename(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        kind = _at(up, 1)
        if kind in ("USER", "ROLE"):
            return [(UNKNOWN, "grant", f"renames a {kind.lower()}: privileges change", None)]
        if kind not in ("TABLE", "TABLES"):
            return [(UNKNOWN, "unknown-statement", f"RENAME {kind} is not classified", None)]
        hits: list[_Hit] = []
        for part in _split_top(toks, _skip_if_exists(up, 2)):
            pup = [t.upper() for t in part]
            old = _name(part[0])
            to = _top_index(pup, ("TO",))
            new = _name(_at(part, to + 1))
            if old is None or new is None:
                continue
            hits.extend(self._rename_table(old, new))
        return hits

    def _rename_table(self, old: str, new: str) -> list[_Hit]:
        if old in self.temporary:
            self.temporary.discard(old)
            self.temporary.add(new)
            return []
        was_new = self._new(old)
        self.s.rename_table(old, new)
        if was_new:
            return []
        return [
            (
                BREAKING,
                "rename-table",
                f"renames table {old} to {new}: the old code still uses {old}",
                old,
            )
        ]

    def truncate(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        table = _name(_at(toks, _skip(up, 1, "TABLE")))
        if self._new(table):
            return []
        return [(BREAKING, "truncate", f"truncates table {table}: its rows are lost", table)]

    # ------------------------------------------------------------ ALTER

    def alter(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        i = _skip(up, 1, "ONLINE", "OFFLINE", "IGNORE")
        kind = _at(up, i)
        if kind == "TABLE":
            k = _skip_if_exists(up, i + 1)
            table = _name(_at(toks, k))
            if table is None:
                return [(UNKNOWN, "unknown-alter", "ALTER TABLE without a table name", None)]
            return self.alter_table(table, toks, up, k + 1)
        if kind in ("VIEW", "PROCEDURE", "FUNCTION", "DATABASE", "SCHEMA") or (
            kind in ("ALGORITHM", "DEFINER", "SQL") and "VIEW" in up
        ):
            return []
        if kind in ("USER", "ROLE"):
            return [(UNKNOWN, "grant", f"alters a {kind.lower()}: privileges change", None)]
        return [(UNKNOWN, "unknown-alter", f"ALTER {kind} is not classified", None)]

    def alter_table(self, table: str, toks: list[str], up: list[str], i: int) -> list[_Hit]:
        new_table = self._new(table)
        hits: list[_Hit] = []
        for spec in _split_top(toks, i):
            sup = [t.upper() for t in spec]
            # WAIT n / NOWAIT qualify the statement, not the table
            j = 0
            while j < len(sup) and sup[j] in ("WAIT", "NOWAIT"):
                j += 2 if sup[j] == "WAIT" else 1
            if j:
                spec, sup = spec[j:], sup[j:]
            if not spec:
                continue
            found = self.alter_spec(table, spec, sup)
            if not new_table:
                hits.extend(found)
        return hits

    def alter_spec(self, table: str, spec: list[str], up: list[str]) -> list[_Hit]:
        if up[0] == "ADD":
            return self._add(table, spec, up)
        hit = self._alter_one(table, spec, up)
        return [hit] if hit is not None else []

    def _alter_one(self, table: str, spec: list[str], up: list[str]) -> _Hit | None:
        w = up[0]
        if w == "DROP":
            return self._drop_spec(table, spec, up)
        if w == "RENAME":
            return self._rename_spec(table, spec, up)
        if w in ("CHANGE", "MODIFY"):
            return self._modify(table, spec, up)
        if w == "ALTER":
            return self._alter_column(table, spec, up)
        if w == "CONVERT":
            self.s.forget(table)
            return (
                UNKNOWN,
                "convert-charset",
                f"converts every text column of {table} to another character set: values, "
                "lengths and comparisons may change",
                table,
            )
        if w in _PARTITIONING or (w in _PARTITION_TABLE_WORDS and _at(up, 1) == "PARTITION"):
            return self._partition_spec(table, spec, up)
        if w in ("ENGINE", "TYPE"):
            return (
                UNKNOWN,
                "table-engine",
                f"rebuilds {table} with ENGINE={_at(spec, 2 if _at(spec, 1) == '=' else 1)}: "
                "the engine may change (transactions, foreign keys, locking)",
                table,
            )
        if w in _TABLE_OPTIONS:
            if "ENGINE" in up or "TYPE" in up:
                return (UNKNOWN, "table-engine", f"rebuilds {table} with a new engine", table)
            if w in ("DEFAULT", "CHARACTER", "CHARSET", "COLLATE"):
                self.s.forget(table)  # columns defined later take the new default charset
            return None
        self.s.forget(table)
        return (
            UNKNOWN,
            "unknown-alter",
            f"ALTER TABLE {table} {' '.join(spec[:3])} is not classified",
            table,
        )

    def _add(self, table: str, spec: list[str], up: list[str]) -> list[_Hit]:
        column_kw = _at(up, 1) == "COLUMN"
        i = _skip_if_exists(up, 2 if column_kw else 1)
        if not column_kw and _at(up, i) in _ADD_NOT_COLUMN:
            hit = self._add_constraint(table, spec, up)
            return [hit] if hit is not None else []
        # one column, or (col def, col def, ...)
        defs = _split_top(spec, i + 1, _close(spec, i)) if _at(spec, i) == "(" else [spec[i:]]
        hits: list[_Hit] = []
        for d in defs:
            dup = [t.upper() for t in d]
            hit: _Hit | None
            if len(defs) > 1 and dup[0] in _CONSTRAINT_WORDS:  # ADD (a INT, INDEX (a))
                hits.extend(self._add(table, ["ADD", *d], ["ADD", *dup]))
                continue
            name = _name(d[0])
            col = _parse_col(d[1:], dup[1:])
            if name is None or col is None:
                self.s.forget(table)
                hits.append(
                    (
                        UNKNOWN,
                        "unknown-alter",
                        f"adds a column to {table} that cannot be read",
                        table,
                    )
                )
                continue
            self.s.columns.setdefault(table, {})[name] = col
            if table not in self.s.created:
                self.s.added.setdefault(table, {})[name] = col.null_only
            hit = None
            if col.auto:
                hit = (
                    BREAKING,
                    "add-column-not-null",
                    f"adds AUTO_INCREMENT column {table}.{name} to an existing table: it needs "
                    "a key and fills every existing row (additive only on a new table)",
                    table,
                )
            elif not col.accepts_old_inserts:
                hit = (
                    BREAKING,
                    "add-column-not-null",
                    f"adds NOT NULL column {table}.{name} without a DEFAULT to an existing "
                    "table: the old code's inserts do not set it",
                    table,
                )
            elif col.primary:
                hit = (
                    BREAKING,
                    "add-primary-key",
                    f"adds column {table}.{name} as primary key of an existing table",
                    table,
                )
            elif col.unique and not col.null_only:
                hit = (
                    BREAKING,
                    "add-unique",
                    f"adds unique column {table}.{name} with a DEFAULT to an existing table: "
                    "rows get the same value and the old code's inserts collide",
                    table,
                )
            if col.primary or col.unique:
                key = "primary" if col.primary else name
                self.s.indexes.setdefault(table, {})[key] = True
            if hit is not None:
                hits.append(hit)
        return hits

    def _add_constraint(self, table: str, spec: list[str], up: list[str]) -> _Hit | None:
        """ADD [CONSTRAINT] INDEX / UNIQUE / PRIMARY / FOREIGN / CHECK / PARTITION ..."""
        i = _skip_if_exists(up, 1)
        kind = _at(up, i)
        constraint = None
        if kind == "CONSTRAINT":
            i = _skip_if_exists(up, i + 1)
            if _at(up, i) not in ("PRIMARY", "UNIQUE", "FOREIGN", "CHECK"):
                constraint, i = _name(_at(spec, i)), i + 1
            kind = _at(up, i)
        if kind in ("INDEX", "KEY", "FULLTEXT", "SPATIAL", "UNIQUE"):
            idx = _index_parts(spec, up, i if kind in ("INDEX", "KEY") else i + 1)
            name = idx.name or constraint or (idx.columns[0] if idx.columns else None)
            if name:
                self.s.indexes.setdefault(table, {})[name] = kind == "UNIQUE"
            if kind != "UNIQUE" or self._null_only(table, idx.columns):
                return None
            return (
                BREAKING,
                "add-unique",
                f"adds a unique key on existing table {table} ({', '.join(idx.columns) or '?'}):"
                " rows the old code writes (or already wrote) may violate it",
                table,
            )
        if kind == "PRIMARY":
            self.s.indexes.setdefault(table, {})["primary"] = True
            return (
                BREAKING,
                "add-primary-key",
                f"adds a primary key to existing table {table}: rows the old code writes may "
                "violate it",
                table,
            )
        if kind == "FOREIGN":
            idx = _index_parts(spec, up, _skip(up, i + 1, "KEY"))
            name = idx.name or constraint
            if name:
                self.s.indexes.setdefault(table, {}).setdefault(name, False)
            if self._null_only(table, idx.columns):
                return None
            return (
                BREAKING,
                "add-foreign-key",
                f"adds a foreign key on existing table {table} ({', '.join(idx.columns) or '?'})"
                ": the old code may write rows that violate it",
                table,
            )
        if kind == "CHECK":
            end = _close(spec, i + 1) if _at(spec, i + 1) == "(" else len(spec)
            names = [
                _name(t)
                for j, t in enumerate(spec[i + 2 : end], i + 2)
                if _is_name(t) and t[0] not in "'\"" and not t[0].isdigit()
                if up[j] not in _CHECK_WORDS and _at(spec, j + 1) != "("
            ]
            if self._null_only(table, [n for n in names if n]):
                return None
            return (
                BREAKING,
                "add-check",
                f"adds a CHECK constraint on existing table {table}: rows the old code writes "
                "may violate it",
                table,
            )
        if kind == "PARTITION":
            return None
        if kind in ("PERIOD", "SYSTEM"):
            return (
                UNKNOWN,
                "unknown-alter",
                f"adds {kind.lower()} versioning to {table}: not classified",
                table,
            )
        return None

    def _drop_spec(self, table: str, spec: list[str], up: list[str]) -> _Hit | None:
        kind = _at(up, 1)
        if kind in ("INDEX", "KEY"):
            name = _name(_at(spec, _skip_if_exists(up, 2)))
            hits = self._drop_index(table, name)
            return hits[0] if hits else None
        if kind == "PRIMARY":
            return self._drop_index(table, "primary")[0]
        if kind == "FOREIGN":
            name = _name(_at(spec, _skip_if_exists(up, _skip(up, 2, "KEY"))))
            return (
                BREAKING,
                "drop-foreign-key",
                f"drops foreign key {name} of {table}: the old code may rely on its checks "
                "or cascades",
                table,
            )
        if kind in ("CONSTRAINT", "CHECK"):
            name = _name(_at(spec, _skip_if_exists(up, 2)))
            if self.s.indexes.get(table, {}).get(name or "") is not None:
                return self._drop_index(table, name)[0]
            return (
                BREAKING,
                "drop-constraint",
                f"drops constraint {name} of {table}: the new code may then write rows the "
                "old code does not expect",
                table,
            )
        if kind == "PARTITION":
            return self._partition_spec(table, spec, up)
        if kind in ("SYSTEM", "PERIOD"):
            self.s.forget(table)
            return (UNKNOWN, "unknown-alter", f"drops {kind.lower()} versioning of {table}", table)
        i = _skip_if_exists(up, 2 if kind == "COLUMN" else 1)
        name = _name(_at(spec, i))
        self.s.columns.get(table, {}).pop(name or "", None)
        if name in self.s.added.get(table, {}):
            del self.s.added[table][name]  # type: ignore[arg-type]
            return None
        return (
            BREAKING,
            "drop-column",
            f"drops column {table}.{name}: the old code reads or writes it and its values are lost",
            table,
        )

    def _rename_spec(self, table: str, spec: list[str], up: list[str]) -> _Hit | None:
        kind = _at(up, 1)
        if kind == "COLUMN":
            i = _skip_if_exists(up, 2)
            old, new = _name(_at(spec, i)), _name(_at(spec, i + 2))
            return self._rename_column(table, old, new, None)
        if kind in ("INDEX", "KEY"):
            old, new = _name(_at(spec, 2)), _name(_at(spec, 4))
            idx = self.s.indexes.get(table, {})
            if old in idx and new:
                idx[new] = idx.pop(old)  # type: ignore[arg-type]
            return (
                UNKNOWN,
                "rename-index",
                f"renames index {old} of {table} to {new}: old code naming it in index hints fails",
                table,
            )
        new = _name(_at(spec, _skip(up, 1, "TO", "AS")))
        if new is None:
            return (
                UNKNOWN,
                "unknown-alter",
                f"ALTER TABLE {table} RENAME is not understood",
                table,
            )
        hits = self._rename_table(table, new)
        return hits[0] if hits else None

    def _rename_column(
        self, table: str, old: str | None, new: str | None, col: _Col | None
    ) -> _Hit | None:
        cols = self.s.columns.get(table, {})
        before = cols.pop(old or "", None)
        if new and (col or before):
            cols[new] = col or before  # type: ignore[assignment]
        added = self.s.added.get(table, {})
        if old in added:
            null_only = added.pop(old)  # type: ignore[arg-type]
            if new:
                added[new] = col.null_only if col else null_only
            return self._still_insertable(table, new, col)
        return (
            BREAKING,
            "rename-column",
            f"renames column {table}.{old} to {new}: the old code still uses {old}",
            table,
        )

    def _still_insertable(self, table: str, name: str | None, col: _Col | None) -> _Hit | None:
        if col is None or col.accepts_old_inserts:
            return None
        return (
            BREAKING,
            "add-column-not-null",
            f"makes new column {table}.{name} NOT NULL without a DEFAULT: the old code's "
            "inserts do not set it",
            table,
        )

    def _modify(self, table: str, spec: list[str], up: list[str]) -> _Hit | None:
        i = _skip_if_exists(up, _skip(up, 1, "COLUMN"))
        old = _name(_at(spec, i))
        if up[0] == "CHANGE":
            new = _name(_at(spec, i + 1))
            at = i + 2
        else:
            new, at = old, i + 1
        col = _parse_col(spec[at:], up[at:])
        if old is None or new is None or col is None:
            self.s.forget(table)
            return (UNKNOWN, "unknown-alter", f"changes a column of {table}: not understood", table)
        if new != old:
            return self._rename_column(table, old, new, col)
        cols = self.s.columns.setdefault(table, {})
        before = cols.get(old)
        cols[old] = col
        added = self.s.added.get(table, {})
        if old in added:
            added[old] = col.null_only
            return self._still_insertable(table, old, col)
        if before is None:
            return (
                UNKNOWN,
                "modify-column-unknown",
                f"redefines column {table}.{old} as {col.text}: its previous definition is "
                "not known here, so it cannot be proven a widening",
                table,
            )
        if _widens(before, col):
            return None
        return (
            BREAKING,
            "modify-column",
            f"redefines column {table}.{old} from {before.text} to {col.text}: not a pure "
            "widening (type, length, nullability, default or charset), old values or writes "
            "may not fit",
            table,
        )

    def _alter_column(self, table: str, spec: list[str], up: list[str]) -> _Hit | None:
        i = _skip(up, 1, "COLUMN")
        if _at(up, i) in ("INDEX", "KEY"):
            return (
                UNKNOWN,
                "unknown-alter",
                f"changes the visibility of index {_at(spec, i + 1)} of {table}",
                table,
            )
        name = _name(_at(spec, i))
        action = " ".join(up[i + 1 : i + 3])
        cols = self.s.columns.get(table, {})
        col = cols.get(name or "")
        if action == "SET DEFAULT":
            if col is not None:
                cols[name] = _replace_col(col, default=_expr(spec, up, i + 3)[0])  # type: ignore[index]
            if name in self.s.added.get(table, {}):
                self.s.added[table][name] = False  # type: ignore[index]
            return None
        if action == "DROP DEFAULT":
            if col is not None:
                cols[name] = _replace_col(col, default=None)  # type: ignore[index]
            if name in self.s.added.get(table, {}) and (col is None or col.nullable):
                return None
            return (
                BREAKING,
                "drop-default",
                f"drops the default of column {table}.{name}: the old code's inserts that do "
                "not set it fail or store NULL",
                table,
            )
        self.s.forget(table)
        return (
            UNKNOWN,
            "unknown-alter",
            f"ALTER COLUMN {name} {action.lower()} on {table} is not classified",
            table,
        )

    def _partition_spec(self, table: str, spec: list[str], up: list[str]) -> _Hit | None:
        w = up[0]
        if w in ("DROP", "TRUNCATE"):
            return (
                BREAKING,
                "drop-partition",
                f"{w.lower()}s partition {_at(spec, 2)} of {table}: its rows are lost",
                table,
            )
        if w in _PARTITION_MAINTENANCE:
            return None
        return (
            UNKNOWN,
            "partitioning",
            f"changes the partitioning of {table} ({' '.join(up[:2]).lower()})",
            table,
        )

    # ------------------------------------------------------------ data

    def insert(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        i = _skip(up, 1, "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO")
        table = _name(_at(toks, i))
        if self._new(table):
            return []
        code, verb = (
            ("data-replace", "replaces") if up[0] == "REPLACE" else ("data-insert", "inserts")
        )
        return [(DATA, code, f"{verb} rows in existing table {table}", table)]

    def update(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        i = _skip(up, 1, "LOW_PRIORITY", "IGNORE")
        set_at = _top_index(up, ("SET",), i)
        refs = _table_refs(toks, up, i, set_at)
        tables: list[str | None] = list(dict.fromkeys(refs.values())) or [None]
        written = tables
        if len(tables) > 1:  # multi-table: the tables the SET assignments name
            stop = _top_index(up, ("WHERE", "ORDER", "LIMIT", "RETURNING"), set_at)
            named: list[str | None] = []
            for part in _split_top(toks, set_at + 1, stop):
                parts = _PART.findall(part[0])
                target = refs.get(_name(parts[-2]) or "") if len(parts) > 1 else None
                if target is None:
                    named = tables
                    break
                named.append(target)
            written = list(dict.fromkeys(named)) or tables
        old = [t for t in written if not self._new(t)]
        return [(DATA, "data-update", f"updates rows of existing table {t}", t) for t in old]

    def delete(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        i = _skip(up, 1, "LOW_PRIORITY", "QUICK", "IGNORE")
        frm = _top_index(up, ("FROM",), i)
        where = _top_index(up, ("WHERE", "ORDER", "LIMIT", "RETURNING"), frm)
        if frm > i:  # DELETE t1, t2 FROM refs
            targets = [_name(p[0].removesuffix(".*")) for p in _split_top(toks, i, frm)]
            refs = _table_refs(toks, up, frm + 1, where)
        else:
            using = _top_index(up, ("USING",), frm)
            if using < where:  # DELETE FROM t1, t2 USING refs
                parts = _split_top(toks, frm + 1, using)
                targets = [_name(p[0].removesuffix(".*")) for p in parts]
                refs = _table_refs(toks, up, using + 1, where)
            else:
                targets = [_name(_at(toks, frm + 1))]
                refs = {}
        tables = [refs.get(t or "", t) for t in targets if t] or [None]
        old = [t for t in dict.fromkeys(tables) if not self._new(t)]
        return [(DATA, "data-delete", f"deletes rows of existing table {t}", t) for t in old]

    def load(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        if _at(up, 1) not in ("DATA", "XML"):
            return []  # LOAD INDEX INTO CACHE
        into = _top_index(up, ("INTO",))
        table = _name(_at(toks, _skip(up, into + 1, "TABLE")))
        if self._new(table):
            return []
        return [(DATA, "data-load", f"loads rows into existing table {table}", table)]

    # ------------------------------------------------------------ session, wrappers, dynamic

    def set_(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        kind = _at(up, 1)
        if kind == "STATEMENT":
            at = _top_index(up, ("FOR",), 2)
            return self.classify(toks[at + 1 :], depth + 1) if depth < 8 else []
        if kind in ("PASSWORD", "DEFAULT") and (kind == "PASSWORD" or _at(up, 2) == "ROLE"):
            return [(UNKNOWN, "grant", f"SET {kind} changes privileges", None)]
        heads = [p[0].upper() for p in _split_top(toks, 1)]
        if any(
            h in ("GLOBAL", "PERSIST", "PERSIST_ONLY") or h.startswith(("@@GLOBAL.", "@@PERSIST"))
            for h in heads
        ):
            return [
                (
                    UNKNOWN,
                    "set-global",
                    "sets a global server variable: every session changes",
                    None,
                )
            ]
        return []

    def analyze(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        if _at(up, 1) in ("TABLE", "TABLES", "NO_WRITE_TO_BINLOG", "LOCAL", "FORMAT", ""):
            return []
        return self.classify(toks[1:], depth + 1) if depth < 8 else []  # ANALYZE stmt runs it

    def with_(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        at = _top_index(up, ("SELECT", "UPDATE", "DELETE", "INSERT", "REPLACE"), 1)
        if at >= len(up) or up[at] == "SELECT" or depth >= 8:
            return []
        return self.classify(toks[at:], depth + 1)

    def prepare(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        name = (_name(_at(toks, 1)) or "").lower()
        src = _at(toks, 3) if _at(up, 2) == "FROM" else ""
        self.prepared[name] = _lex(_unquote(src)) if src[:1] in "'\"" else None
        return []

    def execute(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        if _at(up, 1) == "IMMEDIATE":
            src = _at(toks, 2)
            literal = src[:1] in "'\"" and _at(up, 3) in ("", "USING")
            body = _lex(_unquote(src)) if literal else None
        else:
            body = self.prepared.get((_name(_at(toks, 1)) or "").lower())
        if body is None or depth >= 8:
            self.s.forget()
            return [
                (
                    UNKNOWN,
                    "dynamic-sql",
                    "runs dynamic SQL built at run time: what it changes cannot be seen",
                    None,
                )
            ]
        return self.classify(body, depth + 1)

    def call(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        self.s.forget()
        return [
            (
                UNKNOWN,
                "call",
                f"calls procedure {_at(toks, 1) or '?'}: what it changes cannot be seen",
                None,
            )
        ]

    def grant(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        return [(UNKNOWN, "grant", f"{up[0]} changes privileges", None)]

    def begin(self, toks: list[str], up: list[str], depth: int) -> list[_Hit]:
        if _at(up, 1) == "NOT" and _at(up, 2) == "ATOMIC":
            self.s.forget()
            return [
                (
                    UNKNOWN,
                    "compound-statement",
                    "runs a BEGIN NOT ATOMIC block: its statements are not classified",
                    None,
                )
            ]
        return []


def _replace_col(col: _Col, **changes: Any) -> _Col:
    return replace(col, **changes)


_HANDLERS = {
    "CREATE": _Linter.create,
    "DROP": _Linter.drop,
    "RENAME": _Linter.rename,
    "TRUNCATE": _Linter.truncate,
    "ALTER": _Linter.alter,
    "INSERT": _Linter.insert,
    "REPLACE": _Linter.insert,
    "UPDATE": _Linter.update,
    "DELETE": _Linter.delete,
    "LOAD": _Linter.load,
    "SET": _Linter.set_,
    "ANALYZE": _Linter.analyze,
    "WITH": _Linter.with_,
    "PREPARE": _Linter.prepare,
    "EXECUTE": _Linter.execute,
    "CALL": _Linter.call,
    "GRANT": _Linter.grant,
    "REVOKE": _Linter.grant,
    "BEGIN": _Linter.begin,
}


# ---------------------------------------------------------------- allow comments

_COMMENT_SCAN = re.compile(
    r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`]|``)*`|/\*.*?\*/"
    r"|(?:--(?=\s|\Z)|\#)[^\n]*",
    re.S,
)
_ALLOW = re.compile(r"(?:--|\#)\s*dbroll:allow(?![\w-])[ \t]*(\S*)[ \t]*(.*?)\s*\Z")


def _allows(script: Script) -> tuple[dict[str, str], list[Finding]]:
    """Allowed codes with their reasons, and findings for allows without one."""
    allows: dict[str, str] = {}
    findings: list[Finding] = []
    text = script.text
    if "dbroll:allow" not in text:
        return allows, findings
    for m in _COMMENT_SCAN.finditer(text):
        comment = m.group()
        if comment[0] not in "-#" or "dbroll:allow" not in comment:
            continue
        allow = _ALLOW.match(comment)
        if allow is None:
            continue
        code, reason = allow.group(1), allow.group(2)
        if code and reason:
            allows.setdefault(code, reason)
            continue
        line = text.count("\n", 0, m.start()) + 1
        what = f"dbroll:allow {code}" if code else "dbroll:allow"
        findings.append(
            Finding(
                "allow-without-reason",
                BREAKING,
                script.path,
                line,
                f"{what} gives no {'reason' if code else 'code and no reason'}: nothing is "
                "accepted",
                HINTS["allow-without-reason"],
            )
        )
    return allows, findings


# ---------------------------------------------------------------- public API


def _lint(script: Script, state: _State) -> tuple[str, tuple[Finding, ...], frozenset[str]]:
    before = set(state.created)
    allows, findings = _allows(script)
    try:
        statements = split_statements(script.text)
    except SplitError as e:
        state.forget()
        findings.append(
            Finding("unparsable", UNKNOWN, script.path, e.line, str(e), HINTS["unparsable"])
        )
        statements = []
    linter = _Linter(state, [_lex(st.text) for st in statements])
    for k, st in enumerate(statements):
        linter.index = k
        for klass, code, message, table in linter.classify(linter.statements[k]):
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
    findings.sort(key=lambda f: f.line)
    klass = max((f.klass for f in findings), key=SEVERITY.__getitem__, default=ADDITIVE)
    return klass, tuple(findings), frozenset(state.created - before)


def lint_script(
    script: Script, created: set[str] | frozenset[str] = frozenset()
) -> tuple[str, tuple[Finding, ...], frozenset[str]]:
    """(class, findings, tables this script creates), given the tables created before it in
    the same lint context (lower-case names): statements on those are additive."""
    return _lint(script, _State(created))


def lint_migration(m: Migration, created: set[str] | frozenset[str] = frozenset()) -> MigrationLint:
    """Lint a migration's forward script (`created` as for lint_script)."""
    klass, findings, made = lint_script(m.up, created)
    return MigrationLint(m.version, klass, findings, made)


def lint_set(mset: MigrationSet, since: Version | None = None) -> list[MigrationLint]:
    """Lint the migrations newer than `since` (all when None), in order.

    With `since`, the selected migrations are one release (what a rollback to `since`
    reverts): `created` accumulates across them, so a table created by one of them is new for
    the rest. Without it, every migration is its own context (as a manifest records them;
    accumulating over the whole history would make every change to any table the project
    ever created additive). Migrations at or before `since`, and every earlier migration in
    either mode, still teach column and index definitions, so a MODIFY can be proven widening
    and a dropped index known to be unique.
    """
    state = _State()
    out: list[MigrationLint] = []
    in_release = False
    for m in mset.migrations:
        selected = since is None or m.version > since
        if since is None or not selected or not in_release:
            state.new_context()
        in_release = selected and since is not None
        klass, findings, made = _lint(m.up, state)
        if selected:
            out.append(MigrationLint(m.version, klass, findings, made))
    return out
