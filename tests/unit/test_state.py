"""Derived state of the history table and its comparison with a folder (pure)."""

from __future__ import annotations

from datetime import datetime

import pytest

from pipeline.db.history import History, HistoryRow
from pipeline.db.runner import changes_session, is_dml
from pipeline.db.state import analyze
from pipeline.migrations.model import Migration, MigrationSet, Repeatable, Script, Version
from pipeline.migrations.sqlsplit import Statement

_ids = iter(range(1, 10_000))


def row(
    version, kind="migrate", status="success", applied=None, checksum=None, script=None, done=0
):
    if applied is None and status == "success":
        applied = {"migrate": True, "undo": False, "baseline": True}.get(kind)
    return HistoryRow(
        id=next(_ids),
        version=version,
        description="",
        kind=kind,
        script=script,
        checksum=checksum if checksum is not None else (f"c{version}" if version else None),
        status=status,
        applied=applied,
        statements_done=done,
        statements_total=None,
        error=None,
        started_at=datetime(2026, 1, 1),
        finished_at=None,
        duration_ms=None,
        installed_by="t",
        image=None,
        run_id=None,
        host=None,
    )


def mset(*versions, repeatables=()):
    migs = [
        Migration(Version.parse(v), f"m{v}", Script(f"V{v}__m.sql", f"c{v}", ""), None)
        for v in versions
    ]
    reps = [Repeatable(n, n, Script(f"R__{n}.sql", c, "")) for n, c in repeatables]
    return MigrationSet("m", "flyway", migs, reps)


def test_applied_is_the_latest_successful_event_per_version():
    h = History(
        (
            row("1"),
            row("2"),
            row("3"),
            row("3", "undo"),
            row("2", "undo"),
            row("2"),
            row("4", status="failed"),
        )
    )
    assert [str(v) for v in h.applied] == ["1", "2"]
    assert str(h.current) == "2"
    assert h.blocked.version == "4"


def test_blocked_is_cleared_by_a_later_event_for_the_same_version():
    h = History((row("1"), row("2", status="running", done=3)))
    assert h.blocked.statements_done == 3
    h2 = History((*h.rows, row("2", "repair", applied=False)))
    assert h2.blocked is None and [str(v) for v in h2.applied] == ["1"]
    h3 = History((*h.rows, row("2.0")))  # 2.0 is version 2
    assert h3.blocked is None and [str(v) for v in h3.applied] == ["1", "2"]


def test_code_rollback_rows_never_block():
    h = History((row("1"), row(None, "code_rollback", status="success")))
    assert h.blocked is None


def test_stops_in_a_row_count_runs_left_running_at_the_same_statement():
    # a migration stopped at statement 2, resumed and stopped there twice more
    stopped = [row("7", status="running", done=1) for _ in range(3)]
    h = History((row("6"), *stopped))
    assert h.blocked == stopped[-1]  # the latest row of its subject
    assert h.stops_in_a_row(stopped[-1]) == 3
    # a stop further on starts the count again
    further = row("7", status="running", done=2)
    assert History((row("6"), *stopped, further)).stops_in_a_row(further) == 1
    # rows of other subjects between them do not break the run; an ended event does
    other = row("8", status="running", done=1)
    h = History((stopped[0], other, stopped[1]))
    assert h.stops_in_a_row(stopped[1]) == 2
    failed = row("7", status="failed", done=1)
    assert History((stopped[0], failed, stopped[1])).stops_in_a_row(stopped[1]) == 1
    # an undo left running at the same statement is another event
    undo = row("7", kind="undo", status="running", done=1)
    assert History((undo, stopped[1])).stops_in_a_row(stopped[1]) == 1
    # a repeatable is counted by its script
    rep = [row(None, "repeatable", status="running", script="R__v.sql") for _ in range(2)]
    assert History((rep[0], row("9"), rep[1])).stops_in_a_row(rep[1]) == 2


def test_analyze_pending_future_gaps_drift_out_of_order():
    h = History((row("1"), row("3"), row("5", checksum="old"), row("9")))
    s = analyze(mset("1", "2", "3", "4", "5", "6"), h)
    assert [str(m.version) for m in s.pending] == ["2", "4", "6"]
    # 9 is applied (future), so every pending version is older than the newest applied
    assert [str(m.version) for m in s.out_of_order] == ["2", "4", "6"]
    assert [str(v) for v in s.future] == ["9"]
    assert s.gaps == ()
    assert [(str(d.version), d.applied_checksum) for d in s.drift] == [("5", "old")]
    s2 = analyze(mset("1", "2", "5", "6"), h)
    assert [str(v) for v in s2.gaps] == ["3"]


def test_baseline_rows_without_checksum_are_not_drift():
    h = History((row("1", "baseline", checksum=""),))
    assert analyze(mset("1"), h).drift == ()


def test_repeatables_due_when_checksum_changes():
    h = History(
        (
            row(None, "repeatable", script="R__a.sql", checksum="x"),
            row(None, "repeatable", script="R__b.sql", checksum="y"),
        )
    )
    s = analyze(mset(repeatables=[("a", "x"), ("b", "changed"), ("c", "new")]), h)
    assert [r.name for r in s.repeatables_due] == ["b", "c"]


@pytest.mark.parametrize(
    ("sql", "dml", "session"),
    [
        ("INSERT INTO a VALUES (1)", True, False),
        ("  update a set x=1", True, False),
        ("/*!40101 SET NAMES utf8 */", True, True),
        ("SET GLOBAL max_connections = 10", False, True),
        ("CREATE TABLE a (id INT)", False, False),
        ("CREATE TEMPORARY TABLE t (id INT)", False, True),
        ("CALL p()", False, False),
        ("USE other", False, True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True, False),
        ("ALTER TABLE a ADD b INT", False, False),
    ],
)
def test_statement_classes(sql, dml, session):
    st = Statement(sql, 1)
    assert is_dml(st) is dml
    assert changes_session(st) is session
