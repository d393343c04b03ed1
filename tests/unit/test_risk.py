"""What an undo script destroys: the targets a backup must keep."""

from __future__ import annotations

import pytest

from pipeline.risk import Risk, Target, destructive_targets, needs_protection


def kinds(sql: str) -> list[tuple[str, str, str | None, str]]:
    return [(t.kind, t.table, t.column, t.reason) for t in destructive_targets(sql, "U9__x.sql")]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DROP TABLE orders;", [("table", "orders", None, "dropped")]),
        (
            "DROP TABLE IF EXISTS a, `b`;",
            [("table", "a", None, "dropped"), ("table", "b", None, "dropped")],
        ),
        ("DROP TABLE shop.orders;", [("table", "orders", None, "dropped")]),
        ("ALTER TABLE t DROP COLUMN c;", [("column", "t", "c", "dropped")]),
        (
            "ALTER TABLE t DROP c, DROP COLUMN `d e`;",
            [("column", "t", "c", "dropped"), ("column", "t", "d e", "dropped")],
        ),
        ("ALTER TABLE `t` DROP COLUMN IF EXISTS c;", [("column", "t", "c", "dropped")]),
        (
            "ALTER TABLE t MODIFY c INT;",
            [("column", "t", "c", "redefined (not provably widening)")],
        ),
        ("TRUNCATE TABLE t;", [("table", "t", None, "truncated")]),
        ("DELETE FROM t;", [("table", "t", None, "rows deleted")]),
        ("-- drop it\n/* really */ DROP TABLE t;", [("table", "t", None, "dropped")]),
        # a table dropped and a column of it: the table backup covers the column
        ("ALTER TABLE t DROP COLUMN c; DROP TABLE t;", [("table", "t", None, "dropped")]),
        # not destructive: renames, drops of what the script itself created, indexes
        ("ALTER TABLE t RENAME COLUMN a TO b;", []),
        ("RENAME TABLE a TO b;", []),
        ("CREATE TABLE n (id INT); DROP TABLE n;", []),
        ("ALTER TABLE t DROP INDEX ix;", []),
        ("ALTER TABLE t ADD COLUMN c INT NULL;", []),
    ],
)
def test_targets(sql, expected):
    assert kinds(sql) == expected


def test_lines_and_versions_are_kept():
    (t,) = destructive_targets("SELECT 1;\n\nDROP TABLE t;", "U3__t.sql", version="3")
    assert (t.line, t.version, t.path) == (3, "3", "U3__t.sql")
    assert Target.from_dict(t.to_dict()) == t


def test_only_targets_holding_data_need_protection():
    t = Target("column", "t", "c", "U1.sql", 1, "dropped", "1")
    empty = Risk(t, exists=True, rows=0)
    gone = Risk(t, exists=False, rows=0)
    full = Risk(
        t, exists=True, rows=5, written_after=2, since="2026-01-01 00:00:00", basis="updated_at"
    )
    assert needs_protection([empty, gone, full]) == [full]
    assert Risk.from_dict(full.to_dict()) == full
    assert "5 non-NULL value(s), 2 written after the migration ran" in full.line()
    assert "does not exist" in gone.line()
