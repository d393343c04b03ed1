"""CodeDeploy lifecycle hook for ECS blue/green: run the database step before traffic moves.

appspec.yaml names this Lambda on BeforeInstall (or AfterInstall). The handler reads the
deployment's target task definition, runs `dbroll migrate --manifest <target image>` as a
one-off task of the service's *current* task definition (the same executor as `dbroll
deploy`), and reports Succeeded or Failed with PutLifecycleEventHookExecutionStatus. It
never leaves a hook pending: any exception is reported as Failed, then re-raised. When the
migrations ran, the service gets the tag io.dbroll.schema-image/<target digest>
(pipeline.aws.ecs.record_applied): should CodeDeploy put traffic back on the original
task set, `dbroll rollback --to <the image it runs>` finds the target's undo scripts.

Note: AWS cannot roll a deployment back from a failure in BeforeInstall (the replacement
task set does not exist yet): the deployment just stops, and the original keeps serving.
After AfterInstall or AfterAllowTestTraffic, a Failed hook rolls the deployment back.

Environment of the Lambda: DBROLL_BUCKET (and DBROLL_PREFIX), DBROLL_CLUSTER,
DBROLL_SERVICE, DBROLL_CONTAINER (optional), DBROLL_TIMEOUT (seconds, default 600),
DBROLL_RESUME_INTERRUPTED=1 (optional: passed to the task, which then first finishes a
migration a stopped runner left running, as `dbroll deploy --resume-interrupted`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def target_image(codedeploy: Any, ecs: Any, deployment_id: str, container: str | None) -> str:
    """The image the deployment moves to, from its AppSpec's target task definition."""
    import json

    from pipeline.errors import ConfigError

    dep = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    rev = dep.get("revision") or {}
    content = (rev.get("appSpecContent") or rev.get("string") or {}).get("content")
    if not content:
        raise ConfigError(f"CodeDeploy deployment {deployment_id} has no inline AppSpec content")
    try:
        spec = json.loads(content)
    except ValueError:
        import yaml  # AppSpec may be YAML

        spec = yaml.safe_load(content)
    td = None
    for resource in spec.get("Resources", []):
        for value in resource.values():
            props = (value or {}).get("Properties", {})
            td = td or props.get("TaskDefinition")
    if not td:
        raise ConfigError(f"CodeDeploy deployment {deployment_id}: no TaskDefinition in AppSpec")
    cdefs = ecs.describe_task_definition(taskDefinition=td)["taskDefinition"][
        "containerDefinitions"
    ]
    chosen = next((c for c in cdefs if container is None or c["name"] == container), None)
    if chosen is None:
        raise ConfigError(f"task definition {td} has no container {container!r}")
    return chosen["image"]


def task_env(deployment_id: str, digest: str | None, lambda_env: Any) -> dict[str, str]:
    """The one-off task's extra environment: what ran it, and DBROLL_RESUME_INTERRUPTED=1 or
    DBROLL_OUT_OF_ORDER=1 when the Lambda has it (variables, not the flags, which an older
    image would reject)."""
    env = {"DBROLL_IMAGE": digest or "", "DBROLL_RUN_ID": deployment_id}
    for name in ("DBROLL_RESUME_INTERRUPTED", "DBROLL_OUT_OF_ORDER"):
        if lambda_env.get(name) == "1":
            env[name] = "1"
    return env


def run_hook(
    event: dict[str, Any],
    *,
    codedeploy: Any,
    database_step: Callable[[str], Any],
    resolve_image: Callable[[str], str],
) -> str:
    """Report Succeeded when `database_step(image)` returns a successful outcome, Failed
    otherwise (and on any exception, which is re-raised after reporting)."""
    deployment_id = event["DeploymentId"]
    hook_id = event["LifecycleEventHookExecutionId"]
    status = "Failed"
    try:
        image = resolve_image(deployment_id)
        outcome = database_step(image)
        status = "Succeeded" if getattr(outcome, "ok", bool(outcome)) else "Failed"
        log.info(
            "codedeploy hook",
            deployment=deployment_id,
            image=image,
            status=status,
            task=getattr(outcome, "task_arn", None),
            exit_code=getattr(outcome, "exit_code", None),
        )
    finally:
        codedeploy.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id, lifecycleEventHookExecutionId=hook_id, status=status
        )
    return status


def handler(event: dict[str, Any], context: Any = None) -> dict[str, str]:  # pragma: no cover
    """The Lambda entry point: wires real clients into run_hook."""
    import boto3

    from pipeline.aws.ecr import parse_image_ref
    from pipeline.aws.ecs import Ecs, OneOffTasks, record_applied
    from pipeline.executor import EcsTaskExecutor

    session = boto3.session.Session()
    ecs_client = session.client("ecs")
    codedeploy = session.client("codedeploy")
    cluster, service = os.environ["DBROLL_CLUSTER"], os.environ["DBROLL_SERVICE"]
    container = os.environ.get("DBROLL_CONTAINER")
    bucket, prefix = os.environ["DBROLL_BUCKET"], os.environ.get("DBROLL_PREFIX", "dbroll")
    timeout = float(os.environ.get("DBROLL_TIMEOUT", "600"))

    def database_step(image: str) -> Any:
        ref = parse_image_ref(image)
        state = Ecs(ecs_client).service_state(cluster, service)
        app = container or next(c.container for c in state.containers if c.repository)
        executor = EcsTaskExecutor(
            OneOffTasks(ecs_client, session.client("logs")), state, container=app, timeout=timeout
        )
        manifest = f"{ref.repository}@{ref.digest}" if ref.digest else image
        outcome = executor.run(
            ["dbroll", "migrate", "--manifest", manifest, "--bucket", bucket, "--prefix", prefix],
            task_env(event["DeploymentId"], ref.digest, os.environ),
        )
        if outcome.ok:
            record_applied(ecs_client, state, [app], ref.digest)
        return outcome

    status = run_hook(
        event,
        codedeploy=codedeploy,
        database_step=database_step,
        resolve_image=lambda dep: target_image(codedeploy, ecs_client, dep, container),
    )
    return {"status": status}
