"""The rollback pipeline from the CLI (moto CodePipeline), and the stage-rollback switch."""

from __future__ import annotations

import json

from botocore.stub import Stubber

from pipeline.aws.codepipeline import execution_type, pipeline_status
from tests.conftest import dbroll


def _pipeline(aws, name="shop-rollback", variables=True):
    iam = aws.client("iam")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "codepipeline.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    stage = lambda n, cat, prov: {  # noqa: E731
        "name": n,
        "actions": [
            {
                "name": n,
                "actionTypeId": {"category": cat, "owner": "AWS", "provider": prov, "version": "1"},
                "configuration": {"RepositoryName": "shop", "BranchName": "main"}
                if cat == "Source"
                else {},
                **({"outputArtifacts": [{"name": "Src"}]} if cat == "Source" else {}),
            }
        ],
    }
    decl = {
        "name": name,
        "roleArn": role,
        "artifactStore": {"type": "S3", "location": "art"},
        "stages": [stage("Source", "Source", "CodeCommit"), stage("Approve", "Approval", "Manual")],
        "pipelineType": "V2",
    }
    if variables:
        decl["variables"] = [{"name": "TARGET_TAG"}, {"name": "STRATEGY", "defaultValue": "auto"}]
    aws.client("codepipeline").create_pipeline(pipeline=decl)


def test_start_rollback_passes_the_variables(aws):
    _pipeline(aws)
    r = dbroll("pipeline", "start-rollback", "--pipeline", "shop-rollback", "--to", "v41",
               "--strategy", "undo", "--json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    ex = aws.client("codepipeline").get_pipeline_execution(
        pipelineName="shop-rollback", pipelineExecutionId=r.json["execution_id"]
    )["pipelineExecution"]
    assert {v["name"]: v["resolvedValue"] for v in ex["variables"]} == {
        "TARGET_TAG": "v41",
        "STRATEGY": "undo",
    }
    assert r.json["url"].startswith("https://eu-west-1.console.aws.amazon.com/codesuite/")
    text = dbroll("pipeline", "start-rollback", "--pipeline", "shop-rollback", "--to", "v40")
    assert text.exit_code == 0 and "started shop-rollback: execution" in text.stdout


def test_a_pipeline_without_the_variable_or_at_all_is_a_clear_error(aws):
    _pipeline(aws, "plain", variables=False)
    r = dbroll("pipeline", "start-rollback", "--pipeline", "plain", "--to", "v1")
    assert r.exit_code == 2 and "declares no pipeline variable TARGET_TAG" in r.stderr
    r = dbroll("pipeline", "start-rollback", "--pipeline", "nope", "--to", "v1")
    assert r.exit_code == 2 and "CodePipeline nope does not exist" in r.stderr


def test_execution_type_reads_rollback(aws):
    cp = aws.client("codepipeline")
    stub = Stubber(cp)
    for kind in ("ROLLBACK", None):
        stub.add_response(
            "get_pipeline_execution",
            {
                "pipelineExecution": {
                    "pipelineExecutionId": "e1",
                    "status": "InProgress",
                    **({"executionType": kind} if kind else {}),
                }
            },
            {"pipelineName": "shop-deploy", "pipelineExecutionId": "e1"},
        )
    with stub:
        assert execution_type(cp, "shop-deploy", "e1") == "ROLLBACK"
        assert execution_type(cp, "shop-deploy", "e1") == "STANDARD"


def test_status_lists_stages_and_actions(aws):
    cp = aws.client("codepipeline")
    stub = Stubber(cp)
    stub.add_response(
        "get_pipeline_state",
        {
            "pipelineName": "shop-rollback",
            "stageStates": [
                {
                    "stageName": "Plan",
                    "latestExecution": {"pipelineExecutionId": "e1", "status": "Succeeded"},
                    "actionStates": [
                        {
                            "actionName": "Plan",
                            "latestExecution": {"status": "Succeeded", "summary": "undo 2"},
                        }
                    ],
                },
                {
                    "stageName": "Approve",
                    "latestExecution": {"pipelineExecutionId": "e1", "status": "InProgress"},
                    "actionStates": [
                        {"actionName": "Approve", "latestExecution": {"status": "InProgress"}}
                    ],
                },
            ],
        },
    )
    with stub:
        st = pipeline_status(cp, "shop-rollback")
    assert [(s["name"], s["status"]) for s in st["stages"]] == [
        ("Plan", "Succeeded"),
        ("Approve", "InProgress"),
    ]
    assert st["stages"][0]["actions"][0]["summary"] == "undo 2"
