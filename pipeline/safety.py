"""The data guard of a destructive undo: measure what is at risk, then refuse, or back it up
(and take an RDS snapshot) before the first statement runs. Adapters are passed in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from pipeline.errors import BlockedError
from pipeline.risk import Target, destructive_targets, needs_protection

log = structlog.get_logger(__name__)


def targets_of(steps: list[Any]) -> list[Target]:
    """Destructive targets of runner steps (kind undo), in the order they would run."""
    out: list[Target] = []
    for st in steps:
        out += destructive_targets(
            st.script.text,
            st.script.path,
            version=str(st.version) if st.version is not None else None,
        )
    return out


def data_guard(
    *,
    connect: Callable[[], Any],
    run_id: str,
    backup_uri: str | None = None,
    accept_data_loss: bool = False,
    s3: Any = None,
    rds: Any = None,
    rds_instance: str | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Callable[[list[Any], Any, Any], None]:
    """A guard for Runner.apply_plan (see there)."""
    from pipeline.db.risk import measure

    say = progress or (lambda line: log.info(line))

    def guard(undo_steps: list[Any], history: Any, result: Any, *, from_line: int = 1) -> None:
        """`from_line`: the first step runs from that line of its script on (a resumed
        undo); what it destroyed before is not at risk any more."""
        targets = targets_of(undo_steps)
        if from_line > 1:
            first = undo_steps[0].script.path
            targets = [t for t in targets if t.path != first or t.line >= from_line]
        if not targets:
            return
        ran_at = {str(v): row.finished_at for v, row in history.applied.items() if row.finished_at}
        conn = connect()
        try:
            risks = measure(conn, targets, ran_at)
        finally:
            conn.close()
        result.extra["data_at_risk"] = [r.to_dict() for r in risks]
        held = needs_protection(risks)
        for r in held:
            log.warning("data at risk", detail=r.line())
        if len(held) < len(risks):  # an empty table or column, one gone already: no warning
            log.info("destroyed, but holding no data", targets=len(risks) - len(held))
        if not held:
            return
        total = sum(r.rows for r in held)
        if not backup_uri and not accept_data_loss:
            raise BlockedError(
                f"the undo would destroy data ({total} row(s)/value(s)): "
                + "; ".join(r.line() for r in held)
                + "; nothing was run",
                hint="back it up first with --backup s3://BUCKET/PREFIX (restore with "
                "`dbroll backup restore`), or pass --accept-data-loss",
            )
        if dry_run:
            if backup_uri:
                result.extra["backup"] = {"would_back_up": [r.target.what for r in held]}
            else:
                result.extra["backup"] = {"would_lose": [r.target.what for r in held]}
            if rds_instance:
                result.extra["rds_snapshot"] = {"would_snapshot": rds_instance}
            return
        if rds_instance:
            from pipeline.aws.rds import take_snapshot

            result.extra["rds_snapshot"] = take_snapshot(
                rds, rds_instance, run_id=run_id, progress=say
            )
        if backup_uri:
            from pipeline.db.backup import backup

            manifest = backup(
                connect, [r.target for r in held], s3, backup_uri, run_id=run_id, progress=say
            )
            result.extra["backup"] = {"uri": manifest["uri"], "rows": manifest["rows"]}
            say(
                f"backed up {manifest['rows']} row(s) to {manifest['uri']}; put them back with "
                f"`dbroll backup restore {manifest['uri']}`"
            )
        else:
            log.warning("data loss accepted (--accept-data-loss)", rows=total)

    return guard
