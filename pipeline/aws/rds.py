"""RDS: a manual DB snapshot before destructive steps (client passed in), and the IAM
authentication token that stands in for a password (`iam=true` in a DSN)."""

from __future__ import annotations

import functools
import os
import re
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import AwsError, ConfigError, NotFoundError


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


# <instance>.<hash>.<region>.rds.amazonaws.com (RDS Proxy: <proxy>.proxy-<hash>.<region>...)
_RDS_ENDPOINT = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d+)\.rds\.amazonaws\.com(?:\.cn)?$")
IAM_TOKEN_TTL_S = 900  # RDS accepts a token for 15 minutes after it was signed


def endpoint_region(host: str) -> str | None:
    """The region in an RDS endpoint's name, or None for any other name."""
    m = _RDS_ENDPOINT.search(host.lower())
    return m.group(1) if m else None


@functools.lru_cache(maxsize=4)
def _signer(region: str) -> Any:
    """An RDS client for `region`: it only signs (generate_db_auth_token makes no call), and
    it is made once per process (a client costs ~50 ms; a signature well under 1 ms)."""
    import boto3

    return boto3.session.Session().client("rds", region_name=region)


def iam_auth_token(host: str, port: int, user: str, region: str | None) -> str:
    """A token that RDS accepts instead of `user`'s password for 15 minutes: a SigV4
    signature of rds-db:connect for host:port, made locally with the caller's credentials.
    The region: `region`, else the one in an RDS endpoint's name, else the AWS config's
    (AWS_DEFAULT_REGION, a profile) or AWS_REGION."""
    where = f"{user}@{host}:{port}"
    region = region or endpoint_region(host)
    try:
        if not region:
            import boto3

            # botocore reads AWS_DEFAULT_REGION; Lambda, ECS and CodeBuild also set AWS_REGION
            region = boto3.session.Session().region_name or os.environ.get("AWS_REGION")
        if not region:
            raise ConfigError(
                f"cannot sign an IAM token for {where}: no region (the host is not an RDS "
                "endpoint name and no AWS region is configured)",
                hint="add region=<the instance's region> to the DSN, or set AWS_REGION",
            )
        return str(
            _signer(region).generate_db_auth_token(
                DBHostname=host, Port=port, DBUsername=user, Region=region
            )
        )
    except BotoCoreError as e:
        raise ConfigError(
            f"cannot sign an IAM token for {where} in {region}: {e}",
            hint="dbroll signs with the AWS credentials it runs with (the task role in ECS, "
            "the project's service role in CodeBuild, AWS_PROFILE or AWS_ACCESS_KEY_ID on a "
            "shell); check that they are there: `aws sts get-caller-identity`",
        ) from None
