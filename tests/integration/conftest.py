"""Fixtures for the ECS path: moto's run_task made to really run the task's command.

moto never runs containers, so `ecs_runs_locally` patches moto's run_task: the task's
command override runs here (against the test MariaDB), and the task gets its real exit
code, stop reason and CloudWatch log lines. Everything else is the real boto3 path.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import pytest

from pipeline.aws.ecs import Ecs
from tests.conftest import REPO


@pytest.fixture
def ecs_runs_locally(aws, monkeypatch):
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.run_task
    ran: list[dict] = []

    def run_task(self, *args, **kwargs):
        tasks = original(self, *args, **kwargs)
        overrides = kwargs.get("overrides") or (args[3] if len(args) > 3 else {}) or {}
        for task in tasks:
            co = (overrides.get("containerOverrides") or [{}])[0]
            command = co.get("command") or []
            env = {e["name"]: e["value"] for e in co.get("environment", [])}
            argv = (
                [sys.executable, "-m", "pipeline", *command[1:]]
                if command[:1] == ["dbroll"]
                else command
            )
            p = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=120,
                env={**aws.env, "PATH": "/usr/bin:/bin", "DBROLL_LOG_FORMAT": "json", **env},
            )
            container = task.containers[0]
            container.exitCode = p.returncode
            task.stopped_reason = "Essential container in task exited"
            ran.append({"command": command, "env": env, "exit": p.returncode})
            logs = aws.client("logs")
            stream = f"app/{co.get('name')}/{task.id}"
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName="/ecs/shop")
            logs.create_log_stream(logGroupName="/ecs/shop", logStreamName=stream)
            lines = (p.stdout + p.stderr).splitlines() or ["(no output)"]
            logs.put_log_events(
                logGroupName="/ecs/shop",
                logStreamName=stream,
                logEvents=[
                    {"timestamp": int(time.time() * 1000) + i, "message": line}
                    for i, line in enumerate(lines)
                ],
            )
        return tasks

    monkeypatch.setattr(EC2ContainerServiceBackend, "run_task", run_task)
    return ran


@pytest.fixture
def service(aws):
    ec2, ecs = aws.client("ec2"), aws.client("ecs")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]
    ][:2]
    sg = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "SecurityGroups"
    ][0]["GroupId"]
    ecs.create_cluster(clusterName="prod")
    td = ecs.register_task_definition(
        family="shop",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "app",
                "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:v1",
                "memory": 512,
                "essential": True,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/ecs/shop",
                        "awslogs-region": "eu-west-1",
                        "awslogs-stream-prefix": "app",
                    },
                },
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster="prod",
        serviceName="web",
        taskDefinition=td,
        desiredCount=1,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": subnets,
                "securityGroups": [sg],
                "assignPublicIp": "DISABLED",
            }
        },
    )
    return Ecs(ecs).service_state("prod", "web")
