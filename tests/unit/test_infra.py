"""infra/: cfn-lint passes; IAM is least privilege; every resource is one moto can create."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

TEMPLATES = sorted((REPO / "infra").glob("*.yaml"))

# Actions AWS authorizes only on Resource "*" (no resource-level permissions).
STAR_ONLY = {
    "ecr:GetAuthorizationToken",
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
}


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags kept as plain values."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _tag)


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def statements(template: dict):
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs.append(props["PolicyDocument"])
        for doc in docs:
            for st in doc["Statement"]:
                yield name, st


def project_env(template: dict, project: str) -> dict:
    """A CodeBuild project's environment variables: name -> value."""
    env = template["Resources"][project]["Properties"]["Environment"]["EnvironmentVariables"]
    return {v["Name"]: v["Value"] for v in env}


def test_there_are_templates():
    assert TEMPLATES, "infra/ has no CloudFormation template"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_passes(path):
    cfn_lint = Path(sys.executable).parent / "cfn-lint"  # installed with the dev extra
    p = subprocess.run([str(cfn_lint), str(path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_no_wildcard_an_action_could_do_without(path):
    bad = []
    for name, st in statements(load(path)):
        if st.get("Effect") != "Allow":
            continue
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if any(a == "*" or a.endswith(":*") for a in actions):
            bad.append(f"{name}/{st.get('Sid')}: Action {actions}")
        if "*" in resources and not set(actions) <= STAR_ONLY:
            bad.append(f"{name}/{st.get('Sid')}: Resource * for {sorted(set(actions) - STAR_ONLY)}")
    assert bad == []


def test_the_walker_catches_a_wildcard():
    """The check above can fail: a template with Resource "*" on RunTask is caught."""
    t = {
        "Resources": {
            "R": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Policies": [
                        {
                            "PolicyDocument": {
                                "Statement": [
                                    {"Effect": "Allow", "Action": "ecs:RunTask", "Resource": "*"}
                                ]
                            }
                        }
                    ]
                },
            }
        }
    }
    ((name, st),) = list(statements(t))
    assert st["Resource"] == "*" and "ecs:RunTask" not in STAR_ONLY


def test_pass_role_and_run_task_are_scoped():
    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    sts = {(n, s.get("Sid")): s for n, s in statements(t)}
    passrole = sts[("CodeBuildRole", "PassTaskRoles")]
    assert passrole["Resource"] == [{"Ref": "TaskRoleArn"}, {"Ref": "ExecutionRoleArn"}]
    run = sts[("CodeBuildRole", "OneOffTasks")]
    assert [r["Sub"].split("${AWS::AccountId}:")[1] for r in run["Resource"]] == [
        "task-definition/${TaskDefinitionFamily}:*",
        "task-definition/${TaskDefinitionFamily}-dbroll-runner:*",
    ]
    secret = sts[("CodeBuildRole", "DatabaseSecret")]
    assert secret["Resource"] == {"Ref": "DbSecretArn"}


def test_the_projects_that_plan_or_move_the_service_name_the_worker_too():
    """AlsoServiceName reaches `dbroll deploy`, `dbroll plan --from-service` (the approver's
    page names it) and `dbroll rollback --bundle` as DBROLL_ALSO_SERVICES; not the build."""
    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    for project, named in (
        ("DeployProject", True),
        ("RollbackPlanProject", True),
        ("RollbackExecuteProject", True),
        ("BuildProject", False),
    ):
        values = project_env(t, project)
        assert ("DBROLL_ALSO_SERVICES" in values) == named, project
        if named:
            assert values["DBROLL_ALSO_SERVICES"] == {"Ref": "AlsoServiceName"}


def test_the_rollback_pipeline_shows_the_plan_to_the_approver():
    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    p = t["Resources"]["RollbackPipeline"]["Properties"]
    assert {v["Name"] for v in p["Variables"]} == {"TARGET_TAG", "STRATEGY"}
    stages = {s["Name"]: s for s in p["Stages"]}
    assert list(stages) == ["Source", "Plan", "Approve", "Execute"]
    approve = stages["Approve"]["Actions"][0]["Configuration"]
    assert "#{Plan.PLAN_SUMMARY}" in approve["CustomData"]
    assert approve["ExternalEntityLink"] == "#{Plan.PLAN_URL}"
    execute = stages["Execute"]["Actions"][0]["Configuration"]["EnvironmentVariables"]
    assert "#{Plan.BUNDLE_URI}" in execute
    exported = yaml.safe_load((REPO / "infra/buildspecs/rollback-plan.yml").read_text())
    assert set(exported["env"]["exported-variables"]) >= {"PLAN_SUMMARY", "BUNDLE_URI", "PLAN_URL"}


def test_the_bucket_is_private_versioned_encrypted_and_tls_only():
    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    b = t["Resources"]["ArtifactBucket"]["Properties"]
    assert b["VersioningConfiguration"]["Status"] == "Enabled"
    assert all(b["PublicAccessBlockConfiguration"].values())
    assert b["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    (deny,) = t["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_the_hook_may_tag_the_one_service_with_what_it_applied():
    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    sts = {(n, s.get("Sid")): s for n, s in statements(t)}
    service = sts[("HookRole", "Service")]
    assert "ecs:TagResource" in service["Action"]
    assert service["Resource"]["Sub"].endswith(":service/${ClusterName}/${ServiceName}")


def test_the_projects_that_move_the_service_name_its_codedeploy_group():
    """CodeDeployGroup reaches `dbroll deploy` and `dbroll rollback --bundle` as
    DBROLL_CODEDEPLOY_GROUP (a blue/green service moves through CodeDeploy); the plan and
    the build move nothing."""
    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    for project, named in (
        ("DeployProject", True),
        ("RollbackExecuteProject", True),
        ("RollbackPlanProject", False),
        ("BuildProject", False),
    ):
        values = project_env(t, project)
        assert values.get("DBROLL_CODEDEPLOY_GROUP") == (
            {"Ref": "CodeDeployGroup"} if named else None
        ), project
