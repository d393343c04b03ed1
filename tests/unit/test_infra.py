"""infra/: cfn-lint passes; IAM is least privilege; every resource is one moto can create."""

from __future__ import annotations

import json
import re
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


# ------------------------------------------------------------------ pipeline artifacts


def _rendered(value, names: dict):
    """A template value with !Sub, !Ref and !GetAtt resolved from `names`."""
    if isinstance(value, list):
        return [_rendered(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if "Sub" in value:
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], value["Sub"])
    if "Ref" in value:
        return names[value["Ref"]]
    if "GetAtt" in value:
        return names[value["GetAtt"]]
    return {k: _rendered(v, names) for k, v in value.items()}


def _names(template: dict, stack: str) -> dict:
    """Refs of this stack: pseudo parameters, buckets (name, Arn), everything else by name."""
    names = {"AWS::StackName": stack, "AWS::Partition": "aws", "AWS::Region": "eu-west-1"}
    names |= {"AWS::AccountId": "123456789012"}
    names |= {k: f"param-{k}" for k in template["Parameters"]}
    for logical, res in template["Resources"].items():
        bucket = f"{stack}-{logical}".lower()
        names[logical] = bucket if res["Type"] == "AWS::S3::Bucket" else logical
        names[f"{logical}.Arn"] = f"arn:aws:s3:::{bucket}"
    return names


def _allows(statements: list[dict], action: str, resource: str) -> bool:
    def like(pattern: str, value: str) -> bool:
        return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), value) is not None

    return any(
        st["Effect"] == "Allow"
        and action in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
        and any(
            like(r, resource)
            for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
        )
        for st in statements
    )


# a stack name as in the README, and one whose pipelines' names pass 20 characters
@pytest.mark.parametrize("stack", ["shop-dbroll", "payments-eu-west-dbroll-prod"])
def test_the_roles_may_use_each_pipelines_artifact_folder(stack):
    """AWS puts a pipeline's artifacts in its ArtifactStore bucket, in a folder named after
    the pipeline (its first 20 characters): CodePipeline reads and writes them there, and so
    does CodeBuild for its actions' input and output artifacts."""
    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    names = _names(t, stack)
    pipelines = [r for r in t["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
    assert len(pipelines) == 2
    for role in ("PipelineRole", "CodeBuildRole"):
        sts = [_rendered(st, names) for n, st in statements(t) if n == role]
        for p in pipelines:
            props = p["Properties"]
            folder = _rendered(props["Name"], names)[:20]
            bucket = _rendered(props["ArtifactStore"]["Location"], names)
            key = f"arn:aws:s3:::{bucket}/{folder}/Src/AbCdEfG"
            for action in ("s3:GetObject", "s3:PutObject"):
                assert _allows(sts, action, key), (role, action, key)
            assert _allows(sts, "s3:ListBucket", f"arn:aws:s3:::{bucket}"), (role, bucket)


def test_the_pipelines_artifact_store_holds_nothing_else():
    """The grants on the pipelines' store are its whole content: no dbroll data is there,
    and the one-off tasks' and the hook's roles get nothing of it."""
    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    stores = {
        r["Properties"]["ArtifactStore"]["Location"]["Ref"]
        for r in t["Resources"].values()
        if r["Type"] == "AWS::CodePipeline::Pipeline"
    }
    assert stores == {"PipelineArtifactBucket"}
    b = t["Resources"]["PipelineArtifactBucket"]["Properties"]
    assert b["VersioningConfiguration"]["Status"] == "Enabled"  # CodePipeline: versioned
    assert all(b["PublicAccessBlockConfiguration"].values())
    for name, st in statements(t):
        if "PipelineArtifactBucket" in json.dumps(st):
            assert name in ("PipelineRole", "CodeBuildRole"), name


def test_the_walker_finds_a_folder_the_grant_misses():
    """A grant on `pipeline/*` (not a folder AWS makes) does not cover the deploy pipeline's."""
    st = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/pipeline/*"}
    assert not _allows([st], "s3:GetObject", "arn:aws:s3:::b/shop-dbroll-deploy/Src/x")
    assert _allows([st], "s3:GetObject", "arn:aws:s3:::b/pipeline/Src/x")


# ------------------------------------------------------------------ the README's claims


def _star_statements(template: dict) -> dict[str, set[str]]:
    """Sid -> actions of each Allow statement on Resource "*"."""
    out: dict[str, set[str]] = {}
    for name, st in statements(template):
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if st.get("Effect") == "Allow" and "*" in resources:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            out.setdefault(f"{name}/{st['Sid']}", set()).update(actions)
    return out


def test_the_readme_names_every_resource_star_and_every_wildcard_arn():
    """infra/README.md lists the Resource "*" actions and the ARNs ending in a wildcard that
    are not the children of one named resource; each is in the template, and vice versa."""
    t = load(REPO / "infra" / "dbroll-pipelines.yaml")
    readme = (REPO / "infra" / "README.md").read_text()
    star_actions = set().union(*_star_statements(t).values())
    assert star_actions == STAR_ONLY
    for action in STAR_ONLY:
        assert f"`{action}`" in readme, action
    open_ended = set()
    for _, st in statements(t):
        for r in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
            text = r.get("Sub", "") if isinstance(r, dict) else ""
            tail = text.split("${AWS::AccountId}:", 1)[-1] if "${AWS::AccountId}" in text else ""
            # a wildcard that does not follow a parameter or resource name: not one resource's
            if re.search(r"(^|[:/])\*", tail.replace("${", "")) and not re.search(
                r"\$\{[^}]+\}[^*:/]*[:/]\*$", tail
            ):
                open_ended.add(tail)
    assert open_ended, "the check found no open-ended ARN: is it still looking?"
    for tail in open_ended:
        assert f"`{tail}`" in readme, tail
