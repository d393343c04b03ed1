"""Measure data at risk on the live database (row counts, non-NULL values, recent writes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from pipeline.risk import Risk, Target

_TIME_COLUMNS = ("updated_at", "modified_at", "changed_at", "last_modified", "created_at")
_PER_QUERY = 200  # tables per information_schema query, counts per UNION ALL


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _as_named(cur: Any, targets: list[Target]) -> tuple[list[Target], set[str]]:
    """`targets` with each table as the server names it, and the names of the tables that
    exist. The scripts' names come lowercased from the lint, and a server on Linux compares
    table names by case: `Items` would otherwise go unmeasured (and unsaved) when a script
    drops it. A name that matches no table stays as it is (nothing at risk); one that
    matches several tables differing only by case (which one the script meant is lost with
    its case) becomes one target each."""
    cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
    by_lower: dict[str, list[str]] = {}
    for (name,) in cur.fetchall():
        by_lower.setdefault(name.lower(), []).append(name)
    out = []
    for t in targets:
        names = by_lower.get(t.table.lower())
        out += [replace(t, table=name) for name in sorted(names)] if names else [t]
    return out, {n for names in by_lower.values() for n in names}


def _lookups(tables: list[str]) -> Iterator[list[str]]:
    """`tables` in lists of up to _PER_QUERY for `TABLE_NAME IN (...)`, no two names in one
    list equal but for case: information_schema answers such a list for one of them only."""
    rounds: list[list[str]] = []
    seen: dict[str, int] = {}
    for name in tables:
        k = seen[name.lower()] = seen.get(name.lower(), -1) + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(name)
    for names in rounds:
        for i in range(0, len(names), _PER_QUERY):
            yield names[i : i + _PER_QUERY]


def _union(cur: Any, counts: list[str]) -> dict[tuple[int, int], int]:
    """Run `SELECT <target index>, <kind>, COUNT...` queries in UNION ALLs of _PER_QUERY."""
    out: dict[tuple[int, int], int] = {}
    for j in range(0, len(counts), _PER_QUERY):
        cur.execute(" UNION ALL ".join(counts[j : j + _PER_QUERY]))
        for i, kind, n in cur.fetchall():
            out[int(i), int(kind)] = int(n)
    return out


def measure(
    conn: Any, targets: Iterable[Target], ran_at: Mapping[str, datetime] | None = None
) -> list[Risk]:
    """One Risk per target, in order (one per table it names: see _as_named), its target
    naming the table as the server does (the backup reads it by that name). `ran_at`:
    version -> when its forward migration finished (from the history), so rows written
    after it can be counted where a timestamp column tells.

    A few round trips whatever the number of targets (an undo of a thousand migrations has a
    thousand): the tables' names, the row counts of the tables to drop, then, only for the
    tables that hold rows and those losing a column, their columns and AUTO_INCREMENT at
    once and the counts that need them, in UNION ALL queries of up to _PER_QUERY each. An
    undo of many empty tables does not pay for information_schema's per-table details."""
    targets = list(targets)
    if not targets:
        return []
    cur = conn.cursor()
    targets, existing = _as_named(cur, targets)
    counted = _union(
        cur,
        [
            f"SELECT {i}, 0, COUNT(*) FROM {_q(t.table)}"
            for i, t in enumerate(targets)
            if t.kind == "table" and t.table in existing
        ],
    )
    detail = sorted(
        {
            t.table
            for i, t in enumerate(targets)
            if t.table in existing and (t.kind == "column" or counted.get((i, 0)))
        }
    )
    columns: dict[str, dict[str, str]] = {}
    auto: dict[str, Any] = {}
    for chunk in _lookups(detail):
        marks = ", ".join(["%s"] * len(chunk))
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})",
            chunk,
        )
        for table, name, dtype in cur.fetchall():
            columns.setdefault(table, {})[name.lower()] = dtype.lower()
        cur.execute(
            "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})",
            chunk,
        )
        auto.update(cur.fetchall())

    counts: list[str] = []  # SELECT <target index>, <0: values | 1: written after>, COUNT
    bases: dict[int, tuple[str, datetime]] = {}
    for i, t in enumerate(targets):
        cols = columns.get(t.table)
        if not cols or (t.column and t.column.lower() not in cols):
            continue
        if t.kind == "column":
            counts.append(f"SELECT {i}, 0, COUNT({_q(t.column or '')}) FROM {_q(t.table)}")
        since = (ran_at or {}).get(t.version or "")
        basis = next(
            (
                c
                for c in _TIME_COLUMNS
                if cols.get(c) in ("datetime", "timestamp") and c != (t.column or "").lower()
            ),
            None,
        )
        if since is not None and basis is not None:
            where = f"{_q(basis)} > {conn.escape(since)}"
            if t.kind == "column":
                where += f" AND {_q(t.column or '')} IS NOT NULL"
            counts.append(f"SELECT {i}, 1, COUNT(*) FROM {_q(t.table)} WHERE {where}")
            bases[i] = (basis, since)
    counted.update(_union(cur, counts))

    out = []
    for i, t in enumerate(targets):
        if (i, 0) not in counted:
            out.append(Risk(t, exists=False, rows=0))
            continue
        basis, since = bases.get(i, (None, None))
        a = auto.get(t.table)
        out.append(
            Risk(
                t,
                exists=True,
                rows=counted[i, 0],
                written_after=counted.get((i, 1)),
                since=since.isoformat(sep=" ") if since is not None else None,
                basis=basis,
                auto_increment=int(a) if a is not None else None,
            )
        )
    return out
