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


def _as_named(cur: Any, targets: list[Target]) -> list[Target]:
    """`targets` with each table as the server names it. The scripts' names come lowercased
    from the lint, and a server on Linux compares table names by case: `Items` would
    otherwise go unmeasured (and unsaved) when a script drops it. A name that matches no
    table stays as it is (nothing at risk); one that matches several tables differing only
    by case (which one the script meant is lost with its case) becomes one target each."""
    cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
    by_lower: dict[str, list[str]] = {}
    for (name,) in cur.fetchall():
        by_lower.setdefault(name.lower(), []).append(name)
    out = []
    for t in targets:
        names = by_lower.get(t.table.lower())
        out += [replace(t, table=name) for name in sorted(names)] if names else [t]
    return out


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


def measure(
    conn: Any, targets: Iterable[Target], ran_at: Mapping[str, datetime] | None = None
) -> list[Risk]:
    """One Risk per target, in order (one per table it names: see _as_named), its target
    naming the table as the server does (the backup reads it by that name). `ran_at`:
    version -> when its forward migration finished (from the history), so rows written
    after it can be counted where a timestamp column tells.

    A few round trips whatever the number of targets (an undo of a thousand migrations has a
    thousand): the columns and AUTO_INCREMENT of every table at once, then the counts in
    UNION ALL queries of up to _PER_QUERY each."""
    targets = list(targets)
    if not targets:
        return []
    cur = conn.cursor()
    targets = _as_named(cur, targets)
    columns: dict[str, dict[str, str]] = {}
    auto: dict[str, Any] = {}
    for chunk in _lookups(sorted({t.table for t in targets})):
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

    counts: list[str] = []  # SELECT <target index>, <0: rows | 1: written after>, COUNT
    bases: dict[int, tuple[str, datetime]] = {}
    for i, t in enumerate(targets):
        cols = columns.get(t.table)
        if not cols or (t.column and t.column.lower() not in cols):
            continue
        what = f"COUNT({_q(t.column or '')})" if t.kind == "column" else "COUNT(*)"
        counts.append(f"SELECT {i}, 0, {what} FROM {_q(t.table)}")
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
    rows: dict[int, int] = {}
    after: dict[int, int] = {}
    for j in range(0, len(counts), _PER_QUERY):
        cur.execute(" UNION ALL ".join(counts[j : j + _PER_QUERY]))
        for i, kind, n in cur.fetchall():
            (after if kind else rows)[int(i)] = int(n)

    out = []
    for i, t in enumerate(targets):
        if i not in rows:
            out.append(Risk(t, exists=False, rows=0))
            continue
        basis, since = bases.get(i, (None, None))
        a = auto.get(t.table)
        out.append(
            Risk(
                t,
                exists=True,
                rows=rows[i],
                written_after=after.get(i),
                since=since.isoformat(sep=" ") if since is not None else None,
                basis=basis,
                auto_increment=int(a) if a is not None else None,
            )
        )
    return out
