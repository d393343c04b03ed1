"""Read a migration folder written for Flyway, dbmate or golang-migrate.

`load_migration_set(root)` lists the folder (not recursively), decides which tool's
naming the files follow, reads every script and returns a `MigrationSet`. Anything that
cannot be read as a migration set raises `MigrationFileError` naming the file at fault.

Ignored: hidden files, README*, anything whose name does not end in ".sql" (any case),
and directories.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.errors import MigrationFileError
from pipeline.migrations.model import Migration, MigrationSet, Repeatable, Script, Version

__all__ = ["detect_format", "load_migration_set"]

FLYWAY = "flyway"
DBMATE = "dbmate"
GOLANG = "golang-migrate"
EMPTY = "empty"

_VER = r"[0-9]+(?:[._][0-9]+)*"
_FLYWAY_VERSIONED_RE = re.compile(rf"(?P<kind>[VU])(?P<ver>{_VER})__(?P<desc>.*)\.sql", re.S)
_FLYWAY_REPEATABLE_RE = re.compile(r"R__(?P<desc>.+)\.sql", re.S)
_GOLANG_RE = re.compile(r"(?P<ver>[0-9]+)_(?P<desc>.*)\.(?P<kind>up|down)\.sql", re.S)
_DBMATE_RE = re.compile(r"(?P<ver>[0-9]+)_(?P<desc>.*)\.sql", re.S)

_PATTERNS_HINT = (
    "expected one of: Flyway V<version>__<description>.sql, U<version>__<description>.sql, "
    "R__<description>.sql; dbmate <version>_<name>.sql; "
    "golang-migrate <version>_<name>.up.sql and <version>_<name>.down.sql"
)

# Tokens that carry no SQL: whitespace, statement separators, line comments and block
# comments, except /*! ... */ and /*M! ... */ which MariaDB executes.
_NOTHING_RE = re.compile(r"(?:\s+|;|--[^\n]*|#[^\n]*|/\*(?!M?!)(?:.*?\*/|.*\Z))+", re.S)

_DBMATE_MARKER_RE = re.compile(r"--\s*migrate:(?P<section>up|down)(?:\s+(?P<options>.*))?")


@dataclass(frozen=True)
class _Entry:
    """One classified file name."""

    name: str
    format: str
    kind: str  # "up", "undo" or "repeatable"
    version: Version | None
    description: str


def _describe(raw: str) -> str:
    return raw.replace("_", " ").strip()


def _join(root: str | None, name: str) -> str:
    return os.path.join(root, name) if root else name


def _is_candidate(name: str) -> bool:
    return (
        not name.startswith(".")
        and not name.upper().startswith("README")
        and name.lower().endswith(".sql")
    )


def _flyway_name_error(name: str, root: str | None) -> MigrationFileError:
    prefix = name[0]
    if prefix == "R":
        hint = "repeatable migrations are named R__<description>.sql, e.g. R__views.sql"
    elif "__" not in name:
        hint = (
            f"separate the version and the description with two underscores, "
            f"e.g. {prefix}1__init.sql"
        )
    else:
        hint = (
            f"the version must be digits separated by '.' or '_', "
            f"e.g. {prefix}1__init.sql or {prefix}1.1__add_index.sql"
        )
    return MigrationFileError(_join(root, name), "invalid Flyway file name", hint=hint)


def _classify(name: str, root: str | None) -> _Entry:
    if not name.endswith(".sql"):
        raise MigrationFileError(
            _join(root, name),
            "migration file names must end in lowercase .sql",
            hint=f"rename it to {name[:-4]}.sql",
        )
    if name[:1] in ("V", "U"):
        m = _FLYWAY_VERSIONED_RE.fullmatch(name)
        if not m:
            raise _flyway_name_error(name, root)
        kind = "up" if m["kind"] == "V" else "undo"
        return _Entry(name, FLYWAY, kind, Version.parse(m["ver"]), _describe(m["desc"]))
    if name[:1] == "R":
        m = _FLYWAY_REPEATABLE_RE.fullmatch(name)
        if not m or not _describe(m["desc"]):
            raise _flyway_name_error(name, root)
        return _Entry(name, FLYWAY, "repeatable", None, _describe(m["desc"]))
    m = _GOLANG_RE.fullmatch(name)
    if m:
        kind = "up" if m["kind"] == "up" else "undo"
        return _Entry(name, GOLANG, kind, Version.parse(m["ver"]), _describe(m["desc"]))
    lowered = name.lower()
    m = _DBMATE_RE.fullmatch(name)
    if m and not lowered.endswith((".up.sql", ".down.sql")):
        return _Entry(name, DBMATE, "up", Version.parse(m["ver"]), _describe(m["desc"]))
    raise MigrationFileError(
        _join(root, name), "file name does not match any migration format", hint=_PATTERNS_HINT
    )


def _classify_all(filenames: Iterable[str], root: str | None) -> tuple[str, list[_Entry]]:
    names = sorted(n for n in filenames if _is_candidate(n))
    entries = [_classify(n, root) for n in names]
    first_of: dict[str, str] = {}
    for entry in entries:
        first_of.setdefault(entry.format, entry.name)
    if not first_of:
        return EMPTY, entries
    if len(first_of) > 1:
        examples = ", ".join(f"{name} ({fmt})" for fmt, name in sorted(first_of.items()))
        raise MigrationFileError(
            root if root else ", ".join(sorted(first_of.values())),
            f"mixed migration formats: {examples}",
            hint="keep the files of one tool (Flyway, dbmate or golang-migrate) per folder",
        )
    (fmt,) = first_of
    return fmt, entries


def detect_format(filenames: Iterable[str], *, root: str | None = None) -> str:
    """Which tool's naming the file names follow: "flyway", "dbmate", "golang-migrate"
    or "empty" (no migration files).

    Hidden files, README* and names not ending in ".sql" are ignored. Raises
    MigrationFileError for a ".sql" name that fits no format or for a mix of formats.
    `root`, when given, is prefixed to the paths named in errors.
    """
    return _classify_all(filenames, root)[0]


# ---------------------------------------------------------------------------- reading


def _read(path: str) -> tuple[bytes, str]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise MigrationFileError(
            path,
            f"cannot read the file: {exc.strerror or exc}",
            hint="check that the file exists and is readable",
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(
            path,
            f"not valid UTF-8 at byte offset {exc.start}",
            hint="save the file as UTF-8",
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return data, text


def _is_empty_sql(text: str) -> bool:
    """True when the text holds only whitespace, ';' and comments (not /*! ... */)."""
    m = _NOTHING_RE.match(text)
    end = m.end() if m else 0
    return end == len(text)


def _whole_file_script(root: str, name: str) -> Script:
    data, text = _read(os.path.join(root, name))
    return Script(path=name, sha256=hashlib.sha256(data).hexdigest(), text=text)


def _section_script(name: str, text: str) -> Script:
    return Script(path=name, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), text=text)


def _check_not_empty(root: str, script: Script, what: str, hint: str) -> None:
    if _is_empty_sql(script.text):
        raise MigrationFileError(
            os.path.join(root, script.path),
            f"empty {what} (only whitespace and comments)",
            hint=hint,
        )


_EMPTY_UP_HINT = "write the migration's SQL, or delete the file"
_EMPTY_UNDO_HINT = "write the undo SQL, or delete the file if the migration cannot be undone"


def _pair_up(
    root: str, entries: list[_Entry], undo_example: str
) -> tuple[dict[Version, _Entry], dict[Version, _Entry]]:
    """Index forward and undo entries by version; reject duplicates and orphan undos."""
    ups: dict[Version, _Entry] = {}
    undos: dict[Version, _Entry] = {}
    for entry in entries:
        if entry.kind == "repeatable":
            continue
        table = ups if entry.kind == "up" else undos
        assert entry.version is not None
        other = table.get(entry.version)
        if other is not None:
            what = "migration" if entry.kind == "up" else "undo script"
            raise MigrationFileError(
                os.path.join(root, entry.name),
                f"duplicate {what} version {entry.version}: {other.name} and {entry.name}",
                hint="versions compare numerically (1 = 1.0 = 01); renumber one of the files",
            )
        table[entry.version] = entry
    for version, entry in undos.items():
        if version not in ups:
            raise MigrationFileError(
                os.path.join(root, entry.name),
                f"undo script for version {version} has no forward migration",
                hint=f"add the forward migration ({undo_example}) or delete the undo file",
            )
    return ups, undos


def _load_paired(root: str, fmt: str, entries: list[_Entry]) -> MigrationSet:
    example = "V<version>__<description>.sql" if fmt == FLYWAY else "<version>_<name>.up.sql"
    ups, undos = _pair_up(root, entries, example)
    migrations = []
    for version, up_entry in ups.items():
        up = _whole_file_script(root, up_entry.name)
        _check_not_empty(root, up, "migration script", _EMPTY_UP_HINT)
        undo = None
        undo_entry = undos.get(version)
        if undo_entry is not None:
            undo = _whole_file_script(root, undo_entry.name)
            _check_not_empty(root, undo, "undo script", _EMPTY_UNDO_HINT)
        migrations.append(Migration(version, up_entry.description, up, undo))
    repeatables: dict[str, Repeatable] = {}
    for entry in entries:
        if entry.kind != "repeatable":
            continue
        if entry.description in repeatables:
            first = repeatables[entry.description].script.path
            raise MigrationFileError(
                os.path.join(root, entry.name),
                f"duplicate repeatable migration {entry.description!r}: {first} and {entry.name}",
                hint="give each repeatable migration its own description",
            )
        script = _whole_file_script(root, entry.name)
        _check_not_empty(root, script, "repeatable script", _EMPTY_UP_HINT)
        name = entry.name[len("R__") : -len(".sql")]
        repeatables[entry.description] = Repeatable(name, entry.description, script)
    return MigrationSet(root, fmt, tuple(migrations), tuple(repeatables.values()))


# ---------------------------------------------------------------------------- dbmate


def _dbmate_transaction(path: str, lineno: int, options: str | None) -> bool:
    transaction = True
    for option in (options or "").split():
        key, sep, value = option.partition(":")
        if key != "transaction" or not sep:
            continue
        if value.lower() == "false":
            transaction = False
        elif value.lower() != "true":
            raise MigrationFileError(
                path,
                f"line {lineno}: invalid option {option!r}",
                hint="use transaction:false or transaction:true",
            )
    return transaction


def _parse_dbmate(path: str, name: str, text: str) -> tuple[Script, Script | None, bool]:
    """Split a dbmate file into its up and down sections."""
    lines = text.split("\n")
    markers: dict[str, tuple[int, str | None]] = {}
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("--"):
            continue
        m = _DBMATE_MARKER_RE.fullmatch(stripped)
        if not m:
            continue
        section = m["section"]
        if section in markers:
            first = markers[section][0] + 1
            raise MigrationFileError(
                path,
                f"line {index + 1}: second '-- migrate:{section}' marker (first on line {first})",
                hint="a dbmate file has one '-- migrate:up' and at most one '-- migrate:down'",
            )
        if section == "down" and "up" not in markers:
            raise MigrationFileError(
                path,
                f"line {index + 1}: '-- migrate:down' comes before '-- migrate:up'",
                hint="put the '-- migrate:up' section first",
            )
        markers[section] = (index, m["options"])
    if "up" not in markers:
        raise MigrationFileError(
            path,
            "no '-- migrate:up' marker",
            hint="a dbmate file starts with a '-- migrate:up' line, then the forward SQL, "
            "then optionally '-- migrate:down' and the undo SQL",
        )
    up_index, up_options = markers["up"]
    if not _is_empty_sql("\n".join(lines[:up_index])):
        raise MigrationFileError(
            path,
            f"SQL before the '-- migrate:up' marker on line {up_index + 1}",
            hint="move the SQL below the '-- migrate:up' line",
        )
    transaction = _dbmate_transaction(path, up_index + 1, up_options)

    def body_of(start: int, end: int) -> str:
        if start >= end:
            return ""
        body = "\n".join(lines[start:end])
        return body + "\n" if end < len(lines) else body

    down = None
    if "down" in markers:
        down_index, down_options = markers["down"]
        if not _dbmate_transaction(path, down_index + 1, down_options):
            transaction = False
        up_text = body_of(up_index + 1, down_index)
        down_text = body_of(down_index + 1, len(lines))
        if not _is_empty_sql(down_text):
            down = _section_script(name, down_text)
    else:
        up_text = body_of(up_index + 1, len(lines))
    up = _section_script(name, up_text)
    if _is_empty_sql(up_text):
        raise MigrationFileError(
            path,
            "empty '-- migrate:up' section (only whitespace and comments)",
            hint="write the migration's SQL below '-- migrate:up', or delete the file",
        )
    return up, down, transaction


def _load_dbmate(root: str, entries: list[_Entry]) -> MigrationSet:
    ups, _ = _pair_up(root, entries, "")
    migrations = []
    for version, entry in ups.items():
        path = os.path.join(root, entry.name)
        _, text = _read(path)
        up, down, transaction = _parse_dbmate(path, entry.name, text)
        migrations.append(Migration(version, entry.description, up, down, transaction))
    return MigrationSet(root, DBMATE, tuple(migrations), ())


# ---------------------------------------------------------------------------- entry point


def _list_files(root: str) -> list[str]:
    if not os.path.exists(root):
        raise MigrationFileError(
            root,
            "migration folder does not exist",
            hint="pass the folder that holds the migration .sql files",
        )
    if not os.path.isdir(root):
        raise MigrationFileError(
            root,
            "not a directory",
            hint="pass the folder that holds the migration .sql files, not a file",
        )
    names = []
    try:
        with os.scandir(root) as it:
            for entry in it:
                if _is_candidate(entry.name) and not entry.is_dir():
                    names.append(entry.name)
    except OSError as exc:
        raise MigrationFileError(
            root,
            f"cannot list the folder: {exc.strerror or exc}",
            hint="check the folder's permissions",
        ) from None
    return names


def load_migration_set(root: str | os.PathLike) -> MigrationSet:
    """Read every migration in `root` (not recursively) into a MigrationSet."""
    root_str = os.fsdecode(os.fspath(root))
    fmt, entries = _classify_all(_list_files(root_str), root_str)
    if fmt == EMPTY:
        return MigrationSet(root_str, EMPTY, (), ())
    if fmt == DBMATE:
        return _load_dbmate(root_str, entries)
    return _load_paired(root_str, fmt, entries)
