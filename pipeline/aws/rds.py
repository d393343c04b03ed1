"""RDS: a manual DB snapshot before destructive steps (client passed in)."""

from __future__ import annotations

import re
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import AwsError, NotFoundError


def snapshot_id(instance: str, run_id: str | None, now: float | None = None) -> str:
    """A valid snapshot identifier: letters, digits, hyphens; starts with a letter; <= 255."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    run = re.sub(r"[^A-Za-z0-9]+", "-", run_id or "manual").strip("-")[:40]
    ident = re.sub(r"-+", "-", f"dbroll-{instance}-{stamp}-{run}").strip("-")
    return ident[:255]


def take_snapshot(
    rds: Any,
    instance: str,
    *,
    run_id: str | None,
    timeout: float = 1800,
    delay: float = 15,
    progress: Any = None,
) -> str:
    """Create a manual snapshot of `instance` and wait until it is available."""
    ident = snapshot_id(instance, run_id)
    resource = f"RDS instance {instance}"
    try:
        rds.create_db_snapshot(
            DBSnapshotIdentifier=ident,
            DBInstanceIdentifier=instance,
            Tags=[{"Key": "dbroll:run-id", "Value": run_id or "manual"}],
        )
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "DBInstanceNotFound":
            raise NotFoundError(
                f"{resource} does not exist", hint="check --rds-snapshot and the region"
            ) from None
        raise AwsError(resource, f"create_db_snapshot failed: {e}") from None
    except BotoCoreError as e:
        raise AwsError(resource, str(e)) from None
    if progress is not None:
        progress(f"RDS snapshot {ident} of {instance} started; waiting until it is available")
    from botocore.exceptions import WaiterError

    try:
        rds.get_waiter("db_snapshot_available").wait(
            DBSnapshotIdentifier=ident,
            WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(timeout // max(delay, 1)))},
        )
    except WaiterError as e:
        raise AwsError(
            f"RDS snapshot {ident}",
            f"not available within {timeout:g} s ({e}); nothing else was changed",
            hint="look at it in the RDS console; run again once it is available",
        ) from None
    return ident
