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
