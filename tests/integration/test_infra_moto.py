"""infra/dbroll-pipelines.yaml deploys into moto's CloudFormation (as far as moto goes)."""

from __future__ import annotations

import json

import yaml

from tests.conftest import REPO

# resource types moto's CloudFormation does not create (checked with moto 5.x); the test
# deploys the rest of the template, with what refers to these left out
NOT_IN_MOTO = {"AWS::CodeBuild::Project", "AWS::CodePipeline::Pipeline"}


class _Cfn(yaml.SafeLoader):
    """CloudFormation YAML -> the JSON form (short tags as Fn:: intrinsics)."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref": value} if suffix == "Ref" else {f"Fn::{suffix}": value}


_Cfn.add_multi_constructor("!", _intrinsic)


def _mentions(value, names) -> bool:
    text = json.dumps(value)
    return any(f'"{n}"' in text or f"${{{n}." in text or f"${{{n}}}" in text for n in names)


def moto_template() -> str:
    t = yaml.load((REPO / "infra" / "dbroll-pipelines.yaml").read_text(), Loader=_Cfn)  # noqa: S506
    gone = {n for n, r in t["Resources"].items() if r["Type"] in NOT_IN_MOTO}
    t["Resources"] = {n: r for n, r in t["Resources"].items() if n not in gone}
    for r in t["Resources"].values():
        for pol in r.get("Properties", {}).get("Policies", []):
            sts = pol["PolicyDocument"]["Statement"]
            pol["PolicyDocument"]["Statement"] = [st for st in sts if not _mentions(st, gone)]
    t["Outputs"] = {k: o for k, o in t["Outputs"].items() if not _mentions(o, gone)}
    return json.dumps(t)


PARAMS = {
    "ClusterName": "prod",
    "ServiceName": "shop",
    "TaskDefinitionFamily": "shop",
    "TaskRoleArn": "arn:aws:iam::123456789012:role/shop-task",
    "ExecutionRoleArn": "arn:aws:iam::123456789012:role/shop-exec",
    "EcrRepositoryName": "shop",
    "DbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-db",
    "SubnetIds": "subnet-1,subnet-2",
    "SecurityGroupIds": "sg-1",
    "CodeCommitRepositoryName": "shop",
}


def create_stack(aws, name: str, **overrides: str) -> tuple[dict, dict]:
    """The template's stack made in moto with PARAMS and `overrides`; it must complete.
    Returns the stack and its resources by logical id."""
    cfn = aws.client("cloudformation")
    cfn.create_stack(
        StackName=name,
        TemplateBody=moto_template(),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v} for k, v in {**PARAMS, **overrides}.items()
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    resources = {
        r["LogicalResourceId"]: r
        for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    }
    return stack, resources


def codebuild_policy(aws, resources: dict, name: str) -> dict:
    """The CodeBuild role's inline policy `name`, as a document."""
    policy = aws.client("iam").get_role_policy(
        RoleName=resources["CodeBuildRole"]["PhysicalResourceId"], PolicyName=name
    )["PolicyDocument"]
    return json.loads(policy) if isinstance(policy, str) else policy


