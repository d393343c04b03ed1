"""Where a runner runs: the ECS task or CodeBuild build of this process (recorded with the
runner lock), and whether the one a lock row names is still there (asked by `dbroll unlock`).

- ``runner_arn()``: ``CODEBUILD_BUILD_ARN`` in CodeBuild; in an ECS task (Fargate or EC2,
  agent 1.39+) the ``TaskARN`` of the task metadata endpoint ``$ECS_CONTAINER_METADATA_URI_V4/
  task``, a link-local HTTP call that needs no credentials; None elsewhere. Standard library
  only: every command that takes the lock calls it, and it must not cost an import of boto3.
- ``runner_status(arn, client_for)``: ``ecs:DescribeTasks`` or ``codebuild:BatchGetBuilds``
  on that ARN (its region), with the client passed in: alive (the task not yet STOPPED, the
  build IN_PROGRESS), gone, or unknown (the call failed: no credentials, another account),
  and a sentence saying so. Never raises: unlock goes on without the answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

ECS_METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"
METADATA_TIMEOUT_S = 0.5


def runner_arn(
    environ: Mapping[str, str] = os.environ, *, timeout: float = METADATA_TIMEOUT_S
) -> str | None:
    """The ARN of the CodeBuild build or ECS task this process runs in, or None (elsewhere,
    or the task metadata endpoint did not answer within `timeout`: the ARN is a fact for
    `dbroll unlock`, never a reason to fail a run)."""
    if arn := environ.get("CODEBUILD_BUILD_ARN", "").strip():
        return arn
    uri = environ.get(ECS_METADATA_ENV, "").strip()
    if not uri.startswith(("http://", "https://")):
        return None
    import urllib.request  # here: importing it costs every command that takes the lock

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/task", timeout=timeout) as r:  # noqa: S310 - the agent's URL
            arn = json.loads(r.read(1 << 20)).get("TaskARN")
    except (OSError, ValueError, AttributeError):  # unreachable, not JSON, not an object
        return None
    return arn if isinstance(arn, str) and arn.startswith("arn:") else None


@dataclass(frozen=True)
class RunnerStatus:
    arn: str
    what: str  # "ECS task" | "CodeBuild build" | "runner"
    alive: bool | None  # None: unknown
    status: str  # RUNNING, STOPPED, IN_PROGRESS, SUCCEEDED, MISSING, ... or "unknown"
    text: str  # one sentence for people

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(arn: str) -> tuple[str, str, str]:
    """(service, region, resource) of an ARN; ValueError when it is not one."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[3]:
        raise ValueError(f"{arn!r} is not an ARN with a region")
    return parts[2], parts[3], parts[5]


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value)


def runner_status(arn: str, client_for: Callable[[str, str], Any]) -> RunnerStatus:
    """Whether the ECS task or CodeBuild build `arn` still runs. `client_for(service,
    region)` makes the boto3 client. Any failure is an unknown status naming the call."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        service, region, resource = _parse(arn)
    except ValueError as e:
        return RunnerStatus(arn, "runner", None, "unknown", f"cannot ask AWS about it: {e}")
    if service == "ecs" and resource.startswith("task/"):
        what, call = "ECS task", "ecs:DescribeTasks"
    elif service == "codebuild" and resource.startswith("build/"):
        what, call = "CodeBuild build", "codebuild:BatchGetBuilds"
    else:
        return RunnerStatus(
            arn, "runner", None, "unknown", f"{arn} is neither an ECS task nor a CodeBuild build"
        )
    try:
        client = client_for(service, region)
        if service == "ecs":
            return _ecs_status(arn, resource, client)
        return _build_status(arn, resource, client)
    except (ClientError, BotoCoreError) as e:
        return RunnerStatus(
            arn,
            what,
            None,
            "unknown",
            f"could not ask AWS whether {what} {arn} still runs ({call}: {e}); "
            "check it yourself before ending its sessions",
        )


def _ecs_status(arn: str, resource: str, ecs: Any) -> RunnerStatus:
    ids = resource.split("/")  # task/CLUSTER/ID, or task/ID (the old format: default cluster)
    cluster = ids[1] if len(ids) == 3 else "default"
    out = ecs.describe_tasks(cluster=cluster, tasks=[arn])
    tasks = out.get("tasks") or []
    if not tasks:
        reason = ", ".join(f.get("reason", "?") for f in out.get("failures") or []) or "MISSING"
        gone = reason == "MISSING"
        return RunnerStatus(
            arn,
            "ECS task",
            False if gone else None,
            reason,
            f"ECS task {arn} is {reason}: "
            + (
                "ECS no longer knows it (it keeps a stopped task for about an hour), so it is gone"
                if gone
                else "ECS could not say whether it runs"
            ),
        )
    t = tasks[0]
    last = t.get("lastStatus", "?")
    if last in ("STOPPED", "DELETED"):
        why = t.get("stoppedReason") or t.get("stopCode") or "no reason given"
        since = f" since {_when(t['stoppedAt'])}" if t.get("stoppedAt") else ""
        return RunnerStatus(
            arn, "ECS task", False, last, f"ECS task {arn} is {last}{since} ({why})"
        )
    desired = t.get("desiredStatus")
    also = f", desired {desired}" if desired and desired != last else ""
    return RunnerStatus(
        arn, "ECS task", True, last, f"ECS task {arn} is {last}{also}: it still runs"
    )


def _build_status(arn: str, resource: str, cb: Any) -> RunnerStatus:
    build_id = resource[len("build/") :]
    out = cb.batch_get_builds(ids=[build_id])
    builds = out.get("builds") or []
    if not builds:
        return RunnerStatus(
            arn,
            "CodeBuild build",
            None,
            "NOT_FOUND",
            f"CodeBuild build {arn} was not found (another account or region?)",
        )
    b = builds[0]
    status = b.get("buildStatus", "?")
    if status == "IN_PROGRESS":
        phase = b.get("currentPhase")
        return RunnerStatus(
            arn,
            "CodeBuild build",
            True,
            status,
            f"CodeBuild build {arn} is IN_PROGRESS"
            + (f" ({phase})" if phase else "")
            + ": it still runs",
        )
    since = f" since {_when(b['endTime'])}" if b.get("endTime") else ""
    return RunnerStatus(
        arn, "CodeBuild build", False, status, f"CodeBuild build {arn} ended {status}{since}"
    )
