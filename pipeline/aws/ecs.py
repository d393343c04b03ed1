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
