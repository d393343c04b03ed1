"""Fixtures for the ECS path (`ecs_runs_locally` lives in tests/conftest.py)."""

from __future__ import annotations

import pytest

from pipeline.aws.ecs import Ecs
from tests.conftest import SHOP_AWSLOGS, SHOP_FARGATE


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
        **SHOP_FARGATE,
        containerDefinitions=[
            {
                "name": "app",
                "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:v1",
                "memory": 512,
                "essential": True,
                "logConfiguration": SHOP_AWSLOGS,
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
