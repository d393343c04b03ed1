"""The dry-run guard on real (moto) clients, and the dedicated runner image (--runner)."""

from __future__ import annotations

import pytest

from pipeline.aws.calls import AwsCallLog, DryRunWrite
from pipeline.aws.ecs import Ecs, register_runner
from tests.conftest import SHOP_FARGATE


def test_read_only_log_records_reads_and_refuses_writes(aws):
    s3 = aws.client("s3")
    s3.create_bucket(
        Bucket="calls-b", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    log = AwsCallLog(read_only=True)
    log.attach(s3)
    s3.list_objects_v2(Bucket="calls-b")
    with pytest.raises(DryRunWrite, match="s3:PutObject"):
        s3.put_object(Bucket="calls-b", Key="k", Body=b"secret bytes")
    assert [c.split(" EncodingType")[0] for c in log.calls] == ["s3:ListObjectsV2 Bucket=calls-b"]
    assert aws.client("s3").list_objects_v2(Bucket="calls-b").get("KeyCount") == 0


def test_recording_log_keeps_bodies_out(aws):
    s3 = aws.client("s3")
    s3.create_bucket(
        Bucket="calls-c", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    log = AwsCallLog(read_only=False)
    log.attach(s3)
    s3.put_object(Bucket="calls-c", Key="k", Body=b"hunter2")
    assert log.calls == ["s3:PutObject Body=<bytes> Bucket=calls-c Key=k"]


def test_runner_image_is_a_reused_task_definition_family(service, aws, ecs_runs_locally):
    from pipeline.aws.ecs import OneOffTasks
    from pipeline.executor import EcsTaskExecutor

    ecs = aws.client("ecs")
    state = Ecs(ecs).service_state(service.cluster, service.service)
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/dbroll-runner:1.0"
    arn = register_runner(ecs, state, "app", image)
    assert ":task-definition/shop-dbroll-runner:" in arn
    assert register_runner(ecs, state, "app", image) == arn  # same image: reused
    other = register_runner(ecs, state, "app", image.replace("1.0", "1.1"))
    assert other != arn
    td = ecs.describe_task_definition(taskDefinition=other)["taskDefinition"]
    assert [c["image"] for c in td["containerDefinitions"]] == [image.replace("1.0", "1.1")]
    out = EcsTaskExecutor(
        OneOffTasks(ecs, aws.client("logs")),
        state,
        container="app",
        task_definition=other,
        timeout=30,
        delay=0.05,
    ).run(["dbroll", "--version"], {})
    task = ecs.describe_tasks(cluster=state.cluster, tasks=[out.task_arn])["tasks"][0]
    assert task["taskDefinitionArn"] == other and out.ok
    assert ecs_runs_locally[-1]["command"] == ["dbroll", "--version"]


def test_runner_for_an_unknown_container_is_a_clear_error(service, aws):
    from pipeline.errors import ConfigError

    ecs = aws.client("ecs")
    state = Ecs(ecs).service_state(service.cluster, service.service)
    with pytest.raises(ConfigError, match="no container 'worker'"):
        register_runner(ecs, state, "worker", "img:1")


@pytest.fixture
def steady(monkeypatch):
    """Services made after this reach steady state in moto."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")


def test_the_schema_label_is_set_and_removed_and_other_labels_stay(steady, service, aws):
    from pipeline.aws.ecs import point_service_at

    ecs = aws.client("ecs")
    td = ecs.describe_task_definition(taskDefinition="shop")["taskDefinition"]
    (c,) = td["containerDefinitions"]
    arn = ecs.register_task_definition(
        **SHOP_FARGATE,
        containerDefinitions=[{**c, "dockerLabels": {"team": "shop"}}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster="prod", service="web", taskDefinition=arn)
    key = "io.dbroll.schema-images"

    def move(tag: str, value: str | None) -> dict:
        state = Ecs(ecs).service_state("prod", "web")
        image = c["image"].replace(":v1", f":{tag}")
        new, _ = point_service_at(
            ecs, state, {"app": image}, labels={key: value}, timeout=5, delay=0.01
        )
        (moved,) = ecs.describe_task_definition(taskDefinition=new)["taskDefinition"][
            "containerDefinitions"
        ]
        assert moved["image"] == image
        return moved.get("dockerLabels", {})

    assert move("v2", "sha256:" + "a" * 64) == {"team": "shop", key: "sha256:" + "a" * 64}
    assert Ecs(ecs).service_state("prod", "web").containers[0].labels[key] == "sha256:" + "a" * 64
    assert move("v3", None) == {"team": "shop"}


def _after_move(ecs, *digests: str) -> dict:
    """The service's tags after a move whose plan keeps `digests`' migrations applied."""
    from pipeline.deploy import _retag
    from pipeline.plan import ImageRef, Plan

    state = Ecs(ecs).service_state("prod", "web")
    ref = ImageRef("shop", "sha256:" + "3" * 64, "v3")
    plan = Plan("rollback", "code-only", "auto", ref, ref, schema_images=digests)
    _retag(ecs, state, plan, ["app"])
    return Ecs(ecs).service_state("prod", "web").tags


def test_the_schema_tags_are_set_and_removed_and_other_tags_stay(service, aws):
    ecs = aws.client("ecs")
    arn = Ecs(ecs).service_state("prod", "web").raw["serviceArn"]
    old, new = "sha256:" + "b" * 64, "sha256:" + "a" * 64
    prefix = "io.dbroll.schema-image/"
    ecs.tag_resource(
        resourceArn=arn,
        tags=[{"key": "team", "value": "shop"}, {"key": prefix + old, "value": "app"}],
    )
    assert _after_move(ecs, new) == {"team": "shop", prefix + new: "app"}
    assert _after_move(ecs, new) == {"team": "shop", prefix + new: "app"}  # unchanged
    assert _after_move(ecs) == {"team": "shop"}


def test_a_tag_write_that_fails_leaves_the_move_and_says_what_to_run(service, aws):
    """AccessDenied (a role without ecs:TagResource) is a warning naming the command that
    writes the tags by hand; nothing is raised, since the label holds the same record."""
    from botocore.stub import Stubber
    from structlog.testing import capture_logs

    from pipeline.deploy import _retag
    from pipeline.plan import ImageRef, Plan

    ecs = aws.client("ecs")
    state = Ecs(ecs).service_state("prod", "web")
    digest = "sha256:" + "a" * 64
    ref = ImageRef("shop", "sha256:" + "3" * 64, "v3")
    plan = Plan("rollback", "code-only", "auto", ref, ref, schema_images=(digest,))
    with Stubber(ecs) as stub, capture_logs() as logs:
        stub.add_client_error("tag_resource", "AccessDeniedException", "not authorized")
        _retag(ecs, state, plan, ["app"])
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert "AccessDeniedException" in warning["error"]
    arn = state.raw["serviceArn"]
    assert (
        f"aws ecs tag-resource --resource-arn {arn} --tags "
        f"'key=io.dbroll.schema-image/{digest},value=app'" in warning["hint"]
    )
    assert Ecs(aws.client("ecs")).service_state("prod", "web").tags == {}


def _bg_state():
    """A CODE_DEPLOY service's state as service_state gives it (moto)."""
    from pipeline.aws.ecs import ServiceState

    return ServiceState(
        "prod",
        "web",
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop:2",
        (),
        {
            "deploymentController": {"type": "CODE_DEPLOY"},
            "loadBalancers": [{"containerName": "app", "containerPort": 80}],
        },
    )


def test_a_codedeploy_move_is_done_when_traffic_moved_and_says_when_it_waits_for_a_reroute(aws):
    """States moto cannot produce (Stubber): Ready (a group that reroutes by hand) is said
    once; the original task set's termination wait starting means traffic has moved, which
    is done, without waiting out the wait; Stopped is a failure naming the error."""
    from botocore.stub import Stubber
    from structlog.testing import capture_logs

    from pipeline.aws.bluegreen import BlueGreen
    from pipeline.aws.ecs import ServiceDeploymentFailed

    cd = aws.client("codedeploy")
    bg = BlueGreen(lambda: cd, "shop/web-bg")
    group = {
        "deploymentGroupInfo": {"ecsServices": [{"serviceName": "web", "clusterName": "prod"}]}
    }
    td = "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop:3"

    def info(status: str, **more) -> dict:
        return {"deploymentInfo": {"status": status, **more}}

    with Stubber(cd) as stub, capture_logs() as logs:
        stub.add_response("get_deployment_group", group)
        stub.add_response("create_deployment", {"deploymentId": "d-1"})
        for reply in (info("InProgress"), info("Ready"), info("Ready")):
            stub.add_response("get_deployment", reply)
        stub.add_response(
            "get_deployment", info("InProgress", instanceTerminationWaitTimeStarted=True)
        )
        assert bg.move(_bg_state(), td, timeout=30, delay=0) == "d-1"
        stub.assert_no_pending_responses()
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "the replacement task set is ready and waits for traffic to be rerouted (the "
        "deployment group reroutes by hand): continue it in the CodeDeploy console or with "
        "`aws deploy continue-deployment`"
    ]

    with Stubber(cd) as stub:
        stub.add_response("create_deployment", {"deploymentId": "d-2"})
        stopped = info("Stopped", errorInformation={"code": "ALARM_ACTIVE", "message": "5xx"})
        stub.add_response("get_deployment", stopped)
        with pytest.raises(
            ServiceDeploymentFailed, match="d-2 of .*shop:3 Stopped: ALARM_ACTIVE 5xx"
        ):
            bg.move(_bg_state(), td, timeout=30, delay=0)


def test_a_blue_green_service_runs_what_its_primary_task_set_runs_and_where(aws):
    """A CODE_DEPLOY service's PRIMARY task set (the one taking production traffic) names
    the task definition dbroll plans from, and the network a one-off task joins when the
    service itself does not say (Stubber: moto makes no task sets for CodeDeploy)."""
    from botocore.stub import Stubber

    from pipeline.aws.ecs import _network_and_capacity

    ecs = aws.client("ecs")
    td = "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop:"
    net = {"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"]}}
    service = {
        "serviceName": "web",
        "status": "ACTIVE",
        "taskDefinition": td + "2",
        "deploymentController": {"type": "CODE_DEPLOY"},
        "taskSets": [
            {"status": "ACTIVE", "taskDefinition": td + "4", "launchType": "FARGATE"},
            {
                "status": "PRIMARY",
                "taskDefinition": td + "3",
                "launchType": "FARGATE",
                "platformVersion": "1.4.0",
                "networkConfiguration": net,
            },
        ],
    }
    container = {"name": "app", "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:v3"}
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", {"services": [service]})
        stub.add_response(
            "describe_task_definition",
            {
                "taskDefinition": {
                    "taskDefinitionArn": td + "3",
                    "containerDefinitions": [container],
                }
            },
            {"taskDefinition": td + "3"},
        )
        stub.add_response("list_tasks", {"taskArns": []})
        state = Ecs(ecs).service_state("prod", "web")
    assert state.task_definition == td + "3" and state.controller == "CODE_DEPLOY"
    assert _network_and_capacity(state.raw) == {
        "networkConfiguration": net,
        "launchType": "FARGATE",
        "platformVersion": "1.4.0",
    }