def test_the_stack_creates_its_bucket_roles_and_projects(aws):
    stack, resources = create_stack(aws, "shop-dbroll")
    # no hook bucket given: the optional Lambda and its role are not created
    assert "HookFunction" not in resources and "HookRole" not in resources
    # no IAM database user given: no rds-db:connect grant
    assert "CodeBuildDbIamConnect" not in resources
    # no other service given: no grant on any other service, and nothing for dbroll to move
    assert "CodeBuildAlsoService" not in resources
    bucket = resources["ArtifactBucket"]["PhysicalResourceId"]
    s3 = aws.client("s3")
    s3.head_bucket(Bucket=bucket)  # (moto's CloudFormation ignores the bucket's properties;
    # tests/unit/test_infra.py checks them in the template)
    iam = aws.client("iam")
    for role in ("CodeBuildRole", "PipelineRole"):
        name = resources[role]["PhysicalResourceId"]
        assert iam.get_role(RoleName=name)["Role"]["Arn"]
    policy = iam.get_role_policy(
        RoleName=resources["CodeBuildRole"]["PhysicalResourceId"], PolicyName="dbroll-codebuild"
    )["PolicyDocument"]
    text = policy if isinstance(policy, str) else json.dumps(policy)  # moto keeps it as given
    for sid in ("OneOffTasks", "PassTaskRoles", "DatabaseSecret", "ServiceReadUpdate"):
        assert sid in text
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["ArtifactBucketName"] == bucket
    # the pipelines' artifact store is a bucket of its own
    store = resources["PipelineArtifactBucket"]["PhysicalResourceId"]
    assert store != bucket and outputs["PipelineArtifactBucketName"] == store
    s3.head_bucket(Bucket=store)
    # the policy for the service's task role, to attach; no IAM database user: no connect
    assert outputs["TaskRolePolicyArn"] == resources["TaskRolePolicy"]["PhysicalResourceId"]
    doc = iam.get_policy_version(
        PolicyArn=outputs["TaskRolePolicyArn"],
        VersionId=iam.get_policy(PolicyArn=outputs["TaskRolePolicyArn"])["Policy"][
            "DefaultVersionId"
        ],
    )["PolicyVersion"]["Document"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    assert {st["Sid"] for st in doc["Statement"]} >= {"ResolveImage", "DatabaseSecret"}
    assert "TaskRoleDbIamConnect" not in resources and "TaskRoleDbIamConnectArn" not in outputs


def test_iam_database_authentication_grants_connect_as_the_one_user(aws):
    user = "arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-ABCDEFGHIJKL/dbroll"
    stack, resources = create_stack(aws, "shop-dbroll-iam", DbIamUserArn=user)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    # the one-off tasks' token is signed with the task role: its policy to attach
    assert (
        outputs["TaskRoleDbIamConnectArn"]
        == (resources["TaskRoleDbIamConnect"]["PhysicalResourceId"])
    )
    doc = codebuild_policy(aws, resources, "dbroll-rds-iam-connect")
    assert doc["Statement"] == [
        {
            "Sid": "DatabaseIamConnect",
            "Effect": "Allow",
            "Action": "rds-db:connect",
            "Resource": user,
        }
    ]


def test_a_worker_service_may_be_updated_and_no_other(aws):
    _, resources = create_stack(aws, "shop-dbroll-worker", AlsoServiceName="shop-worker")
    doc = codebuild_policy(aws, resources, "dbroll-also-service")
    assert doc["Statement"] == [
        {
            "Sid": "AlsoServiceReadUpdate",
            "Effect": "Allow",
            "Action": [
                "ecs:DescribeServices",
                "ecs:UpdateService",
                "ecs:TagResource",
                "ecs:UntagResource",
            ],
            "Resource": "arn:aws:ecs:eu-west-1:123456789012:service/prod/shop-worker",
        }
    ]


def test_a_blue_green_service_may_be_deployed_through_its_one_deployment_group(aws):
    _, resources = create_stack(aws, "shop-dbroll-bg", CodeDeployGroup="shop/web-bg")
    doc = codebuild_policy(aws, resources, "dbroll-blue-green")
    arn = "arn:aws:codedeploy:eu-west-1:123456789012"
    assert {st["Sid"]: st["Resource"] for st in doc["Statement"]} == {
        "BlueGreenDeployments": f"{arn}:deploymentgroup:shop/web-bg",
        "BlueGreenRevisions": f"{arn}:application:shop",
        "BlueGreenConfig": f"{arn}:deploymentconfig:*",
    }
    _, plain = create_stack(aws, "shop-dbroll-rolling")
    assert "CodeBuildBlueGreen" not in plain
