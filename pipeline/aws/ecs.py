"""ECS: what a service runs (task definition, container images and their digests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.aws.ecr import parse_image_ref
from pipeline.errors import AwsError, ConfigError, NotFoundError


@dataclass(frozen=True)
class ContainerImage:
    container: str
    image: str  # as written in the task definition
    repository: str | None  # ECR repository, when the image is in ECR
    digest: str | None  # from the running tasks, or the image reference itself
    tag: str | None


@dataclass(frozen=True)
class ServiceState:
    cluster: str
    service: str
    task_definition: str  # ARN
    containers: tuple[ContainerImage, ...]
    raw: dict


class Ecs:
    """Task-level ECS operations (client passed in)."""

    def __init__(self, ecs: Any) -> None:
        self.ecs = ecs

    def _call(self, resource: str, fn: Any, **kwargs: Any) -> dict:
        try:
            return fn(**kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("ClusterNotFoundException", "ServiceNotFoundException"):
                raise NotFoundError(
                    f"{resource} does not exist ({code})",
                    hint="check --cluster/--service and the region",
                ) from None
            raise AwsError(resource, str(e)) from None
        except BotoCoreError as e:
            raise AwsError(resource, str(e)) from None

    def service_state(self, cluster: str, service: str) -> ServiceState:
        """The service's current task definition and, per container, the image digest."""
        name = f"ECS service {cluster}/{service}"
        resp = self._call(name, self.ecs.describe_services, cluster=cluster, services=[service])
        services = [s for s in resp.get("services", []) if s.get("status") != "INACTIVE"]
        if not services:
            raise NotFoundError(
                f"{name} does not exist", hint="`aws ecs list-services --cluster " + cluster + "`"
            )
        svc = services[0]
        td_arn = svc["taskDefinition"]
        td = self._call(
            f"task definition {td_arn}", self.ecs.describe_task_definition, taskDefinition=td_arn
        )["taskDefinition"]
        running = self._running_digests(cluster, service, td_arn)
        containers = []
        for c in td.get("containerDefinitions", []):
            image = c["image"]
            try:
                ref = parse_image_ref(image)
                repo, tag, digest = ref.repository, ref.tag, ref.digest
            except ConfigError:
                repo = tag = digest = None
            containers.append(
                ContainerImage(c["name"], image, repo, digest or running.get(c["name"]), tag)
            )
        return ServiceState(cluster, service, td_arn, tuple(containers), svc)

    def _running_digests(self, cluster: str, service: str, td_arn: str) -> dict[str, str]:
        """Container name -> image digest, from the service's running tasks (tags move)."""
        arns = self._call(
            f"ECS service {cluster}/{service}",
            self.ecs.list_tasks,
            cluster=cluster,
            serviceName=service,
        ).get("taskArns", [])
        if not arns:
            return {}
        tasks = self._call(
            f"ECS service {cluster}/{service}",
            self.ecs.describe_tasks,
            cluster=cluster,
            tasks=arns[:100],
        ).get("tasks", [])
        out: dict[str, str] = {}
        for t in tasks:
            if t.get("taskDefinitionArn") != td_arn:
                continue
            for c in t.get("containers", []):
                if c.get("imageDigest"):
                    out.setdefault(c["name"], c["imageDigest"])
        return out


@dataclass(frozen=True)
class TaskOutcome:
    """How a one-off task ended: the essential container's exit code and the task's log."""

    task_arn: str
    exit_code: int | None
    stop_code: str | None
    stopped_reason: str | None
    container: str
    log_lines: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _network_and_capacity(svc: dict) -> dict[str, Any]:
    """run_task arguments that put a one-off task where the service's tasks live."""
    kwargs: dict[str, Any] = {}
    if svc.get("networkConfiguration"):
        kwargs["networkConfiguration"] = svc["networkConfiguration"]
    if svc.get("capacityProviderStrategy"):
        kwargs["capacityProviderStrategy"] = svc["capacityProviderStrategy"]
    elif svc.get("launchType"):
        kwargs["launchType"] = svc["launchType"]
    if svc.get("platformVersion") and (
        svc.get("launchType") == "FARGATE" or svc.get("capacityProviderStrategy")
    ):
        kwargs["platformVersion"] = svc["platformVersion"]
    return kwargs


