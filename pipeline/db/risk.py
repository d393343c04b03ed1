"""Measure data at risk on the live database (row counts, non-NULL values, recent writes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pipeline.risk import Risk, Target

_TIME_COLUMNS = ("updated_at", "modified_at", "changed_at", "last_modified", "created_at")


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def measure(
    conn: Any, targets: Iterable[Target], ran_at: Mapping[str, datetime] | None = None
) -> list[Risk]:
    """One Risk per target. `ran_at`: version -> when its forward migration finished (from
    the history), so rows written after it can be counted where a timestamp column tells."""
    cur = conn.cursor()
    out = []
    for t in targets:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (t.table,),
        )
        columns = {name.lower(): dtype.lower() for name, dtype in cur.fetchall()}
        if not columns or (t.column and t.column.lower() not in columns):
            out.append(Risk(t, exists=False, rows=0))
            continue
        if t.kind == "column":
            cur.execute(f"SELECT COUNT({_q(t.column or '')}) FROM {_q(t.table)}")
        else:
            cur.execute(f"SELECT COUNT(*) FROM {_q(t.table)}")
        rows = int(cur.fetchone()[0])
        cur.execute(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (t.table,),
        )
        auto = cur.fetchone()[0]
        since = (ran_at or {}).get(t.version or "")
        basis = next(
            (
                c
                for c in _TIME_COLUMNS
                if columns.get(c) in ("datetime", "timestamp") and c != (t.column or "").lower()
            ),
            None,
        )
        after = None
        if since is not None and basis is not None:
            where = f"{_q(basis)} > %s"
            if t.kind == "column":
                where += f" AND {_q(t.column or '')} IS NOT NULL"
            cur.execute(f"SELECT COUNT(*) FROM {_q(t.table)} WHERE {where}", (since,))
            after = int(cur.fetchone()[0])
        out.append(
            Risk(
                t,
                exists=True,
                rows=rows,
                written_after=after,
                since=since.isoformat(sep=" ") if since is not None and after is not None else None,
                basis=basis if after is not None else None,
                auto_increment=int(auto) if auto is not None else None,
            )
        )
    return out
