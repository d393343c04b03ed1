"""Services whose deployment controller is CodeDeploy (ECS blue/green).

ECS refuses UpdateService with a new task definition for such a service; the move is a
CodeDeploy deployment instead: an AppSpec naming the revision dbroll registered and the
service's load balancer container, no lifecycle hooks (dbroll's database step has already
run), created in the deployment group that deploys the service, then followed until
traffic has moved to the replacement task set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import AwsError, BusyError, ConfigError

log = structlog.get_logger(__name__)

CODE_DEPLOY = "CODE_DEPLOY"
_FAILED = {"Failed", "Stopped"}
_UNDER_WAY = ["Created", "Queued", "InProgress", "Baking", "Ready"]


class BlueGreen:
    """CodeDeploy deployments for services with the CODE_DEPLOY controller. `group` is
    "APPLICATION/DEPLOYMENT_GROUP" (--codedeploy-group), else found by looking through the
    account's ECS applications for the group that lists the service."""

    def __init__(self, client: Callable[[], Any], group: str | None = None) -> None:
        self._client_factory = client
        self._client: Any = None
        self._group = group
        self._found: dict[tuple[str, str], tuple[str, str]] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _call(self, resource: str, fn: Any, **kwargs: Any) -> dict:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise AwsError(resource, str(e)) from None

    def group_for(self, state: Any) -> tuple[str, str]:
        """(application, deployment group) deploying the service; ConfigError when there is
        none or more than one and --codedeploy-group does not say."""
        key = (state.cluster, state.service)
        if key in self._found:
            return self._found[key]
        if self._group:
            app, _, group = self._group.partition("/")
            if not app or not group:
                raise ConfigError(
                    f"--codedeploy-group {self._group!r}: expected APPLICATION/DEPLOYMENT_GROUP"
                )
            lists = self._services(app, group)
            if (state.cluster, state.service) not in lists:
                raise ConfigError(
                    f"CodeDeploy deployment group {app}/{group} (--codedeploy-group) deploys "
                    + (", ".join("/".join(s) for s in lists) or "no ECS service")
                    + f", not {state.cluster}/{state.service}; nothing was changed",
                    hint="name the group that lists the service, or leave "
                    "--codedeploy-group out to find it",
                )
            self._found[key] = (app, group)
            return app, group
        found = []
        apps = self._call("CodeDeploy applications", self.client.list_applications)
        for app in apps.get("applications", []):
            groups = self._call(
                f"CodeDeploy application {app}",
                self.client.list_deployment_groups,
                applicationName=app,
            )
            for group in groups.get("deploymentGroups", []):
                if (state.cluster, state.service) in self._services(app, group):
                    found.append((app, group))
        if len(found) != 1:
            raise ConfigError(
                f"ECS service {state.cluster}/{state.service} is deployed by CodeDeploy "
                "(blue/green), and "
                + (
                    "no deployment group of this account and region lists it"
                    if not found
                    else "several deployment groups list it: "
                    + ", ".join("/".join(f) for f in found)
                )
                + "; nothing was changed",
                hint="name it: --codedeploy-group APPLICATION/DEPLOYMENT_GROUP "
                "(env DBROLL_CODEDEPLOY_GROUP)",
            )
        self._found[key] = found[0]
        return found[0]

    def _services(self, app: str, group: str) -> list[tuple[str, str]]:
        """(cluster, service) of each ECS service the deployment group deploys."""
        info = self._call(
            f"CodeDeploy deployment group {app}/{group}",
            self.client.get_deployment_group,
            applicationName=app,
            deploymentGroupName=group,
        )["deploymentGroupInfo"]
        return [(s.get("clusterName"), s.get("serviceName")) for s in info.get("ecsServices", [])]

    @staticmethod
    def appspec(state: Any, task_definition: str) -> dict:
        """The AppSpec of the move: the new revision behind the service's load balancer."""
        lbs = [lb for lb in state.raw.get("loadBalancers", []) if lb.get("containerName")]
        if not lbs:
            raise ConfigError(
                f"ECS service {state.cluster}/{state.service} is deployed by CodeDeploy "
                "(blue/green) but names no load balancer container; nothing was changed",
                hint="a blue/green service routes traffic through a load balancer: check "
                "the service with `aws ecs describe-services`",
            )
        lb = lbs[0]
        return {
            "version": 0.0,
            "Resources": [
                {
                    "TargetService": {
                        "Type": "AWS::ECS::Service",
                        "Properties": {
                            "TaskDefinition": task_definition,
                            "LoadBalancerInfo": {
                                "ContainerName": lb["containerName"],
                                "ContainerPort": lb["containerPort"],
                            },
                        },
                    }
                }
            ],
        }

    def check(self, state: Any) -> None:
        """Everything a move needs, before anything changes: the group, the load balancer
        container, and no deployment of the group under way (CodeDeploy runs one at a
        time: the move's own would be refused after the database step)."""
        app, group = self.group_for(state)
        self.appspec(state, "<the new revision>")
        running = self._call(
            f"CodeDeploy deployment group {app}/{group}",
            self.client.list_deployments,
            applicationName=app,
            deploymentGroupName=group,
            includeOnlyStatuses=_UNDER_WAY,
        ).get("deployments", [])
        if running:
            raise BusyError(
                f"CodeDeploy deployment group {app}/{group} has a deployment under way "
                f"({', '.join(running)}), and it takes one at a time; nothing was changed",
                hint="wait for it (`aws deploy wait deployment-successful --deployment-id "
                f"{running[0]}`) or stop it (`aws deploy stop-deployment --deployment-id "
                f"{running[0]}`), then run the same command again",
            )

    def calls(self, state: Any) -> list[str]:
        """The calls of a move, for --dry-run."""
        app, group = self.group_for(state)
        lb = self.appspec(state, "")["Resources"][0]["TargetService"]["Properties"]
        info = lb["LoadBalancerInfo"]
        return [
            f"codedeploy:CreateDeployment applicationName={app} deploymentGroupName={group} "
            f"(AppSpec: TaskDefinition=<the new revision>, LoadBalancerInfo "
            f"{info['ContainerName']}:{info['ContainerPort']}, no hooks: the database step "
            "is done)",
            "codedeploy:GetDeployment deploymentId=<it> until traffic has moved",
        ]

    def move(self, state: Any, task_definition: str, *, timeout: float, delay: float) -> str:
        """Create the deployment and follow it; returns its id. Done when it Succeeded or
        its original task set's termination wait began (traffic has moved); a Failed or
        Stopped deployment, or the timeout, raises ServiceDeploymentFailed."""
        from pipeline.aws.ecs import ServiceDeploymentFailed

        app, group = self.group_for(state)
        name = f"CodeDeploy deployment group {app}/{group}"
        content = json.dumps(self.appspec(state, task_definition))
        deployment = self._call(
            name,
            self.client.create_deployment,
            applicationName=app,
            deploymentGroupName=group,
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": content}},
            description=f"dbroll: {state.cluster}/{state.service} to {task_definition}",
        )["deploymentId"]
        log.info("CodeDeploy deployment created", deployment=deployment, group=f"{app}/{group}")
        deadline = time.monotonic() + timeout
        said_ready = False
        while True:
            info = self._call(
                f"CodeDeploy deployment {deployment}",
                self.client.get_deployment,
                deploymentId=deployment,
            )["deploymentInfo"]
            status = info.get("status", "")
            if status == "Succeeded" or info.get("instanceTerminationWaitTimeStarted"):
                return deployment
            why = None
            if status in _FAILED:
                err = info.get("errorInformation") or {}
                why = f"{status}: {err.get('code', '')} {err.get('message', '')}".strip()
            elif time.monotonic() >= deadline:
                why = f"still {status or 'unknown'} after {timeout:g} s"
            if why:
                raise ServiceDeploymentFailed(
                    f"ECS service {state.cluster}/{state.service}",
                    f"CodeDeploy deployment {deployment} of {task_definition} {why}",
                    task_definition=task_definition,
                )
            if status == "Ready" and not said_ready:
                said_ready = True
                log.warning(
                    "the replacement task set is ready and waits for traffic to be rerouted "
                    "(the deployment group reroutes by hand): continue it in the CodeDeploy "
                    "console or with `aws deploy continue-deployment`",
                    deployment=deployment,
                )
            time.sleep(delay)
