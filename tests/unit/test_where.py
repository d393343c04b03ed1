"""Where a runner runs (pipeline.aws.where): the ARN it records with the runner lock, read
from CodeBuild's environment or a real HTTP task metadata endpoint, and whether the task or
build an ARN names still runs, asked of moto (Stubber only for what moto cannot produce:
a build in progress, a refused call)."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.stub import Stubber

from pipeline.aws.where import ECS_METADATA_ENV, runner_arn, runner_status
from tests.conftest import ecs_task_metadata

TASK = "arn:aws:ecs:eu-west-1:123456789012:task/runners/0123456789abcdef0123456789abcdef"
BUILD = "arn:aws:codebuild:eu-west-1:123456789012:build/shop-dbroll:0b5c1f7e-8d4e-4b8a-9f61"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_codebuild_names_its_build():
    assert runner_arn({"CODEBUILD_BUILD_ARN": BUILD, "CODEBUILD_BUILD_ID": "x"}) == BUILD


def test_an_ecs_task_is_named_by_its_metadata_endpoint():
    with ecs_task_metadata(TASK) as uri:
        assert runner_arn({ECS_METADATA_ENV: uri}) == TASK
        assert runner_arn({ECS_METADATA_ENV: uri + "/"}) == TASK


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"TaskARN": 7}', b'{"TaskARN": "task-1"}', b"{}"]
)
def test_a_metadata_endpoint_that_says_no_arn_names_nothing(body):
    with ecs_task_metadata(TASK, body) as uri:
        assert runner_arn({ECS_METADATA_ENV: uri}) is None


def test_an_unreachable_metadata_endpoint_names_nothing_and_does_not_fail():
    assert runner_arn({ECS_METADATA_ENV: f"http://127.0.0.1:{_closed_port()}/v4/x"}) is None
    assert runner_arn({ECS_METADATA_ENV: "file:///etc/passwd"}) is None
    assert runner_arn({}) is None


def _client_for(aws):
    def make(service, region):
        assert region == "eu-west-1"
        return aws.client(service)

    return make


def test_a_running_task_is_alive_and_a_stopped_one_gone(aws, runner_task):
    st = runner_status(runner_task, _client_for(aws))
    assert (st.what, st.alive, st.status) == ("ECS task", True, "RUNNING"), st
    assert runner_task in st.text and "still runs" in st.text

    aws.client("ecs").stop_task(
        cluster="runners", task=runner_task, reason="Host EC2 instance terminated"
    )
    st = runner_status(runner_task, _client_for(aws))
    assert (st.alive, st.status) == (False, "STOPPED"), st
    assert "Host EC2 instance terminated" in st.text, st.text


def test_a_task_ecs_no_longer_knows_is_gone(aws, runner_task):
    unknown = runner_task.rsplit("/", 1)[0] + "/ffffffffffffffffffffffffffffffff"
    st = runner_status(unknown, _client_for(aws))
    assert (st.alive, st.status) == (False, "MISSING"), st
    assert "about an hour" in st.text


def test_a_finished_build_is_gone(aws):
    cb = aws.client("codebuild")
    cb.create_project(
        name="shop-dbroll",
        source={"type": "S3", "location": "artifacts/shop/source.zip"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
        },
        serviceRole="arn:aws:iam::123456789012:role/codebuild",
    )
    arn = cb.start_build(projectName="shop-dbroll")["build"]["arn"]
    st = runner_status(arn, _client_for(aws))
    assert (st.what, st.alive, st.status) == ("CodeBuild build", False, "SUCCEEDED"), st


def _stubbed(service):
    client = boto3.client(
        service,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return client, Stubber(client)


def test_a_build_in_progress_is_alive():
    cb, stub = _stubbed("codebuild")
    stub.add_response(
        "batch_get_builds",
        {
            "builds": [
                {"id": "shop-dbroll:0b5c", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD"}
            ]
        },
        {"ids": [BUILD.split("build/", 1)[1]]},
    )
    with stub:
        st = runner_status(BUILD, lambda service, region: cb)
    assert (st.alive, st.status) == (True, "IN_PROGRESS"), st
    assert "(BUILD)" in st.text


def test_a_refused_call_is_unknown_and_names_the_call():
    ecs, stub = _stubbed("ecs")
    stub.add_client_error(
        "describe_tasks", "AccessDeniedException", "not authorized to perform ecs:DescribeTasks"
    )
    with stub:
        st = runner_status(TASK, lambda service, region: ecs)
    assert (st.alive, st.status) == (None, "unknown"), st
    assert "ecs:DescribeTasks" in st.text and "check it yourself" in st.text


@pytest.mark.parametrize(
    "arn",
    ["not-an-arn", "arn:aws:lambda:eu-west-1:123456789012:function:f", "arn:aws:ecs::1:task/x"],
)
def test_what_is_not_a_task_or_build_is_unknown(arn):
    st = runner_status(arn, lambda service, region: pytest.fail("no client for that"))
    assert (st.alive, st.status) == (None, "unknown"), st
