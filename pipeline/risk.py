"""Data at risk: what an undo script destroys (pure: no database, no AWS).

The expand/contract lint already knows which statements lose data; read on an undo script,
its drop-table, drop-column, narrowing and delete findings are exactly what a backup must
keep. Measuring how much data that is (row counts, non-NULL values, rows written since the
migration ran) is pipeline.db.risk's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.migrations.lint import lint_script
from pipeline.migrations.model import Script

# lint finding code -> what the backup must keep
_TABLE_CODES = {
    "drop-table": "dropped",
    "truncate": "truncated",
    "data-delete": "rows deleted",
    "replace-table": "replaced",
    "drop-partition": "partition dropped",
}
_COLUMN_CODES = {
    "drop-column": "dropped",
    "modify-column": "narrowed or retyped",
    "modify-column-unknown": "redefined (not provably widening)",
    "convert-charset": "converted",
}
# the lint's messages: "drops column t.c: ...", "redefines column t.c as ..." / "from ..."
_COLUMN_IN_MESSAGE = re.compile(r"column (?P<table>[^.]+)\.(?P<column>.+?)(?:: | as | from )")


@dataclass(frozen=True)
class Target:
    """A table (all its rows) or a column (its values) that a script destroys."""

    kind: str  # table | column
    table: str
    column: str | None
    path: str  # the script
    line: int
    reason: str  # dropped | narrowed or retyped | rows deleted | ...
    version: str | None = None

    @property
    def what(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "table": self.table,
            "column": self.column,
            "path": self.path,
            "line": self.line,
            "reason": self.reason,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Target:
        return cls(
            str(d["kind"]),
            str(d["table"]),
            d.get("column"),
            str(d["path"]),
            int(d["line"]),
            str(d["reason"]),
            d.get("version"),
        )


def destructive_targets(text: str, path: str, *, version: str | None = None) -> list[Target]:
    """What running this script destroys, one Target per table or column, in script order.

    A whole-table target replaces column targets of the same table (the backup keeps the
    table); a table the script itself creates first is not at risk.
    """
    _, findings, _ = lint_script(Script(path=path, sha256="", text=text))
    out: list[Target] = []
    for f in findings:
        if f.table is None:
            continue
        if f.code in _TABLE_CODES:
            out.append(Target("table", f.table, None, path, f.line, _TABLE_CODES[f.code], version))
        elif f.code in _COLUMN_CODES:
            m = _COLUMN_IN_MESSAGE.search(f.message)
            column = m.group("column") if m else None
            if column is None:  # cannot say which column: keep the whole table
                out.append(Target("table", f.table, None, path, f.line, "altered", version))
            else:
                out.append(
                    Target("column", f.table, column, path, f.line, _COLUMN_CODES[f.code], version)
                )
    whole = {t.table for t in out if t.kind == "table"}
    seen: set[tuple[str, str | None]] = set()
    kept = []
    for t in out:
        key = (t.table, t.column if t.kind == "column" else None)
        if (t.kind == "column" and t.table in whole) or key in seen:
            continue
        seen.add(key)
        kept.append(t)
    return kept


@dataclass(frozen=True)
class Risk:
    """A target measured on the live database."""

    target: Target
    exists: bool
    rows: int  # rows of the table (table target) or non-NULL values (column target)
    written_after: int | None = None  # rows changed since the migration ran, when known
    since: str | None = None  # when the migration ran (the history's finished_at)
    basis: str | None = None  # the column that told (updated_at, created_at, ...)
    auto_increment: int | None = None

    @property
    def at_risk(self) -> bool:
        return self.exists and self.rows > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.target.to_dict(),
            "what": self.target.what,
            "exists": self.exists,
            "rows": self.rows,
            "written_after": self.written_after,
            "since": self.since,
            "basis": self.basis,
            "auto_increment": self.auto_increment,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Risk:
        return cls(
            Target.from_dict(d),
            bool(d["exists"]),
            int(d["rows"]),
            d.get("written_after"),
            d.get("since"),
            d.get("basis"),
            d.get("auto_increment"),
        )

    def line(self) -> str:
        t = self.target
        where = f"{t.path}:{t.line}"
        if not self.exists:
            return f"{t.what} ({t.reason}, {where}): does not exist, nothing at risk"
        unit = "row(s)" if t.kind == "table" else "non-NULL value(s)"
        text = f"{t.what} ({t.reason}, {where}): {self.rows} {unit}"
        if self.written_after is not None:
            text += f", {self.written_after} written after the migration ran ({self.basis} > {self.since})"
        elif self.auto_increment is not None:
            text += f", AUTO_INCREMENT at {self.auto_increment}"
        return text


def render_risk_lines(risks: Iterable[Risk]) -> list[str]:
    return [r.line() for r in risks]


def needs_protection(risks: Iterable[Risk]) -> list[Risk]:
    """The risks that hold data: running without a backup would lose it."""
    return [r for r in risks if r.at_risk]


def plan_targets(plan_dict: Mapping[str, Any], files: Mapping[str, bytes]) -> list[Target]:
    """The destructive targets of a plan's undo steps (plan as a dict, files by bundle path)."""
    out: list[Target] = []
    for step in plan_dict.get("steps", []):
        if step.get("action") != "undo" or step.get("path") not in files:
            continue
        out += destructive_targets(
            files[step["path"]].decode("utf-8-sig"), step["source"], version=step.get("version")
        )
    return out


def render_risk_section(targets: list[Target], risks: list[Risk] | None, *, markdown: bool) -> str:
    """The data-at-risk part of a plan: measured when the database was reachable."""
    if not targets:
        return ""
    head = "**Data at risk**" if markdown else "data at risk:"
    bullet = "- " if markdown else "  "
    if risks is None:
        lines = [
            f"{bullet}{t.what} ({t.reason}, {t.path}:{t.line}): not measured (no --dsn)"
            for t in targets
        ]
    else:
        lines = [bullet + r.line() for r in risks]
    held = [r for r in risks or [] if r.at_risk]
    if risks is None or held:
        lines.append(f"{bullet}running it needs --backup s3://BUCKET/PREFIX or --accept-data-loss")
    return "\n".join([head, *lines])
