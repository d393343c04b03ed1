"""Pure comparison of a migration folder with a database's history.

Fetch first, then decide: :func:`analyze` takes values (a MigrationSet and a History) and
returns what is applied, pending, future, missing or drifted; the runner acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.db.history import History, HistoryRow
from pipeline.migrations.model import Migration, MigrationSet, Repeatable, Version


@dataclass(frozen=True)
class Drift:
    """An applied script whose file no longer has the checksum recorded when it ran."""

    version: Version
    path: str
    applied_checksum: str
    file_checksum: str


@dataclass(frozen=True)
class State:
    applied: tuple[Version, ...]
    pending: tuple[Migration, ...]
    future: tuple[Version, ...]  # applied, newer than every local version
    gaps: tuple[Version, ...]  # applied, inside the local range, no local file
    out_of_order: tuple[Migration, ...]  # pending but older than the newest applied
    drift: tuple[Drift, ...]
    repeatables_due: tuple[Repeatable, ...]
    blocked: HistoryRow | None
    current: Version | None = None

    def to_dict(self) -> dict[str, Any]:
        b = self.blocked
        return {
            "current_version": str(self.current) if self.current is not None else None,
            "applied": [str(v) for v in self.applied],
            "pending": [str(m.version) for m in self.pending],
            "future": [str(v) for v in self.future],
            "gaps": [str(v) for v in self.gaps],
            "out_of_order": [str(m.version) for m in self.out_of_order],
            "drift": [
                {
                    "version": str(d.version),
                    "path": d.path,
                    "applied_checksum": d.applied_checksum,
                    "file_checksum": d.file_checksum,
                }
                for d in self.drift
            ],
            "repeatables_due": [r.script.path for r in self.repeatables_due],
            "blocked": None
            if b is None
            else {
                "id": b.id,
                "version": b.version,
                "script": b.script,
                "kind": b.kind,
                "status": b.status,
                "statements_done": b.statements_done,
                "statements_total": b.statements_total,
                "error": b.error,
            },
        }


def analyze(mset: MigrationSet, history: History) -> State:
    applied = history.applied
    latest_local = mset.latest
    future, gaps, drift = [], [], []
    for version, row in applied.items():
        local = mset.get(version)
        if local is None:
            if latest_local is None or version > latest_local:
                future.append(version)
            else:
                gaps.append(version)
        elif row.checksum and row.checksum != local.up.sha256:
            drift.append(Drift(version, local.up.path, row.checksum, local.up.sha256))
    newest_applied = max(applied) if applied else None
    pending, out_of_order = [], []
    for m in mset.migrations:
        if m.version in applied:
            continue
        if newest_applied is not None and m.version < newest_applied:
            out_of_order.append(m)
        pending.append(m)
    done = history.repeatables
    due = tuple(r for r in mset.repeatables if done.get(r.script.path) != r.script.sha256)
    return State(
        applied=tuple(applied),
        pending=tuple(pending),
        future=tuple(future),
        gaps=tuple(gaps),
        out_of_order=tuple(out_of_order),
        drift=tuple(drift),
        repeatables_due=due,
        blocked=history.blocked,
        current=newest_applied,
    )
