"""ECS: what a service runs (task definition, container images and their digests)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.aws.bluegreen import CODE_DEPLOY
from pipeline.aws.ecr import parse_image_ref
from pipeline.errors import AwsError, ConfigError, NotFoundError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ContainerImage:
    container: str
    image: str  # as written in the task definition
    repository: str | None  # ECR repository, when the image is in ECR
    digest: str | None  # from the running tasks, or the image reference itself
    tag: str | None
    labels: Mapping[str, str] = field(default_factory=dict)  # its dockerLabels


@dataclass(frozen=True)
class ServiceState:
    cluster: str
    service: str
    task_definition: str  # ARN
    containers: tuple[ContainerImage, ...]
    raw: dict  # the DescribeServices entry, with its tags

    @property
    def controller(self) -> str:
        """ECS (rolling), CODE_DEPLOY (blue/green) or EXTERNAL."""
        return (self.raw.get("deploymentController") or {}).get("type", "ECS")

    @property
    def tags(self) -> dict[str, str]:
        """The service's resource tags."""
        return {t["key"]: t.get("value", "") for t in self.raw.get("tags") or []}


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
        try:
            resp = self._call(
                name,
                self.ecs.describe_services,
                cluster=cluster,
                services=[service],
                include=["TAGS"],
            )
        except AwsError as e:
            if "AccessDenied" not in e.message:
                raise
            # a role that may describe the service but not read its tags: the label (on the
            # revision) still names the images whose migrations stay applied
            log.warning(
                "cannot read the service's tags; only its task definition's label will name "
                "the images whose migrations stay applied",
                service=f"{cluster}/{service}",
                error=e.message,
                hint="grant the role the action the error names, on the service",
            )
            resp = self._call(name, self.ecs.describe_services, cluster=cluster, services=[service])
        services = [s for s in resp.get("services", []) if s.get("status") != "INACTIVE"]
        if not services:
            raise NotFoundError(
                f"{name} does not exist", hint="`aws ecs list-services --cluster " + cluster + "`"
            )
        svc = services[0]
        # blue/green (CODE_DEPLOY): the task set that takes production traffic says what runs
        td_arn = _primary_task_set(svc).get("taskDefinition") or svc["taskDefinition"]
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
                ContainerImage(
                    c["name"],
                    image,
                    repo,
                    digest or running.get(c["name"]),
                    tag,
                    dict(c.get("dockerLabels") or {}),
                )
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


def _primary_task_set(svc: dict) -> dict:
    """The PRIMARY task set of a CODE_DEPLOY (or EXTERNAL) service, else {}."""
    return next((t for t in svc.get("taskSets") or [] if t.get("status") == "PRIMARY"), {})


