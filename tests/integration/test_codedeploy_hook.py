"""The CodeDeploy lifecycle hook: Succeeded, Failed, and Failed on an exception (Stubber:
moto has no lifecycle hooks); the target image read from the AppSpec (moto ECS)."""

from __future__ import annotations

import json

import pytest
from botocore.stub import Stubber

from pipeline.aws.codedeploy_hook import run_hook, target_image, task_env
from pipeline.aws.ecs import TaskOutcome

EVENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "hook-1"}


def reporting(aws, status: str):
    cd = aws.client("codedeploy")
    stub = Stubber(cd)
    stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "hook-1"},
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "hook-1", "status": status},
    )
    return cd, stub


def outcome(code: int) -> TaskOutcome:
    return TaskOutcome(
        "arn:aws:ecs:eu-west-1:1:task/prod/t1", code, "EssentialContainerExited", "", "app"
    )


def test_succeeded_when_the_database_step_succeeds(aws):
    cd, stub = reporting(aws, "Succeeded")
    ran = []
    with stub:
        status = run_hook(
            EVENT,
            codedeploy=cd,
            database_step=lambda image: ran.append(image) or outcome(0),
            resolve_image=lambda dep: f"shop@sha256:{'a' * 64}",
        )
    stub.assert_no_pending_responses()
    assert status == "Succeeded" and ran == [f"shop@sha256:{'a' * 64}"]


def test_failed_when_the_database_step_fails(aws):
    cd, stub = reporting(aws, "Failed")
    with stub:
        status = run_hook(
            EVENT, codedeploy=cd, database_step=lambda i: outcome(3), resolve_image=str
        )
    stub.assert_no_pending_responses()
    assert status == "Failed"


def test_an_exception_still_reports_failed_then_raises(aws):
    cd, stub = reporting(aws, "Failed")

    def boom(image):
        raise RuntimeError("run_task failed: RESOURCE:MEMORY")

    with stub, pytest.raises(RuntimeError, match="RESOURCE:MEMORY"):
        run_hook(EVENT, codedeploy=cd, database_step=boom, resolve_image=str)
    stub.assert_no_pending_responses()  # the hook was not left pending


@pytest.mark.parametrize("as_yaml", [False, True])
def test_the_target_image_comes_from_the_appspec(aws, as_yaml):
    ecs = aws.client("ecs")
    image = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop@sha256:{'b' * 64}"
    td = ecs.register_task_definition(
        family="shop",
        containerDefinitions=[
            {"name": "sidecar", "image": "envoy:1", "memory": 64},
            {"name": "app", "image": image, "memory": 256},
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    appspec = {
        "version": 0.0,
        "Resources": [
            {"TargetService": {"Type": "AWS::ECS::Service", "Properties": {"TaskDefinition": td}}}
        ],
    }
    content = (
        f"version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n"
        f"      Properties:\n        TaskDefinition: {td}\n"
        if as_yaml
        else json.dumps(appspec)
    )
    cd = aws.client("codedeploy")
    stub = Stubber(cd)
    stub.add_response(
        "get_deployment",
        {
            "deploymentInfo": {
                "deploymentId": "d-ABC123",
                "revision": {
                    "revisionType": "AppSpecContent",
                    "appSpecContent": {"content": content},
                },
            }
        },
        {"deploymentId": "d-ABC123"},
    )
    with stub:
        assert target_image(cd, ecs, "d-ABC123", "app") == image


def test_the_task_resumes_or_goes_out_of_order_only_when_the_lambda_says_so():
    base = {"DBROLL_IMAGE": "sha256:ab", "DBROLL_RUN_ID": "d-1"}
    assert task_env("d-1", "sha256:ab", {}) == base
    assert task_env("d-1", "sha256:ab", {"DBROLL_RESUME_INTERRUPTED": "0"}) == base
    assert task_env("d-1", "sha256:ab", {"DBROLL_RESUME_INTERRUPTED": "1"}) == {
        **base,
        "DBROLL_RESUME_INTERRUPTED": "1",
    }
    assert task_env("d-1", "sha256:ab", {"DBROLL_OUT_OF_ORDER": "1", "OTHER": "1"}) == {
        **base,
        "DBROLL_OUT_OF_ORDER": "1",
    }


def test_the_hook_records_the_image_it_migrated_on_the_service(aws, service):
    """What the hook applied is on the service (a CodeDeploy rollback leaves it applied
    beyond the original image); an image the service already runs is not recorded."""
    from pipeline.aws.ecs import Ecs, record_applied

    ecs = aws.client("ecs")
    state = Ecs(ecs).service_state("prod", "web")
    digest = "sha256:" + "b" * 64
    record_applied(ecs, state, ["app"], None)
    assert Ecs(ecs).service_state("prod", "web").tags == {}
    record_applied(ecs, state, ["app"], digest)
    assert Ecs(ecs).service_state("prod", "web").tags == {f"io.dbroll.schema-image/{digest}": "app"}
