"""The dry-run guard on real (moto) clients, and the dedicated runner image (--runner)."""

from __future__ import annotations

import pytest

from pipeline.aws.calls import AwsCallLog, DryRunWrite
from pipeline.aws.ecs import Ecs, register_runner


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
        family="shop",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
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