def _network_and_capacity(svc: dict) -> dict[str, Any]:
    """run_task arguments that put a one-off task where the service's tasks live (a
    blue/green service's PRIMARY task set fills in what the service itself does not say)."""
    primary = _primary_task_set(svc)
    svc = {k: svc.get(k) or primary.get(k) for k in {*svc, *primary}}
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
        on_line: Any = None,
    ) -> TaskOutcome:
        """Start the task, pass its log lines to `on_line` as they arrive, wait for STOPPED."""
        arn = self.start(
            state, container=container, command=command, env=env, task_definition=task_definition
        )
        td = task_definition or state.task_definition
        logs = _LogFollower(self, td, container, arn, on_line)
        try:
            task = self.wait_stopped(
                state.cluster, arn, timeout=timeout, delay=delay, on_poll=logs.poll
            )
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM: nobody would wait for it
            self.stop(state.cluster, arn)
            raise
        logs.poll()  # what the task wrote after the last poll
        c = next((c for c in task.get("containers", []) if c.get("name") == container), {})
        return TaskOutcome(
            task_arn=arn,
            exit_code=c.get("exitCode"),
            stop_code=task.get("stopCode"),
            stopped_reason=task.get("stoppedReason") or c.get("reason"),
            container=container,
            log_lines=tuple(logs.lines),
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

    def stop(self, cluster: str, task_arn: str) -> None:
        """Stop a one-off task whose caller was interrupted, so that nothing changes the
        database behind the operator's back: ECS sends its container SIGTERM, and the runner
        in it stops its statements and records where (exit 143). Best effort: the interrupt
        stays the news, and the log says what to look at when the call fails."""
        try:
            self.ecs.stop_task(
                cluster=cluster, task=task_arn, reason="dbroll was interrupted while it waited"
            )
            log.warning("interrupted: stopped the one-off task", task=task_arn)
        except Exception as e:  # noqa: BLE001 - any failure here must not hide the interrupt
            log.error(
                "interrupted, and could not stop the one-off task: it may still be running",
                task=task_arn,
                cluster=cluster,
                error=str(e),
            )

    def wait_stopped(
        self,
        cluster: str,
        task_arn: str,
        *,
        timeout: float,
        delay: float = 6,
        on_poll: Any = None,
        sleep: Any = None,
    ) -> dict:
        """Poll describe_tasks until the task is STOPPED (a fast task goes PENDING -> STOPPED
        between two polls: never wait for RUNNING); `on_poll` runs after each poll."""
        import time

        sleep = sleep or time.sleep
        resource = f"ECS task {task_arn}"
        deadline = time.monotonic() + timeout
        while True:
            tasks = self._adapter._call(
                resource, self.ecs.describe_tasks, cluster=cluster, tasks=[task_arn]
            ).get("tasks", [])
            if on_poll is not None:
                on_poll()
            if not tasks:
                raise NotFoundError(
                    f"{resource} is gone from cluster {cluster}",
                    hint="stopped tasks stay visible for about an hour; look in the ECS console",
                )
            if tasks[0].get("lastStatus") == "STOPPED":
                return tasks[0]
            if time.monotonic() >= deadline:
                raise AwsError(
                    resource,
                    f"did not stop within {timeout:g} s (last status {tasks[0].get('lastStatus')})",
                    hint="the task may still be running: look at it in the ECS console "
                    "before retrying; raise --timeout for long migrations",
                )
            sleep(delay)

    def log_target(self, task_definition: str, container: str, task_arn: str) -> tuple | None:
        """(log group, stream) of a task's container, from the awslogs options; else None."""
        try:
            td = self.ecs.describe_task_definition(taskDefinition=task_definition)
        except ClientError:
            return None
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
            return None
        prefix = opts.get("awslogs-stream-prefix", "ecs")
        return opts["awslogs-group"], f"{prefix}/{container}/{task_arn.rsplit('/', 1)[-1]}"

    def task_logs(self, task_definition: str, container: str, task_arn: str) -> list[str]:
        """The container's CloudWatch log lines, from the task definition's awslogs options."""
        follower = _LogFollower(self, task_definition, container, task_arn, None)
        follower.poll()
        return follower.lines


class _LogFollower:
    """Reads a task's CloudWatch stream incrementally (it appears once the task starts)."""

    def __init__(
        self, tasks: OneOffTasks, task_definition: str, container: str, arn: str, on_line: Any
    ) -> None:
        self.tasks = tasks
        self.td = task_definition
        self.container = container
        self.arn = arn
        self.on_line = on_line
        self.lines: list[str] = []
        self._target: tuple | None | bool = False  # False: not looked up yet
        self._token: str | None = None

    def poll(self) -> None:
        if self.tasks.logs is None:
            return
        if self._target is False:
            self._target = self.tasks.log_target(self.td, self.container, self.arn)
        if not self._target:
            return
        group, stream = self._target
        while True:
            kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream}
            kwargs.update({"nextToken": self._token} if self._token else {"startFromHead": True})
            try:
                resp = self.tasks.logs.get_log_events(**kwargs)
            except ClientError:
                return  # the stream does not exist until the container starts
            for e in resp.get("events", []):
                self.lines.append(e["message"])
                if self.on_line is not None:
                    self.on_line(e["message"])
            token = resp.get("nextForwardToken")
            if not resp.get("events") or token == self._token:
                self._token = token or self._token
                return
            self._token = token


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
    labels: Mapping[str, str | None] | None = None,
    timeout: float = 600,
    delay: float = 15,
    bluegreen: Any = None,
) -> tuple[str, str]:
    """Register a task definition revision with `images` (container -> image) and roll the
    service onto it; wait for steady state. Returns (task definition ARN, deployment id).
    `labels` are set (None: removed) on the containers whose image changes. A service with
    the CODE_DEPLOY controller moves through a CodeDeploy deployment (`bluegreen`)."""
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
        _moved(c, images[c["name"]], labels or {}) if c["name"] in images else c
        for c in current["containerDefinitions"]
    ]
    if td.get("tags"):
        fields["tags"] = td["tags"]
    new_arn = adapter._call(name, ecs.register_task_definition, **fields)["taskDefinition"][
        "taskDefinitionArn"
    ]
    if state.controller == CODE_DEPLOY:
        return new_arn, bluegreen.move(state, new_arn, timeout=timeout, delay=delay)
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
    wait_deployment(ecs, state, new_arn, deployment, timeout=timeout, delay=delay)
    return new_arn, deployment


def _moved(container: dict, image: str, labels: Mapping[str, str | None]) -> dict:
    """A container definition with its new image and `labels` applied."""
    docker = {
        k: v for k, v in {**container.get("dockerLabels", {}), **labels}.items() if v is not None
    }
    out = {**container, "image": image, "dockerLabels": docker}
    if not docker:
        del out["dockerLabels"]
    return out


def retag_service(
    ecs: Any, state: ServiceState, add: Mapping[str, str], remove: list[str]
) -> str | None:
    """Tag the service with `add` and untag `remove`. Returns None, or why it failed (the
    caller decides how much that matters)."""
    arn = state.raw.get("serviceArn", "")
    try:
        if remove:
            ecs.untag_resource(resourceArn=arn, tagKeys=remove)
        if add:
            ecs.tag_resource(resourceArn=arn, tags=[{"key": k, "value": v} for k, v in add.items()])
    except (ClientError, BotoCoreError) as e:
        return str(e)
    return None