def test_a_role_that_cannot_read_the_service_s_tags_still_plans_from_the_label(aws):
    """DescribeServices with include=TAGS denied (Stubber: moto does not enforce IAM): the
    service is read again without tags, with a warning that passes the error on."""
    from botocore.stub import Stubber
    from structlog.testing import capture_logs

    ecs = aws.client("ecs")
    td = "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop:3"
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:v3"
    labels = {"io.dbroll.schema-images": "sha256:" + "4" * 64}
    with Stubber(ecs) as stub, capture_logs() as logs:
        stub.add_client_error("describe_services", "AccessDeniedException", "not authorized")
        service = {"serviceName": "web", "status": "ACTIVE", "taskDefinition": td}
        stub.add_response(
            "describe_services", {"services": [service]}, {"cluster": "prod", "services": ["web"]}
        )
        stub.add_response(
            "describe_task_definition",
            {
                "taskDefinition": {
                    "taskDefinitionArn": td,
                    "containerDefinitions": [
                        {"name": "app", "image": image, "dockerLabels": labels}
                    ],
                }
            },
        )
        stub.add_response("list_tasks", {"taskArns": []})
        state = Ecs(ecs).service_state("prod", "web")
        stub.assert_no_pending_responses()
    assert state.tags == {} and state.containers[0].labels == labels
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert "not authorized" in warning["error"] and "the action the error names" in warning["hint"]
