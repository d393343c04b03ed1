"""E2E fixtures: three releases of a shop's migrations, built and published to moto."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SHOP_AWSLOGS, SHOP_FARGATE, dbroll, push_image, write_files

V1 = {
    "V1__customers.sql": "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, "
    "name VARCHAR(100) NOT NULL);",
    "U1__customers.sql": "DROP TABLE customers;",
    "V2__orders.sql": "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, "
    "customer_id INT NOT NULL, total DECIMAL(10,2) NOT NULL DEFAULT 0);",
    "U2__orders.sql": "DROP TABLE orders;",
    "R__views.sql": "CREATE OR REPLACE VIEW order_totals AS SELECT customer_id, SUM(total) AS t "
    "FROM orders GROUP BY customer_id;",
}
# v2: an additive table and a defaulted column (code-only safe)
V2 = {
    **V1,
    "V3__coupons.sql": "CREATE TABLE coupons (code VARCHAR(20) PRIMARY KEY);\n"
    "ALTER TABLE orders ADD COLUMN coupon VARCHAR(20) NULL;",
    "U3__coupons.sql": "ALTER TABLE orders DROP COLUMN coupon;\nDROP TABLE coupons;",
}
# v3: breaking: a column renamed, and the view changes with it
V3 = {
    **V2,
    "V4__rename_name.sql": "ALTER TABLE customers RENAME COLUMN name TO full_name;",
    "U4__rename_name.sql": "ALTER TABLE customers RENAME COLUMN full_name TO name;",
    "R__views.sql": "CREATE OR REPLACE VIEW order_totals AS SELECT customer_id, "
    "SUM(total) AS t, COUNT(*) AS n FROM orders GROUP BY customer_id;",
}
# v4 (built by the tests that need it, publish_release): an additive table on v3, so rolling
# v4 back to v3 is code-only and keeps version 5
V4 = {
    **V3,
    "V5__notes.sql": "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);",
    "U5__notes.sql": "DROP TABLE notes;",
}
# v4 with a breaking change instead (NOT NULL without default): never code-only
V4_BREAKING = {
    **V3,
    "V5__email.sql": "ALTER TABLE customers ADD COLUMN email VARCHAR(100) NOT NULL;",
    "U5__email.sql": "ALTER TABLE customers DROP COLUMN email;",
}


@pytest.fixture
def release(tmp_path, aws):
    """Three releases built and published: ECR repo `shop` with tags v1..v3, bucket `art`."""
    ecr, s3 = aws.client("ecr"), aws.client("s3")
    ecr.create_repository(repositoryName="shop")
    s3.create_bucket(Bucket="art", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return {
        name: publish_release(tmp_path, ecr, name, files)
        for name, files in (("v1", V1), ("v2", V2), ("v3", V3))
    }


def publish_release(tmp_path, ecr, name: str, files: dict[str, str]) -> dict:
    """Build a release's manifest, push its image to ECR `shop:<name>`, publish the manifest
    to bucket `art`: what the build stage does."""
    mdir = write_files(tmp_path / "src" / name, files)
    built = dbroll(
        "manifest",
        "build",
        "--migrations",
        str(mdir),
        "--out",
        str(tmp_path / "build" / name),
        "--app-version",
        name,
    )
    assert built.exit_code == 0, built.stderr
    sha = built.stdout.strip()
    digest = push_image(ecr, "shop", name, f"image {name}")
    pub = dbroll(
        "manifest",
        "publish",
        "--manifest",
        str(tmp_path / "build" / name),
        "--image",
        f"shop:{name}",
        "--bucket",
        "art",
    )
    assert pub.exit_code == 0, pub.stderr
    assert "published" in pub.stdout and digest in pub.stdout
    return {"dir": mdir, "build": tmp_path / "build" / name, "sha": sha, "digest": digest}


@pytest.fixture
def on_service(aws, monkeypatch):
    """An ECS service running a given release's image (by digest)."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    monkeypatch.setenv("DBROLL_POLL_SECONDS", "0.05")
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="prod")

    def deploy(digest: str) -> str:
        image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop@{digest}"
        td = ecs.register_task_definition(
            family="shop",
            containerDefinitions=[
                {"name": "app", "image": image, "memory": 256, "essential": True}
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster="prod", serviceName="web", taskDefinition=td, desiredCount=1)
        return td

    return deploy


@pytest.fixture
def shop_service(aws, monkeypatch, db):
    """Service prod/web whose task definition carries the DSN (as a real one carries the
    secret), awslogs options and a tag (a move copies it, which AWS authorizes as
    ecs:TagResource on the new revision). Called again, it moves the service to a fresh revision
    registered without dbroll, as CodeDeploy blue/green registers taskdef.json."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    monkeypatch.setenv("DBROLL_POLL_SECONDS", "0.05")
    ecs, ec2 = aws.client("ecs"), aws.client("ec2")
    ecs.create_cluster(clusterName="prod")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]
    ]
    sg = ec2.create_security_group(GroupName="shop-e2e", Description="shop", VpcId=vpc["VpcId"])

    def run(digest: str) -> None:
        td = ecs.register_task_definition(
            **SHOP_FARGATE,
            tags=[{"key": "team", "value": "shop"}],
            containerDefinitions=[
                {
                    "name": "app",
                    "image": f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop@{digest}",
                    "memory": 256,
                    "essential": True,
                    "environment": [{"name": "DBROLL_DSN", "value": db.to_dsn()}],
                    "logConfiguration": SHOP_AWSLOGS,
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        if ecs.describe_services(cluster="prod", services=["web"])["services"]:
            ecs.update_service(cluster="prod", service="web", taskDefinition=td)
            return
        ecs.create_service(
            cluster="prod",
            serviceName="web",
            taskDefinition=td,
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": subnets,
                    "securityGroups": [sg["GroupId"]],
                    "assignPublicIp": "DISABLED",
                }
            },
        )

    return run


@pytest.fixture
def blue_green(aws, monkeypatch):
    """prod/web as a CodeDeploy (blue/green) service behind a load balancer container, its
    deployment group shop/web-bg; moto creates deployments but never runs them, so this
    makes one do what CodeDeploy does: the AppSpec's task definition becomes the service's
    (the replacement task set takes the traffic), status Succeeded, or Failed when
    `state["fail"]`, or left Created (under way) when `state["hold"]`. Returns the state: "deploy"(digest, group_lists="web") makes the
    service and the group (which lists that service); "appspecs" are the AppSpecs deployed."""
    import json

    from moto.codedeploy.models import CodeDeployBackend
    from moto.ecs.models import ecs_backends

    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    monkeypatch.setenv("DBROLL_POLL_SECONDS", "0.05")
    state: dict = {"fail": False, "hold": False, "appspecs": []}
    original = CodeDeployBackend.create_deployment

    def create_deployment(self, application_name, deployment_group_name, revision, *a, **kw):
        deployment_id = original(self, application_name, deployment_group_name, revision, *a, **kw)
        deployment = self.deployments[deployment_id]
        spec = json.loads(revision["appSpecContent"]["content"])
        state["appspecs"].append(spec)
        if state["hold"]:  # under way until the test says otherwise
            return deployment_id
        if state["fail"]:
            deployment.status = "Failed"
            return deployment_id
        td = spec["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"]
        ecs = ecs_backends[self.account_id][self.region_name]
        for target in deployment.deployment_group.ecs_services:
            ecs.services[f"{target['clusterName']}:{target['serviceName']}"].task_definition = td
        deployment.status = "Succeeded"
        return deployment_id

    monkeypatch.setattr(CodeDeployBackend, "create_deployment", create_deployment)
    ecs, cd = aws.client("ecs"), aws.client("codedeploy")
    ecs.create_cluster(clusterName="prod")
    tg = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shop-blue/1"

    def deploy(digest: str, group_lists: str = "web") -> None:
        image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop@{digest}"
        td = ecs.register_task_definition(
            family="shop",
            containerDefinitions=[
                {
                    "name": "app",
                    "image": image,
                    "memory": 256,
                    "essential": True,
                    "portMappings": [{"containerPort": 80}],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster="prod",
            serviceName="web",
            taskDefinition=td,
            desiredCount=1,
            deploymentController={"type": "CODE_DEPLOY"},
            loadBalancers=[{"targetGroupArn": tg, "containerName": "app", "containerPort": 80}],
        )
        cd.create_application(applicationName="shop", computePlatform="ECS")
        cd.create_deployment_group(
            applicationName="shop",
            deploymentGroupName="web-bg",
            serviceRoleArn="arn:aws:iam::123456789012:role/codedeploy",
            deploymentStyle={
                "deploymentType": "BLUE_GREEN",
                "deploymentOption": "WITH_TRAFFIC_CONTROL",
            },
            ecsServices=[{"serviceName": group_lists, "clusterName": "prod"}],
        )

    state["deploy"] = deploy
    return state


def service_image(aws, service: str = "web") -> str:
    ecs = aws.client("ecs")
    td = ecs.describe_services(cluster="prod", services=[service])["services"][0]["taskDefinition"]
    return ecs.describe_task_definition(taskDefinition=td)["taskDefinition"][
        "containerDefinitions"
    ][0]["image"]


def run_worker(aws, digest: str, container: str = "worker") -> None:
    """Service prod/worker (task definition family shop-worker, one container) on
    shop@`digest`, beside prod/web: created the first time, updated after."""
    ecs = aws.client("ecs")
    image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop@{digest}"
    td = ecs.register_task_definition(
        family="shop-worker",
        containerDefinitions=[
            {"name": container, "image": image, "memory": 256, "essential": True}
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    if ecs.describe_services(cluster="prod", services=["worker"])["services"]:
        ecs.update_service(cluster="prod", service="worker", taskDefinition=td)
    else:
        ecs.create_service(cluster="prod", serviceName="worker", taskDefinition=td, desiredCount=1)


def service_labels(aws) -> dict:
    """The dockerLabels of the one container of the service's task definition."""
    ecs = aws.client("ecs")
    td = ecs.describe_services(cluster="prod", services=["web"])["services"][0]["taskDefinition"]
    (c,) = ecs.describe_task_definition(taskDefinition=td)["taskDefinition"]["containerDefinitions"]
    return c.get("dockerLabels", {})


def service_tags(aws, service: str = "web") -> dict:
    """The resource tags of ECS service prod/`service`."""
    ecs = aws.client("ecs")
    (svc,) = ecs.describe_services(cluster="prod", services=[service], include=["TAGS"])["services"]
    return {t["key"]: t["value"] for t in svc.get("tags", [])}


def run_rollback(dsn, to, *more, env_lock: bool = False):
    """env_lock: the database step gives up on the runner lock after 1 s."""
    return dbroll(
        "rollback",
        "--cluster",
        "prod",
        "--service",
        "web",
        "--to",
        to,
        "--executor",
        "local",
        "--dsn",
        dsn,
        "--bucket",
        "art",
        "--yes",
        *more,
        env={"DBROLL_LOCK_TIMEOUT": "1"} if env_lock else None,
    )


def db_secret(aws, db) -> str:
    """An RDS-style secret `shop-db` in moto's Secrets Manager naming the test database; its
    ARN (for --dsn-secret)."""
    return aws.client("secretsmanager").create_secret(
        Name="shop-db",
        SecretString=json.dumps(
            {"host": db.host, "port": db.port, "username": db.user, "password": db.password,
             "dbname": db.database}
        ),
    )["ARN"]  # fmt: skip