def record_applied(
    ecs: Any, state: ServiceState, containers: Iterable[str], digest: str | None
) -> dict[str, str]:
    """Once an image's migrations ran while the service runs another image, tag the
    service io.dbroll.schema-image/<digest> (value: the containers): they are applied
    beyond what it runs, so a later plan from the service finds their undo scripts even if
    the service never gets to that image (a deployment that fails, or that CodeDeploy rolls
    back). Returns the tags written; a failure is logged, not raised: the move goes on."""
    from pipeline.plan import SCHEMA_IMAGE_TAG

    names = sorted(containers)
    runs = {c.digest for c in state.containers if c.container in names}
    if not digest or not names or digest in runs:
        return {}
    tags = {SCHEMA_IMAGE_TAG + digest: " ".join(names)}
    failed = retag_service(ecs, state, tags, [])
    if failed:
        log.warning(
            "the migrations ran, but the service's record of them could not be written",
            service=f"{state.cluster}/{state.service}",
            tag=SCHEMA_IMAGE_TAG + digest,
            error=failed,
            hint="allow ecs:TagResource on the service",
        )
        return {}
    return tags


class ServiceDeploymentFailed(AwsError):
    """The service did not settle on the new task definition (circuit breaker, failing tasks)."""

    def __init__(self, resource: str, message: str, *, task_definition: str) -> None:
        super().__init__(resource, message)
        self.task_definition = task_definition


def wait_deployment(
    ecs: Any,
    state: ServiceState,
    new_arn: str,
    deployment: str,
    *,
    timeout: float,
    delay: float,
    sleep: Any = None,
) -> None:
    """Poll the service until its deployment of `new_arn` completes.

    Done: that deployment is COMPLETED, or it is the only one and runs its desired count.
    Failed: its rolloutState is FAILED (the circuit breaker rolls back), or another task
    definition became primary. Either failure, or the timeout, raises ServiceDeploymentFailed
    naming the reason and the service's latest events.
    """
    import time

    sleep = sleep or time.sleep
    name = f"ECS service {state.cluster}/{state.service}"
    adapter = Ecs(ecs)
    deadline = time.monotonic() + timeout
    while True:
        svc = adapter._call(
            name, ecs.describe_services, cluster=state.cluster, services=[state.service]
        )["services"][0]
        deps = svc.get("deployments", [])
        ours = next(
            (
                d
                for d in deps
                if (d.get("id") == deployment if deployment else d.get("taskDefinition") == new_arn)
            ),
            None,
        )
        why = None
        settled = svc.get("runningCount") == svc.get("desiredCount")
        if ours is not None and ours.get("rolloutState") == "FAILED":
            why = ours.get("rolloutStateReason") or "rollout failed"
        elif svc.get("taskDefinition") != new_arn:
            # the deployment circuit breaker puts the last completed task definition back
            why = f"ECS rolled the service back to {svc.get('taskDefinition')}"
        elif (ours is not None and ours.get("rolloutState") == "COMPLETED") or (
            len(deps) <= 1 and settled
        ):
            return
        elif time.monotonic() >= deadline:
            why = f"did not reach steady state within {timeout:g} s"
        if why is not None:
            events = [e.get("message", "") for e in svc.get("events", [])[:3]]
            raise ServiceDeploymentFailed(
                name,
                f"the deployment of {new_arn} failed: {why}"
                + (" (latest events: " + " | ".join(events) + ")" if events else ""),
                task_definition=new_arn,
            )
        sleep(delay)


def register_runner(ecs: Any, state: ServiceState, container: str, image: str) -> str:
    """A task definition for one-off dbroll tasks: the service's current one with `image`
    in `container` (family `<family>-dbroll-runner`); reused when the latest revision
    already has that image."""
    adapter = Ecs(ecs)
    current = adapter._call(
        f"task definition {state.task_definition}",
        ecs.describe_task_definition,
        taskDefinition=state.task_definition,
    )["taskDefinition"]
    if not any(c["name"] == container for c in current["containerDefinitions"]):
        raise ConfigError(
            f"task definition {state.task_definition} has no container {container!r}",
            hint="name the app container with --container",
        )
    family = f"{current['family']}-dbroll-runner"
    try:
        latest = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        if any(
            c["name"] == container and c["image"] == image
            for c in latest.get("containerDefinitions", [])
        ):
            return latest["taskDefinitionArn"]
    except ClientError:
        pass  # no runner family yet
    fields = {k: current[k] for k in _TD_FIELDS if current.get(k) not in (None, [], {})}
    fields["family"] = family
    fields["containerDefinitions"] = [
        {**c, "image": image} for c in current["containerDefinitions"] if c["name"] == container
    ]
    return adapter._call(
        f"task definition family {family}", ecs.register_task_definition, **fields
    )["taskDefinition"]["taskDefinitionArn"]