class OneOffTasks:
    """Run a command as a one-off task in a service's cluster and network, and wait for it.

    `ecs` and `logs` are boto3 clients passed in.
    """

    def __init__(self, ecs: Any, logs: Any = None) -> None:
        self.ecs = ecs
        self.logs = logs
        self._adapter = Ecs(ecs)

    def run(
        self,
        state: ServiceState,
        *,
        container: str,
        command: list[str],
        env: dict[str, str],
        task_definition: str | None = None,
        timeout: float = 600,
        delay: float = 6,
    ) -> TaskOutcome:
        arn = self.start(
            state, container=container, command=command, env=env, task_definition=task_definition
        )
        task = self.wait_stopped(state.cluster, arn, timeout=timeout, delay=delay)
        c = next((c for c in task.get("containers", []) if c.get("name") == container), {})
        return TaskOutcome(
            task_arn=arn,
            exit_code=c.get("exitCode"),
            stop_code=task.get("stopCode"),
            stopped_reason=task.get("stoppedReason") or c.get("reason"),
            container=container,
            log_lines=tuple(
                self.task_logs(
                    task.get("taskDefinitionArn") or (task_definition or state.task_definition),
                    container,
                    arn,
                )
            ),
        )

    def start(
        self,
        state: ServiceState,
        *,
        container: str,
        command: list[str],
        env: dict[str, str],
        task_definition: str | None = None,
    ) -> str:
        td = task_definition or state.task_definition
        resource = f"ECS cluster {state.cluster} (one-off task of {state.service})"
        resp = self._adapter._call(
            resource,
            self.ecs.run_task,
            cluster=state.cluster,
            taskDefinition=td,
            count=1,
            startedBy="dbroll",
            overrides={
                "containerOverrides": [
                    {
                        "name": container,
                        "command": command,
                        "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
                    }
                ]
            },
            **_network_and_capacity(state.raw),
        )
        failures = resp.get("failures") or []
        if failures or not resp.get("tasks"):
            why = (
                "; ".join(
                    f"{f.get('reason')} ({f.get('arn', '')}{' ' + f['detail'] if f.get('detail') else ''})"
                    for f in failures
                )
                or "no task was started"
            )
            raise AwsError(
                resource,
                f"run_task failed: {why}",
                hint="check capacity in the cluster, the service's subnets and "
                "security groups, and the task definition",
            )
        return resp["tasks"][0]["taskArn"]

    def wait_stopped(
        self, cluster: str, task_arn: str, *, timeout: float, delay: float = 6
    ) -> dict:
        # a fast task goes PENDING -> STOPPED between two polls: wait for STOPPED only
        from botocore.exceptions import WaiterError

        attempts = max(1, int(timeout // max(delay, 0.01)) + 1)
        try:
            self.ecs.get_waiter("tasks_stopped").wait(
                cluster=cluster,
                tasks=[task_arn],
                WaiterConfig={"Delay": delay, "MaxAttempts": attempts},
            )
        except WaiterError as e:
            raise AwsError(
                f"ECS task {task_arn}",
                f"did not stop within {timeout:g} s ({e})",
                hint="the task may still be running: look at it in the ECS console "
                "before retrying; raise --timeout for long migrations",
            ) from None
        return self.ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"][0]

    def task_logs(self, task_definition: str, container: str, task_arn: str) -> list[str]:
        """The container's CloudWatch log lines, from the task definition's awslogs options."""
        if self.logs is None:
            return []
        try:
            td = self.ecs.describe_task_definition(taskDefinition=task_definition)
        except ClientError:
            return []
        cdef = next(
            (
                c
                for c in td["taskDefinition"].get("containerDefinitions", [])
                if c.get("name") == container
            ),
            {},
        )
        conf = cdef.get("logConfiguration") or {}
        opts = conf.get("options") or {}
        if conf.get("logDriver") != "awslogs" or "awslogs-group" not in opts:
            return []
        stream = (
            f"{opts.get('awslogs-stream-prefix', 'ecs')}/{container}/{task_arn.rsplit('/', 1)[-1]}"
        )
        try:
            events = self.logs.get_log_events(
                logGroupName=opts["awslogs-group"], logStreamName=stream, startFromHead=True
            )
        except ClientError:
            return []
        return [e["message"] for e in events.get("events", [])]


_TD_FIELDS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "runtimePlatform",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
)


def point_service_at(
    ecs: Any,
    state: ServiceState,
    images: dict[str, str],
    *,
    timeout: float = 600,
    delay: float = 15,
) -> tuple[str, str]:
    """Register a task definition revision with `images` (container -> image) and roll the
    service onto it; wait for steady state. Returns (task definition ARN, deployment id)."""
    adapter = Ecs(ecs)
    name = f"ECS service {state.cluster}/{state.service}"
    td = adapter._call(
        f"task definition {state.task_definition}",
        ecs.describe_task_definition,
        taskDefinition=state.task_definition,
        include=["TAGS"],
    )
    current = td["taskDefinition"]
    fields = {k: current[k] for k in _TD_FIELDS if current.get(k) not in (None, [], {})}
    fields["containerDefinitions"] = [
        {**c, "image": images.get(c["name"], c["image"])} for c in current["containerDefinitions"]
    ]
    if td.get("tags"):
        fields["tags"] = td["tags"]
    new_arn = adapter._call(name, ecs.register_task_definition, **fields)["taskDefinition"][
        "taskDefinitionArn"
    ]
    svc = adapter._call(
        name,
        ecs.update_service,
        cluster=state.cluster,
        service=state.service,
        taskDefinition=new_arn,
    )["service"]
    deployment = next(
        (d.get("id", "") for d in svc.get("deployments", []) if d.get("taskDefinition") == new_arn),
        "",
    )
    from botocore.exceptions import WaiterError

    try:
        ecs.get_waiter("services_stable").wait(
            cluster=state.cluster,
            services=[state.service],
            WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(timeout // max(delay, 0.01)))},
        )
    except WaiterError as e:
        raise AwsError(
            name,
            f"did not reach steady state on {new_arn} within {timeout:g} s ({e})",
            hint="look at the service's events and stopped tasks; the "
            "database is already in the target state",
        ) from None
    return new_arn, deployment
